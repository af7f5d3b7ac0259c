// Package skipreport makes a test run say when it did not test something
// because a component it needs is missing: a real Redis (the tests fell back to
// miniredis), a Redis Cluster, a browser, stripe-mock, PostgreSQL. `go test
// ./...` prints a passing package's output only under -v, so a warning a test
// prints is lost in a green run. Instead a helper that meets an absence calls
// Missing (carry on without it) or Skip, and the package's TestMain, which calls
// Main, prints the list once the tests have run and fails the package, unless
// every component listed is accepted in CREDITGATE_TEST_ALLOW_MISSING (component
// names, comma-separated, or "all"): a developer without Chromium opts out once,
// knowingly. A component's CREDITGATE_TEST_REQUIRE_*=1 (CI) fails the test that
// meets its absence at once, allowed or not. A package without such a TestMain
// still cannot pass quietly: Missing then fails the test itself.
package skipreport

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// EnvAllow lists the components whose absence a run accepts: names such as
// "redis,browser", or "all".
const EnvAllow = "CREDITGATE_TEST_ALLOW_MISSING"

// Component is something tests need from the machine.
type Component struct {
	// Name is how EnvAllow names it.
	Name string
	// Require is the variable that, set to "1", makes its absence fail the test
	// that meets it (CI sets it for every component it provides).
	Require string
	// Hint says how to provide it.
	Hint string
	// Optional components are listed when missing but never fail a package
	// unless required: a Redis Cluster, which only CI's cluster run has.
	Optional bool
}

// The components creditgate's tests use.
var (
	Redis = Component{Name: "redis", Require: "CREDITGATE_TEST_REQUIRE_REDIS",
		Hint: "start redis-server on 127.0.0.1:6379, or point CREDITGATE_TEST_REDIS_URL at one"}
	RedisCluster = Component{Name: "redis-cluster", Require: "CREDITGATE_TEST_REQUIRE_REDIS_CLUSTER",
		Hint: "set CREDITGATE_TEST_REDIS_CLUSTER to the seed addresses of a Redis Cluster (.ci/run starts one)", Optional: true}
	Browser = Component{Name: "browser", Require: "CREDITGATE_TEST_REQUIRE_BROWSER",
		Hint: "install Chromium (.ci/install-browser), or point CREDITGATE_TEST_BROWSER at one"}
	StripeMock = Component{Name: "stripe-mock", Require: "CREDITGATE_TEST_REQUIRE_STRIPE_MOCK",
		Hint: "go install github.com/stripe/stripe-mock (the version internal/testing/stripemock names), or set CREDITGATE_TEST_STRIPE_MOCK"}
	Postgres = Component{Name: "postgres", Require: "CREDITGATE_TEST_REQUIRE_POSTGRES",
		Hint: "start PostgreSQL on 127.0.0.1:5432, or point CREDITGATE_TEST_POSTGRES_URL at one"}
)

// Components are every Component above, the names EnvAllow accepts.
var Components = []Component{Redis, RedisCluster, Browser, StripeMock, Postgres}

// absence is one test's meeting with a missing component.
type absence struct {
	c    Component
	why  string
	test string
}

// reports collects the absences of one test binary; Main reads it.
type reports struct {
	mu     sync.Mutex
	active bool // a TestMain called Main or Run
	list   []absence
}

var current reports

// Required reports whether c's absence must fail at once (its Require is "1").
func Required(c Component) bool { return os.Getenv(c.Require) == "1" }

// Missing records that t runs without c, for why (which says what is missing
// and what the test does instead), and returns so the test can carry on (a
// fallback). When c is required, it fails t at once instead.
func Missing(t testing.TB, c Component, why string) {
	t.Helper()
	if Required(c) {
		t.Fatalf("%s: %s, and %s=1 requires it: %s", c.Name, why, c.Require, c.Hint)
	}
	t.Logf("skipreport: %s missing: %s", c.Name, why)
	current.mu.Lock()
	current.list = append(current.list, absence{c: c, why: why, test: t.Name()})
	active := current.active
	current.mu.Unlock()
	if !active && !c.Optional && !allowed(c, os.Getenv(EnvAllow)) {
		t.Errorf("%s missing: %s. This package has no TestMain calling skipreport.Main to report it after its tests, so this test fails instead: add one, provide %s (%s), or accept its absence with %s=%s",
			c.Name, why, c.Name, c.Hint, EnvAllow, c.Name)
	}
}

// Skip is Missing, then t.SkipNow: for a test that cannot run at all without c.
func Skip(t testing.TB, c Component, why string) {
	t.Helper()
	Missing(t, c, why)
	t.Skipf("SKIPPED: %s missing: %s", c.Name, why)
}

// Main runs the tests and exits with Run's code: call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests, then reports the components they missed on stdout; a
// package that missed a component not accepted in EnvAllow fails (exit code 1)
// even if every test passed. For a TestMain with its own set-up and tear-down.
func Run(m interface{ Run() int }) int {
	return run(m, os.Stdout, os.Getenv(EnvAllow))
}

func run(m interface{ Run() int }, w io.Writer, allow string) int {
	if unknown := unknownNames(allow); len(unknown) > 0 {
		fmt.Fprintf(w, "*** %s=%s names no component: %s (known: %s, or all)\n", EnvAllow, allow, strings.Join(unknown, ", "), names())
		return 1
	}
	current.mu.Lock()
	current.active, current.list = true, nil
	current.mu.Unlock()
	code := m.Run()
	current.mu.Lock()
	list := slices.Clone(current.list)
	current.active = false
	current.mu.Unlock()
	if len(list) == 0 {
		return code
	}
	if failing := report(w, list, allow); failing && code == 0 {
		return 1
	}
	return code
}

// report writes what was not tested, component by component, and whether that
// fails the package.
func report(w io.Writer, list []absence, allow string) (failing bool) {
	byName := map[string][]absence{}
	var order []string
	for _, a := range list {
		if _, seen := byName[a.c.Name]; !seen {
			order = append(order, a.c.Name)
		}
		byName[a.c.Name] = append(byName[a.c.Name], a)
	}
	var refused []string
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "*** creditgate tests: these tests ran WITHOUT a component they need, so they did not test everything:")
	for _, name := range order {
		as := byName[name]
		c := as[0].c
		tests := make([]string, 0, len(as))
		for _, a := range as {
			if !slices.Contains(tests, a.test) {
				tests = append(tests, a.test)
			}
		}
		sort.Strings(tests)
		status := "NOT ACCEPTED"
		switch {
		case c.Optional:
			status = "optional"
		case allowed(c, allow):
			status = "accepted by " + EnvAllow
		default:
			refused = append(refused, name)
		}
		fmt.Fprintf(w, "***   %s (%s): %s\n", name, status, as[0].why)
		fmt.Fprintf(w, "***     %d test(s): %s\n", len(tests), abbreviate(tests, 8))
		fmt.Fprintf(w, "***     to provide it: %s\n", c.Hint)
	}
	if len(refused) == 0 {
		fmt.Fprintln(w, "")
		return false
	}
	fmt.Fprintf(w, "*** FAIL: the package fails for this. Provide the component, or accept its absence: %s=%s (or all).\n\n", EnvAllow, strings.Join(refused, ","))
	return true
}

func abbreviate(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(", … (%d more)", len(items)-n)
}

// allowed reports whether allow (EnvAllow's value) accepts c's absence.
func allowed(c Component, allow string) bool {
	for _, name := range strings.Split(allow, ",") {
		if name = strings.TrimSpace(name); name == "all" || name == c.Name {
			return true
		}
	}
	return false
}

func unknownNames(allow string) []string {
	var unknown []string
	for _, name := range strings.Split(allow, ",") {
		name = strings.TrimSpace(name)
		if name == "" || name == "all" {
			continue
		}
		if !slices.ContainsFunc(Components, func(c Component) bool { return c.Name == name }) {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

func names() string {
	out := make([]string, len(Components))
	for i, c := range Components {
		out[i] = c.Name
	}
	return strings.Join(out, ", ")
}
