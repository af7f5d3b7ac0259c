package skipreport

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// fakeM stands in for *testing.M: Run is the package's tests.
type fakeM struct{ RunFunc func() int }

func (m fakeM) Run() int { return m.RunFunc() }

// fakeT records what Missing and Skip do to a test.
type fakeT struct {
	testing.TB
	name         string
	fatals, errs []string
	logs         []string
	skipped      bool
}

type stopped struct{}

func (f *fakeT) Helper()      {}
func (f *fakeT) Name() string { return f.name }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
	panic(stopped{}) // as t.FailNow stops the test's goroutine
}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Skipf(format string, args ...any) {
	f.skipped = true
	panic(stopped{})
}

// call runs f as a test body, returning once it ends or stops.
func call(f func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	f()
}

// A package's tests meet absences; the report after them decides its exit code.
func TestRunReportsAndFails(t *testing.T) {
	t.Setenv(Redis.Require, "")
	t.Setenv(Browser.Require, "")
	t.Setenv(RedisCluster.Require, "")
	tests := []struct {
		name     string
		code     int // what the tests themselves returned
		meet     []Component
		allow    string
		wantCode int
		wantOut  []string // substrings of the report, in order
		wantNone bool     // no report at all
	}{
		{name: "nothing missing", code: 0, wantCode: 0, wantNone: true},
		{name: "nothing missing, a test failed", code: 1, wantCode: 1, wantNone: true},
		{name: "redis missing", code: 0, meet: []Component{Redis, Redis}, wantCode: 1,
			wantOut: []string{"WITHOUT a component", "redis (NOT ACCEPTED): miniredis instead", "2 test(s): TestA, TestB", Redis.Hint, "FAIL", EnvAllow + "=redis"}},
		{name: "redis missing, accepted", code: 0, meet: []Component{Redis}, allow: "redis", wantCode: 0,
			wantOut: []string{"redis (accepted by " + EnvAllow + ")"}},
		{name: "everything accepted", code: 0, meet: []Component{Redis, Browser}, allow: "all", wantCode: 0,
			wantOut: []string{"redis (accepted", "browser (accepted"}},
		{name: "one of two accepted", code: 0, meet: []Component{Redis, Browser}, allow: " redis ", wantCode: 1,
			wantOut: []string{"redis (accepted", "browser (NOT ACCEPTED)", EnvAllow + "=browser"}},
		{name: "a failing package stays failing", code: 1, meet: []Component{Browser}, allow: "browser", wantCode: 1,
			wantOut: []string{"browser (accepted"}},
		{name: "an optional component", code: 0, meet: []Component{RedisCluster}, wantCode: 0,
			wantOut: []string{"redis-cluster (optional)"}},
		{name: "a misspelt component", code: 0, allow: "redsi,all", wantCode: 1,
			wantOut: []string{EnvAllow + "=redsi,all names no component: redsi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got := run(fakeM{RunFunc: func() int {
				for i, c := range tt.meet {
					call(func() { Missing(&fakeT{name: fmt.Sprintf("Test%c", 'A'+i)}, c, "miniredis instead") })
				}
				return tt.code
			}}, &out, tt.allow)
			if got != tt.wantCode {
				t.Errorf("exit code %d, want %d; report:\n%s", got, tt.wantCode, out.String())
			}
			if tt.wantNone && out.Len() != 0 {
				t.Errorf("report %q, want none", out.String())
			}
			rest := out.String()
			for _, want := range tt.wantOut {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("report lacks %q (in order):\n%s", want, out.String())
				}
				rest = rest[i+len(want):]
			}
		})
	}
}

// Missing carries on, Skip stops the test, and a required component fails it at
// once; without a reporting TestMain, Missing fails the test itself unless the
// absence is accepted.
func TestMissingAndSkip(t *testing.T) {
	t.Setenv(Browser.Require, "")
	t.Setenv(EnvAllow, "")

	inMain := func(f func()) {
		run(fakeM{RunFunc: func() int { f(); return 0 }}, &bytes.Buffer{}, "all")
	}
	var ft fakeT
	inMain(func() { call(func() { Missing(&ft, Browser, "no Chromium") }) })
	if len(ft.fatals)+len(ft.errs) != 0 || ft.skipped || len(ft.logs) != 1 || !strings.Contains(ft.logs[0], "no Chromium") {
		t.Errorf("Missing under Main: %+v", ft)
	}

	ft = fakeT{}
	inMain(func() { call(func() { Skip(&ft, Browser, "no Chromium") }) })
	if !ft.skipped || len(ft.fatals)+len(ft.errs) != 0 {
		t.Errorf("Skip under Main: %+v", ft)
	}

	t.Setenv(Browser.Require, "1")
	ft = fakeT{}
	inMain(func() { call(func() { Skip(&ft, Browser, "no Chromium") }) })
	if len(ft.fatals) != 1 || ft.skipped || !strings.Contains(ft.fatals[0], Browser.Require+"=1 requires it") {
		t.Errorf("Skip of a required component: %+v", ft)
	}
	t.Setenv(Browser.Require, "")

	// No TestMain reporting: the test fails itself, naming the fixes.
	ft = fakeT{}
	call(func() { Missing(&ft, Browser, "no Chromium") })
	if len(ft.errs) != 1 || !strings.Contains(ft.errs[0], "no TestMain calling skipreport.Main") || !strings.Contains(ft.errs[0], EnvAllow+"=browser") {
		t.Errorf("Missing without Main: %+v", ft)
	}
	t.Setenv(EnvAllow, "browser")
	ft = fakeT{}
	call(func() { Missing(&ft, Browser, "no Chromium") })
	if len(ft.errs) != 0 {
		t.Errorf("Missing without Main, accepted: %+v", ft)
	}
	// An optional component never fails a test by its absence alone.
	t.Setenv(EnvAllow, "")
	ft = fakeT{}
	call(func() { Missing(&ft, RedisCluster, "no cluster") })
	if len(ft.errs) != 0 {
		t.Errorf("optional component without Main: %+v", ft)
	}
}
