package memredis

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	luajson "github.com/alicebob/miniredis/v2/gopher-json"
	lua "github.com/yuin/gopher-lua"
)

// newState builds the one interpreter: the libraries Redis gives scripts
// (base, table, string, math, cjson) and the redis table.
func (e *Engine) newState() *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.Push(l.NewFunction(luajson.Loader))
	l.Call(0, 1)
	l.SetGlobal("cjson", l.Get(-1))
	l.SetTop(0)

	r := l.NewTable()
	for name, f := range map[string]lua.LGFunction{
		"call":         e.redisCall(false),
		"pcall":        e.redisCall(true),
		"error_reply":  errorReply,
		"status_reply": statusReply,
		"sha1hex": func(l *lua.LState) int {
			l.Push(lua.LString(sha1Hex(l.CheckString(1))))
			return 1
		},
		"log":                func(*lua.LState) int { return 0 },
		"replicate_commands": func(l *lua.LState) int { l.Push(lua.LTrue); return 1 },
		"set_repl":           func(*lua.LState) int { return 0 },
		"setresp": func(l *lua.LState) int {
			if l.CheckInt(1) != 2 {
				l.RaiseError("memredis: only RESP2 replies are supported in scripts")
			}
			return 0
		},
	} {
		r.RawSetString(name, l.NewFunction(f))
	}
	for i, level := range []string{"LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"} {
		r.RawSetString(level, lua.LNumber(i))
	}
	l.SetGlobal("redis", r)
	l.SetGlobal("server", r)
	return l
}

// notFromScripts are commands a script may not send.
var notFromScripts = map[string]bool{
	"EVAL": true, "EVALSHA": true, "EVAL_RO": true, "EVALSHA_RO": true, "SCRIPT": true,
	"MULTI": true, "EXEC": true, "DISCARD": true, "WATCH": true, "UNWATCH": true,
	"SUBSCRIBE": true, "PSUBSCRIBE": true, "UNSUBSCRIBE": true, "PUNSUBSCRIBE": true,
}

// redisCall is redis.call (protected false: an error reply raises a Lua error)
// and redis.pcall (protected: it returns {err=…}).
func (e *Engine) redisCall(protected bool) lua.LGFunction {
	return func(l *lua.LState) int {
		top := l.GetTop()
		if top == 0 {
			l.RaiseError("Please specify at least one argument for this redis lib call")
			return 0
		}
		args := make([]string, top)
		for i := range top {
			switch a := l.Get(i + 1).(type) {
			case lua.LString:
				args[i] = string(a)
			case lua.LNumber:
				args[i] = formatNumber(a)
			default:
				l.RaiseError("Lua redis lib command arguments must be strings or integers")
				return 0
			}
		}
		args[0] = strings.ToUpper(args[0])
		if notFromScripts[args[0]] || blocking[args[0]] {
			return e.callFailed(l, protected, "ERR This Redis command is not allowed from script")
		}
		if e.readOnly && !e.srv.IsReadOnlyCommand(args[0]) {
			return e.callFailed(l, protected, "ERR Write commands are not allowed from read-only scripts")
		}
		e.innerBuf.Reset()
		e.dispatching.Store(e.inner)
		e.srv.Dispatch(e.inner, args)
		e.dispatching.Store(nil)
		e.inner.Flush()
		v, errMsg, err := decodeReply(l, e.innerBuf.Bytes())
		switch {
		case err != nil:
			return e.callFailed(l, protected, "ERR memredis: unreadable reply to "+args[0]+": "+err.Error())
		case errMsg != "":
			return e.callFailed(l, protected, errMsg)
		}
		l.Push(v)
		return 1
	}
}

// replyTable is Redis's Lua form of a status ({ok=msg}) or an error ({err=msg}).
func replyTable(l *lua.LState, field, msg string) *lua.LTable {
	t := l.CreateTable(0, 1)
	t.RawSetString(field, lua.LString(msg))
	return t
}

func (e *Engine) callFailed(l *lua.LState, protected bool, msg string) int {
	if protected {
		l.Push(replyTable(l, "err", msg))
		return 1
	}
	// Level 1 prefixes the script's line ("user_script:12: …"), as Redis does.
	l.Error(lua.LString(fmt.Sprintf("%s script: %s", msg, e.running)), 1)
	return 0
}

// formatNumber renders a Lua number as a command argument: integers without
// a fraction, as Redis's Lua does.
func formatNumber(n lua.LNumber) string {
	f := float64(n)
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return n.String()
}

func errorReply(l *lua.LState) int {
	msg := l.CheckString(1)
	code, rest, ok := strings.Cut(strings.TrimPrefix(msg, "-"), " ")
	if ok {
		msg = code + " " + rest
	} else {
		msg = "ERR " + code
	}
	l.Push(replyTable(l, "err", msg))
	return 1
}

func statusReply(l *lua.LState) int {
	l.Push(replyTable(l, "ok", l.CheckString(1)))
	return 1
}

// decodeReply reads one RESP2 reply into the Lua value Redis gives a script:
// integers as numbers, bulk strings as strings, a null as false, arrays as
// tables (their nulls as false), a status as {ok=…}. An error reply comes back
// as errMsg.
func decodeReply(l *lua.LState, b []byte) (v lua.LValue, errMsg string, err error) {
	v, rest, errMsg, err := decodeOne(l, b)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d bytes after the reply", len(rest))
	}
	return v, errMsg, err
}

func decodeOne(l *lua.LState, b []byte) (lua.LValue, []byte, string, error) {
	line, rest, err := readLine(b)
	if err != nil {
		return nil, nil, "", err
	}
	if len(line) == 0 {
		return nil, nil, "", fmt.Errorf("empty reply line")
	}
	body := string(line[1:])
	switch line[0] {
	case '+':
		return replyTable(l, "ok", body), rest, "", nil
	case '-':
		if body == "" {
			body = "ERR" // an error reply without a message is still an error
		}
		return nil, rest, body, nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, nil, "", fmt.Errorf("integer reply %q", body)
		}
		return lua.LNumber(n), rest, "", nil
	case '$':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil:
			return nil, nil, "", fmt.Errorf("bulk length %q", body)
		case n < 0:
			return lua.LFalse, rest, "", nil
		case len(rest) < n+2:
			return nil, nil, "", fmt.Errorf("bulk of %d bytes cut short", n)
		}
		return lua.LString(rest[:n]), rest[n+2:], "", nil
	case '*':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil:
			return nil, nil, "", fmt.Errorf("array length %q", body)
		case n < 0:
			return lua.LFalse, rest, "", nil
		}
		// Each item takes at least 3 bytes: a length beyond that is not trusted
		// for the allocation.
		t := l.CreateTable(min(n, len(rest)/3), 0)
		for i := 1; i <= n; i++ {
			var item lua.LValue
			var itemErr string
			item, rest, itemErr, err = decodeOne(l, rest)
			if err != nil {
				return nil, nil, "", err
			}
			if itemErr != "" {
				item = replyTable(l, "err", itemErr) // an error inside an array (EXEC's), as in Redis
			}
			t.RawSetInt(i, item)
		}
		return t, rest, "", nil
	}
	return nil, nil, "", fmt.Errorf("reply type %q", line[0])
}

func readLine(b []byte) (line, rest []byte, err error) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return nil, nil, fmt.Errorf("reply line without CRLF")
	}
	return b[:i], b[i+2:], nil
}
