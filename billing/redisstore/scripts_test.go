package redisstore

import (
	"context"
	"io/fs"
	"sort"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// Every file of lua/ but the prelude is one script the store loads, once.
func TestEveryLuaFileIsLoadedOnce(t *testing.T) {
	files, err := fs.Glob(luaFiles, "lua/*.lua")
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, f := range files {
		if name := strings.TrimPrefix(f, "lua/"); name != "prelude.lua" {
			want = append(want, name)
		}
	}
	for _, s := range scripts {
		got = append(got, s.name)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("loaded scripts\n  %v\nwant one per file of lua/\n  %v", got, want)
	}
}

// Each script compiles on Redis and on miniredis, and the SHA1 its EVALSHA sends
// is the one Redis gives the text it loads (else every call would pay a NOSCRIPT
// and an EVAL).
func TestScriptsLoadUnderTheirHash(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		for _, s := range scripts {
			sha, err := e.redis.Client.ScriptLoad(context.Background(), s.src).Result()
			if err != nil {
				t.Fatalf("%s: SCRIPT LOAD: %v", s.name, err)
			}
			if sha != s.Hash() {
				t.Fatalf("%s: Redis hashes it %s, EVALSHA sends %s", s.name, sha, s.Hash())
			}
		}
	})
}

// A script that fails names itself, and where Redis names a line of the joined
// text, the file's line (the prelude's lines are not the file's).
func TestScriptErrorsNameTheScriptAndItsLine(t *testing.T) {
	cases := []struct {
		name, src string
		where     string // in the error; real Redis names the line
	}{
		{"standalone.lua", "local x = 1\nreturn redis.call('NOSUCHCOMMAND', x)\n", "standalone.lua (line 2)"},
		{"joined.lua", preludeMarker + "--\nreturn redis.call('NOSUCHCOMMAND', fmt(1))\n", "joined.lua (line 3)"},
	}
	for _, kind := range []string{"redis", "miniredis"} {
		t.Run(kind, func(t *testing.T) {
			r := testredis.Memory(t)
			if kind == "redis" {
				r = testredis.New(t)
			}
			s := newEnv(t, r)
			for _, c := range cases {
				sc := makeScript(c.name, c.src)
				_, err := s.run(s.ctx, sc, s.accountKeys("acme"))
				if err == nil {
					t.Fatalf("%s ran", c.name)
				}
				want := "redisstore: " + c.name
				if kind == "redis" || strings.Contains(err.Error(), "user_script:") {
					want = "redisstore: " + c.where
				}
				if !strings.HasPrefix(err.Error(), want) {
					t.Errorf("%s: error %q, want it to start with %q", c.name, err, want)
				}
			}
		})
	}
}

// withPrelude keeps exactly the declarations a body needs, through the ones it
// calls, and the joined text keeps the prelude's line numbers.
func TestWithPreludeKeepsWhatTheBodyNeeds(t *testing.T) {
	prelude := "-- header: a() b() c()\n" +
		"local K1, K2 = KEYS[1], KEYS[2]\n" +
		"local function a() return K1 end\n" +
		"-- b calls a\n" +
		"local function b()\n  -- c is not called\n  return a()\nend\n" +
		"local function c() return K2 end\n" +
		"local T = {'x',\n  'y'}\n"
	cases := []struct {
		body string
		keep []string // declarations' first lines kept
	}{
		{"return b()\n", []string{"local K1", "local function a", "local function b"}},
		{"return c()\n", []string{"local K1", "local function c"}},
		{"-- b() T\nreturn 1\n", nil},
		{"return T[1] .. a()\n", []string{"local K1", "local function a", "local T"}},
	}
	for _, c := range cases {
		got := withPrelude(prelude, c.body)
		if n, want := strings.Count(got, "\n"), strings.Count(prelude+c.body, "\n"); n != want {
			t.Errorf("body %q: %d lines, want %d (the prelude's numbering)", c.body, n, want)
		}
		if !strings.HasSuffix(got, c.body) {
			t.Errorf("body %q: joined text does not end with it:\n%s", c.body, got)
		}
		var kept []string
		for _, line := range strings.Split(got, "\n") {
			if strings.HasPrefix(line, "local ") {
				f := strings.Fields(line)
				name := f[0] + " " + strings.TrimSuffix(strings.Split(f[1], "(")[0], ",")
				if f[1] == "function" {
					name += " " + strings.Split(f[2], "(")[0]
				}
				kept = append(kept, name)
			}
		}
		if strings.Join(kept, "|") != strings.Join(c.keep, "|") {
			t.Errorf("body %q keeps %q, want %q", c.body, kept, c.keep)
		}
	}
}

// Every prelude declaration some script uses is in that script's text, and the
// request path's scripts leave out what they do not use.
func TestScriptsCarryThePreludeTheyUse(t *testing.T) {
	prelude := luaFile("prelude.lua")
	decls := splitPrelude(prelude)
	if len(decls) < 30 {
		t.Fatalf("split the prelude into %d declarations; its layout changed (see splitPrelude)", len(decls))
	}
	for _, s := range scripts {
		if s.preludeLines == 0 {
			continue
		}
		kept := 0
		for _, d := range decls {
			if len(d.names) > 0 && strings.Contains(s.src, d.text) {
				kept++
			}
		}
		t.Logf("%s: %d of %d prelude declarations", s.name, kept, len(decls))
		if s == reserveScript && kept >= len(decls)*3/4 {
			t.Errorf("reserve.lua keeps %d of %d prelude declarations", kept, len(decls))
		}
	}
}
