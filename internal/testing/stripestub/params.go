package stripestub

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// params is one request's form (POST body or GET query), checked as Stripe does:
// unknown parameters and malformed values are 400 invalid_request_error.
type params struct {
	url.Values
}

// paramError is a 400 invalid_request_error naming the parameter.
func paramError(param, format string, args ...any) *result {
	return &result{status: http.StatusBadRequest, validation: true, body: apiError{Error: errorBody{
		Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...),
	}}}
}

// allowed turns patterns such as "metadata[*]" or "line_items[*][quantity]" into
// one regexp; "*" is one bracketed segment (a metadata key, an index).
func allowed(patterns ...string) *regexp.Regexp {
	var alts []string
	for _, p := range patterns {
		alts = append(alts, strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, `[^\[\]]+`))
	}
	return regexp.MustCompile(`^(?:` + strings.Join(alts, "|") + `)$`)
}

// check refuses an unknown parameter (the first, sorted, as Stripe names one).
func (p params) check(known *regexp.Regexp) *result {
	keys := make([]string, 0, len(p.Values))
	for k := range p.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known.MatchString(k) {
			return withCode(paramError(k, "Received unknown parameter: %s", k), "parameter_unknown")
		}
		if len(p.Values[k]) > 1 {
			return paramError(k, "Received the parameter %s more than once", k)
		}
	}
	return nil
}

// withCode sets the error's code ("parameter_unknown", "resource_missing", …).
func withCode(r *result, code string) *result {
	e := r.body.(apiError)
	e.Error.Code = code
	r.body = e
	return r
}

// str is a string parameter ("" when absent).
func (p params) str(key string) string { return p.Get(key) }

// has reports whether key was sent.
func (p params) has(key string) bool { _, ok := p.Values[key]; return ok }

// integer reads a base-10 integer parameter; ok is false when absent.
func (p params) integer(key string) (v int64, ok bool, bad *result) {
	s, present := p.Values[key]
	if !present {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(s[0], 10, 64)
	if err != nil {
		return 0, false, withCode(paramError(key, "Invalid integer: %s", s[0]), "parameter_invalid_integer")
	}
	return v, true, nil
}

// boolean reads "true"/"false"; ok is false when absent.
func (p params) boolean(key string) (v, ok bool, bad *result) {
	s, present := p.Values[key]
	if !present {
		return false, false, nil
	}
	switch s[0] {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, false, paramError(key, "Invalid boolean: %s", s[0])
}

// metadata collects prefix[key]=value pairs, checked against Stripe's limits.
func (p params) metadata(prefix string) (map[string]string, *result) {
	out := map[string]string{}
	for k, v := range p.Values {
		if !strings.HasPrefix(k, prefix+"[") || !strings.HasSuffix(k, "]") {
			continue
		}
		key := k[len(prefix)+1 : len(k)-1]
		if len(key) > 40 {
			return nil, paramError(k, "Metadata keys can have up to 40 characters")
		}
		if len(v[0]) > 500 {
			return nil, paramError(k, "Metadata values can have up to 500 characters")
		}
		if v[0] != "" { // an empty value unsets a key
			out[key] = v[0]
		}
	}
	if len(out) > 50 {
		return nil, paramError(prefix, "Metadata can have up to 50 keys")
	}
	return out, nil
}

// indices returns the sorted indices n of prefix[n][…] parameters.
func (p params) indices(prefix string) []int {
	seen := map[int]bool{}
	for k := range p.Values {
		if !strings.HasPrefix(k, prefix+"[") {
			continue
		}
		rest := k[len(prefix)+1:]
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			continue
		}
		if n, err := strconv.Atoi(rest[:end]); err == nil {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// list reads an array parameter sent as prefix[0], prefix[1], … (stripe-go) or
// prefix[] (curl style).
func (p params) list(prefix string) []string {
	var out []string
	out = append(out, p.Values[prefix+"[]"]...)
	for _, n := range p.indices(prefix) {
		out = append(out, p.Get(fmt.Sprintf("%s[%d]", prefix, n)))
	}
	return out
}

// fingerprint is the request's identity for idempotency: the same method, path
// and parameters (in any order) are the same request.
func fingerprint(method, path string, form url.Values) string {
	return method + " " + path + "?" + form.Encode() // Encode sorts by key
}
