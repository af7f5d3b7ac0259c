package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// hostProbe is what Warnings asks of the machine it runs on. The fields are
// functions so tests can describe any machine; host holds the real ones.
type hostProbe struct {
	// inContainer reports whether this process runs in a container.
	inContainer func() bool
	// onRootFS reports whether dir, or its nearest existing parent when dir is
	// not created yet, is on the filesystem mounted at "/": in a container, its
	// own writable layer, which is lost with the container.
	onRootFS func(dir string) (bool, error)
}

// host is the machine creditgate runs on.
var host = hostProbe{
	inContainer: func() bool { return detectContainer(fileExists, os.ReadFile, os.Getenv) },
	onRootFS:    onRootFS,
}

// detectContainer tells a container by the marks runtimes leave: Docker's
// /.dockerenv, Podman's /run/.containerenv, the variable Kubernetes sets in every
// pod, or a container runtime's name in PID 1's cgroup (cgroup v1; under cgroup
// v2 the path is "/" and the other marks decide).
func detectContainer(exists func(string) bool, readFile func(string) ([]byte, error), getenv func(string) string) bool {
	if exists("/.dockerenv") || exists("/run/.containerenv") || getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	cg, err := readFile("/proc/1/cgroup")
	if err != nil {
		return false
	}
	s := string(cg)
	for _, mark := range []string{"docker", "kubepods", "containerd", "libpod", "lxc"} {
		if strings.Contains(s, mark) {
			return true
		}
	}
	return false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// nearestExisting returns dir or its nearest ancestor that exists.
func nearestExisting(dir string) (string, error) {
	dir = filepath.Clean(dir)
	for {
		_, err := os.Stat(dir)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", err
		}
		dir = parent
	}
}
