package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// POST /v1/batches creates a batch, billed at pricing.batch_discount of the
// list prices. Its cost is reserved when it is created, the way any request's
// is: the input file (the caller's own, else 404) is read from the upstream and
// each line estimated as the proxy estimates that endpoint's requests; the sum
// at the batch price is held on the account for the batch's completion window
// plus batchHoldMargin (the hold_expired sweep ends a hold only once that has
// passed), and a batch the balance cannot cover is refused with the 429. A
// batch is never clamped: its lines are the app's file. Once the upstream has
// created it, the batch is recorded for the account (ObjectStore) and as open
// (BatchStore), and the poller (batchpoll.go) settles its hold when it ends.

// DefaultBatchDiscount is pricing.batch_discount's default, in millionths:
// batches at half price, as OpenAI bills them.
const DefaultBatchDiscount = 500_000

// batchHoldMargin is how long a batch's hold outlives its completion window:
// time for the upstream to finish writing its output, and for the poller.
const batchHoldMargin = 2 * time.Hour

// Bounds of a batch: OpenAI's own (an input file of at most 200 MB and 50,000
// requests) and the completion windows the proxy holds for.
const (
	defaultMaxBatchInputBytes = 200 << 20
	maxBatchRequests          = 50_000
	maxCompletionWindow       = 7 * 24 * time.Hour
)

// batchCreate is the body of POST /v1/batches, as far as the proxy reads it.
type batchCreate struct {
	InputFileID      string `json:"input_file_id"`
	Endpoint         string `json:"endpoint"`
	CompletionWindow string `json:"completion_window"`
}

func (p *Proxy) createBatch(c *objectCall) {
	w, r := c.w, c.r
	if p.opts.Batches == nil {
		writeError(w, errNotFound(r.Method, r.URL.Path))
		return
	}
	holdID := billing.NewID("req_")
	w.Header().Set(RequestIDHeader, holdID)
	body, err := readLimited(w, r, p.opts.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, errTooLarge(p.opts.MaxBodyBytes))
		case errors.Is(err, os.ErrDeadlineExceeded):
			writeError(w, errBodyTooSlow())
		default:
			writeError(w, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: "Could not read the request body."})
		}
		return
	}
	req, aerr := parseBatchCreate(body)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ep, ok := metering.EndpointForPath(req.Endpoint)
	if !ok || !metering.Batchable(ep) || req.Endpoint != strings.TrimSuffix(req.Endpoint, "/") {
		writeError(w, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "endpoint", code: "invalid_value",
			message: "Invalid 'endpoint': creditgate meters batches of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses and /v1/moderations; got " + strconvQuote(req.Endpoint) + "."})
		return
	}
	window, err := time.ParseDuration(req.CompletionWindow)
	if err != nil || window <= 0 || window > maxCompletionWindow {
		writeError(w, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "completion_window", code: "invalid_value",
			message: "Invalid 'completion_window': expected a duration such as '24h', got " + strconvQuote(req.CompletionWindow) + "."})
		return
	}
	if !p.ownsObject(c, billing.ObjectFile, req.InputFileID) {
		return
	}
	settings := p.opts.Settings()
	est, aerr := p.estimateBatch(r.Context(), req.InputFileID, ep, settings.Pricing)
	if aerr == nil {
		aerr = modelRefusal(c.key, est.Model, est.Model, settings.Pricing) // the input file's model, as the key's allowlist says
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	share := settings.BatchDiscount
	if share <= 0 {
		share = DefaultBatchDiscount
	}
	held := metering.DiscountedAmount(est.Estimate, share)
	now := p.opts.Now()
	ttl := window + batchHoldMargin
	u := billing.Usage{RequestID: holdID, KeyID: c.key.ID, Model: est.Model, Endpoint: r.URL.Path}
	res, err := p.opts.Ledger.Reserve(r.Context(), withLimits(billing.ReserveRequest{
		Account: c.key.Account, HoldID: holdID, Estimate: held, Minimum: held, Grace: settings.Policy.Grace, TTL: ttl,
		RequestID: holdID, KeyID: c.key.ID, Model: est.Model, Endpoint: r.URL.Path,
	}, c.key, settings.Policy))
	if err != nil {
		if reserveMayHaveApplied(err) {
			p.releaseBatchHold(r.Context(), c.key.Account, holdID, u, "reserve failed: answered 503")
		}
		writeError(w, p.storeError(err, "batch reserve failed", zap.String("request_id", holdID)))
		return
	}
	if !res.Admitted {
		writeError(w, errDenied(res.Reason, c.key, now))
		return
	}

	// Forward the app's body as it is: parseBatchCreate refused one that says
	// anything twice, so the upstream reads what was estimated.
	ctx := context.WithoutCancel(r.Context())
	up, err := p.upstreamCall(r.Context(), http.MethodPost, "/batches", bytes.NewReader(body), "application/json")
	if err != nil {
		p.releaseBatchHold(ctx, c.key.Account, holdID, u, "upstream error")
		writeError(w, p.upstreamFailure(err))
		return
	}
	answer, err := io.ReadAll(io.LimitReader(up.Body, maxObjectBody+1))
	up.Body.Close()
	if err != nil || len(answer) > maxObjectBody {
		p.releaseBatchHold(ctx, c.key.Account, holdID, u, "upstream answer unreadable")
		writeError(w, errUpstreamUnreachable())
		return
	}
	if up.StatusCode < 200 || up.StatusCode > 299 {
		p.releaseBatchHold(ctx, c.key.Account, holdID, u, "upstream error")
		writeUpstream(w, up, answer)
		return
	}
	id, ok := objectID(answer)
	if !ok {
		p.releaseBatchHold(ctx, c.key.Account, holdID, u, "upstream answer without a batch id")
		p.log.Error("the upstream created a batch without a usable id: its hold is released", zap.String("request_id", holdID))
		writeError(w, errUpstreamUnreachable())
		return
	}
	prices := unitPrices(est.Price)
	rec := billing.Batch{ID: id, Account: c.key.Account, KeyID: c.key.ID, HoldID: holdID, Endpoint: req.Endpoint, Model: est.Model,
		Prices: *prices, Discount: share, Requests: est.Requests, Held: res.Held, CreatedAt: now, HoldExpires: now.Add(ttl)}
	if err := p.openBatch(ctx, rec); err != nil {
		p.undo(ctx, c.key.Account, http.MethodPost, "/batches/"+id+"/cancel")
		p.releaseBatchHold(ctx, c.key.Account, holdID, u, "batch not recorded: cancelled, answered 503")
		writeError(w, p.storeError(err, "batch not recorded", zap.String("request_id", holdID), zap.String("batch", id)))
		return
	}
	p.log.Info("batch created", zap.String("request_id", holdID), zap.String("account", c.key.Account), zap.String("batch", id),
		zap.String("model", est.Model), zap.Int("requests", est.Requests), zap.Stringer("held", res.Held), zap.Time("hold_expires", rec.HoldExpires))
	writeUpstream(w, up, answer)
}

// openBatch records a created batch: for its account (who may see it), then as
// open (what the poller settles).
func (p *Proxy) openBatch(ctx context.Context, b billing.Batch) error {
	if err := p.opts.Objects.PutObject(ctx, b.Account, billing.ObjectBatch, b.ID, b.CreatedAt); err != nil {
		return err
	}
	return p.opts.Batches.OpenBatch(ctx, b)
}

// parseBatchCreate reads the create body, refusing one that is not a JSON
// object, lacks a member the proxy needs, or gives any member twice (the
// upstream would read the last one: another input file than the one estimated).
func parseBatchCreate(body []byte) (batchCreate, *apiError) {
	bad := func(msg, param string) (batchCreate, *apiError) {
		return batchCreate{}, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: param, message: msg}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad("We could not parse the JSON body of your request. The API expects a JSON object.", "")
	}
	seen := map[string]bool{}
	var out batchCreate
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad("We could not parse the JSON body of your request. The API expects a JSON object.", "")
		}
		name := t.(string)
		if seen[name] {
			return bad(fmt.Sprintf("Duplicate key '%s' in the request body.", name), name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return bad("We could not parse the JSON body of your request. The API expects a JSON object.", "")
		}
		var dst *string
		switch name {
		case "input_file_id":
			dst = &out.InputFileID
		case "endpoint":
			dst = &out.Endpoint
		case "completion_window":
			dst = &out.CompletionWindow
		default:
			continue
		}
		if json.Unmarshal(v, dst) != nil {
			return bad(fmt.Sprintf("Invalid type for '%s': expected a string.", name), name)
		}
	}
	if _, err := dec.Token(); err != nil || dec.More() {
		return bad("We could not parse the JSON body of your request. The API expects a JSON object.", "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("We could not parse the JSON body of your request. The API expects a JSON object.", "")
	}
	for _, m := range [...]struct{ name, v string }{{"input_file_id", out.InputFileID}, {"endpoint", out.Endpoint}, {"completion_window", out.CompletionWindow}} {
		if m.v == "" {
			return bad("Missing required parameter: '"+m.name+"'.", m.name)
		}
	}
	return out, nil
}

// estimateBatch reads the input file from the upstream and estimates it
// (metering.EstimateBatch): a line it cannot bound is a 400 naming the line.
func (p *Proxy) estimateBatch(ctx context.Context, fileID string, ep metering.Endpoint, pricing *metering.Pricing) (metering.BatchEstimate, *apiError) {
	res, err := p.upstreamCall(ctx, http.MethodGet, upstreamPath(billing.ObjectFile, fileID)+"/content", nil, "")
	if err != nil {
		return metering.BatchEstimate{}, p.upstreamFailure(err)
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxObjectBody))
		return metering.BatchEstimate{}, upstreamRefusal(res.StatusCode, body)
	}
	maxBytes := p.opts.MaxBatchInputBytes
	if maxBytes <= 0 {
		maxBytes = defaultMaxBatchInputBytes
	}
	est, err := metering.EstimateBatch(res.Body, ep, pricing, metering.BatchLimits{MaxBytes: maxBytes, MaxLine: int(p.opts.MaxBodyBytes), MaxRequests: maxBatchRequests})
	if err != nil {
		var be *metering.BatchInputError
		if errors.As(err, &be) {
			return metering.BatchEstimate{}, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "input_file_id", code: "invalid_batch_input", message: be.Error()}
		}
		return metering.BatchEstimate{}, p.upstreamFailure(err)
	}
	return est, nil
}

// releaseBatchHold releases a batch's hold that holds nothing any more.
func (p *Proxy) releaseBatchHold(ctx context.Context, account, holdID string, u billing.Usage, note string) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	u.Note = note
	if _, err := p.opts.Ledger.Release(sctx, account, holdID, u); err != nil {
		p.log.Error("batch hold release failed: it counts as reserved until it expires", zap.String("request_id", holdID),
			zap.String("account", account), zapErr(err))
		return err
	}
	return nil
}

// writeUpstream answers with the upstream's status, content type and body.
func writeUpstream(w http.ResponseWriter, res *http.Response, body []byte) {
	h := w.Header()
	if ct := res.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	if id := res.Header.Get("X-Request-Id"); id != "" {
		h.Set("X-Request-Id", id)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(body)
}

// batchFiles are the members of a Batch object the proxy reads.
type batchFiles struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	OutputFileID string `json:"output_file_id"`
	ErrorFileID  string `json:"error_file_id"`
}

// adoptBatchFiles records a batch's output and error files for the batch's
// account, so its owner can download them (and nobody else).
func (p *Proxy) adoptBatchFiles(ctx context.Context, account string, body []byte) {
	var b batchFiles
	if json.Unmarshal(body, &b) != nil {
		return
	}
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		if id != "" && billing.ValidObjectID(id) == nil {
			_ = p.record(ctx, account, billing.ObjectFile, id)
		}
	}
}

// priceOf is the metering price of a batch's recorded unit prices.
func priceOf(u billing.UnitPrices) metering.Price {
	return metering.Price{Input: u.Input, CachedInput: u.CachedInput, AudioInput: u.AudioInput,
		Output: u.Output, Reasoning: u.Reasoning, AudioOutput: u.AudioOutput}
}

// shareText writes a share in millionths as a percentage ("50%", "12.5%").
func shareText(share int64) string {
	s := money.Micros(share * 100).String() // six places
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}
