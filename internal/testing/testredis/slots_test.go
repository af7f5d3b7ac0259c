package testredis

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// Slots of known keys, as `CLUSTER KEYSLOT` reports them.
func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"foo", 12182},
		{"bar", 5061},
		{"123456789", 12739}, // CRC-16/XMODEM check value 0x31C3 mod 16384
		{"{user1000}.following", Slot("user1000")},
		{"{}.foo", Slot("{}.foo")}, // an empty tag is no tag: the whole key hashes
		{"cg:{acct:acme}:ledger", Slot("acct:acme")},
		{"a{b}{c}", Slot("b")}, // the first tag only
	}
	for _, tt := range tests {
		if got := Slot(tt.key); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// Against the real Redis when it runs: the computed slot is the server's.
func TestSlotMatchesServer(t *testing.T) {
	s := New(t)
	if s.Kind == KindMemory {
		t.Skip("miniredis has no CLUSTER KEYSLOT")
	}
	ctx := context.Background()
	for _, key := range []string{"foo", "cg:{acct:acme}:acct", "cg:key:abcdef", "x{}y", "{a}{b}"} {
		res, err := s.Client.Do(ctx, "CLUSTER", "KEYSLOT", key).Int()
		if err != nil {
			if strings.Contains(err.Error(), "cluster support disabled") {
				skipreport.Skip(t, skipreport.RedisCluster, "the test Redis is not in cluster mode, so Slot is not checked against a cluster's CLUSTER KEYSLOT")
			}
			t.Fatal(err)
		}
		if got := Slot(key); got != res {
			t.Errorf("Slot(%q) = %d, Redis says %d", key, got, res)
		}
	}
}

// The guard is on every test client: a script or a multi-key command whose keys
// span two slots fails before it reaches Redis; one slot passes.
func TestSlotGuard(t *testing.T) {
	for _, s := range []*Store{New(t), Memory(t)} {
		t.Run(string(s.Kind), func(t *testing.T) {
			ctx := context.Background()
			p := s.Prefix
			same := []string{p + "{acct:a}:x", p + "{acct:a}:y"}
			cross := []string{p + "{acct:a}:x", p + "{acct:b}:y"}
			script := redis.NewScript(`return #KEYS`)
			if n, err := script.Run(ctx, s.Client, same).Int(); err != nil || n != 2 {
				t.Fatalf("one-slot script: %d %v", n, err)
			}
			tests := []struct {
				name string
				run  func() error
			}{
				{"script", func() error { return script.Run(ctx, s.Client, cross).Err() }},
				{"eval", func() error { return s.Client.Eval(ctx, `return 1`, cross).Err() }},
				{"del", func() error { return s.Client.Del(ctx, cross...).Err() }},
				{"mset", func() error { return s.Client.MSet(ctx, cross[0], "1", cross[1], "2").Err() }},
				{"mget", func() error { return s.Client.MGet(ctx, cross...).Err() }},
				{"rename", func() error { return s.Client.Rename(ctx, cross[0], cross[1]).Err() }},
				{"pipelined", func() error {
					_, err := s.Client.Pipelined(ctx, func(pl redis.Pipeliner) error {
						pl.Get(ctx, cross[0])
						pl.Del(ctx, cross...)
						return nil
					})
					return err
				}},
			}
			for _, tt := range tests {
				if err := tt.run(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
					t.Errorf("%s across slots: %v, want CROSSSLOT", tt.name, err)
				}
			}
			if err := s.Client.Del(ctx, same...).Err(); err != nil {
				t.Errorf("one-slot DEL: %v", err)
			}
			if err := s.Client.Get(ctx, cross[0]).Err(); err != nil && err != redis.Nil {
				t.Errorf("single-key GET: %v", err)
			}
		})
	}
}
