package redisstore

import (
	"embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the store live in lua/, one file per script, each headed by
// its contract: KEYS, ARGV, the reply and the numeric limits. prelude.lua holds
// what the ledger scripts share and the conventions they all follow (one hash tag
// per account, integer micros below 2^53, reads and checks before writes,
// idempotent by an id). Adding a script is one file there and one Go wrapper: a
// package variable newScript("name.lua") next to the method that runs it and
// decodes its reply (reply.go).

//go:embed lua/*.lua
var luaFiles embed.FS

// preludeMarker is the first line of a script that runs after prelude.lua: the
// loader joins the two, and luacheck (.luacheckrc) checks the file with the
// prelude's names in scope.
const preludeMarker = "-- luacheck: std +prelude\n"

// A script is one file of lua/ as Redis runs it. Its text, and so its SHA1, is
// fixed when the package initializes, from the embedded files: Run sends EVALSHA
// and falls back to EVAL (which loads the script on that node) only when the node
// answers NOSCRIPT, after a restart or on a node that never saw it.
type script struct {
	*redis.Script
	// name is the file ("settle.lua"), named in every error about the script.
	name string
	// preludeLines is how many lines of prelude.lua come before the file's own.
	preludeLines int
}

// scripts are every script loaded, for the tests that check them all.
var scripts []*script

// newScript loads lua/<file> (see makeScript). A missing file is a build
// mistake, caught by any test run: it panics, like regexp.MustCompile.
func newScript(file string) *script {
	s := makeScript(file, luaFile(file))
	scripts = append(scripts, s)
	return s
}

// makeScript is the script name with text src, after the prelude when src's first
// line says so.
func makeScript(name, src string) *script {
	s := &script{name: name}
	if strings.HasPrefix(src, preludeMarker) {
		prelude := luaFile("prelude.lua")
		s.preludeLines = strings.Count(prelude, "\n")
		src = prelude + src
	}
	s.Script = redis.NewScript(src)
	return s
}

func luaFile(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name)
	if err != nil {
		panic("redisstore: " + err.Error())
	}
	return string(b)
}

// luaLine finds the line Redis names in a script error ("user_script:312").
var luaLine = regexp.MustCompile(`user_script:(\d+)`)

// failed names the script in err, a failed run, and, when Redis names a line of
// the joined text, which file's line that is.
func (s *script) failed(err error) error {
	where := s.name
	if m := luaLine.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			switch {
			case n <= s.preludeLines:
				where += fmt.Sprintf(" (prelude.lua:%d)", n)
			default:
				where += fmt.Sprintf(" (line %d)", n-s.preludeLines)
			}
		}
	}
	return fmt.Errorf("redisstore: %s: %w", where, err)
}
