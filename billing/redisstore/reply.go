package redisstore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Replies and stored records are decoded strictly: an element or a field that
// does not have the type and syntax its script's contract gives is an error
// naming the script (or the record), never a silent zero or empty string. Such an
// error is a bug or a foreign write, not an outage: it is not
// billing.ErrUnavailable, and callers answer it as an internal error.

// maxExact bounds the integers a Lua number holds exactly (2^53): an amount or a
// time a script wrote beyond it cannot be right.
const maxExact = 1 << 53

// malformedError says what was malformed, and where.
type malformedError struct {
	where  string // "reserve.lua reply", "ledger event 1-0 of account \"acme\""
	detail string // "element 2 is \"x\", want a decimal integer"
}

func (e *malformedError) Error() string {
	return "redisstore: malformed " + e.where + ": " + e.detail
}

// parseInt reads a decimal integer as the scripts write one (string.format('%d')):
// an optional '-', digits, within ±2^53.
func parseInt(s string) (int64, bool) {
	if s == "" || s[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxExact || n < -maxExact {
		return 0, false
	}
	return n, true
}

// show quotes a value for an error, cut short: replies can be long.
func show(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("%T %v", v, v)
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// reply is one script's reply. Each accessor checks its element; the first one
// that fails is kept in err, and accessors then return zero values. A decoder
// reads what it needs and returns r.done(n), which also checks that the reply had
// exactly n elements.
type reply struct {
	script string // the script's file, for errors
	v      []any
	err    error
}

func (r *reply) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &malformedError{where: r.script + " reply", detail: fmt.Sprintf(format, args...)}
	}
}

func (r *reply) elem(i int) (any, bool) {
	if r.err != nil {
		return nil, false
	}
	if i >= len(r.v) {
		r.fail("%d elements, element %d missing", len(r.v), i)
		return nil, false
	}
	return r.v[i], true
}

// str is element i, a string.
func (r *reply) str(i int) string {
	v, ok := r.elem(i)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail("element %d is %s, want a string", i, show(v))
	}
	return s
}

// is reports whether element i is the string s, without failing when it is not a
// string (a reply whose first element is data, not a status).
func (r *reply) is(i int, s string) bool {
	if i >= len(r.v) {
		return false
	}
	v, ok := r.v[i].(string)
	return ok && v == s
}

// status is the first element, the reply's kind ("OK", "NOACCOUNT"…).
func (r *reply) status() string { return r.str(0) }

func (r *reply) int(i int, want string) int64 {
	s := r.str(i)
	if r.err != nil {
		return 0
	}
	n, ok := parseInt(s)
	if !ok {
		r.fail("element %d is %s, want %s", i, show(s), want)
	}
	return n
}

// micros is element i, an amount.
func (r *reply) micros(i int) money.Micros {
	return money.Micros(r.int(i, "an amount (decimal micros)"))
}

// ms is element i, a time in Unix milliseconds.
func (r *reply) ms(i int) time.Time {
	return time.UnixMilli(r.int(i, "a time (decimal Unix ms)")).UTC()
}

// count is element i, a non-negative integer.
func (r *reply) count(i int) int {
	n := r.int(i, "a count")
	if n < 0 {
		r.fail("element %d is %d, want a count", i, n)
		return 0
	}
	return int(n)
}

// flag is element i, "1" or "0".
func (r *reply) flag(i int) bool {
	switch s := r.str(i); {
	case r.err != nil:
	case s == "1":
		return true
	case s != "0":
		r.fail("element %d is %s, want \"1\" or \"0\"", i, show(s))
	}
	return false
}

// boolean is element i, the integer 1 or 0 (the reply of a script that answers
// whether it did something).
func (r *reply) boolean(i int) bool {
	v, ok := r.elem(i)
	if !ok {
		return false
	}
	if n, ok := v.(int64); ok && (n == 0 || n == 1) {
		return n == 1
	}
	r.fail("element %d is %s, want the integer 1 or 0", i, show(v))
	return false
}

// strings are the elements from i on, strings.
func (r *reply) strings(i int) []string {
	var out []string
	for ; i < len(r.v) && r.err == nil; i++ {
		out = append(out, r.str(i))
	}
	return out
}

// hash is element i, an HGETALL reply (field, value, …).
func (r *reply) hash(i int) map[string]string {
	v, ok := r.elem(i)
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 0 {
		r.fail("element %d is %s, want field/value pairs", i, show(v))
		return nil
	}
	m := make(map[string]string, len(arr)/2)
	for j := 0; j < len(arr); j += 2 {
		k, kok := arr[j].(string)
		val, vok := arr[j+1].(string)
		if !kok || !vok {
			r.fail("element %d: pair %d is %s %s, want two strings", i, j/2, show(arr[j]), show(arr[j+1]))
			return nil
		}
		m[k] = val
	}
	return m
}

// done returns the first error, or an error when the reply had more or fewer
// than n elements.
func (r *reply) done(n int) error {
	if r.err == nil && len(r.v) != n {
		r.fail("%d elements, want %d", len(r.v), n)
	}
	return r.err
}

// refusal is err, the answer to a refusal reply ({'NOACCOUNT'}, {'GONE'}…) of n
// elements, when the reply is well formed; else the reply's error.
func (r *reply) refusal(n int, err error) error {
	if e := r.done(n); e != nil {
		return e
	}
	return err
}

// unexpected is the error for a reply none of a decoder's cases expects.
func (r *reply) unexpected() error {
	if r.err == nil {
		r.fail("unexpected %v", r.v)
	}
	return r.err
}

// decoded returns v when r decoded cleanly as n elements, else r's error.
func decoded[T any](r *reply, n int, v T) (T, error) {
	if err := r.done(n); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// record decodes the fields of one stored record or hash (a grant record, an
// account's fields, a ledger event) with reply's sticky error.
type record struct {
	where string // "state.lua reply, grant \"g1\""
	err   error
}

func (d *record) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &malformedError{where: d.where, detail: fmt.Sprintf(format, args...)}
	}
}

func (d *record) int(field, s, want string) int64 {
	if d.err != nil {
		return 0
	}
	n, ok := parseInt(s)
	if !ok {
		d.fail("%s is %s, want %s", field, show(s), want)
	}
	return n
}

func (d *record) micros(field, s string) money.Micros {
	return money.Micros(d.int(field, s, "an amount (decimal micros)"))
}

func (d *record) ms(field, s string) time.Time {
	return time.UnixMilli(d.int(field, s, "a time (decimal Unix ms)")).UTC()
}

func (d *record) count(field, s string) int {
	n := d.int(field, s, "a count")
	if n < 0 {
		d.fail("%s is %d, want a count", field, n)
		return 0
	}
	return int(n)
}

// Hash fields may be absent (zero: an account or event written before the field
// existed, or a field an event type does not have); a field that is present must
// parse.

func (d *record) microsOf(m map[string]string, field string) money.Micros {
	if s, ok := m[field]; ok {
		return d.micros(field, s)
	}
	return 0
}

func (d *record) msOf(m map[string]string, field string) time.Time {
	if s, ok := m[field]; ok {
		return d.ms(field, s)
	}
	return time.UnixMilli(0).UTC()
}

func (d *record) countOf(m map[string]string, field string) int {
	if s, ok := m[field]; ok {
		return d.count(field, s)
	}
	return 0
}

// tokensOf reads a token count of a usage event: Go's int64, passed through the
// script as it was written, so not bounded by 2^53.
func (d *record) tokensOf(m map[string]string, field string) int64 {
	s, ok := m[field]
	if !ok || d.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s[0] == '+' {
		d.fail("%s is %s, want a token count", field, show(s))
		return 0
	}
	return n
}
