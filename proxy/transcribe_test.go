package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/metering/audiodur/audiotest"
	"github.com/creditgate/creditgate/money"
)

// transcribeHarness is a harness whose price table has the speech-to-text
// models at their built-in prices.
func transcribeHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	models := map[string]metering.Price{
		"whisper-1":              {AudioMinute: usd("0.006")},
		"gpt-4o-transcribe":      {Input: usd("2.50"), CachedInput: usd("2.50"), AudioInput: usd("6.00"), Output: usd("10.00"), Reasoning: usd("10.00"), AudioOutput: usd("10.00"), MaxOutputTokens: 2000},
		"gpt-4o-mini-transcribe": {Input: usd("1.25"), CachedInput: usd("1.25"), AudioInput: usd("3.00"), Output: usd("5.00"), Reasoning: usd("5.00"), AudioOutput: usd("5.00"), MaxOutputTokens: 2000},
	}
	pricing, err := metering.NewPricing(models, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := *h.settings.Load()
	s.Pricing = pricing
	h.settings.Store(&s)
	return h
}

// audioForm is a multipart body with the file first, as the SDKs send it, then
// the fields (name, value pairs).
func audioForm(name string, audio []byte, fields ...string) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(audio)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// cost is ceil(Σ tokens × price per 1M) for the given (tokens, price) pairs.
func tokenCost(pairs ...any) money.Micros {
	var sum int64
	for i := 0; i+1 < len(pairs); i += 2 {
		sum += pairs[i].(int64) * int64(usd(pairs[i+1].(string)))
	}
	return money.Micros((sum + 999_999) / 1_000_000)
}

func TestTranscriptionsEndToEnd(t *testing.T) {
	h := transcribeHarness(t)
	key := h.account("acme", "5.00")
	tok, _ := metering.TokenizerFor(metering.O200kBase)
	const words62 int64 = 62 * mockupstream.TranscriptWordsPerSecond
	wav := audiotest.WAV(16000, 1, 16000*61+8000) // 61.5 s: 62 s billed
	mp3 := audiotest.MP3CBR(200)                  // 5.224 s: 6 s billed
	tests := []struct {
		name, path, file string
		audio            []byte
		fields           []string
		wantType         string
		// cost is the exact cost; tokens the billed (prompt, audio prompt, completion).
		cost   func(answer []byte) money.Micros
		tokens func(answer []byte) [3]int64
	}{
		{name: "whisper-1 json, wav", path: "/v1/audio/transcriptions", file: "a.wav", audio: wav, fields: []string{"model", "whisper-1"}, wantType: "application/json",
			cost: func([]byte) money.Micros { return 6200 }}, // 62 s × 0.006/60 USD
		{name: "whisper-1 verbose_json, mp3", path: "/v1/audio/transcriptions", file: "a.mp3", audio: mp3, fields: []string{"model", "whisper-1", "response_format", "verbose_json"},
			wantType: "application/json", cost: func([]byte) money.Micros { return 600 }},
		{name: "whisper-1 srt translation", path: "/v1/audio/translations", file: "a.wav", audio: wav, fields: []string{"model", "whisper-1", "response_format", "srt"},
			wantType: "application/x-subrip", cost: func([]byte) money.Micros { return 6200 }},
		{name: "whisper-1 vtt", path: "/v1/audio/transcriptions", file: "a.mp3", audio: mp3, fields: []string{"model", "whisper-1", "response_format", "vtt"},
			wantType: "text/vtt; charset=utf-8", cost: func([]byte) money.Micros { return 600 }},
		{name: "gpt-4o-transcribe usage", path: "/v1/audio/transcriptions", file: "a.wav", audio: wav, fields: []string{"model", "gpt-4o-transcribe", "prompt", "hello world"},
			wantType: "application/json",
			// The mock reports 2 text + 620 audio tokens in (62 s at 10 a second), 124 words out.
			cost:   func([]byte) money.Micros { return tokenCost(int64(2), "2.50", int64(620), "6.00", words62, "10.00") },
			tokens: func([]byte) [3]int64 { return [3]int64{622, 620, words62} }},
		{name: "gpt-4o-mini-transcribe text: no usage, local count", path: "/v1/audio/transcriptions", file: "a.mp3", audio: mp3,
			fields: []string{"model", "gpt-4o-mini-transcribe", "response_format", "text"}, wantType: "text/plain; charset=utf-8",
			// 16 text tokens of overhead, 60 audio tokens (6 s at 10 a second), the answer's tokens out.
			cost: func(answer []byte) money.Micros {
				return tokenCost(int64(16), "1.25", int64(60), "3.00", int64(tok.Count(string(answer))), "5.00")
			},
			tokens: func(answer []byte) [3]int64 { return [3]int64{76, 60, int64(tok.Count(string(answer)))} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.get("acme")
			ct, body := audioForm(tt.file, tt.audio, tt.fields...)
			status, answer := h.do(http.MethodPost, tt.path, key, bytes.NewReader(body), "Content-Type", ct)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, answer)
			}
			up := h.mock.Requests()
			if last := up[len(up)-1]; !bytes.Equal(last.Body, body) || last.Header.Get("Authorization") != "Bearer "+upstreamKey {
				t.Fatal("the upstream did not get the app's body byte for byte, with the operator's key")
			}
			ev := h.lastEvent("acme")
			want := tt.cost(answer)
			if ev.Type != billing.EventUsage || ev.Amount != want || ev.Endpoint != tt.path {
				t.Fatalf("billed %+v; want a usage event of %s on %s", ev, want, tt.path)
			}
			if after := h.get("acme"); before.Available()-after.Available() != want || after.Reserved != 0 {
				t.Fatalf("balance moved by %s (reserved %s); want %s", before.Available()-after.Available(), after.Reserved, want)
			}
			if tt.tokens != nil {
				if got, w := [3]int64{ev.PromptTokens, ev.AudioPromptTokens, ev.CompletionTokens}, tt.tokens(answer); got != w {
					t.Errorf("billed tokens %v; want %v", got, w)
				}
			}
		})
	}
}

func TestTranscriptionsRefusedAndReleased(t *testing.T) {
	h := transcribeHarness(t)
	key := h.account("acme", "5.00")
	poor := h.account("poor", "5.00")
	if _, err := h.store.Settle(h.ctx, billing.SettleRequest{Account: "poor", HoldID: "drain", Cost: h.get("poor").Available()}); err != nil {
		t.Fatal(err)
	}
	wav := audiotest.WAV(8000, 1, 8000*3)
	tests := []struct {
		name, path, key string
		file            string
		audio           []byte
		fields          []string
		status          int
		param, code     string
		forwarded       bool
	}{
		{name: "unreadable audio", path: "/v1/audio/transcriptions", key: key, file: "notes.txt", audio: []byte("not audio"), fields: []string{"model", "whisper-1"}, status: 400, param: "file"},
		{name: "no key", path: "/v1/audio/transcriptions", file: "a.wav", audio: wav, fields: []string{"model", "whisper-1"}, status: 401, code: "invalid_api_key"},
		{name: "unpriced model", path: "/v1/audio/transcriptions", key: key, file: "a.wav", audio: wav, fields: []string{"model", "whisper-9"}, status: 400, param: "model", code: "model_not_found"},
		{name: "stream not a boolean", path: "/v1/audio/transcriptions", key: key, file: "a.wav", audio: wav, fields: []string{"model", "gpt-4o-transcribe", "stream", "1"}, status: 400, param: "stream"},
		{name: "no balance", path: "/v1/audio/transcriptions", key: poor, file: "a.wav", audio: wav, fields: []string{"model", "whisper-1"}, status: 429, code: "insufficient_quota"},
		{name: "upstream refuses: released", path: "/v1/audio/translations", key: key, file: "a.wav", audio: wav, fields: []string{"model", "gpt-4o-transcribe"}, status: 400, param: "model", forwarded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits := h.upstreamHits(tt.path)
			before := h.get("acme")
			ct, body := audioForm(tt.file, tt.audio, tt.fields...)
			status, answer := h.do(http.MethodPost, tt.path, tt.key, bytes.NewReader(body), "Content-Type", ct)
			var e struct {
				Error struct {
					Message string
					Type    string
					Param   *string
					Code    *string
				}
			}
			if status != tt.status || json.Unmarshal(answer, &e) != nil || e.Error.Message == "" {
				t.Fatalf("status %d: %s; want %d in OpenAI's error shape", status, answer, tt.status)
			}
			if (tt.param != "" && (e.Error.Param == nil || *e.Error.Param != tt.param)) || (tt.code != "" && (e.Error.Code == nil || *e.Error.Code != tt.code)) {
				t.Errorf("error %s; want param %q code %q", answer, tt.param, tt.code)
			}
			if forwarded := h.upstreamHits(tt.path) > hits; forwarded != tt.forwarded {
				t.Errorf("forwarded = %v; want %v", forwarded, tt.forwarded)
			}
			if after := h.get("acme"); after.Available() != before.Available() || after.Reserved != 0 {
				t.Errorf("acme's balance moved: %s → %s, reserved %s", before.Available(), after.Available(), after.Reserved)
			}
		})
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventRelease || ev.Endpoint != "/v1/audio/translations" {
		t.Errorf("the refused translation's hold: last event %+v; want its release", ev)
	}
	// whisper-1 has no token prices: on a token endpoint it would be free.
	res := h.post("/v1/chat/completions", key, chatBody("whisper-1", false, ""))
	if answer := readAll(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(string(answer), "priced per minute of audio") {
		t.Errorf("whisper-1 on chat completions: %d %s; want 400", res.StatusCode, answer)
	}
	if !slices.ContainsFunc(h.requestLogs(), func(l map[string]any) bool {
		return l["endpoint"] == "/v1/audio/translations" && l["status"] == int64(400) && l["upstream_status"] == int64(400)
	}) {
		t.Error("no request log line for the translation the upstream refused")
	}
}

// countingListener counts the bytes read off its connections into n.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// generator is a body of n bytes made as they are read, counting them.
type generator struct {
	n, read int64
	counted *atomic.Int64
}

func (g *generator) Read(p []byte) (int, error) {
	if g.read >= g.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	k = min(k, g.n-g.read)
	for i := range p[:k] {
		p[i] = 'a'
	}
	g.read += k
	g.counted.Add(k)
	return int(k), nil
}

// TestTranscriptionHugeUploadRefusedAtTheCap: a 1 GiB upload is refused with
// OpenAI's 413 without being read — declared by Content-Length, refused before
// its body; streamed chunked with none declared, cut at the cap.
func TestTranscriptionHugeUploadRefusedAtTheCap(t *testing.T) {
	const limit = 1 << 20
	h := transcribeHarness(t, func(o *Options) { o.MaxBodyBytes = limit })
	key := h.account("acme", "5.00")
	// A server of its own over the proxy, counting the bytes it reads off its connections.
	var received atomic.Int64
	srv := httptest.NewUnstartedServer(h.proxy)
	srv.Listener = countingListener{Listener: srv.Listener, n: &received}
	srv.Start()
	t.Cleanup(srv.Close)
	for _, declared := range []bool{true, false} {
		received.Store(0)
		var sent atomic.Int64
		g := &generator{n: 1 << 30, counted: &sent}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/audio/transcriptions", g)
		if err != nil {
			t.Fatal(err)
		}
		if declared {
			req.ContentLength = 1 << 30
		} else {
			req.ContentLength = -1 // chunked
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=xyz")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("declared=%v: %v", declared, err)
		}
		answer := readAll(t, res)
		var e struct{ Error struct{ Code string } }
		if res.StatusCode != http.StatusRequestEntityTooLarge || json.Unmarshal(answer, &e) != nil || e.Error.Code != "request_too_large" {
			t.Fatalf("declared=%v: %d %s; want OpenAI's 413", declared, res.StatusCode, answer)
		}
		// The server reads at most the cap, plus what net/http drains after an
		// answer (256 KiB) and its read buffers; the client may have written more
		// ahead into the socket buffers, never read.
		srv.CloseClientConnections()
		if n := received.Load(); n > limit+512<<10 {
			t.Fatalf("declared=%v: the server read %d bytes of the 1 GiB; want at most the %d-byte cap and net/http's drain", declared, n, limit)
		}
		t.Logf("declared=%v: the server read %d bytes, the client produced %d, of 1 GiB", declared, received.Load(), sent.Load())
	}
	if h.upstreamHits("/v1/audio/transcriptions") != 0 {
		t.Error("an upload over the cap was forwarded")
	}
}

// TestTranscriptionStreamCut: a streamed transcription the upstream breaks off
// after 3 deltas is billed for what was relayed: the duration's audio at the
// nominal rate, the 16 text tokens of the bound, and the 3 words.
func TestTranscriptionStreamCut(t *testing.T) {
	h := transcribeHarness(t)
	key := h.account("acme", "5.00")
	h.mock.Behavior = func(*http.Request, []byte) mockupstream.Behavior { return mockupstream.Behavior{DropAfter: 3} }
	ct, body := audioForm("a.wav", audiotest.WAV(8000, 1, 8000*4), "model", "gpt-4o-transcribe", "stream", "true") // 4 s
	status, answer := h.do(http.MethodPost, "/v1/audio/transcriptions", key, bytes.NewReader(body), "Content-Type", ct)
	if status != http.StatusOK || strings.Count(string(answer), "transcript.text.delta") != 3 || strings.Contains(string(answer), "transcript.text.done") {
		t.Fatalf("status %d: %s; want the 3 deltas relayed", status, answer)
	}
	ev := h.lastEvent("acme")
	want := tokenCost(int64(16), "2.50", int64(40), "6.00", int64(3), "10.00")
	if ev.Type != billing.EventUsage || ev.Amount != want || ev.TokenSource != billing.TokenSourceLocal || ev.CompletionTokens != 3 {
		t.Fatalf("billed %+v; want %s for what was relayed", ev, want)
	}
}

// TestTranscriptionUpstreamUnreachable: no upstream answers 502 in OpenAI's
// shape and releases the hold.
func TestTranscriptionUpstreamUnreachable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, _ := url.Parse(dead.URL + "/v1")
	dead.Close()
	h := transcribeHarness(t, func(o *Options) { o.Upstream = deadURL })
	key := h.account("acme", "5.00")
	before := h.get("acme")
	ct, body := audioForm("a.wav", audiotest.WAV(8000, 1, 8000), "model", "whisper-1")
	status, answer := h.do(http.MethodPost, "/v1/audio/transcriptions", key, bytes.NewReader(body), "Content-Type", ct)
	if status != http.StatusBadGateway || !strings.Contains(string(answer), "upstream_unreachable") {
		t.Fatalf("status %d: %s; want 502", status, answer)
	}
	if after := h.get("acme"); after.Available() != before.Available() || after.Reserved != 0 {
		t.Fatalf("balance %s → %s, reserved %s: the hold was not released", before.Available(), after.Available(), after.Reserved)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventRelease || ev.Endpoint != "/v1/audio/transcriptions" {
		t.Fatalf("last event %+v; want the release", ev)
	}
}

// A transcription is held through the same limits as any request: a key over
// its spend limit gets the key limit's 429, and nothing is forwarded or held.
func TestTranscriptionKeyLimit(t *testing.T) {
	lk := &limitedKeys{limits: map[string]func(*billing.APIKey){}}
	h := transcribeHarness(t, func(o *Options) {
		lk.KeyStore = o.Keys
		o.Keys = lk
		o.KeyUsage = o.Ledger.(billing.KeyUsageReader)
	})
	// Three seconds of whisper-1 cost $0.0003; the key may spend $0.0001.
	_, key := h.limitedKey(lk, "acme", func(k *billing.APIKey) { k.Limit = usd("0.0001") }, "5.00")
	ct, body := audioForm("a.wav", audiotest.WAV(8000, 1, 8000*3), "model", "whisper-1")
	status, answer := h.do(http.MethodPost, "/v1/audio/transcriptions", key, bytes.NewReader(body), "Content-Type", ct)
	var e openAIError
	if status != http.StatusTooManyRequests || json.Unmarshal(answer, &e) != nil || e.Error.Code == nil || *e.Error.Code != "key_limit_exceeded" {
		t.Fatalf("status %d: %s; want 429 key_limit_exceeded", status, answer)
	}
	if a := h.get("acme"); a.Reserved != 0 || a.Totals.Usage != 0 || h.upstreamHits("/v1/audio/transcriptions") != 0 {
		t.Fatalf("a refused transcription held %s, booked %s, reached the upstream", a.Reserved, a.Totals.Usage)
	}
}

// A key's model allowlist applies to transcriptions as to any endpoint.
func TestTranscriptionModelAllowlist(t *testing.T) {
	lk := &limitedKeys{limits: map[string]func(*billing.APIKey){}}
	h := transcribeHarness(t, func(o *Options) {
		lk.KeyStore = o.Keys
		o.Keys = lk
	})
	_, key := h.limitedKey(lk, "acme", func(k *billing.APIKey) { k.Models = []string{"gpt-4o-mini-transcribe"} }, "5.00")
	wav := audiotest.WAV(8000, 1, 8000*3)
	ct, body := audioForm("a.wav", wav, "model", "whisper-1")
	status, answer := h.do(http.MethodPost, "/v1/audio/transcriptions", key, bytes.NewReader(body), "Content-Type", ct)
	var e openAIError
	if status != http.StatusForbidden || json.Unmarshal(answer, &e) != nil || e.Error.Code == nil || *e.Error.Code != "model_not_allowed" {
		t.Fatalf("whisper-1 outside the allowlist: status %d: %s; want 403 model_not_allowed", status, answer)
	}
	if h.upstreamHits("/v1/audio/transcriptions") != 0 || h.get("acme").Reserved != 0 {
		t.Fatal("a refused transcription reached the upstream or held money")
	}
	ct, body = audioForm("a.wav", wav, "model", "gpt-4o-mini-transcribe")
	if status, answer := h.do(http.MethodPost, "/v1/audio/transcriptions", key, bytes.NewReader(body), "Content-Type", ct); status != http.StatusOK {
		t.Fatalf("an allowed model: status %d: %s", status, answer)
	}
}
