package config

import (
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The spool warning: a spool on the container's own filesystem is lost with the
// container. Everything else (a volume, no container, no spool) says nothing.
func TestSpoolInAContainerWithoutAVolume(t *testing.T) {
	defer func(h hostProbe) { host = h }(host)
	dir := filepath.Join(t.TempDir(), "spool")
	tests := []struct {
		name        string
		container   bool
		onRoot      bool
		rootErr     error
		mutate      func(c *Config)
		wantWarning bool
	}{
		{"container, spool on its own filesystem", true, true, nil, nil, true},
		{"container, spool on a volume", true, false, nil, nil, false},
		{"not a container", false, true, nil, nil, false},
		{"container, the spool cannot be inspected", true, true, fs.ErrPermission, nil, false},
		{"container, spool off", true, true, nil, func(c *Config) { c.Spool.Dir = SpoolOff }, false},
		{"container, embedded store (no spool)", true, true, nil, func(c *Config) { c.Redis.URL = memoryURL }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			host = hostProbe{
				inContainer: func() bool { return tt.container },
				onRootFS:    func(d string) (bool, error) { asked = append(asked, d); return tt.onRoot, tt.rootErr },
			}
			c := validConfig(t)
			c.Spool.Dir = dir
			if tt.mutate != nil {
				tt.mutate(c)
			}
			var spool []string
			for _, w := range c.Warnings() {
				if strings.HasPrefix(w, "spool.dir: ") {
					spool = append(spool, w)
				}
			}
			if tt.wantWarning {
				if len(spool) != 1 || !strings.Contains(spool[0], dir) || !strings.Contains(spool[0], "volume") {
					t.Fatalf("spool warnings %q, want one naming %s and asking for a volume", spool, dir)
				}
				if len(asked) != 1 || asked[0] != dir {
					t.Errorf("probed %v, want the spool directory", asked)
				}
			} else {
				for _, w := range spool {
					if strings.Contains(w, "volume") {
						t.Fatalf("spool warnings %q, want none about a volume", spool)
					}
				}
			}
		})
	}
}

func TestDetectContainer(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	cgroup := func(content string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p != "/proc/1/cgroup" {
				return nil, fs.ErrNotExist
			}
			return []byte(content), nil
		}
	}
	files := func(present ...string) func(string) bool {
		return func(p string) bool {
			for _, f := range present {
				if p == f {
					return true
				}
			}
			return false
		}
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		exists   func(string) bool
		readFile func(string) ([]byte, error)
		getenv   func(string) string
		want     bool
	}{
		{"docker", files("/.dockerenv"), noFile, env(), true},
		{"podman", files("/run/.containerenv"), noFile, env(), true},
		{"kubernetes", files(), noFile, env("KUBERNETES_SERVICE_HOST", "10.0.0.1"), true},
		{"cgroup v1 docker", files(), cgroup("12:memory:/docker/3f2a\n"), env(), true},
		{"cgroup v1 kubepods", files(), cgroup("4:cpu:/kubepods/burstable/pod1\n"), env(), true},
		{"cgroup v2, no marks", files(), cgroup("0::/\n"), env(), false},
		{"a plain host", files(), cgroup("0::/init.scope\n"), env(), false},
		{"no /proc", files(), noFile, env(), false},
	}
	for _, tt := range tests {
		if got := detectContainer(tt.exists, tt.readFile, tt.getenv); got != tt.want {
			t.Errorf("%s: detectContainer = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The real filesystem check: "/" and a path not created yet under it are on the
// root filesystem; /proc, its own mount, is not.
func TestOnRootFS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the mounts this test names are Linux's")
	}
	for _, tt := range []struct {
		dir  string
		want bool
	}{
		{"/", true},
		{"/nonexistent-creditgate-test/spool/deeper", true},
		{"/proc", false},
		{"/proc/self/not-there", false},
	} {
		got, err := onRootFS(tt.dir)
		if err != nil || got != tt.want {
			t.Errorf("onRootFS(%s) = %v %v, want %v", tt.dir, got, err, tt.want)
		}
	}
}
