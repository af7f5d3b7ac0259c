package redisstore

import (
	"context"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Script calls without an allocation per argument. go-redis takes a command's
// arguments as []any and writes a *string or *int64 as the value it points at;
// boxing a string or an int64 (past 255) into an interface allocates, boxing a
// pointer does not. So every call's keys go as pointers into their slice
// (evalHead), and the request path's arguments (reserve, settle, release) as
// pointers into an argList's arrays: about 50 allocations fewer per proxied
// request, of some 250.
//
// An argList is made per call and never pooled: a pipelined script can still be
// sent after its caller left on its context (pipeline.go), so what its
// arguments point at must stay as it was.

// argRoom is how many strings, and how many integers, an argList holds without
// boxing: settle, the longest, has up to 10 strings and 22 integers.
const argRoom = 24

// argList builds a script call: the command's head (EVALSHA, the script, its
// keys) and then the script's arguments (ARGV), in v.
type argList struct {
	v      []any
	strs   [argRoom]string
	ints   [argRoom]int64
	ns, ni int
}

// newArgList starts a call of sc with keys, which must not change afterwards.
func newArgList(sc *script, keys []string) *argList {
	a := new(argList)
	a.v = evalHead(sc, keys, 48) // settle has up to 56 arguments, typically 40
	return a
}

// str adds a string argument ("" is boxed as it is: that allocates nothing).
func (a *argList) str(s string) {
	if s == "" || a.ns == argRoom {
		a.v = append(a.v, s)
		return
	}
	a.strs[a.ns] = s
	a.v = append(a.v, &a.strs[a.ns])
	a.ns++
}

// flag adds a boolean argument, "1" or "0" (boxed once, here).
func (a *argList) flag(b bool) {
	if b {
		a.v = append(a.v, flagTrue)
	} else {
		a.v = append(a.v, flagFalse)
	}
}

var flagTrue, flagFalse any = "1", "0"

// num adds an integer argument, written in decimal.
func (a *argList) num(n int64) {
	if 0 <= n && n < 256 || a.ni == argRoom { // boxing a byte-sized value allocates nothing
		a.v = append(a.v, n)
		return
	}
	a.ints[a.ni] = n
	a.v = append(a.v, &a.ints[a.ni])
	a.ni++
}

// field adds a name (a constant) and its string value, unless the value is "".
func (a *argList) field(name, value string) {
	if value != "" {
		a.v = append(a.v, name)
		a.str(value)
	}
}

// numField adds a name (a constant) and its integer value.
func (a *argList) numField(name string, n int64) {
	a.v = append(a.v, name)
	a.num(n)
}

// evalHead is the head of a call of sc with keys, EVALSHA numkeys key...,
// with room for n arguments more. Keys go as pointers into keys, which must not
// change afterwards (go-redis's cluster client reads the slot from a *string as
// from a string).
func evalHead(sc *script, keys []string, n int) []any {
	v := make([]any, 3+len(keys), 3+len(keys)+n)
	v[0], v[1], v[2] = "evalsha", sc.hashArg, int64(len(keys))
	for i := range keys {
		v[3+i] = &keys[i]
	}
	return v
}

// evalCmd is the command of a call (an evalHead and the arguments), its first
// key marked for the cluster client; with full, as EVAL, which also loads the
// script.
func evalCmd(ctx context.Context, sc *script, call []any, full bool) *redis.Cmd {
	if full {
		call = slices.Clone(call)
		call[0], call[1] = "eval", sc.srcArg
	}
	cmd := redis.NewCmd(ctx, call...)
	if n, _ := call[2].(int64); n > 0 {
		cmd.SetFirstKeyPos(3)
	}
	return cmd
}

// runScript runs a call of sc on c: EVALSHA, then EVAL when the node answers
// NOSCRIPT (after a restart, or a node that never saw the script), as
// redis.Script.Run does.
func runScript(ctx context.Context, c processor, sc *script, call []any) (any, error) {
	cmd := evalCmd(ctx, sc, call, false)
	_ = c.Process(ctx, cmd)
	if isNoScript(cmd.Err()) {
		cmd = evalCmd(ctx, sc, call, true)
		_ = c.Process(ctx, cmd)
	}
	return cmd.Result()
}

// processor sends one command: a client, or a pipeline that queues it.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// isNoScript reports a NOSCRIPT reply: the script did not run.
func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }
