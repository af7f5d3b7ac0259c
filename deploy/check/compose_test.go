package check

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// composeFile is the Compose file under test, beside this module.
const composeFile = "../compose.yaml"

// testEnv fills every secret the Compose file requires.
var testEnv = map[string]string{
	"CREDITGATE_ADMIN_TOKENS":     "compose-test-admin-token-0123456789",
	"CREDITGATE_UPSTREAM_API_KEY": "sk-compose-test",
	"REDIS_PASSWORD":              "compose-test-redis-password",
	"POSTGRES_PASSWORD":           "compose-test-postgres-password",
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// load loads path as `docker compose` would, with env as the only
// environment (no .env file, not the process's) and the given profiles.
func load(t *testing.T, path string, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithEnv(envList(env)),
		cli.WithProfiles(profiles),
		cli.WithName("creditgate"),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

func mustLoad(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	p, err := load(t, composeFile, testEnv, profiles...)
	if err != nil {
		t.Fatalf("loading %s: %v", composeFile, err)
	}
	return p
}

// creditgateServices are the project's creditgate instances: the services
// built from the repository's Dockerfile.
func creditgateServices(t *testing.T, p *types.Project) []types.ServiceConfig {
	t.Helper()
	var out []types.ServiceConfig
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if s.Build != nil {
			out = append(out, s)
		}
	}
	if len(out) < 2 {
		t.Fatalf("%d creditgate instances (services built from the Dockerfile), want 2 or more", len(out))
	}
	return out
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

func TestComposeServicesAndProfiles(t *testing.T) {
	tests := []struct {
		profiles []string
		want     []string
	}{
		{nil, []string{"creditgate-a", "creditgate-b", "lb", "prometheus", "redis"}},
		{[]string{"archive"}, []string{"creditgate-a", "creditgate-b", "lb", "postgres", "prometheus", "redis"}},
	}
	for _, tt := range tests {
		p := mustLoad(t, tt.profiles...)
		got := p.ServiceNames()
		sort.Strings(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("profiles %v: services %v, want %v", tt.profiles, got, tt.want)
		}
	}
}

func TestComposeRequiresItsSecrets(t *testing.T) {
	for name := range testEnv {
		if name == "POSTGRES_PASSWORD" {
			continue // only the archive profile needs it
		}
		t.Run(name, func(t *testing.T) {
			env := make(map[string]string)
			for k, v := range testEnv {
				if k != name {
					env[k] = v
				}
			}
			_, err := load(t, composeFile, env)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("without %s: err = %v, want one naming it", name, err)
			}
		})
	}
	_, err := load(t, composeFile, map[string]string{"CREDITGATE_ADMIN_TOKENS": "x", "CREDITGATE_UPSTREAM_API_KEY": "x", "REDIS_PASSWORD": "x"}, "archive")
	if err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Errorf("archive profile without POSTGRES_PASSWORD: err = %v, want one naming it", err)
	}
}

func TestComposeRedisIsDurableAndNeverEvicts(t *testing.T) {
	p := mustLoad(t)
	redis := p.Services["redis"]
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction", "--requirepass " + testEnv["REDIS_PASSWORD"]} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	if !slices.ContainsFunc(redis.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" && v.Type == types.VolumeTypeVolume }) {
		t.Errorf("redis keeps /data (the AOF) on no named volume: %+v", redis.Volumes)
	}
	if redis.HealthCheck == nil || len(redis.HealthCheck.Test) == 0 {
		t.Error("redis has no healthcheck; the instances wait for it to be healthy")
	}
	if len(redis.Ports) > 0 {
		t.Errorf("redis publishes %v: keep it on the compose network", redis.Ports)
	}
}

func TestComposeInstances(t *testing.T) {
	p := mustLoad(t, "archive")
	spools := map[string]string{}
	for _, s := range creditgateServices(t, p) {
		t.Run(s.Name, func(t *testing.T) {
			if s.Build.Dockerfile != "Dockerfile" || filepath.Base(s.Build.Context) != filepath.Base(repoRoot(t)) {
				t.Errorf("build %s/%s, want the repository's Dockerfile", s.Build.Context, s.Build.Dockerfile)
			}
			// From the environment alone: every required variable, secrets interpolated.
			for name, want := range map[string]string{
				"CREDITGATE_ADMIN_TOKENS":     testEnv["CREDITGATE_ADMIN_TOKENS"],
				"CREDITGATE_UPSTREAM_API_KEY": testEnv["CREDITGATE_UPSTREAM_API_KEY"],
				"CREDITGATE_REDIS_URL":        "redis://:" + testEnv["REDIS_PASSWORD"] + "@redis:6379/0",
			} {
				if got := env(s, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			for _, dep := range []string{"redis", "postgres"} {
				if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
					t.Errorf("depends_on %s: %+v, want condition service_healthy", dep, d)
				}
			}
			if s.DependsOn["postgres"].Required {
				t.Error("depends_on postgres is required: the default profile has no postgres")
			}
			// The spool: the image's volume path, on a named volume of its own.
			var spool string
			for _, v := range s.Volumes {
				if v.Target == "/var/lib/creditgate" && v.Type == types.VolumeTypeVolume {
					spool = v.Source
				}
			}
			if spool == "" {
				t.Fatalf("no named volume at /var/lib/creditgate (the spool): %+v", s.Volumes)
			}
			if other, dup := spools[spool]; dup {
				t.Errorf("spool volume %s shared with %s: one process per spool", spool, other)
			}
			spools[spool] = s.Name
			// Nothing published: apps go through the load balancer, the admin API
			// stays on the instance's loopback, metrics are scraped in the network.
			if len(s.Ports) > 0 {
				t.Errorf("publishes %v", s.Ports)
			}
			if l := env(s, "CREDITGATE_ADMIN_LISTEN"); l != "" {
				t.Errorf("CREDITGATE_ADMIN_LISTEN = %q: the admin API leaves the instance's loopback", l)
			}
			// docker stop's grace above shutdown_timeout.
			shutdown, err := time.ParseDuration(env(s, "CREDITGATE_SHUTDOWN_TIMEOUT"))
			if err != nil {
				t.Fatalf("CREDITGATE_SHUTDOWN_TIMEOUT: %v", err)
			}
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
				t.Errorf("stop_grace_period %v, want above shutdown_timeout %v", s.StopGracePeriod, shutdown)
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("read_only %v, cap_drop %v: want a read-only root and no capabilities", s.ReadOnly, s.CapDrop)
			}
		})
	}
}

// metricsTargets are the host:port each instance's metrics listener answers on.
func metricsTargets(t *testing.T, p *types.Project) []string {
	t.Helper()
	var out []string
	for _, s := range creditgateServices(t, p) {
		listen := env(s, "CREDITGATE_METRICS_LISTEN")
		_, port, ok := strings.Cut(listen, ":")
		if !ok || port == "" {
			t.Fatalf("%s: CREDITGATE_METRICS_LISTEN = %q, want :PORT", s.Name, listen)
		}
		out = append(out, s.Name+":"+port)
	}
	sort.Strings(out)
	return out
}

func TestPrometheusScrapesEveryInstance(t *testing.T) {
	p := mustLoad(t)
	data, err := os.ReadFile("../prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	sort.Strings(targets)
	if want := metricsTargets(t, p); !slices.Equal(targets, want) {
		t.Errorf("prometheus.yml targets %v, want each instance's metrics listener %v", targets, want)
	}
	prom := p.Services["prometheus"]
	for _, v := range prom.Volumes {
		if v.Target == "/etc/prometheus/prometheus.yml" && filepath.Base(v.Source) != "prometheus.yml" {
			t.Errorf("prometheus mounts %s as its config", v.Source)
		}
	}
	for _, port := range prom.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("prometheus published on %q:%s: keep it on the host's loopback", port.HostIP, port.Published)
		}
	}
}

func TestLoadBalancerReachesEveryInstanceAndChecksReadiness(t *testing.T) {
	p := mustLoad(t)
	data, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	m := regexp.MustCompile(`(?m)^\s*reverse_proxy\s+([^{\n]+)\{`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("Caddyfile has no reverse_proxy block")
	}
	upstreams := strings.Fields(m[1])
	sort.Strings(upstreams)
	var want []string
	for _, s := range creditgateServices(t, p) {
		want = append(want, s.Name+":8080")
	}
	if !slices.Equal(upstreams, want) {
		t.Errorf("Caddyfile upstreams %v, want every instance's data plane %v", upstreams, want)
	}
	for _, line := range []string{"health_uri /readyz", "flush_interval -1", "admin off"} {
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(line) + `\s*$`).MatchString(text) {
			t.Errorf("Caddyfile lacks %q", line)
		}
	}
	lb := p.Services["lb"]
	if len(lb.Ports) != 1 || lb.Ports[0].Target != 8080 || lb.Ports[0].Published != "8080" {
		t.Errorf("lb ports %+v, want 8080 published to 8080", lb.Ports)
	}
	if !slices.ContainsFunc(lb.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Target == "/etc/caddy/Caddyfile" && filepath.Base(v.Source) == "Caddyfile" && v.ReadOnly
	}) {
		t.Errorf("lb does not mount the Caddyfile read-only: %+v", lb.Volumes)
	}
}

// TestEnvExampleListsEveryVariable: every ${VAR} the Compose file reads is in
// .env.example, so a user filling it in misses none.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	compose, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?\s*([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(string(example), -1) {
		listed[m[1]] = true
	}
	vars := regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(compose), -1)
	if len(vars) == 0 {
		t.Fatal("no ${VAR} in the Compose file")
	}
	for _, m := range vars {
		if !listed[m[1]] {
			t.Errorf("${%s} is not in .env.example", m[1])
		}
	}
	// And no secret is written into the Compose file itself.
	for _, m := range regexp.MustCompile(`(?m)^\s*([A-Z_]*(?:TOKENS|API_KEY|PASSWORD|AUTH)):\s*(.*)$`).FindAllStringSubmatch(string(compose), -1) {
		if !strings.HasPrefix(m[2], "${") {
			t.Errorf("%s is set to a literal in the Compose file: use ${%s} from .env", m[1], m[1])
		}
	}
}

// TestComposeSchemaCanary: the loader behind these tests refuses what `docker
// compose` refuses, so a misspelt key cannot pass them.
func TestComposeSchemaCanary(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"unknown service key", "    restart: unless-stopped\n    # appendonly", "    restrat: unless-stopped\n    # appendonly", "restrat"},
		{"wrong type", "      retries: 10\n\n  postgres:", "      retries: ten\n\n  postgres:", "retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(data), tt.old) {
				t.Fatalf("the Compose file no longer holds %q; update the canary", tt.old)
			}
			broken := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(broken, []byte(strings.Replace(string(data), tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := load(t, broken, testEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a refusal naming %q", err, tt.want)
			}
		})
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}
