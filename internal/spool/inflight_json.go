package spool

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// The B line's JSON, written by hand: Begin runs once per proxied request, and
// encoding/json spent a dozen allocations on each record (reflection, and a
// MarshalText per amount). appendInFlight writes what json.Marshal writes (the
// tests compare the two byte for byte), with a model's price, the same for every
// request of that model, encoded once. A record it cannot write as fast (a
// string that needs escaping, a time json.Marshal refuses, an image price) goes
// to json.Marshal. Replay reads either with json.Unmarshal.

// maxPriceCache bounds the cached price encodings; past it (a price list
// reloaded very often) prices are encoded on each Begin.
const maxPriceCache = 1024

var priceJSON struct {
	sync.RWMutex
	m map[metering.Price][]byte
}

// encodeInFlight is r as JSON.
func encodeInFlight(b []byte, r *InFlight) ([]byte, error) {
	if out, ok := appendInFlight(b, r); ok {
		return out, nil
	}
	js, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	return append(b, js...), nil
}

// appendInFlight appends r as json.Marshal writes it; false when r needs
// encoding/json (b is then unchanged in content).
func appendInFlight(b []byte, r *InFlight) ([]byte, bool) {
	_, offset := r.Started.Zone()
	if y := r.Started.Year(); y < 0 || y > 9999 || offset%60 != 0 || r.Price.Images != nil {
		return b, false
	}
	for _, s := range [...]string{r.Account, r.HoldID, r.RequestID, r.KeyID, r.Model, r.Endpoint} {
		if !plainJSON(s) {
			return b, false
		}
	}
	price, ok := cachedPrice(r.Price)
	if !ok {
		return b, false
	}
	b = append(b, `{"account":"`...)
	b = append(b, r.Account...)
	b = append(b, `","hold_id":"`...)
	b = append(b, r.HoldID...)
	b = append(b, '"')
	b = appendOptional(b, `,"request_id":"`, r.RequestID)
	b = appendOptional(b, `,"key_id":"`, r.KeyID)
	b = appendOptional(b, `,"model":"`, r.Model)
	b = appendOptional(b, `,"endpoint":"`, r.Endpoint)
	b = append(b, `,"price":`...)
	b = append(b, price...)
	p := r.Prompt
	b = append(b, `,"prompt":{"Input":`...)
	b = strconv.AppendInt(b, p.Input, 10)
	b = append(b, `,"CachedInput":`...)
	b = strconv.AppendInt(b, p.CachedInput, 10)
	b = append(b, `,"AudioInput":`...)
	b = strconv.AppendInt(b, p.AudioInput, 10)
	b = append(b, `,"Output":`...)
	b = strconv.AppendInt(b, p.Output, 10)
	b = append(b, `,"Reasoning":`...)
	b = strconv.AppendInt(b, p.Reasoning, 10)
	b = append(b, `,"AudioOutput":`...)
	b = strconv.AppendInt(b, p.AudioOutput, 10)
	b = append(b, `},"held":`...)
	b = appendAmount(b, r.Held)
	b = append(b, `,"triggers":{"AutoRecharge":`...)
	b = strconv.AppendBool(b, r.Triggers.AutoRecharge)
	b = append(b, `,"Notices":`...)
	b = strconv.AppendBool(b, r.Triggers.Notices)
	b = append(b, `,"LowBalance":`...)
	b = appendAmount(b, r.Triggers.LowBalance)
	b = append(b, `},"started":"`...)
	b = r.Started.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Cost != 0 {
		b = append(b, `,"cost":`...)
		b = appendAmount(b, r.Cost)
	}
	return append(b, '}'), true
}

// cachedPrice is p's JSON, encoded once per distinct price.
func cachedPrice(p metering.Price) ([]byte, bool) {
	priceJSON.RLock()
	js, ok := priceJSON.m[p]
	priceJSON.RUnlock()
	if ok {
		return js, true
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, false
	}
	priceJSON.Lock()
	defer priceJSON.Unlock()
	if priceJSON.m == nil {
		priceJSON.m = map[metering.Price][]byte{}
	}
	if len(priceJSON.m) < maxPriceCache {
		priceJSON.m[p] = js
	}
	return js, true
}

func appendOptional(b []byte, head, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, head...)
	b = append(b, s...)
	return append(b, '"')
}

// appendAmount writes m as its MarshalText, quoted, as encoding/json does.
func appendAmount(b []byte, m money.Micros) []byte {
	b = append(b, '"')
	b = m.AppendText(b)
	return append(b, '"')
}

// plainJSON reports whether s is written into a JSON string as it is by
// encoding/json: valid UTF-8 without quotes, backslashes, control characters,
// the HTML characters it escapes, or U+2028 and U+2029. (The bytes of a
// multi-byte UTF-8 sequence are all ≥ 0x80, so the ASCII checks hold bytewise.)
func plainJSON(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s) && !strings.ContainsAny(s, "\u2028\u2029")
}
