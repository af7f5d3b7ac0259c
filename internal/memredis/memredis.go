// Package memredis is the in-process Redis behind redis.url: memory:// (and the
// tests' fallback store): miniredis keeps the data and speaks the protocol, and
// this package runs Lua scripts itself, because miniredis builds a fresh
// interpreter for every script call (its libraries, its redis table, a protocol
// writer and reader per redis.call), which made a script call cost ~1,500
// allocations and most of a request's CPU. Here one interpreter is kept, each
// script is compiled once, and a redis.call goes to miniredis's command table
// through one reused in-memory connection.
//
// Atomicity: miniredis runs each command under its own lock, and a script's
// redis.calls are separate commands to it. Engine therefore serializes every
// command of every client behind one mutex (a pre-hook on miniredis's server),
// so nothing runs between two calls of a script, as in Redis. Blocking commands
// (BLPOP and the like) are left unserialized, so that one waiting client cannot
// stop the others; creditgate uses none.
//
// Scripts sent inside MULTI are refused (creditgate sends none): miniredis
// would run them at EXEC in its own interpreter, outside this one.
//
// Installing the engine takes miniredis's single pre-hook: Miniredis.SetError
// must not be used with it.
package memredis

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Start runs a new miniredis on a free local port with the engine installed.
func Start() (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, err
	}
	Install(m)
	return m, nil
}

// Install puts the script engine in front of a started miniredis.
func Install(m *miniredis.Miniredis) *Engine {
	e := &Engine{srv: m.Server(), scripts: make(map[string]*lua.FunctionProto), inTx: make(map[*server.Peer]bool)}
	e.inner = server.NewPeer(bufio.NewWriter(&e.innerBuf))
	e.discard = server.NewPeer(bufio.NewWriter(discardWriter{}))
	e.l = e.newState()
	e.srv.SetPreHook(e.hook)
	return e
}

// Engine runs scripts for one miniredis. Its fields are guarded by mu.
type Engine struct {
	srv *server.Server
	mu  sync.Mutex
	// dispatching is the peer whose command is being handed to miniredis
	// under mu: the pre-hook lets its (re-entered) command through.
	dispatching atomic.Pointer[server.Peer]

	l       *lua.LState
	scripts map[string]*lua.FunctionProto // by SHA-1 of the source
	// inTx: peers between MULTI and EXEC/DISCARD.
	inTx map[*server.Peer]bool

	// inner is the connection a script's redis.calls go through; its replies
	// land in innerBuf and are decoded straight into Lua values.
	inner    *server.Peer
	innerBuf bytes.Buffer
	// discard takes replies nobody reads.
	discard *server.Peer
	// running is the SHA-1 of the script being run (for error messages).
	running string
	// readOnly: the script came as EVAL_RO or EVALSHA_RO.
	readOnly bool
	// calls counts script calls, for tests that check the engine ran them.
	calls atomic.Int64
}

// blocking commands wait for other clients' writes, so they must not hold mu.
var blocking = map[string]bool{
	"BLPOP": true, "BRPOP": true, "BRPOPLPUSH": true, "BLMOVE": true, "BLMPOP": true,
	"BZPOPMIN": true, "BZPOPMAX": true, "BZMPOP": true, "XREAD": true, "XREADGROUP": true,
	"WAIT": true, "WAITAOF": true,
}

// ScriptCalls is how many script calls the engine (not miniredis) has run.
func (e *Engine) ScriptCalls() int64 { return e.calls.Load() }

func (e *Engine) hook(c *server.Peer, cmd string, args ...string) bool {
	if e.dispatching.Load() == c || blocking[cmd] {
		return false // let miniredis run it
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch cmd {
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO":
		if e.inTx[c] {
			// miniredis would run it at EXEC in its own interpreter, whose
			// redis.calls would come back through this hook and wait on mu.
			// Refused as Redis refuses a bad command in MULTI: the
			// transaction is marked failed (here by a malformed EVAL on the
			// same connection state, its reply discarded) and EXEC aborts.
			abort := server.NewPeer(bufio.NewWriter(discardWriter{}))
			abort.Ctx = c.Ctx
			e.dispatch(abort, "EVAL", nil)
			c.WriteError("ERR memredis: scripts inside MULTI are not supported")
			return true
		}
		e.eval(c, cmd, args)
		return true
	case "SCRIPT":
		if len(args) > 0 {
			switch strings.ToUpper(args[0]) {
			case "LOAD":
				if len(args) == 2 {
					// Compile here; miniredis still answers (and keeps a copy).
					if _, err := e.compile(args[1]); err != nil {
						c.WriteError(scriptError(err))
						return true
					}
				}
			case "FLUSH":
				clear(e.scripts)
			}
		}
	case "MULTI":
		if !e.inTx[c] {
			if _, seen := e.inTx[c]; !seen {
				c.OnDisconnect(func() { e.forget(c) })
			}
			e.inTx[c] = true
		}
	case "EXEC", "DISCARD":
		if e.inTx[c] {
			e.inTx[c] = false
		}
	}
	e.dispatch(c, cmd, args)
	return true
}

func (e *Engine) forget(c *server.Peer) {
	e.mu.Lock()
	delete(e.inTx, c)
	e.mu.Unlock()
}

// dispatch hands one command to miniredis. Called with mu held.
func (e *Engine) dispatch(c *server.Peer, cmd string, args []string) {
	full := make([]string, 0, len(args)+1)
	full = append(full, cmd)
	full = append(full, args...)
	e.dispatching.Store(c)
	e.srv.Dispatch(c, full)
	e.dispatching.Store(nil)
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// compile parses src once per distinct source. Called with mu held.
func (e *Engine) compile(src string) (string, error) {
	sha := sha1Hex(src)
	if _, ok := e.scripts[sha]; ok {
		return sha, nil
	}
	// Named as Redis names it, so errors read "user_script:LINE: …" on both.
	chunk, err := parse.Parse(strings.NewReader(src), "user_script")
	if err != nil {
		return "", err
	}
	proto, err := lua.Compile(chunk, "user_script")
	if err != nil {
		return "", err
	}
	e.scripts[sha] = proto
	return sha, nil
}

func scriptError(err error) string {
	return "ERR Error compiling script (new function): " + strings.ReplaceAll(err.Error(), "\n", " ")
}

// eval runs EVAL or EVALSHA for c. Called with mu held.
func (e *Engine) eval(c *server.Peer, cmd string, args []string) {
	if len(args) < 2 {
		c.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(cmd)))
		return
	}
	var sha string
	if cmd == "EVAL" || cmd == "EVAL_RO" {
		var err error
		if sha, err = e.compile(args[0]); err != nil {
			c.WriteError(scriptError(err))
			return
		}
		// miniredis keeps its copy too, for SCRIPT EXISTS.
		e.dispatch(e.discard, "SCRIPT", []string{"LOAD", args[0]})
	} else {
		sha = strings.ToLower(args[0])
	}
	proto, ok := e.scripts[sha]
	if !ok {
		c.WriteError("NOSCRIPT No matching script. Please use EVAL.")
		return
	}
	numKeys, err := strconv.Atoi(args[1])
	switch {
	case err != nil:
		c.WriteError("ERR value is not an integer or out of range")
		return
	case numKeys < 0:
		c.WriteError("ERR Number of keys can't be negative")
		return
	case numKeys > len(args)-2:
		c.WriteError("ERR Number of keys can't be greater than number of args")
		return
	}
	e.calls.Add(1)
	keys, argv := args[2:2+numKeys], args[2+numKeys:]
	l := e.l
	l.SetGlobal("KEYS", stringTable(l, keys))
	l.SetGlobal("ARGV", stringTable(l, argv))
	e.running, e.readOnly = sha, strings.HasSuffix(cmd, "_RO")
	l.Push(l.NewFunctionFromProto(proto))
	err = l.PCall(0, 1, nil)
	e.running, e.readOnly = "", false
	if err != nil {
		l.SetTop(0)
		var apiErr *lua.ApiError
		msg := err.Error()
		if errors.As(err, &apiErr) && apiErr.Object != nil {
			msg = apiErr.Object.String()
			if t, ok := apiErr.Object.(*lua.LTable); ok { // error({err = …})
				if s := t.RawGetString("err"); s != lua.LNil {
					msg = s.String()
				}
			}
		}
		if !strings.HasPrefix(msg, "ERR ") && !isErrorCode(msg) {
			msg = "ERR " + msg
		}
		c.WriteError(strings.ReplaceAll(msg, "\n", " "))
		return
	}
	reply := l.Get(-1)
	l.SetTop(0)
	c.Block(func(w *server.Writer) { writeReply(w, reply) })
}

// isErrorCode says whether msg starts with an upper-case error code
// ("WRONGTYPE …"), which Redis passes through as it is.
func isErrorCode(msg string) bool {
	code, _, ok := strings.Cut(msg, " ")
	if !ok || code == "" {
		return false
	}
	for _, r := range code {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func stringTable(l *lua.LState, items []string) *lua.LTable {
	t := l.CreateTable(len(items), 0)
	for i, s := range items {
		t.RawSetInt(i+1, lua.LString(s))
	}
	return t
}

// writeReply converts a script's return value as Redis does: numbers to
// integers (truncated), strings to bulk strings, true to 1, false and nil to a
// null, {err=…} to an error, {ok=…} to a status, other tables to arrays up to
// their first nil.
func writeReply(w *server.Writer, v lua.LValue) {
	switch t := v.(type) {
	case lua.LBool:
		if t {
			w.WriteInt(1)
		} else {
			w.WriteNull()
		}
	case lua.LNumber:
		w.WriteInt(int(t))
	case lua.LString:
		w.WriteBulk(string(t))
	case *lua.LTable:
		if s := t.RawGetString("err"); s != lua.LNil {
			w.WriteError(s.String())
			return
		}
		if s := t.RawGetString("ok"); s != lua.LNil {
			w.WriteInline(s.String())
			return
		}
		n := 0
		for t.RawGetInt(n+1) != lua.LNil {
			n++
		}
		w.WriteLen(n)
		for i := 1; i <= n; i++ {
			writeReply(w, t.RawGetInt(i))
		}
	default:
		w.WriteNull()
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
