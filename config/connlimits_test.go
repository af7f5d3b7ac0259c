package config

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// The connection limits' defaults: safe without configuration.
func TestConnectionLimitDefaults(t *testing.T) {
	d := Default()
	tests := []struct {
		name      string
		got, want any
	}{
		{"limits.max_connections", d.Limits.MaxConnections, int64(4096)},
		{"limits.header_timeout", d.Limits.HeaderTimeout, 10 * time.Second},
		{"limits.body_idle_timeout", d.Limits.BodyIdleTimeout, 30 * time.Second},
		{"limits.body_min_rate", d.Limits.BodyMinRate, 8 * KiB},
		{"limits.idle_timeout", d.Limits.IdleTimeout, 2 * time.Minute},
		{"admin.max_connections", d.Admin.MaxConnections, int64(64)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Default %s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// One row per rule: the mutation breaks exactly that rule, and the problem
// names exactly that key.
func TestValidateConnectionLimits(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // nil: valid
	}{
		{"one connection", func(c *Config) { c.Limits.MaxConnections, c.Admin.MaxConnections = 1, 1 }, nil},
		{"max_connections zero", func(c *Config) { c.Limits.MaxConnections = 0 }, []string{"limits.max_connections"}},
		{"max_connections negative", func(c *Config) { c.Limits.MaxConnections = -5 }, []string{"limits.max_connections"}},
		{"max_connections huge", func(c *Config) { c.Limits.MaxConnections = 2_000_000 }, []string{"limits.max_connections"}},
		{"admin.max_connections zero", func(c *Config) { c.Admin.MaxConnections = 0 }, []string{"admin.max_connections"}},
		{"admin.max_connections huge", func(c *Config) { c.Admin.MaxConnections = 2_000_000 }, []string{"admin.max_connections"}},
		{"header_timeout zero", func(c *Config) { c.Limits.HeaderTimeout = 0 }, []string{"limits.header_timeout"}},
		{"body_idle_timeout negative", func(c *Config) { c.Limits.BodyIdleTimeout = -time.Second }, []string{"limits.body_idle_timeout"}},
		{"idle_timeout zero", func(c *Config) { c.Limits.IdleTimeout = 0 }, []string{"limits.idle_timeout"}},
		{"body_min_rate zero: pauses only", func(c *Config) { c.Limits.BodyMinRate = 0 }, nil},
		{"body_min_rate negative", func(c *Config) { c.Limits.BodyMinRate = -1 }, []string{"limits.body_min_rate"}},
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

// The keys load from YAML and from the environment like every other key, and
// need a restart to change.
func TestConnectionLimitKeysLoad(t *testing.T) {
	cfg := mustLoad(t, `
admin: { max_connections: 16 }
limits: { max_connections: 100, header_timeout: 2s, body_idle_timeout: 5s, body_min_rate: 1KiB }
`, map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_LIMITS_IDLE_TIMEOUT": "45s"})
	l := cfg.Limits
	if cfg.Admin.MaxConnections != 16 || l.MaxConnections != 100 || l.HeaderTimeout != 2*time.Second ||
		l.BodyIdleTimeout != 5*time.Second || l.BodyMinRate != KiB || l.IdleTimeout != 45*time.Second {
		t.Fatalf("loaded admin %+v limits %+v", cfg.Admin.MaxConnections, l)
	}
	ps := problemsOf(t, "limits: { max_connections: many }\n", tokenEnv)
	if !slices.Equal(keysOf(ps), []string{"limits.max_connections"}) {
		t.Fatalf("problems %v", ps)
	}
	old := Default()
	if diff := ReloadDiff(old, cfg); !slices.Contains(diff, "limits.max_connections") || !slices.Contains(diff, "admin.max_connections") ||
		!slices.Contains(diff, "limits.body_min_rate") {
		t.Fatalf("ReloadDiff %v: the listeners' limits need a restart", diff)
	}
}
