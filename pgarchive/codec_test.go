package pgarchive

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// fill sets every field of v, recursively, to a distinct non-zero value, so a
// field the codec forgets shows as a difference.
func fill(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)) + time.Duration(*n).String())
	case reflect.Int64:
		if v.Type() == reflect.TypeOf(time.Duration(0)) {
			t.Fatalf("a Duration field: teach fill")
		}
		v.SetInt(int64(*n) * 1_000_003)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 3, 10, 12, 0, 0, *n*1000, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fill(t, v.Field(i), n)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), n)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(t, s.Index(0), n)
		fill(t, s.Index(1), n)
		v.Set(s)
	default:
		t.Fatalf("fill: a %s field: teach fill (and the codec)", v.Kind())
	}
}

// Every field of billing.Event survives the codec, and the stored JSON keeps
// money as integers.
func TestEventCodecRoundTripsEveryField(t *testing.T) {
	var ev billing.Event
	n := 0
	fill(t, reflect.ValueOf(&ev).Elem(), &n)
	ev.ID = "1773144000000-7"
	ev.Amount = -money.Micros(1_500_000) // a negative adjustment
	cases := []struct {
		name string
		ev   billing.Event
	}{
		{"every field set", ev},
		{"zero event", billing.Event{ID: "1-0", At: time.UnixMilli(0).UTC()}},
		{"strings jsonb cannot hold", billing.Event{ID: "2-1", At: time.UnixMilli(5).UTC(), Model: "a\x00b", Note: "\xff\xfe", Changes: []billing.FieldChange{{Field: "name", From: "\x00", To: "ok"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := EncodeEvent(c.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeEvent(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.ev) {
				t.Fatalf("round trip:\n got %+v\nwant %+v\njson %s", got, c.ev, b)
			}
		})
	}
	b, _ := EncodeEvent(billing.Event{ID: "1-1", Cost: 1_250_000})
	if want := `"cost":1250000`; !strings.Contains(string(b), want) {
		t.Fatalf("encoded %s, want it to hold %s", b, want)
	}
}

// FuzzEventCodec: any event (its strings arbitrary bytes) decodes back to itself.
func FuzzEventCodec(f *testing.F) {
	f.Add("1-1", "usage", int64(1773144000000), int64(70000), "key_1", "gpt-4o", "note", "from", int64(12))
	f.Add("0-1", "", int64(-5), int64(-1), "\x00", "\xff", "", "\u2028", int64(0))
	f.Fuzz(func(t *testing.T, id, typ string, atMS, amount int64, key, model, note, from string, tokens int64) {
		ev := billing.Event{
			ID: id, Type: billing.EventType(typ), At: time.UnixMilli(atMS % (1 << 42)).UTC(), Amount: money.Micros(amount),
			KeyID: key, Model: model, Note: note, PromptTokens: tokens,
			Changes: []billing.FieldChange{{Field: "f", From: from, To: note}},
		}
		b, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, ev)
		}
	})
}
