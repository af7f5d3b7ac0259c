package config

import (
	"slices"
	"testing"
	"time"
)

// redis.wait: off by default with a 1 s bound; replicas and the bound are
// checked, the bound against redis.timeout when something is waited for (the
// wait's answer is read within it), and the embedded store can wait for nothing.
func TestRedisWaitValidation(t *testing.T) {
	if w := Default().Redis.Wait; w != (RedisWait{Timeout: time.Second}) {
		t.Fatalf("default redis.wait %+v, want replicas 0, timeout 1s, aof false", w)
	}
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // nil: valid
	}{
		{"one replica", func(c *Config) { c.Redis.Wait.Replicas = 1 }, nil},
		{"aof alone", func(c *Config) { c.Redis.Wait.AOF = true }, nil},
		{"replicas negative", func(c *Config) { c.Redis.Wait.Replicas = -1 }, []string{"redis.wait.replicas"}},
		{"replicas huge", func(c *Config) { c.Redis.Wait.Replicas = 1000 }, []string{"redis.wait.replicas"}},
		{"timeout zero", func(c *Config) { c.Redis.Wait.Timeout = 0 }, []string{"redis.wait.timeout"}},
		{"timeout as long as redis.timeout", func(c *Config) { c.Redis.Wait.Replicas = 1; c.Redis.Wait.Timeout = c.Redis.Timeout }, []string{"redis.wait.timeout"}},
		{"aof, timeout as long as redis.timeout", func(c *Config) { c.Redis.Wait.AOF = true; c.Redis.Wait.Timeout = c.Redis.Timeout }, []string{"redis.wait.timeout"}},
		{"timeout just under redis.timeout", func(c *Config) { c.Redis.Wait.Replicas = 1; c.Redis.Wait.Timeout = c.Redis.Timeout - time.Millisecond }, nil},
		// An existing short redis.timeout stays valid while nothing is waited for.
		{"wait off, redis.timeout below the default wait", func(c *Config) { c.Redis.Timeout = 300 * time.Millisecond; c.Redis.OperationTimeout = time.Second }, nil},
		{"redis.timeout zero reports only itself", func(c *Config) { c.Redis.Timeout = 0; c.Redis.OperationTimeout = time.Second }, []string{"redis.timeout"}},
		{"embedded store with replicas", func(c *Config) { c.Redis.URL = memoryURL; c.Redis.Wait.Replicas = 1 }, []string{"redis.wait"}},
		{"embedded store with aof", func(c *Config) { c.Redis.URL = memoryURL; c.Redis.Wait.AOF = true }, []string{"redis.wait"}},
		{"embedded store waiting for nothing", func(c *Config) { c.Redis.URL = memoryURL }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			var got []string
			if err := c.Validate(); err != nil {
				got = keysOf(*err.(*Problems))
			}
			if !slices.Equal(got, tt.wantKeys) {
				t.Errorf("problems %v, want keys %v (%v)", got, tt.wantKeys, c.Validate())
			}
		})
	}
}

// The redis.wait keys load from YAML and from the environment, and a bad value
// is reported with its key.
func TestRedisWaitLoads(t *testing.T) {
	cfg := mustLoad(t, "redis: { wait: { replicas: 2, aof: true } }\n",
		map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_REDIS_WAIT_TIMEOUT": "250ms"})
	if w := cfg.Redis.Wait; w != (RedisWait{Replicas: 2, Timeout: 250 * time.Millisecond, AOF: true}) {
		t.Fatalf("loaded redis.wait %+v", w)
	}
	ps := problemsOf(t, "redis: { wait: { replicas: one, aof: true, timeout: 5s } }\n", tokenEnv)
	if got := keysOf(ps); !slices.Equal(got, []string{"redis.wait.replicas", "redis.wait.timeout"}) {
		t.Fatalf("problems %v", ps)
	}
}
