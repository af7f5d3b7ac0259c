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
			sha, err := e.redis.Client.ScriptLoad(context.Background(), scriptSource(s)).Result()
			if err != nil {
				t.Fatalf("%s: SCRIPT LOAD: %v", s.name, err)
			}
			if sha != s.Hash() {
				t.Fatalf("%s: Redis hashes it %s, EVALSHA sends %s", s.name, sha, s.Hash())
			}
		}
	})
}

// scriptSource is the text Redis runs for s (what EVAL sends).
func scriptSource(s *script) string {
	src := luaFile(s.name)
	if strings.HasPrefix(src, preludeMarker) {
		src = luaFile("prelude.lua") + src
	}
	return src
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
