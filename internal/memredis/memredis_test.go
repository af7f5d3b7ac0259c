package memredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	lua "github.com/yuin/gopher-lua"
)

func start(t *testing.T) (*redis.Client, *Engine) {
	t.Helper()
	m := miniredis.RunT(t)
	e := Install(m)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, e
}

// Replies convert between Lua and Redis as Redis converts them.
func TestScriptReplies(t *testing.T) {
	c, e := start(t)
	ctx := context.Background()
	if err := c.HSet(ctx, "h", "a", "1", "b", "two").Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, src string
		want      any // nil: a null reply
		wantErr   string
	}{
		{"integer", "return 42", int64(42), ""},
		{"fraction truncated", "return 3.99", int64(3), ""},
		{"string", "return 'x'", "x", ""},
		{"true", "return true", int64(1), ""},
		{"false", "return false", nil, ""},
		{"nil", "return nil", nil, ""},
		{"array to first nil", "return {1, 'a', nil, 3}", []any{int64(1), "a"}, ""},
		{"false in array", "return {1, false, 2}", []any{int64(1), nil, int64(2)}, ""},
		{"status", "return redis.status_reply('FINE')", "FINE", ""},
		{"error reply", "return redis.error_reply('BAD thing')", nil, "BAD thing"},
		{"error reply without code", "return redis.error_reply('nocode')", nil, "ERR nocode"},
		{"keys and argv", "return {KEYS[1], ARGV[1], #KEYS, #ARGV}", []any{"h", "argv1", int64(1), int64(1)}, ""},
		{"hget", "return redis.call('HGET', KEYS[1], 'b')", "two", ""},
		{"missing field is false", "return tostring(redis.call('HGET', KEYS[1], 'zz'))", "false", ""},
		{"integer reply is a number", "return redis.call('HINCRBY', KEYS[1], 'a', 2) + 1", int64(4), ""},
		{"status reply is a table", "return redis.call('SET', 'k', 'v').ok", "OK", ""},
		{"nested array", "local r = redis.call('HGETALL', KEYS[1]) return #r", int64(4), ""},
		{"number argument", "redis.call('SET', 'n', 12) return redis.call('GET', 'n')", "12", ""},
		{"pcall returns the error", "local r = redis.pcall('HGET', KEYS[1]) return type(r.err)", "string", ""},
		{"call raises the error", "redis.call('HGET', KEYS[1])", nil, "user_script:1:"},
		{"wrong type", "redis.call('GET', KEYS[1])", nil, "WRONGTYPE"},
		{"script error names its line", "local x = 1\nreturn x + nil", nil, "ERR user_script:2:"},
		{"error table", "error({err = 'CODE raised'})", nil, "CODE raised"},
		{"no scripts from scripts", "return redis.call('EVAL', 'return 1', 0)", nil, "not allowed from script"},
		{"cjson", "return cjson.encode({a = 1})", `{"a":1}`, ""},
		{"sha1hex", "return redis.sha1hex('')", "da39a3ee5e6b4b0d3255bfef95601890afd80709", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Eval(ctx, tc.src, []string{"h"}, "argv1").Result()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if tc.want == nil {
				if !errors.Is(err, redis.Nil) {
					t.Fatalf("got %#v, %v; want a null reply", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
	if e.ScriptCalls() < int64(len(cases)) {
		t.Errorf("the engine ran %d scripts, want every one of the %d (miniredis ran the rest)", e.ScriptCalls(), len(cases))
	}
}

// EVALSHA runs what SCRIPT LOAD or EVAL loaded, answers NOSCRIPT otherwise,
// and SCRIPT FLUSH forgets.
func TestScriptCache(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	s := redis.NewScript("return ARGV[1] .. '!'")
	if err := c.EvalSha(ctx, s.Hash(), nil, "a").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		t.Fatalf("EVALSHA before loading: %v, want NOSCRIPT", err)
	}
	if got, err := s.Run(ctx, c, nil, "a").Text(); err != nil || got != "a!" {
		t.Fatalf("Run: %q %v", got, err) // EVALSHA, NOSCRIPT, then EVAL
	}
	if got, err := c.EvalSha(ctx, s.Hash(), nil, "b").Text(); err != nil || got != "b!" {
		t.Fatalf("EVALSHA after EVAL: %q %v", got, err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.EvalSha(ctx, s.Hash(), nil, "a").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		t.Fatalf("EVALSHA after SCRIPT FLUSH: %v, want NOSCRIPT", err)
	}
	sha, err := c.ScriptLoad(ctx, "return 7").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.EvalSha(ctx, sha, nil).Int(); err != nil || got != 7 {
		t.Fatalf("EVALSHA after SCRIPT LOAD: %d %v", got, err)
	}
	if err := c.ScriptLoad(ctx, "return (").Err(); err == nil || !strings.Contains(err.Error(), "compiling") {
		t.Fatalf("SCRIPT LOAD of a broken script: %v, want a compile error", err)
	}
}

// A script inside MULTI is refused, and the transaction aborts (EXECABORT).
func TestScriptInTransaction(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	cmds, _ := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k", "1", 0)
		p.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{"k"})
		return nil
	})
	if len(cmds) != 2 {
		t.Fatalf("%d replies, want 2", len(cmds))
	}
	if err := cmds[1].Err(); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("EVAL in MULTI: %v, want it refused", err)
	}
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("k exists (%v): the transaction ran, want it aborted", err)
	}
}

// A read-only script may read but not write.
func TestReadOnlyScripts(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.EvalRO(ctx, "return redis.call('GET', KEYS[1])", []string{"k"}).Text(); err != nil || got != "v" {
		t.Fatalf("EVAL_RO reading: %q %v", got, err)
	}
	if err := c.EvalRO(ctx, "return redis.call('SET', KEYS[1], 'w')", []string{"k"}).Err(); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("EVAL_RO writing: %v, want it refused", err)
	}
}

// Nothing runs between two redis.calls of a script: a read-modify-write in a
// script loses no update to other clients writing the same key meanwhile.
func TestScriptsAreAtomic(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	const perClient, clients = 200, 4
	rmw := redis.NewScript(`
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], v + 1)
return v + 1`)
	var wg sync.WaitGroup
	errs := make(chan error, clients*2)
	for i := range clients * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				var err error
				if i%2 == 0 {
					err = rmw.Run(ctx, c, []string{"n"}).Err()
				} else {
					err = c.Incr(ctx, "n").Err()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "n").Int(); err != nil || got != perClient*clients*2 {
		t.Fatalf("n = %d (%v), want %d: an update was lost between a script's calls", got, err, perClient*clients*2)
	}
}

// FuzzDecodeReply: any byte string either decodes or is refused; never a panic.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "*-1\r\n", "*1\r\n-E x\r\n", "$5\r\nab\r\n", "*3\r\n"} {
		f.Add([]byte(s))
	}
	l := lua.NewState()
	defer l.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		v, errMsg, err := decodeReply(l, b)
		if err == nil && v == nil && errMsg == "" {
			t.Fatalf("%q: no value, no error reply and no error", b)
		}
	})
}
