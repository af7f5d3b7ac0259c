package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

func TestSignedMicros(t *testing.T) {
	tests := []struct {
		in      string
		want    SignedMicros
		wantErr bool
	}{
		{in: "0.000000", want: 0},
		{in: "-0.300000", want: -300_000},
		{in: "4.998731", want: 4_998_731},
		{in: "25", want: 25_000_000},
		{in: "-1000000000.000000", want: -SignedMicros(money.MaxAmount)},
		{in: "", wantErr: true},
		{in: "-", wantErr: true},
		{in: "--1", wantErr: true},
		{in: "-+1", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: "-1e3", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "1.0000001", wantErr: true},
		{in: " 1", wantErr: true},
		{in: "1.", wantErr: true},
		{in: ".5", wantErr: true},
		{in: "-999999999999.999999", want: -999_999_999_999_999_999},
		{in: "1000000000000", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got SignedMicros
			err := json.Unmarshal([]byte(`"`+tt.in+`"`), &got)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parsed %q as %s, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parse %q = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSignedMicrosFormat(t *testing.T) {
	tests := []struct {
		in   SignedMicros
		want string
	}{
		{0, `"0.000000"`},
		{-300_000, `"-0.300000"`},
		{-1, `"-0.000001"`},
		{25 * SignedMicros(money.Dollar), `"25.000000"`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.in)
		if err != nil || string(b) != tt.want {
			t.Errorf("Marshal(%d) = %s, %v; want %s", tt.in, b, err, tt.want)
		}
	}
}

func TestSignedMicrosRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := SignedMicros(rapid.Int64Range(-int64(money.MaxAmount), int64(money.MaxAmount)).Draw(t, "m"))
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back SignedMicros
		if err := json.Unmarshal(b, &back); err != nil || back != m {
			t.Fatalf("%d → %s → %d, %v", m, b, back, err)
		}
	})
}

// A wire value marshals, decodes (as admin/client does) and marshals again to the
// same bytes: the CLI's JSON output is the API's JSON.
func TestAccountWireRoundTrip(t *testing.T) {
	amount := rapid.Custom(func(t *rapid.T) money.Micros {
		return money.Micros(rapid.Int64Range(0, int64(money.MaxAmount)).Draw(t, "amount"))
	})
	instant := rapid.Custom(func(t *rapid.T) time.Time {
		return time.UnixMilli(rapid.Int64Range(0, 4102444800000).Draw(t, "ms")).In(time.FixedZone("x", 3600*rapid.IntRange(-12, 12).Draw(t, "zone")))
	})
	rapid.Check(t, func(t *rapid.T) {
		a := billing.Account{
			ID: "acct", Tier: "tier-1", CreatedAt: instant.Draw(t, "created"),
			Credit: amount.Draw(t, "credit"), Debt: amount.Draw(t, "debt"), Reserved: amount.Draw(t, "reserved"),
			AutoRecharge: billing.AutoRecharge{Enabled: rapid.Bool().Draw(t, "enabled"), Threshold: amount.Draw(t, "threshold")},
		}
		for i := range rapid.IntRange(0, 3).Draw(t, "grants") {
			a.Grants = append(a.Grants, billing.Grant{ID: "grant_" + string(rune('a'+i)), Amount: amount.Draw(t, "g"), Remaining: amount.Draw(t, "r"),
				GrantedAt: instant.Draw(t, "granted"), ExpiresAt: instant.Draw(t, "expires"), Source: billing.SourcePromo})
		}
		first, err := json.Marshal(accountFrom(a, amount.Draw(t, "grace")))
		if err != nil {
			t.Fatal(err)
		}
		var decoded Account
		if err := json.Unmarshal(first, &decoded); err != nil {
			t.Fatalf("decode %s: %v", first, err)
		}
		second, _ := json.Marshal(decoded)
		if string(first) != string(second) {
			t.Fatalf("round trip changed the JSON:\n%s\n%s", first, second)
		}
		if int64(decoded.Balance) != int64(a.Credit-a.Debt) || int64(decoded.Available) != int64(a.Credit-a.Debt-a.Reserved) {
			t.Fatalf("balance %s available %s, want credit−debt and balance−reserved of %+v", decoded.Balance, decoded.Available, a)
		}
	})
}

func TestTokenMatchesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tokens := rapid.SliceOfN(rapid.StringMatching(`[a-z0-9-]{0,12}`), 0, 5).Draw(t, "tokens")
		presented := rapid.OneOf(rapid.SampledFrom(append([]string{"x"}, tokens...)), rapid.String()).Draw(t, "presented")
		want := presented != "" && slices.Contains(tokens, presented)
		if got := tokenMatches(presented, tokens, subtle.ConstantTimeCompare); got != want {
			t.Fatalf("tokenMatches(%q, %q) = %v, want %v", presented, tokens, got, want)
		}
	})
}

func TestTopUpFingerprintProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a1 := money.Micros(rapid.Int64Range(1, 1000).Draw(t, "a1"))
		a2 := money.Micros(rapid.Int64Range(1, 1000).Draw(t, "a2"))
		pick := func(label string) time.Time {
			if rapid.Bool().Draw(t, label+"zero") {
				return time.Time{}
			}
			// Same instants in different zones must fingerprint alike.
			return time.Unix(rapid.Int64Range(0, 3).Draw(t, label), 0).In(time.FixedZone("z", 60*rapid.IntRange(0, 2).Draw(t, label+"zone")))
		}
		e1, e2 := pick("e1"), pick("e2")
		// External ids and notes, including ones that would run together if the
		// encoding were naive.
		texts := []string{"", "a", "b", "a\nnote=", `a"`, "a b"}
		r1, r2 := rapid.SampledFrom(texts).Draw(t, "r1"), rapid.SampledFrom(texts).Draw(t, "r2")
		n1, n2 := rapid.SampledFrom(texts).Draw(t, "n1"), rapid.SampledFrom(texts).Draw(t, "n2")
		same := a1 == a2 && e1.Equal(e2) && r1 == r2 && n1 == n2
		if got := topUpFingerprint(a1, e1, r1, n1) == topUpFingerprint(a2, e2, r2, n2); got != same {
			t.Fatalf("fingerprints equal = %v for (%d, %v, %q, %q) and (%d, %v, %q, %q), want %v", got, a1, e1, r1, n1, a2, e2, r2, n2, same)
		}
	})
}

// A top-up without an external id or a note fingerprints as it did before they
// existed, so Idempotency-Keys recorded by an earlier version still replay.
func TestTopUpFingerprintOfPlainTopUpsIsUnchanged(t *testing.T) {
	sum := sha256.Sum256([]byte("amount=25000000\nexpires_at="))
	if got, want := topUpFingerprint(25*money.Dollar, time.Time{}, "", ""), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("fingerprint %s, want the earlier %s", got, want)
	}
}

func TestIdempotentGrantID(t *testing.T) {
	a := idempotentGrantID("acme", "order-1")
	if a != idempotentGrantID("acme", "order-1") {
		t.Fatal("grant id is not deterministic")
	}
	if len(a) != len("grant_")+24 {
		t.Errorf("grant id %q is not grant_ + 24 hex", a)
	}
	for _, other := range [][2]string{{"acme", "order-2"}, {"acme2", "order-1"}, {"acm", "eorder-1"}} {
		if idempotentGrantID(other[0], other[1]) == a {
			t.Errorf("grant id of %v collides with acme/order-1", other)
		}
	}
}

// A usage event carries the excess its upstream claimed only when there was one.
func TestEventExcessWire(t *testing.T) {
	for _, c := range []struct {
		excess money.Micros
		tokens int64
		want   string // "" = absent
	}{{987654, 4984, `"excess":"0.987654","excess_tokens":4984`}, {0, 0, ""}} {
		ev := billing.Event{ID: "1-0", Type: billing.EventUsage, Cost: 1234, Excess: c.excess, ExcessTokens: c.tokens}
		b, err := json.Marshal(eventFrom(ev))
		if err != nil {
			t.Fatal(err)
		}
		if c.want == "" && strings.Contains(string(b), "excess") || c.want != "" && !strings.Contains(string(b), c.want) {
			t.Errorf("excess %s: %s, want %q", c.excess, b, c.want)
		}
	}
}
