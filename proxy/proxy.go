// Package proxy is creditgate's data plane: an http.Handler in front of an
// OpenAI-compatible API. For each metered request, admission's named rules
// (admit.go, in the README's order) authenticate the app key, count the prompt,
// reserve the worst-case cost on the account (a hold) and clamp the output cap to
// what the balance pays for; the proxy then forwards the request with the operator's
// upstream key, meters the response (plain JSON or SSE, flushed event by event) and
// settles the actual cost (settle.go) — or releases the hold when the upstream
// failed. Every error is answered in OpenAI's shape (errors.go), and every request
// is one structured log line (requestlog.go).
//
// Forwarding is done by a single httputil.ReverseProxy configured through Rewrite,
// ModifyResponse and ErrorHandler; per-request state travels in the request context.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/httpstatus"
	"github.com/creditgate/creditgate/internal/stdlog"
	"github.com/creditgate/creditgate/metering"
)

// Settings are the parts of the configuration that may change while serving (hot
// reload). The proxy reads them once per request.
type Settings struct {
	Policy  billing.Policy
	Pricing *metering.Pricing
	// ClampMaxTokens lets the proxy lower a request's output cap to what the
	// available balance plus grace pays for, instead of refusing it.
	ClampMaxTokens bool
	// DriftTolerance is the relative difference between upstream-reported and
	// locally counted tokens beyond which a request is logged as drifting.
	DriftTolerance float64
	// CountPromptsAlways counts every prompt exactly at admission
	// (metering.count_prompts: always); else prompts are admitted on their byte
	// bound and counted only when needed (count.go).
	CountPromptsAlways bool
	// Triggers say what a settle may set off (auto-recharge, notices).
	Triggers billing.Triggers
	// BatchDiscount is the share of the list prices batches are billed at, in
	// millionths (pricing.batch_discount); 0: DefaultBatchDiscount.
	BatchDiscount int64
}

// Options configure a Proxy. Upstream, Ledger, Keys and Settings are required.
type Options struct {
	// Upstream is the API base URL, as an SDK would use it ("https://api.openai.com/v1"):
	// a request for /v1/<rest> goes to <Upstream>/<rest>, query string kept.
	Upstream *url.URL
	// UpstreamKey is sent upstream as "Authorization: Bearer <key>" in place of the
	// app's key. Empty sends no Authorization header at all.
	UpstreamKey string
	// Timeout bounds a whole upstream exchange, streams included (default 10m).
	Timeout time.Duration
	// Transport forwards requests (default: a clone of http.DefaultTransport with
	// a connection pool sized for a proxy).
	Transport http.RoundTripper
	// MaxUpstreamConns caps the default Transport's connections to the upstream
	// (MaxConnsPerHost), so a flood of app connections cannot spend the process's
	// file descriptors on upstream ones: a request beyond it waits for a free
	// connection. 0: no cap. Ignored with a Transport of one's own.
	MaxUpstreamConns int
	Ledger           billing.Ledger
	Keys             billing.KeyStore
	// Settings returns the current settings; called once per request.
	Settings func() *Settings
	Logger   *zap.Logger
	// MaxBodyBytes caps request bodies; larger ones get 413 (default 16 MiB).
	MaxBodyBytes int64
	// MaxMessages caps the messages (chat), input items (responses), prompts
	// (completions) or inputs (embeddings) of one request; MaxMessageBytes caps the
	// size of each as sent. More gets 400 (0: no cap beyond the parser's own).
	MaxMessages     int
	MaxMessageBytes int64
	// KeyCacheTTL is how long a found key is cached in this process (0: no cache).
	// It is also how long a revoked key may go on working here.
	KeyCacheTTL time.Duration
	// SettleTimeout bounds the settle or release after the response (default 10s).
	SettleTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observer is told about every request (metrics); nil: none.
	Observer Observer
	// Spool takes settlements and releases the store refused; nil: they are logged
	// and lost (the hold then expires after hold_ttl).
	Spool Spool
	// InFlight records each admitted request durably while it runs, for recovery
	// after a crash; nil: none (a crashed process's holds then end as hold_expired).
	InFlight InFlightLog
	// OnSettled is called after each successful settlement, off the response path's
	// critical section; it must not block (auto-recharge and notices hook in here).
	OnSettled func(account string, s billing.Settlement)
	// Objects records which account created each stored object (files, batches,
	// stored responses and chat completions), which only that account may then
	// reach (objects.go); nil: those routes are not served (404). Batches keeps
	// the batches holding money until they end (batches.go, batchpoll.go); nil:
	// POST /v1/batches is not served.
	Objects billing.ObjectStore
	Batches billing.BatchStore
	// MaxBatchInputBytes bounds a batch input file, read to estimate the batch
	// (default 200 MiB, OpenAI's own limit).
	MaxBatchInputBytes int64
	// RateLimiter enforces the tiers' and keys' RPM and TPM (ratelimit.go);
	// nil: no rate limits, and no x-ratelimit-* headers.
	RateLimiter billing.RateLimiter
	// KeyUsage answers what a key spent, for GET /v1/key (keylimits.go); nil:
	// its usage reads 0.
	KeyUsage billing.KeyUsageReader
	// CORS lets browser pages on the origins it allows call the data plane
	// (cors.go); the zero value allows none.
	CORS CORS
}

// Proxy is the metering reverse proxy. Create it with New.
type Proxy struct {
	opts Options
	rp   *httputil.ReverseProxy
	keys *keyCache
	log  *zap.Logger
	// reqLog writes the request lines: log without the caller, which is always
	// the same line of requestlog.go and costs a stack walk per request.
	reqLog  *zap.Logger
	objects *objectState // stored objects, CORS and the model catalogue
	// upstreamAuth is the Authorization header's value list sent upstream, built
	// once (nil: none); the transport only reads it.
	upstreamAuth []string
}

const (
	defaultTimeout       = 10 * time.Minute
	defaultMaxBodyBytes  = 16 << 20
	defaultSettleTimeout = 10 * time.Second
)

// New checks o and returns a Proxy.
func New(o Options) (*Proxy, error) {
	var problems []string
	if o.Upstream == nil || (o.Upstream.Scheme != "http" && o.Upstream.Scheme != "https") || o.Upstream.Host == "" {
		problems = append(problems, "Upstream must be an absolute http(s) URL")
	}
	if o.Ledger == nil {
		problems = append(problems, "Ledger is required")
	}
	if o.Keys == nil {
		problems = append(problems, "Keys is required")
	}
	if o.Settings == nil {
		problems = append(problems, "Settings is required")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("proxy: %s", strings.Join(problems, "; "))
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBodyBytes
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = defaultSettleTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Transport == nil {
		t := NewTransport(o.Timeout)
		t.MaxConnsPerHost = o.MaxUpstreamConns
		o.Transport = t
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	p := &Proxy{opts: o, keys: newKeyCache(o.Keys, o.KeyCacheTTL, o.Now), log: o.Logger,
		reqLog: o.Logger.WithOptions(zap.WithCaller(false))}
	if o.UpstreamKey != "" {
		p.upstreamAuth = []string{"Bearer " + o.UpstreamKey}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      o.Transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		BufferPool:     bufferPool{},
		ErrorLog:       stdlog.New(o.Logger.Named("reverseproxy")), // JSON, quoted upstream bytes withheld
	}
	p.objects = p.newObjectState()
	return p, nil
}

// NewTransport returns the default upstream transport: HTTP/2 when offered, a
// connection pool large enough for a proxy (the standard library keeps only 2 idle
// connections per host), a response-header timeout, and an 8 KiB write buffer:
// a request of up to ~1,700 prompt tokens (headers and body) then leaves in one
// write instead of two. The buffer lives as long as its connection, so a larger
// one would cost every open stream its size for the few larger requests it sends
// in one write (the default is 4 KiB).
func NewTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = timeout
	t.WriteBufferSize = 8 << 10
	return t
}

func zapErr(err error) zap.Field { return zap.Error(err) }

// ServeHTTP routes an app's request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.objects.cors.serve(w, r) { // a preflight, answered
		return
	}
	path := r.URL.Path
	if ep, ok := metering.EndpointForPath(path); ok && r.Method == http.MethodPost {
		p.serveMetered(w, r, ep)
		return
	}
	if ep, ok := metering.TranscriptionEndpointForPath(path); ok && r.Method == http.MethodPost {
		p.serveTranscription(w, r, ep) // multipart uploads (transcribe.go)
		return
	}
	// Every other request gets its log line too: unmetered, no tokens, no cost.
	uw := &unmeteredWriter{Writer: httpstatus.New(w)}
	start := p.opts.Now()
	defer p.logUnmetered(uw, r, start)
	switch {
	case path == "/v1/models" || isModelPath(path):
		if r.Method != http.MethodGet {
			break
		}
		p.serveModels(uw, r)
		return
	case isRealtimePath(path):
		writeError(uw, errRealtimeUnsupported())
		return
	case path == "/v1/credits":
		if r.Method != http.MethodGet {
			break
		}
		p.serveCredits(uw, r)
		return
	case path == "/v1/key":
		if r.Method != http.MethodGet {
			break
		}
		p.serveKey(uw, r)
		return
	case compatPaths[path]:
		if r.Method != http.MethodGet {
			break
		}
		p.serveBillingCompat(uw, r)
		return
	}
	if p.serveObject(uw, r) { // files, batches, stored responses and chat completions
		return
	}
	writeError(uw, errNotFound(r.Method, path))
}

// unmeteredWriter records what the log line of an unmetered request says: the
// status, and the caller once authenticated (noteCaller).
type unmeteredWriter struct {
	*httpstatus.Writer
	account, keyID string
}

// noteCaller records the authenticated caller of an unmetered request for its log line.
func noteCaller(w http.ResponseWriter, key billing.APIKey) {
	if uw, ok := w.(*unmeteredWriter); ok {
		uw.account, uw.keyID = key.Account, key.ID
	}
}

// logUnmetered writes the log line of a request that is not metered (the model
// list, /v1/credits, the billing compatibility endpoints, unknown paths). Like
// every request line it names no key and no body.
func (p *Proxy) logUnmetered(w *unmeteredWriter, r *http.Request, start time.Time) {
	ce := p.reqLog.Check(zap.InfoLevel, "request")
	if ce == nil {
		return
	}
	status := w.Status()
	if status == 0 {
		status = 499 // the app went away before any answer (nginx's convention)
	}
	ce.Write(
		zap.String("account", w.account),
		zap.String("key_id", w.keyID),
		zap.String("method", r.Method),
		zap.String("endpoint", endpointLabel(r.URL.Path)),
		zap.Bool("metered", false),
		zap.Int("status", status),
		zap.Duration("latency", p.opts.Now().Sub(start)),
	)
}

// endpointLabel is the path as logged: a model id stays (it is the operator's
// catalogue), anything unknown is cut to its first 64 bytes.
func endpointLabel(path string) string {
	if len(path) > 64 {
		return path[:64] + "…"
	}
	return path
}

// isModelPath matches /v1/models/{id} for one plain path segment: nothing that a
// path-normalising upstream could resolve to another endpoint ("..", "/", "\\").
func isModelPath(path string) bool {
	id, ok := strings.CutPrefix(path, "/v1/models/")
	return ok && id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\")
}

// rewrite points the outgoing request at the upstream and replaces credentials.
// httputil.ReverseProxy has already removed hop-by-hop headers, Forwarded and
// X-Forwarded-For/-Host/-Proto; rewrite drops the rest of the family the client
// may have sent (X-Forwarded-Port, -Server, -Prefix…, X-Real-Ip, X-Client-Ip…).
// None are added, so the upstream learns nothing about the app's network and
// trusts nothing the app claims about it.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	u := *p.opts.Upstream
	rest := strings.TrimPrefix(in.URL.Path, "/v1")
	u.Path = strings.TrimSuffix(u.Path, "/") + rest
	u.RawPath = ""
	u.RawQuery = in.URL.RawQuery
	out.URL = &u
	out.Host = ""
	h := out.Header
	if p.upstreamAuth != nil {
		h["Authorization"] = p.upstreamAuth
	} else {
		h.Del("Authorization")
	}
	// The app's OpenAI organization and project would name the app's own OpenAI
	// account, not the operator's: never forward them. Other credentials-like
	// headers go too.
	for _, name := range dropRequestHeaders {
		h.Del(name)
	}
	for name := range h {
		if isClientNetworkHeader(name) {
			delete(h, name)
		}
	}
}

// isClientNetworkHeader reports whether a (canonical) header name is one by which
// a client or an intermediary claims something about the client's network: the
// X-Forwarded-* family, Forwarded, and the common real/true client IP headers.
func isClientNetworkHeader(name string) bool {
	if strings.HasPrefix(name, "X-Forwarded-") {
		return true
	}
	switch name {
	case "Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "X-Originating-Ip",
		"X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "Via":
		return true
	}
	return false
}

// dropRequestHeaders never reach the upstream.
var dropRequestHeaders = []string{
	"OpenAI-Organization", "OpenAI-Project", "Api-Key", "Cookie", "Proxy-Authorization",
	// The transport then asks for gzip itself and decompresses, so the meter reads
	// plain JSON and SSE.
	"Accept-Encoding",
}

// dropResponseHeaders never reach the app: they describe the operator's upstream
// account, or the upstream's own CORS policy (the proxy's is cors.go's).
var dropResponseHeaders = []string{"Openai-Organization", "Openai-Project", "Set-Cookie",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"}

// upstreamError answers a failed upstream exchange: 504 on timeout, 502 otherwise,
// nothing when the app has gone away. The hold is released afterwards (finish).
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	if x != nil {
		x.upstreamErr = err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		writeError(w, errUpstreamTimeout())
	case errors.Is(err, context.Canceled):
		// The app disconnected; there is nobody to answer.
	default:
		writeError(w, errUpstreamUnreachable())
	}
}

// bufferPool recycles ReverseProxy's copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }
