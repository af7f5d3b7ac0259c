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
	// src is the text Redis runs (what EVAL sends).
	src string
	// hashArg and srcArg are the SHA1 and src as command arguments, boxed once.
	hashArg, srcArg any
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
		src = withPrelude(prelude, src)
	}
	s.src = src
	s.Script = redis.NewScript(src)
	s.hashArg, s.srcArg = s.Hash(), src
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

// The prelude is long (its functions serve every ledger script) and Redis runs
// a script's whole text on every call, so a script carries only the prelude's
// declarations it uses, directly or through another; each left out becomes as
// many empty lines, so the joined text's line numbers stay the prelude's.
// Reserve keeps 21 of its 34 declarations and settle 24, so about a third of
// what the whole prelude costs per call (the closures and tables it builds:
// 8.3 µs on Redis here, more on the embedded store) is no longer paid.

// preludeDecl is one top-level declaration of the prelude: its lines, from the
// comment above it to its end, and the locals it declares.
type preludeDecl struct {
	text  string
	names []string
}

// luaName is a Lua identifier.
var luaName = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// declNames finds what a top-level line declares: "local function f(" or
// "local a, b = …".
var declNames = regexp.MustCompile(`^local\s+(?:function\s+([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_, ]*?)\s*=)`)

// splitPrelude cuts the prelude into its top-level declarations. A declaration
// starts at the first comment or "local" line at column 0 after the previous
// one ended and runs to the next such line after its own "local" line; every
// line inside a declaration is indented, or is its closing "end" (a comment at
// column 0 inside a function would cut it short: every script would then fail to
// load, which TestScriptsLoadUnderTheirHash and every store test would say).
func splitPrelude(prelude string) []preludeDecl {
	var decls []preludeDecl
	var cur []string
	var names []string
	flush := func() {
		if len(cur) > 0 {
			decls = append(decls, preludeDecl{text: strings.Join(cur, ""), names: names})
		}
		cur, names = nil, nil
	}
	for _, line := range strings.SplitAfter(prelude, "\n") {
		starts := strings.HasPrefix(line, "local ") || strings.HasPrefix(line, "--")
		if starts && names != nil {
			flush()
		}
		if m := declNames.FindStringSubmatch(line); m != nil {
			names = []string{m[1]}
			if m[1] == "" {
				names = strings.Split(strings.ReplaceAll(m[2], " ", ""), ",")
			}
		}
		cur = append(cur, line)
	}
	flush()
	return decls
}

// withPrelude joins the prelude's declarations that body needs (a declaration's
// name appearing in body, or in a declaration already needed) and body; every
// other declaration leaves its newlines only, and so do the prelude's comments
// outside any. The scan is textual (comment lines aside), so a name in a
// trailing comment or a string keeps a declaration it does not need: never the
// reverse.
func withPrelude(prelude, body string) string {
	decls := splitPrelude(prelude)
	needed := make([]bool, len(decls))
	used := map[string]bool{}
	for _, n := range luaName.FindAllString(withoutCommentLines(body), -1) {
		used[n] = true
	}
	// Declarations only refer to earlier ones: one pass from the last needs no
	// fixed point.
	for i := len(decls) - 1; i >= 0; i-- {
		for _, n := range decls[i].names {
			if used[n] {
				needed[i] = true
			}
		}
		if needed[i] {
			for _, n := range luaName.FindAllString(withoutCommentLines(decls[i].text), -1) {
				used[n] = true
			}
		}
	}
	var b strings.Builder
	for i, d := range decls {
		if needed[i] {
			b.WriteString(d.text)
		} else {
			b.WriteString(strings.Repeat("\n", strings.Count(d.text, "\n")))
		}
	}
	b.WriteString(body)
	return b.String()
}

// withoutCommentLines drops the lines that are only a comment (the prelude has no
// long strings, so such a line holds no code).
func withoutCommentLines(src string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(src, "\n") {
		if !strings.HasPrefix(strings.TrimLeft(line, " \t"), "--") {
			b.WriteString(line)
		}
	}
	return b.String()
}
