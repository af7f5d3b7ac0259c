package mockupstream

import (
	"reflect"
	"testing"
	"time"
)

func TestBehaviorOverriddenBy(t *testing.T) {
	base := Behavior{Status: 500, Delay: time.Second, EventDelay: 2 * time.Second, DropAfter: 3, StallAfter: 4,
		CachedTokens: 5, ReasoningTokens: 6, PromptTokens: 7, CompletionTokens: 8}
	flagsSet := base
	flagsSet.NoUsage, flagsSet.NoDone = true, true
	tests := []struct {
		name    string
		b, o    Behavior
		setWant func(*Behavior)
	}{
		{"zero overrides nothing", base, Behavior{}, func(*Behavior) {}},
		{"false leaves a flag set", flagsSet, Behavior{Status: 503}, func(w *Behavior) { w.Status = 503 }},
		{"status", base, Behavior{Status: 429}, func(w *Behavior) { w.Status = 429 }},
		{"delays", base, Behavior{Delay: time.Millisecond, EventDelay: time.Microsecond},
			func(w *Behavior) { w.Delay, w.EventDelay = time.Millisecond, time.Microsecond }},
		{"faults", base, Behavior{DropAfter: 9, StallAfter: 10}, func(w *Behavior) { w.DropAfter, w.StallAfter = 9, 10 }},
		{"flags", base, Behavior{NoUsage: true, NoDone: true}, func(w *Behavior) { w.NoUsage, w.NoDone = true, true }},
		{"token counts", base, Behavior{CachedTokens: 11, ReasoningTokens: 12, PromptTokens: 13, CompletionTokens: 14},
			func(w *Behavior) {
				w.CachedTokens, w.ReasoningTokens, w.PromptTokens, w.CompletionTokens = 11, 12, 13, 14
			}},
	}
	for _, tt := range tests {
		want := tt.b
		tt.setWant(&want)
		if got := tt.b.overriddenBy(tt.o); got != want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, want)
		}
	}
}

// TestBehaviorOverriddenByEveryField guards against a field added to Behavior and
// forgotten in overriddenBy: each field set alone in o must win over the zero value.
func TestBehaviorOverriddenByEveryField(t *testing.T) {
	typ := reflect.TypeFor[Behavior]()
	for i := range typ.NumField() {
		var o Behavior
		f := reflect.ValueOf(&o).Elem().Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(42)
		default:
			t.Fatalf("field %s: kind %s not covered by this test", typ.Field(i).Name, f.Kind())
		}
		if got := (Behavior{}).overriddenBy(o); got != o {
			t.Errorf("field %s: got %+v, want %+v", typ.Field(i).Name, got, o)
		}
	}
}
