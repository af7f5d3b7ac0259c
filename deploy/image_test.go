package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/skipreport"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// There is no container engine on the machines that run these tests, so the
// image is built and started the way its Dockerfile says, without one: the
// build stage's RUN lines on a copy of the build context filtered by
// .dockerignore, the runtime stage's COPY lines into a root directory, and the
// ENTRYPOINT and CMD (and the HEALTHCHECK) run chrooted there as the USER, with
// the Dockerfile's ENV and the `docker run -e` variables. What a container
// engine adds, its own network namespace, stands in as CREDITGATE_LISTEN and
// CREDITGATE_ADMIN_LISTEN on free loopback ports (8080 and 8081 on this
// machine may be taken), and CREDITGATE_REDIS_KEY_PREFIX keeps the shared
// Redis's keys apart.

// repoRoot is the repository, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// instruction is one Dockerfile instruction: its name and the rest of its line.
type instruction struct {
	name string // upper case: FROM, COPY, RUN…
	args string
}

// stage is a Dockerfile stage: FROM's image and name, and its instructions.
type stage struct {
	from, name string
	steps      []instruction
}

// parseDockerfile reads the instructions of a Dockerfile, stage by stage,
// joining continued lines and dropping comments.
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var line strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if line.Len() == 0 && (text == "" || strings.HasPrefix(text, "#")) {
			continue
		}
		if strings.HasPrefix(text, "#") {
			continue // a comment inside a continued instruction
		}
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(text)
		name, args, _ := strings.Cut(strings.TrimSpace(line.String()), " ")
		line.Reset()
		in := instruction{name: strings.ToUpper(name), args: strings.TrimSpace(args)}
		if in.name == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", in.name)
		}
		stages[len(stages)-1].steps = append(stages[len(stages)-1].steps, in)
	}
	if len(stages) != 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a runtime stage", len(stages))
	}
	return stages
}

// flags splits leading --name=value flags off an instruction's arguments.
func flags(args string) (map[string]string, string) {
	out := make(map[string]string)
	for strings.HasPrefix(args, "--") {
		word, rest, _ := strings.Cut(args, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		out[k] = v
		args = strings.TrimSpace(rest)
	}
	return out, args
}

// execForm decodes an exec-form argument list, ["a", "b"]; the shell form is
// refused, since the runtime image has no shell.
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile: %s %s: want the exec form [\"…\"] (distroless has no shell): %v", what, args, err)
	}
	return argv
}

// image is the runtime stage, as a container engine would start it.
type image struct {
	rootfs      string
	uid, gid    int
	env         []string // the Dockerfile's ENV, after the base image's
	entrypoint  []string
	cmd         []string
	healthcheck []string
	volumes     []string
	exposed     []string
}

// dockerignore is a .dockerignore's patterns, matched as Docker matches them:
// against the path relative to the context and each of its parent directories,
// the last matching pattern deciding, "!" re-including, "**" any number of
// directories.
type dockerignore []struct {
	re      *regexp.Regexp
	include bool
}

func readDockerignore(t *testing.T, path string) dockerignore {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		p := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/")))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			include bool
		}{regexp.MustCompile(re.String()), include})
	}
	return d
}

// excluded reports whether the context leaves path (slash-separated, relative) out.
func (d dockerignore) excluded(path string) bool {
	out := false
	for _, p := range d {
		for q := path; q != "." && q != "/" && q != ""; q = filepath.ToSlash(filepath.Dir(q)) {
			if p.re.MatchString(q) {
				out = !p.include
				break
			}
		}
	}
	return out
}

// buildContext copies the repository's files (tracked, and new ones not
// ignored by git) that .dockerignore lets through into a new directory.
func buildContext(t *testing.T, root string) (string, dockerignore) {
	t.Helper()
	ignore := readDockerignore(t, filepath.Join(root, ".dockerignore"))
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	ctx := tempDir(t)
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" || ignore.excluded(rel) {
			continue
		}
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		copyFile(t, src, filepath.Join(ctx, rel), info.Mode().Perm())
	}
	return ctx, ignore
}

func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies src (a file or a directory's contents) to dst, as COPY does.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		copyFile(t, path, target, info.Mode().Perm())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func chownTree(t *testing.T, path string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// buildVersion is the VERSION build argument the test builds with.
const buildVersion = "image-test"

// The image is built once for the package's tests, under workDir.
var (
	workDir    string
	buildOnce  sync.Once
	builtImage *image
)

func TestMain(m *testing.M) {
	var err error
	if workDir, err = os.MkdirTemp("", "creditgate-image-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := skipreport.Run(m) // and say which tests ran without a component they need
	os.RemoveAll(workDir)
	os.Exit(code)
}

// tempDir is a new directory under workDir, kept until the package's tests end.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, "")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildImage builds the image's root directory as the Dockerfile says, once.
func buildImage(t *testing.T) *image {
	t.Helper()
	buildOnce.Do(func() { builtImage = buildImageOnce(t) })
	if builtImage == nil {
		t.Fatal("building the image failed in an earlier test")
	}
	return builtImage
}

func buildImageOnce(t *testing.T) *image {
	t.Helper()
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	build, runtime := stages[0], stages[1]
	if !strings.Contains(runtime.from, "distroless") {
		t.Fatalf("runtime stage FROM %s: the test stands in for a distroless base (no shell, nonroot user)", runtime.from)
	}
	ctxDir, ignore := buildContext(t, root)
	for _, rel := range []string{".git", ".ci/run", "docs/ARCHITECTURE.md", "deploy/compose.yaml", "deploy/helm/creditgate/Chart.yaml", "deploy/image_test.go", "deploy/secrets.env"} {
		if !ignore.excluded(rel) {
			t.Errorf(".dockerignore lets %s into the build context", rel)
		}
	}

	// The build stage: WORKDIR holds the context (COPY . .); RUN lines run there
	// with the ARG defaults, VERSION given as with --build-arg, and /out moved
	// into a directory of the test.
	out := tempDir(t)
	args := map[string]string{}
	for _, in := range build.steps {
		switch in.name {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case "RUN":
			args["VERSION"] = buildVersion
			script := strings.ReplaceAll(in.args, "/out", out)
			for k, v := range args {
				script = strings.ReplaceAll(script, "${"+k+"}", v)
			}
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = ctxDir
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("RUN %s: %v\n%s", in.args, err, msg)
			}
		}
	}

	// The runtime stage: the distroless base gives /tmp and the nonroot user's
	// home; COPY lines fill in the rest.
	img := &image{rootfs: tempDir(t), env: []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		"HOME=/home/nonroot",
		"HOSTNAME=creditgate-image-test",
	}}
	if err := os.Chmod(img.rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"tmp", "home/nonroot"} {
		if err := os.MkdirAll(filepath.Join(img.rootfs, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(img.rootfs, "tmp"), 0o1777)
	os.Chown(filepath.Join(img.rootfs, "home/nonroot"), 65532, 65532)
	for _, in := range runtime.steps {
		switch in.name {
		case "COPY":
			f, rest := flags(in.args)
			parts := strings.Fields(rest)
			if len(parts) != 2 {
				t.Fatalf("COPY %s: want one source and one destination", in.args)
			}
			src := filepath.Join(ctxDir, parts[0])
			if f["from"] != "" {
				if f["from"] != build.name {
					t.Fatalf("COPY --from=%s: no such stage", f["from"])
				}
				src = strings.Replace(parts[0], "/out", out, 1)
			}
			dst := filepath.Join(img.rootfs, parts[1])
			if _, err := os.Stat(src); err != nil {
				t.Fatalf("COPY %s: %v (left out of the build context by .dockerignore?)", in.args, err)
			}
			copyTree(t, src, dst)
			if own := f["chown"]; own != "" {
				u, g, _ := strings.Cut(own, ":")
				uid, _ := strconv.Atoi(u)
				gid, _ := strconv.Atoi(g)
				chownTree(t, dst, uid, gid)
			}
		case "USER":
			u, g, _ := strings.Cut(in.args, ":")
			var err1, err2 error
			img.uid, err1 = strconv.Atoi(u)
			img.gid, err2 = strconv.Atoi(g)
			if err1 != nil || err2 != nil {
				t.Fatalf("USER %s: want numeric uid:gid (a distroless image has no useradd)", in.args)
			}
		case "ENV":
			k, v, ok := strings.Cut(in.args, "=")
			if !ok {
				t.Fatalf("ENV %s: want KEY=value", in.args)
			}
			img.env = append(img.env, k+"="+strings.Trim(v, `"`))
		case "ENTRYPOINT":
			img.entrypoint = execForm(t, in.name, in.args)
		case "CMD":
			img.cmd = execForm(t, in.name, in.args)
		case "HEALTHCHECK":
			_, rest := flags(in.args)
			c, ok := strings.CutPrefix(rest, "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK %s: want CMD", in.args)
			}
			img.healthcheck = execForm(t, in.name, c)
		case "VOLUME":
			img.volumes = append(img.volumes, strings.Fields(in.args)...)
		case "EXPOSE":
			img.exposed = append(img.exposed, strings.Fields(in.args)...)
		}
	}
	if img.uid == 0 {
		t.Fatal("the runtime stage runs as root: want USER 65532:65532")
	}
	return img
}

// container is a process started from the image.
type container struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// command is argv run in the image as `docker run -e ENV…` would run it.
func (img *image) command(argv []string, env []string) *exec.Cmd {
	cmd := &exec.Cmd{
		Path: argv[0], // resolved inside the chroot
		Args: argv,
		Env:  append(append([]string(nil), img.env...), env...),
		Dir:  "/",
		SysProcAttr: &syscall.SysProcAttr{
			Chroot:     img.rootfs,
			Credential: &syscall.Credential{Uid: uint32(img.uid), Gid: uint32(img.gid)},
			Setpgid:    true,
		},
	}
	return cmd
}

// run starts the image's ENTRYPOINT and CMD with env, stopped at cleanup.
func (img *image) run(t *testing.T, env []string) *container {
	t.Helper()
	c := &container{cmd: img.command(append(img.entrypoint, img.cmd...), env), stderr: &syncBuffer{}, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.stderr, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", c.cmd.Args, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
		if t.Failed() {
			t.Logf("container output:\n%s", c.stderr.String())
		}
	})
	return c
}

// exec runs argv inside the image, as `docker exec` or the HEALTHCHECK does.
func (img *image) exec(t *testing.T, env []string, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := img.command(argv, env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running %v: %v", argv, err)
	}
	return o.String(), e.String(), code
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until addr accepts connections or the container exits.
func waitListening(t *testing.T, c *container, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			t.Fatalf("the container exited (%v) before listening on %s:\n%s", c.err, addr, c.stderr.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			conn.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 60s:\n%s", addr, c.stderr.String())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: starting the image as its USER in a chroot needs root (CI runs as root)")
	}
}

// TestImageServesFromEnvironmentAlone is `docker run -e CREDITGATE_ADMIN_TOKENS=…
// -e CREDITGATE_REDIS_URL=… image`: the image's own configuration, nothing
// mounted, serves metered requests, keeps its spool on the volume, answers its
// HEALTHCHECK, and stops cleanly on `docker stop`.
func TestImageServesFromEnvironmentAlone(t *testing.T) {
	requireRoot(t)
	img := buildImage(t)
	if want := []string{"/var/lib/creditgate"}; fmt.Sprint(img.volumes) != fmt.Sprint(want) {
		t.Errorf("VOLUME %v, want %v (the spool's directory)", img.volumes, want)
	}
	for _, p := range img.exposed {
		if strings.HasPrefix(p, "8081") {
			t.Errorf("EXPOSE %s: the admin API listens on the container's loopback; exposing it says otherwise", p)
		}
	}
	stdout, _, code := img.exec(t, nil, append(img.entrypoint, "version")...)
	if code != 0 || !strings.Contains(stdout, "creditgate "+buildVersion+" ") {
		t.Errorf("creditgate version = %q (exit %d), want the VERSION build argument %q", stdout, code, buildVersion)
	}

	rs := testredis.New(t)
	if rs.Kind == testredis.KindCluster {
		t.Skip("SKIPPED on a cluster run: the image test uses one Redis URL")
	}
	mock := mockupstream.New()
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	const adminToken = "image-test-admin-token-0123456789"
	const upstreamKey = "sk-upstream-image-test-secret"
	data, admin := freePort(t), freePort(t)
	env := []string{
		"CREDITGATE_ADMIN_TOKENS=" + adminToken,
		"CREDITGATE_REDIS_URL=redis://" + rs.Addr + "/0",
		"CREDITGATE_UPSTREAM_BASE_URL=" + up.URL + "/v1",
		"CREDITGATE_UPSTREAM_API_KEY=" + upstreamKey,
		// The container's own network namespace and the test's key isolation:
		"CREDITGATE_LISTEN=" + data,
		"CREDITGATE_ADMIN_LISTEN=" + admin,
		"CREDITGATE_REDIS_KEY_PREFIX=" + rs.Prefix,
	}
	c := img.run(t, env)
	waitListening(t, c, data)
	waitListening(t, c, admin)

	// An operator's first steps, through the admin API on the container's loopback.
	adminCall := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "image-test-"+path)
		return call(t, req, want)
	}
	adminCall("POST", "/admin/v1/accounts", `{"id":"acme","tier":"tier-1"}`, http.StatusCreated)
	adminCall("POST", "/admin/v1/accounts/acme/credits", `{"amount":"5.00"}`, http.StatusCreated)
	key, _ := adminCall("POST", "/admin/v1/accounts/acme/keys", `{"name":"app"}`, http.StatusCreated)["key"].(string)
	if !strings.HasPrefix(key, "sk-cg-") {
		t.Fatalf("key = %q, want sk-cg-…", key)
	}

	// An app's request through the data plane, metered and debited.
	req, _ := http.NewRequest("POST", "http://"+data+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp := call(t, req, http.StatusOK)
	if resp["object"] != "chat.completion" {
		t.Errorf("chat completion = %v", resp)
	}
	req, _ = http.NewRequest("GET", "http://"+data+"/v1/credits", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	credits := call(t, req, http.StatusOK)
	if bal := fmt.Sprint(credits["balance"]); bal == "" || bal == "5.000000" || strings.HasPrefix(bal, "-") {
		t.Errorf("balance after one request = %q, want a little under 5.000000 (%v)", bal, credits)
	}

	// The spool lives on the volume, written by the image's user.
	lockFiles, _ := filepath.Glob(filepath.Join(img.rootfs, "var/lib/creditgate/spool/*"))
	if len(lockFiles) == 0 {
		t.Error("nothing in /var/lib/creditgate/spool: the spool is not where the image's volume is")
	}
	for _, f := range lockFiles {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); int(st.Uid) != img.uid {
			t.Errorf("%s is owned by uid %d, want the image's user %d", f, st.Uid, img.uid)
		}
	}

	// The HEALTHCHECK, inside the container, says what the data plane's /readyz says.
	checkHealth(t, img, env, data, true)

	// Logs: JSON lines, no secrets.
	logs := c.stderr.String()
	for _, secret := range []string{adminToken, upstreamKey, key} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a secret (%.10s…)", secret)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON (logging.format json): %q", line)
			break
		}
	}

	// docker stop: SIGTERM, then a clean exit well within the grace period.
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			t.Errorf("after SIGTERM: %v\n%s", c.err, c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after SIGTERM")
	}
	checkHealth(t, img, env, data, false)
}

// checkHealth runs the image's HEALTHCHECK and checks its verdict against a
// direct GET of the data plane's /readyz (running: whether the server runs).
func checkHealth(t *testing.T, img *image, env []string, data string, running bool) {
	t.Helper()
	stdout, stderr, code := img.exec(t, env, img.healthcheck...)
	if !running {
		if code == 0 || !strings.Contains(stderr, "connection refused") {
			t.Errorf("HEALTHCHECK of a stopped instance: exit %d, %q; want non-zero, connection refused", code, stderr)
		}
		return
	}
	resp, err := http.Get("http://" + data + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if code != 0 || stdout != "ready: http://127.0.0.1:"+portOf(data)+"/readyz\n" {
			t.Errorf("HEALTHCHECK: exit %d, %q %q; want 0 with the data plane ready", code, stdout, stderr)
		}
	default:
		// A data plane without /readyz (older than SPEC Part 2's Operations)
		// must read as unhealthy, not as ready.
		t.Logf("the data plane answers /readyz with %d", resp.StatusCode)
		if code == 0 || !strings.Contains(stderr, strconv.Itoa(resp.StatusCode)) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("HEALTHCHECK: exit %d, %q; want non-zero with a one-line reason naming %d", code, stderr, resp.StatusCode)
		}
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// call sends req and decodes its JSON answer, which must have status want.
func call(t *testing.T, req *http.Request, want int) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, body, want)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, body)
	}
	return out
}

// TestImageWithoutAdminTokenSaysWhichVariable: started with the Redis alone,
// the image refuses to serve and names the variable to set.
func TestImageWithoutAdminTokenSaysWhichVariable(t *testing.T) {
	requireRoot(t)
	img := buildImage(t)
	rs := testredis.New(t)
	env := []string{
		"CREDITGATE_REDIS_URL=redis://" + rs.Addr + "/0",
		"CREDITGATE_LISTEN=" + freePort(t),
		"CREDITGATE_ADMIN_LISTEN=" + freePort(t),
		"CREDITGATE_REDIS_KEY_PREFIX=" + rs.Prefix,
	}
	c := img.run(t, env)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("still running after 30s without an admin token")
	}
	if c.err == nil {
		t.Error("exit status 0 without an admin token")
	}
	if out := c.stderr.String(); !strings.Contains(out, "admin.tokens") || !strings.Contains(out, "CREDITGATE_ADMIN_TOKENS") {
		t.Errorf("output does not name admin.tokens and CREDITGATE_ADMIN_TOKENS:\n%s", out)
	}
}

func TestDockerignoreMatching(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".dockerignore")
	os.WriteFile(path, []byte("# comment\n.git\n**/*.test\ncover*\ndeploy/*\n!deploy/image/config.yaml\n/docs\n"), 0o644)
	d := readDockerignore(t, path)
	tests := []struct {
		path string
		want bool
	}{
		{".git/config", true},
		{"cmd/creditgate/creditgate.test", true},
		{"creditgate.test", true},
		{"cover.out", true},
		{"admin/cover.out", false}, // patterns are anchored at the context's root
		{"deploy/compose.yaml", true},
		{"deploy/helm/creditgate/Chart.yaml", true},
		{"deploy/image/config.yaml", false},
		{"docs/deploy.md", true},
		{"go.mod", false},
		{"admin/dashboard/app.js", false},
	}
	for _, tt := range tests {
		if got := d.excluded(tt.path); got != tt.want {
			t.Errorf("excluded(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
