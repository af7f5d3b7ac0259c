package metering

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// edit replaces body[start:end] with text.
type edit struct {
	start, end int
	text       []byte
}

// Rewrite returns body with two changes, everything else left byte for byte:
//   - when maxOutput > 0, the output cap set to maxOutput: every cap parameter the
//     client used (chat: max_completion_tokens and/or max_tokens; completions:
//     max_tokens; responses: max_output_tokens), or that endpoint's parameter added
//     when the client set none. Embeddings have no cap.
//   - when r NeedsStreamUsage, stream_options.include_usage set to true, keeping the
//     other stream_options. Responses streams always report usage, and the API
//     rejects stream_options on unstreamed requests, so nothing is added then.
//
// body must be the body r was parsed from; if it is not (its length differs), it is
// parsed again. With nothing to change, body itself is returned.
func (r *Request) Rewrite(body []byte, maxOutput int64) ([]byte, error) {
	if len(body) != len(r.body) || (len(body) > 0 && &body[0] != &r.body[0]) {
		fresh, err := ParseRequest(r.Endpoint, body)
		if err != nil {
			return nil, fmt.Errorf("metering: rewrite: %w", err)
		}
		r = fresh
	}
	var edits []edit
	var added [][]byte // members to append to the top-level object
	if maxOutput > 0 && r.capField() != "" {
		value := strconv.AppendInt(nil, maxOutput, 10)
		if len(r.caps) == 0 {
			added = append(added, member_(r.capField(), value))
		}
		for _, c := range r.caps {
			edits = append(edits, edit{c.Start, c.End, value})
		}
	}
	if r.NeedsStreamUsage() {
		if e, ok := r.includeUsageEdit(); ok {
			edits = append(edits, e)
		} else {
			added = append(added, member_("stream_options", []byte(`{"include_usage":true}`)))
		}
	}
	if len(added) > 0 {
		sep := []byte(",")
		text := bytes.Join(added, sep)
		if !r.empty {
			text = append(sep, text...)
		}
		edits = append(edits, edit{r.objEnd, r.objEnd, text})
	}
	if len(edits) == 0 {
		return body, nil
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	grow := 0
	for _, e := range edits {
		grow += len(e.text)
	}
	out := make([]byte, 0, len(body)+grow)
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.start]...)
		out = append(out, e.text...)
		at = e.end
	}
	return append(out, body[at:]...), nil
}

// member_ formats "name":value.
func member_(name string, value []byte) []byte {
	text := strconv.AppendQuote(nil, name)
	text = append(text, ':')
	return append(text, value...)
}

// includeUsageEdit sets stream_options.include_usage to true in place; ok is false
// when the client sent no stream_options, which must then be added.
func (r *Request) includeUsageEdit() (e edit, ok bool) {
	if !r.hasOpts {
		return edit{}, false
	}
	if r.body[r.opts.Start] == 'n' {
		return edit{r.opts.Start, r.opts.End, []byte(`{"include_usage":true}`)}, true
	}
	it := jsonscan.Members(r.body, r.opts.Start)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		if m.Is("include_usage") { // false or null
			return edit{m.Start, m.End, []byte("true")}, true
		}
	}
	// Insert as the first member, right after the '{'.
	text := []byte(`"include_usage":true`)
	if inner := r.body[r.opts.Start+1 : r.opts.End-1]; len(bytes.Trim(inner, " \t\r\n")) != 0 {
		text = append(text, ',')
	}
	return edit{r.opts.Start + 1, r.opts.Start + 1, text}, true
}
