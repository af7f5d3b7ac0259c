package mockupstream

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// behavior combines, in rising precedence, the Server's fields, its Behavior hook and
// the request's X-Mock-* headers.
func (s *Server) behavior(r *http.Request, body []byte) (Behavior, error) {
	b := Behavior{EventDelay: s.EventDelay, CachedTokens: s.CachedTokens, ReasoningTokens: s.ReasoningTokens}
	if s.Behavior != nil {
		b = b.overriddenBy(s.Behavior(r, body))
	}
	h := r.Header
	if !hasMockHeader(h) {
		return b, nil // the common case: skip building the parsers
	}
	var err error
	for _, f := range []struct {
		header string
		parse  func(string) error
	}{
		{"X-Mock-Status", func(v string) (err error) { b.Status, err = parseStatus(v); return }},
		{"X-Mock-Delay", func(v string) (err error) { b.Delay, err = parseDuration(v); return }},
		{"X-Mock-Event-Delay", func(v string) (err error) { b.EventDelay, err = parseDuration(v); return }},
		{"X-Mock-Drop-After", func(v string) (err error) { b.DropAfter, err = parseCount(v); return }},
		{"X-Mock-Stall-After", func(v string) (err error) { b.StallAfter, err = parseCount(v); return }},
		{"X-Mock-No-Usage", func(v string) (err error) { b.NoUsage, err = strconv.ParseBool(v); return }},
		{"X-Mock-No-Done", func(v string) (err error) { b.NoDone, err = strconv.ParseBool(v); return }},
		{"X-Mock-Cached-Tokens", func(v string) (err error) { b.CachedTokens, err = parseTokens(v); return }},
		{"X-Mock-Reasoning-Tokens", func(v string) (err error) { b.ReasoningTokens, err = parseTokens(v); return }},
		{"X-Mock-Prompt-Tokens", func(v string) (err error) { b.PromptTokens, err = parseTokens(v); return }},
		{"X-Mock-Completion-Tokens", func(v string) (err error) { b.CompletionTokens, err = parseTokens(v); return }},
		{"X-Mock-Ignore-Cap", func(v string) (err error) { b.IgnoreCap, err = parseCount(v); return }},
		{"X-Mock-Inflate-Usage", func(v string) (err error) { b.InflateUsage, err = parseCount(v); return }},
		{"X-Mock-Cut-Body", func(v string) (err error) { b.CutBody, err = parseCount(v); return }},
		{"X-Mock-HTML", func(v string) (err error) { b.HTML, err = strconv.ParseBool(v); return }},
	} {
		v := h.Get(f.header)
		if v == "" {
			continue
		}
		if err = f.parse(v); err != nil {
			return Behavior{}, fmt.Errorf("invalid %s header %q: %v", f.header, v, err)
		}
	}
	return b, nil
}

func hasMockHeader(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, "X-Mock-") {
			return true
		}
	}
	return false
}

// overriddenBy returns b with the non-zero fields of o (a true flag sets it).
func (b Behavior) overriddenBy(o Behavior) Behavior {
	override(&b.Status, o.Status)
	override(&b.Delay, o.Delay)
	override(&b.EventDelay, o.EventDelay)
	override(&b.DropAfter, o.DropAfter)
	override(&b.StallAfter, o.StallAfter)
	override(&b.NoUsage, o.NoUsage)
	override(&b.NoDone, o.NoDone)
	override(&b.CachedTokens, o.CachedTokens)
	override(&b.ReasoningTokens, o.ReasoningTokens)
	override(&b.PromptTokens, o.PromptTokens)
	override(&b.CompletionTokens, o.CompletionTokens)
	override(&b.IgnoreCap, o.IgnoreCap)
	override(&b.InflateUsage, o.InflateUsage)
	override(&b.CutBody, o.CutBody)
	override(&b.HTML, o.HTML)
	return b
}

// override sets *dst to v unless v is the zero value.
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

func parseStatus(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, err
	}
	if n < 400 || n > 599 {
		return 0, fmt.Errorf("want an error status from 400 to 599")
	}
	return n, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	return d, err
}

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n < 0 {
		return 0, fmt.Errorf("negative count")
	}
	return n, err
}

func parseTokens(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil && n < 0 {
		return 0, fmt.Errorf("negative token count")
	}
	return n, err
}
