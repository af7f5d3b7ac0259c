package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// testClock is a settable clock shared by the store and the proxy.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newObjectHarness is newHarness with the stored-object and batch stores on
// (the ledger's store), on a clock the test moves.
func newObjectHarness(t testing.TB, opts ...harnessOption) (*harness, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Now()}
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: context.Background(), store: store, mock: mockupstream.New()}
	h.mock.APIKey = upstreamKey
	h.upstream = httptest.NewServer(h.mock)
	t.Cleanup(h.upstream.Close)
	h.settings.Store(&Settings{Policy: testPolicy, Pricing: testPricing(t), ClampMaxTokens: true, DriftTolerance: 0.10})
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	u, _ := url.Parse(h.upstream.URL + "/v1")
	o := Options{Upstream: u, UpstreamKey: upstreamKey, Ledger: store, Keys: store, Settings: h.settings.Load,
		Logger: zap.New(core), Timeout: 10 * time.Second, Objects: store, Batches: store, Now: clk.Now}
	for _, f := range opts {
		f(&o)
	}
	h.proxy, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.inflight.Add(1)
		defer h.inflight.Done()
		h.proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(h.server.Close)
	return h, clk
}

// do sends a request to the proxy with key and returns the status and body.
func (h *harness) do(method, path, key string, body io.Reader, header ...string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.server.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	data := readAll(h.t, res)
	h.inflight.Wait()
	return res.StatusCode, data
}

// upload uploads a file through the proxy and returns its id.
func (h *harness) upload(key, name, purpose string, content []byte) string {
	h.t.Helper()
	status, body := h.uploadRaw(key, name, purpose, content)
	if status != http.StatusOK {
		h.t.Fatalf("upload: %d %s", status, body)
	}
	return idOf(h.t, body)
}

func (h *harness) uploadRaw(key, name, purpose string, content []byte) (int, []byte) {
	h.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(content)
	mw.WriteField("purpose", purpose)
	mw.Close()
	return h.do(http.MethodPost, "/v1/files", key, &buf, "Content-Type", mw.FormDataContentType())
}

// idOf is an object's "id".
func idOf(t testing.TB, body []byte) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		t.Fatalf("no id in %s: %v", body, err)
	}
	return v.ID
}

// upstreamHits counts the requests the mock saw for path.
func (h *harness) upstreamHits(path string) int {
	n := 0
	for _, r := range h.mock.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}
