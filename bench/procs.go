package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// child is a component the harness started: this binary re-executed in a role.
type child struct {
	name    string
	cpus    string // the CPU list it is pinned to ("" = not pinned)
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	hs      handshake
	logPath string
	done    chan struct{} // closed when the process has exited
}

// pinning says how components are placed on CPUs.
type pinning struct {
	taskset string // path of taskset(1); "" = no pinning
	load    string // CPU list of the load generator and the upstream mock
	target  string // CPU list of the component under test
	cores   int    // CPUs of the machine (the harness itself sees only its own)
}

// startChild starts this binary as a child in role args, pinned to cpus with
// GOMAXPROCS set to procs (0: leave it), and waits for its handshake.
func startChild(ctx context.Context, name, dir string, pin pinning, cpus string, procs int, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append([]string{exe}, args...)
	if pin.taskset != "" && cpus != "" {
		argv = append([]string{pin.taskset, "-c", cpus}, argv...)
	} else {
		cpus = ""
	}
	c := &child{name: name, cpus: cpus, logPath: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Env = os.Environ()
	if procs > 0 {
		c.cmd.Env = append(c.cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	c.cmd.Stderr = logFile
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()

	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, r)
	}()
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &c.hs); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s did not start (%q); its log: %s", name, line, c.logTail())
		}
		if c.hs.Error != "" {
			c.stop()
			return nil, fmt.Errorf("%s: %s", name, c.hs.Error)
		}
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, fmt.Errorf("%s did not start within 2 minutes; its log: %s", name, c.logTail())
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	return c, nil
}

// stop closes the child's stdin, which makes it shut down, and kills it if it has not
// exited after 15 s.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) url(path string) string { return "http://" + c.hs.Addr + path }

// stats reads the child's counters; gc=true first collects garbage, for the live heap.
func (c *child) stats(gc bool) (procStats, error) {
	var s procStats
	u := "http://" + c.hs.Stats + "/stats"
	if gc {
		u += "?gc=1"
	}
	res, err := http.Get(u)
	if err != nil {
		return s, err
	}
	defer res.Body.Close()
	return s, json.NewDecoder(res.Body).Decode(&s)
}

// resetPeak resets the child's peak RSS to its current RSS.
func (c *child) resetPeak() error {
	res, err := http.Post("http://"+c.hs.Stats+"/reset-peak", "", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return errors.New(string(b))
	}
	return nil
}

// profile fetches a pprof profile (e.g. "profile?seconds=5", "allocs") into path.
func (c *child) profile(query, path string) error {
	res, err := http.Get("http://" + c.hs.Stats + "/debug/pprof/" + query)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("pprof %s: %s", query, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logTail is the end of the child's stderr, for error messages.
func (c *child) logTail() string {
	data, _ := os.ReadFile(c.logPath)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}
