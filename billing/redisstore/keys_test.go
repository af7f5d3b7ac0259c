package redisstore

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// TestKeySettingsStored: every key setting survives the entry, the listing and
// the lookup; invalid settings are ErrInvalid naming each field.
func TestKeySettingsStored(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		exp := e.clock.Now().Add(48 * time.Hour)
		spec := billing.KeySpec{Name: "app one", RPM: 60, TPM: 1000, Limit: 20_000_000, LimitReset: billing.LimitMonthly,
			ExpiresAt: exp, Models: []string{"gpt-4o", "gpt-4o-mini", "a|b, c%"}, Disabled: true}
		k, secret, err := e.CreateKeyWith(e.ctx, "acme", spec)
		if err != nil {
			t.Fatal(err)
		}
		want := k
		want.AccountStatus = billing.StatusActive
		found, err := e.LookupKey(e.ctx, billing.HashKey(secret))
		if err != nil || !reflect.DeepEqual(found, want) {
			t.Fatalf("lookup %+v, %v; want %+v", found, err, want)
		}
		if !found.ExpiresAt.Equal(exp) || found.Limit != 20_000_000 || found.LimitReset != billing.LimitMonthly ||
			!found.Disabled || len(found.Models) != 3 || found.Models[2] != "a|b, c%" {
			t.Fatalf("lookup lost settings: %+v", found)
		}
		list, err := e.ListKeys(e.ctx, "acme")
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], k) {
			t.Fatalf("list %+v, %v; want %+v", list, err, k)
		}
		never, _, err := e.CreateKeyWith(e.ctx, "acme", billing.KeySpec{Limit: 5, LimitReset: billing.LimitNever, Models: []string{}})
		if err != nil || never.LimitReset != "" || never.Models != nil {
			t.Fatalf("never: %+v, %v", never, err)
		}

		bad := billing.KeySpec{Limit: -1, LimitReset: "hourly", ExpiresAt: e.clock.Now().Add(-time.Second), Models: []string{""}, RPM: -1}
		_, _, err = e.CreateKeyWith(e.ctx, "acme", bad)
		if !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("invalid spec: %v", err)
		}
		for _, field := range []string{"limit:", "limit_reset:", "expires_at:", "models:", "rpm:"} {
			if !strings.Contains(err.Error(), field) {
				t.Errorf("error %q does not name %s", err, field)
			}
		}
		if list, _ := e.ListKeys(e.ctx, "acme"); len(list) != 2 {
			t.Fatalf("an invalid key was stored: %+v", list)
		}
	})
}

// TestUpdateKey: each field changes alone and is seen by the listing and the
// lookup; nil fields stay; null-like values clear; another account's key, an
// unknown key and an empty or invalid update change nothing.
func TestUpdateKey(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.account(t, "other")
		k, secret, err := e.CreateKeyWith(e.ctx, "acme", billing.KeySpec{Name: "app", RPM: 60, Limit: 1_000_000, ExpiresAt: e.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		later := e.clock.Now().Add(72 * time.Hour)
		steps := []struct {
			name  string
			u     billing.KeyUpdate
			check func(k billing.APIKey) bool
		}{
			{"name", billing.KeyUpdate{Name: ptr("renamed")}, func(k billing.APIKey) bool { return k.Name == "renamed" && k.RPM == 60 }},
			{"limit", billing.KeyUpdate{Limit: ptr(money.Micros(20_000_000)), LimitReset: ptr(billing.LimitWeekly)},
				func(k billing.APIKey) bool {
					return k.Limit == 20_000_000 && k.LimitReset == billing.LimitWeekly && k.Name == "renamed"
				}},
			{"expiry", billing.KeyUpdate{ExpiresAt: &later}, func(k billing.APIKey) bool { return k.ExpiresAt.Equal(later) }},
			{"no expiry", billing.KeyUpdate{ExpiresAt: &time.Time{}}, func(k billing.APIKey) bool { return k.ExpiresAt.IsZero() }},
			{"models", billing.KeyUpdate{Models: &[]string{"gpt-4o"}}, func(k billing.APIKey) bool { return reflect.DeepEqual(k.Models, []string{"gpt-4o"}) }},
			{"rates", billing.KeyUpdate{RPM: ptr(int64(0)), TPM: ptr(int64(5000))}, func(k billing.APIKey) bool { return k.RPM == 0 && k.TPM == 5000 }},
			{"disabled", billing.KeyUpdate{Disabled: ptr(true)}, func(k billing.APIKey) bool { return k.Disabled }},
			{"all models", billing.KeyUpdate{Models: &[]string{}}, func(k billing.APIKey) bool { return k.Models == nil }},
			{"no limit", billing.KeyUpdate{Limit: ptr(money.Micros(0)), LimitReset: ptr(billing.LimitNever)},
				func(k billing.APIKey) bool { return k.Limit == 0 && k.LimitReset == "" && k.Disabled && k.TPM == 5000 }},
			{"enabled", billing.KeyUpdate{Disabled: ptr(false), Actor: "ops"}, func(k billing.APIKey) bool { return !k.Disabled }},
		}
		for _, st := range steps {
			got, err := e.UpdateKey(e.ctx, "acme", k.ID, st.u)
			if err != nil || !st.check(got) {
				t.Fatalf("%s: %+v, %v", st.name, got, err)
			}
			found, err := e.LookupKey(e.ctx, billing.HashKey(secret))
			got.AccountStatus = billing.StatusActive
			if err != nil || !reflect.DeepEqual(found, got) {
				t.Fatalf("%s: lookup %+v, %v; want %+v", st.name, found, err, got)
			}
			list, err := e.ListKeys(e.ctx, "acme")
			got.AccountStatus = ""
			if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], got) {
				t.Fatalf("%s: list %+v, %v; want %+v", st.name, list, err, got)
			}
		}
		before, _ := e.ListKeys(e.ctx, "acme")
		for _, c := range []struct {
			account, id string
			u           billing.KeyUpdate
			want        error
		}{
			{"other", k.ID, billing.KeyUpdate{Disabled: ptr(true)}, billing.ErrKeyNotFound},
			{"acme", "key_nope", billing.KeyUpdate{Disabled: ptr(true)}, billing.ErrKeyNotFound},
			{"nobody", k.ID, billing.KeyUpdate{Disabled: ptr(true)}, billing.ErrKeyNotFound},
			{"acme", "{bad}", billing.KeyUpdate{Disabled: ptr(true)}, billing.ErrKeyNotFound},
			{"acme", k.ID, billing.KeyUpdate{}, billing.ErrInvalid},
			{"acme", k.ID, billing.KeyUpdate{Disabled: ptr(true), LimitReset: ptr("yearly")}, billing.ErrInvalid},
		} {
			if _, err := e.UpdateKey(e.ctx, c.account, c.id, c.u); !errors.Is(err, c.want) {
				t.Errorf("%s/%s %+v: %v, want %v", c.account, c.id, c.u, err, c.want)
			}
		}
		if after, _ := e.ListKeys(e.ctx, "acme"); !reflect.DeepEqual(after, before) {
			t.Fatalf("a refused update changed the key: %+v, was %+v", after, before)
		}
		if err := e.RevokeKey(e.ctx, "acme", k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.UpdateKey(e.ctx, "acme", k.ID, billing.KeyUpdate{Disabled: ptr(true)}); !errors.Is(err, billing.ErrKeyNotFound) {
			t.Fatalf("update of a revoked key: %v", err)
		}
	})
}

// TestUpdateKeyConcurrent: concurrent updates of different fields of one key
// all land (the compare-and-set reads again, never overwrites another's).
func TestUpdateKeyConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		k, _, err := e.CreateKey(e.ctx, "acme", "app")
		if err != nil {
			t.Fatal(err)
		}
		updates := []billing.KeyUpdate{
			{RPM: ptr(int64(10))}, {TPM: ptr(int64(20))}, {Limit: ptr(money.Micros(30))}, {LimitReset: ptr(billing.LimitDaily)},
			{Disabled: ptr(true)}, {Models: &[]string{"m"}}, {Name: ptr("renamed")},
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(updates))
		for _, u := range updates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.UpdateKey(e.ctx, "acme", k.ID, u)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		list, err := e.ListKeys(e.ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		got := list[0]
		if got.RPM != 10 || got.TPM != 20 || got.Limit != 30 || got.LimitReset != billing.LimitDaily || !got.Disabled ||
			len(got.Models) != 1 || got.Name != "renamed" {
			t.Fatalf("an update was lost: %+v", got)
		}
	})
}

// TestLookupKeyCarriesAccountStatus: a lookup says whether the key's account is
// suspended, read in the same step as the key.
func TestLookupKeyCarriesAccountStatus(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		_, secret, err := e.CreateKey(e.ctx, "acme", "app")
		if err != nil {
			t.Fatal(err)
		}
		for _, status := range []string{billing.StatusSuspended, billing.StatusActive} {
			if _, err := e.UpdateAccount(e.ctx, "acme", billing.AccountUpdate{Status: ptr(status)}); err != nil {
				t.Fatal(err)
			}
			k, err := e.LookupKey(e.ctx, billing.HashKey(secret))
			if err != nil || k.AccountStatus != status || k.AccountSuspended() != (status == billing.StatusSuspended) {
				t.Fatalf("after %s: %+v, %v", status, k, err)
			}
		}
	})
}

// TestKeyEntrySettingsParse: the entry's new settings parse, and malformed ones
// are errors naming the entry.
func TestKeyEntrySettingsParse(t *testing.T) {
	entry := func(attrs string) string { return "v2 abcd " + msNow + " sk-…x1 " + attrs + " my key" }
	k, _, err := parseKeyEntry("acme", "key_1", entry("limit=20000000,reset=monthly,exp="+msLater+",models=gpt-4o|a%7Cb+c,disabled=1"))
	if err != nil || k.Limit != 20_000_000 || k.LimitReset != billing.LimitMonthly || k.ExpiresAt.UnixMilli() != 1804680000000 ||
		!reflect.DeepEqual(k.Models, []string{"gpt-4o", "a|b c"}) || !k.Disabled || k.Name != "my key" {
		t.Fatalf("%+v, %v", k, err)
	}
	for _, bad := range []string{
		"limit=0", "limit=-1", "limit=1000000000000001", "limit=1.5",
		"reset=never", "reset=hourly", "reset=",
		"exp=0", "exp=-5", "exp=soon",
		"models=", "models=a||b", "models=a%zz", "models=a%2cb", "models=" + strings.Repeat("m|", billing.MaxKeyModels) + "m",
		"disabled=0", "disabled=true", "disabled=1,disabled=1", "rpm=1,rpm=2",
	} {
		_, _, err := parseKeyEntry("acme", "key_1", entry(bad))
		var m *malformedError
		if !errors.As(err, &m) || !strings.Contains(err.Error(), `key entry "key_1"`) {
			t.Errorf("%q: %v, want a malformed error naming the entry", bad, err)
		}
	}
}

// TestUpdateKeyModel: after any sequence of updates (valid or not) and
// suspensions, the listed and the looked-up key are the model's: the key as
// created with every valid update applied (billing.KeyUpdate.Apply) and every
// invalid one refused whole.
func TestUpdateKeyModel(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		n := 0
		rapid.Check(t, func(rt *rapid.T) {
			n++
			id := fmt.Sprintf("km%d", n)
			e.account(t, id)
			want, secret, err := e.CreateKey(e.ctx, id, "k")
			if err != nil {
				rt.Fatal(err)
			}
			status := billing.StatusActive
			models := rapid.SampledFrom([][]string{nil, {}, {"gpt-4o"}, {"gpt-4o", "a|b c%"}, {""}})
			for range rapid.IntRange(1, 12).Draw(rt, "steps") {
				if rapid.IntRange(0, 5).Draw(rt, "op") == 0 {
					status = rapid.SampledFrom([]string{billing.StatusActive, billing.StatusSuspended}).Draw(rt, "status")
					if _, err := e.UpdateAccount(e.ctx, id, billing.AccountUpdate{Status: &status}); err != nil {
						rt.Fatal(err)
					}
					continue
				}
				var u billing.KeyUpdate
				if rapid.Bool().Draw(rt, "name?") {
					u.Name = ptr(rapid.SampledFrom([]string{"", "app", "a\nb"}).Draw(rt, "name"))
				}
				if rapid.Bool().Draw(rt, "limit?") {
					u.Limit = ptr(money.Micros(rapid.Int64Range(-1, 50_000_000).Draw(rt, "limit")))
				}
				if rapid.Bool().Draw(rt, "reset?") {
					u.LimitReset = ptr(rapid.SampledFrom([]string{"", "never", "daily", "weekly", "monthly", "hourly"}).Draw(rt, "reset"))
				}
				if rapid.Bool().Draw(rt, "expiry?") {
					u.ExpiresAt = ptr(e.clock.Now().Add(time.Duration(rapid.IntRange(-2, 48).Draw(rt, "hours")) * time.Hour).Truncate(time.Millisecond))
				}
				if m := models.Draw(rt, "models"); m != nil {
					u.Models = &m
				}
				if rapid.Bool().Draw(rt, "rpm?") {
					u.RPM = ptr(rapid.Int64Range(-1, 100).Draw(rt, "rpm"))
				}
				if rapid.Bool().Draw(rt, "disabled?") {
					u.Disabled = ptr(rapid.Bool().Draw(rt, "disabled"))
				}
				got, err := e.UpdateKey(e.ctx, id, want.ID, u)
				valid := !u.Empty() && len(u.Validate(e.clock.Now())) == 0
				if valid != (err == nil) || (!valid && !errors.Is(err, billing.ErrInvalid)) {
					rt.Fatalf("update %+v: %v (valid: %v)", u, err, valid)
				}
				if valid {
					u.Apply(&want)
					if want.LimitReset == billing.LimitNever {
						want.LimitReset = ""
					}
					if !reflect.DeepEqual(got, want) {
						rt.Fatalf("update answered %+v, want %+v", got, want)
					}
				}
				list, err := e.ListKeys(e.ctx, id)
				if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], want) {
					rt.Fatalf("list %+v, %v; want %+v", list, err, want)
				}
				found, err := e.LookupKey(e.ctx, billing.HashKey(secret))
				w := want
				w.AccountStatus = status
				if err != nil || !reflect.DeepEqual(found, w) {
					rt.Fatalf("lookup %+v, %v; want %+v", found, err, w)
				}
			}
		})
	})
}

// BenchmarkLookupKey: what a key-cache miss costs, the lookup record then
// key_state.lua (two round trips), on real Redis.
//
//	go test ./billing/redisstore -run '^$' -bench LookupKey
func BenchmarkLookupKey(b *testing.B) {
	r := testredis.New(b)
	if r.Kind == testredis.KindMemory {
		b.Skip("no real Redis reachable")
	}
	e := newEnv(b, r)
	e.account(b, "acme")
	_, secret, err := e.CreateKeyWith(e.ctx, "acme", billing.KeySpec{Name: "app", Limit: 20_000_000, LimitReset: billing.LimitMonthly,
		Models: []string{"gpt-4o", "gpt-4o-mini"}, RPM: 60})
	if err != nil {
		b.Fatal(err)
	}
	h := billing.HashKey(secret)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := e.LookupKey(e.ctx, h); err != nil {
			b.Fatal(err)
		}
	}
}
