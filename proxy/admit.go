package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// admit takes a metered request through the README's steps 1 to 5 ("How requests
// are metered and billed"), one named rule each, and leaves x.in ready to forward.
// It returns the error to answer (a 429 included), or nil when the request may go;
// step 6, settling, is finish's. A new rule is one named function and one line here:
// a rule that refuses belongs before reserve, which holds money (after it, a refusal
// must release the hold).
func (p *Proxy) admit(x *exchange) *apiError {
	rules := [...]func(*Proxy, *exchange) *apiError{
		(*Proxy).authenticateKey, // 1. the sk-cg- key, looked up by its hash, usable (checkKeyUsable)
		(*Proxy).readBody,        // 2. the body, within limits.max_body_bytes,
		(*Proxy).parseBody,       //    valid for its endpoint,
		(*Proxy).checkItems,      //    within limits.max_messages and max_message_bytes,
		(*Proxy).checkReferences, //    naming only stored objects of its own account,
		(*Proxy).checkBackground, //    in the background only where a poller bills it,
		(*Proxy).priceModel,      //    for a model that has a price,
		(*Proxy).checkModel,      //    in the key's allowlist,
		(*Proxy).countPrompt,     //    its prompt counted locally
		(*Proxy).estimate,        // 3. the worst case
		(*Proxy).rateLimit,       //    within the rate limits (ratelimit.go), counted
		(*Proxy).reserve,         // 4. held on the account, the output cap lowered to the hold
		(*Proxy).prepareForward,  // 5. the body the upstream gets
	}
	for _, rule := range rules {
		if aerr := rule(p, x); aerr != nil {
			return aerr
		}
	}
	return nil
}

// authenticateKey resolves the app key; unknown and revoked keys get the same
// 401. A request refused here (401, or 503 at the key lookup) has its body
// unread: it is answered at once and its connection closed, rather than kept
// by reading the body first (net/http's way), which a body trickled byte by
// byte would stretch out.
func (p *Proxy) authenticateKey(x *exchange) *apiError {
	key, _, aerr := p.authenticate(x.in)
	x.key = key
	if aerr != nil && x.in.ContentLength != 0 {
		x.w.Header().Set("Connection", "close")
	}
	return aerr
}

// readBody reads the body, answering 413 beyond MaxBodyBytes, and 408 when it
// arrived too slowly (the server's read deadline on bodies passed). It comes
// after authentication: nothing reads a body, nor sends 100 Continue for it,
// before its key is known.
func (p *Proxy) readBody(x *exchange) *apiError {
	body, err := readLimited(x.w, x.in, p.opts.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errTooLarge(p.opts.MaxBodyBytes)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errBodyTooSlow()
		}
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: "Could not read the request body."}
	}
	x.body = body
	return nil
}

// parseBody parses the body for its endpoint (metering.ParseRequest: JSON in UTF-8,
// each parameter's type and bounds, no key given twice), answering 400 with the
// parameter at fault.
func (p *Proxy) parseBody(x *exchange) *apiError {
	var req *metering.Request
	var err error
	if metering.IsMultipart(x.endpoint) { // image edits and variations (media.go)
		req, err = metering.ParseMultipartRequest(x.endpoint, x.in.Header.Get("Content-Type"), x.body)
	} else {
		req, err = metering.ParseRequest(x.endpoint, x.body)
	}
	if err != nil {
		var re *metering.RequestError
		if errors.As(err, &re) {
			return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: re.Param, message: re.Message}
		}
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: err.Error()}
	}
	x.req = req
	return nil
}

// checkItems enforces MaxMessages and MaxMessageBytes, in OpenAI's words for an
// over-long array or string.
func (p *Proxy) checkItems(x *exchange) *apiError {
	req := x.req
	if p.opts.MaxMessages > 0 && req.Items > p.opts.MaxMessages {
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: req.ItemsParam, code: "array_above_max_length",
			message: fmt.Sprintf("Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", req.ItemsParam, p.opts.MaxMessages, req.Items)}
	}
	if p.opts.MaxMessageBytes > 0 && int64(req.LargestItem) > p.opts.MaxMessageBytes {
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: req.ItemsParam, code: "string_above_max_length",
			message: fmt.Sprintf("Invalid '%s': an item is too long. Expected at most %d bytes per item, but got %d bytes instead.", req.ItemsParam, p.opts.MaxMessageBytes, req.LargestItem)}
	}
	return nil
}

// priceModel resolves the model to the priced name it is billed as (metering's
// Pricing.Resolve); a model without a price gets 400 and is never forwarded.
func (p *Proxy) priceModel(x *exchange) *apiError {
	name, price, ok := x.settings.Pricing.Resolve(x.req.Model)
	if !ok {
		return errUnpriced(x.req.Model)
	}
	if metering.PerMinute(price) && price.Input == 0 && price.Output == 0 && !transcriptionEndpoint(x.endpoint) {
		return errAudioOnly(x.req.Model) // its token classes are free: not a price for tokens
	}
	// The media endpoints bill in their own unit (per image, per character).
	price, err := x.req.PriceFor(price)
	if err != nil {
		var re *metering.RequestError
		if !errors.As(err, &re) {
			re = &metering.RequestError{Message: err.Error()}
		}
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: re.Param, message: re.Message}
	}
	x.model, x.price = name, price
	return nil
}

// checkKeyUsable refuses a key that has expired (401 key_expired), is
// disabled (401 key_disabled) or whose account is suspended (403
// account_suspended), in that order. authenticate applies it, so every
// endpoint a key reaches refuses alike. The key's settings and its account's
// status are as the key cache last read them: a change takes effect within
// auth.key_cache_ttl; the expiry is compared with the clock at each request.
func (p *Proxy) checkKeyUsable(k billing.APIKey) *apiError {
	switch {
	case k.Expired(p.opts.Now()):
		return &apiError{status: http.StatusUnauthorized, typ: typeInvalidRequest, code: "key_expired",
			message: "The API key provided expired at " + k.ExpiresAt.UTC().Format(time.RFC3339) + ". Ask for a new key or a later expiry."}
	case k.Disabled:
		return &apiError{status: http.StatusUnauthorized, typ: typeInvalidRequest, code: "key_disabled",
			message: "The API key provided is disabled. Ask the operator to enable it again."}
	case k.AccountSuspended():
		return &apiError{status: http.StatusForbidden, typ: typeInvalidRequest, code: "account_suspended",
			message: "The account of this API key is suspended. Contact the operator of this gateway."}
	}
	return nil
}

// checkModel refuses a model outside the key's allowlist (403
// model_not_allowed, nothing held or forwarded). Aliases resolve first, on both
// sides: the request's model as priceModel billed it, and each allowlist entry,
// so an entry naming an alias allows what the alias stands for.
func (p *Proxy) checkModel(x *exchange) *apiError {
	return modelRefusal(x.key, x.req.Model, x.model, x.settings.Pricing)
}

// modelRefusal is checkModel's answer for a request naming requested, billed
// as model (nil: allowed).
func modelRefusal(key billing.APIKey, requested, model string, pricing *metering.Pricing) *apiError {
	if len(key.Models) == 0 {
		return nil
	}
	for _, m := range key.Models {
		if m == model {
			return nil
		}
		if name, _, ok := pricing.Resolve(m); ok && name == model {
			return nil
		}
	}
	return &apiError{status: http.StatusForbidden, typ: typeInvalidRequest, param: "model", code: "model_not_allowed",
		message: "The model `" + requested + "` is not allowed for this API key."}
}

// countPrompt counts the prompt locally in the model's encoding (the price's, else
// the model family's) — or takes its byte bound, counting it exactly only when
// needed (count.go) — and starts the meter that counts the output in it too.
func (p *Proxy) countPrompt(x *exchange) *apiError {
	encoding := x.price.Encoding
	if encoding == "" {
		encoding = metering.EncodingForModel(x.req.Model)
	}
	tok, err := metering.TokenizerFor(encoding)
	if err != nil {
		p.log.Error("tokenizer unavailable", zap.String("encoding", encoding), zapErr(err))
		return errInternal()
	}
	p.startCount(x, tok, encoding)
	return nil
}

// estimate sets the worst-case cost E (metering's Request.Estimate): the prompt plus
// the most output the request allows, at the dearest output rate.
func (p *Proxy) estimate(x *exchange) *apiError {
	x.estimate = x.req.Estimate(x.price, x.input)
	return nil
}

// reserve holds E on the account: the grace/clamp rule. The ledger admits the
// request iff available > 0 and E ≤ available + grace (available = credit − debt −
// reserved), in one atomic script. With ClampMaxTokens, a request whose E does not
// fit may still go when its clamp floor does (the prompt plus the endpoint's
// smallest output cap per choice: 1 token, 16 on Responses): the ledger then holds
// everything available plus grace, and the output cap is lowered to what that hold
// pays for. Otherwise the answer is the 429.
func (p *Proxy) reserve(x *exchange) *apiError {
	ctx, s := x.in.Context(), x.settings
	minimum := reserveMinimum(x) // on a prompt's byte bound: all or nothing (count.go)
	res, err := p.opts.Ledger.Reserve(ctx, withLimits(billing.ReserveRequest{
		Account: x.key.Account, HoldID: x.id, Estimate: x.estimate, Minimum: minimum,
		Grace: s.Policy.Grace, TTL: holdTTL(x),
		// Kept on the hold, for the hold_expired event should it die unsettled.
		RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(),
	}, x.key, s.Policy)) // the key's limit and the monthly caps, checked with the balance
	if err != nil {
		if errors.Is(err, billing.ErrAccountNotFound) {
			p.forgetKey(x.in) // the key outlived its account
		}
		if reserveMayHaveApplied(err) {
			p.releaseAfterFailedReserve(x, err)
		}
		return p.storeError(err, "reserve failed", zap.String("request_id", x.id))
	}
	if !res.Admitted {
		if p.countAfterDenial(x, res) { // denied on the bound: again, counted exactly
			return p.reserve(x)
		}
		return errDenied(res.Reason, x.key, p.opts.Now())
	}
	x.held = res.Held
	if x.held < x.estimate {
		maxOutput, ok := x.req.CapFor(x.price, x.input, x.held)
		if !ok {
			p.release(ctx, x, "hold too small for one output token")
			// Answered as a denial by the room that bounded the hold: a key
			// limit or the monthly cap says so, not "out of credit".
			reason := res.LimitedBy
			if reason == "" {
				reason = billing.ReasonInsufficient
			}
			return errDenied(reason, x.key, p.opts.Now())
		}
		x.clampedTo = maxOutput
	}
	return nil
}

// unsureReleaseTimeout bounds the release after a failed reserve: the app is
// waiting for its 503, and a store that just failed may go on failing.
const unsureReleaseTimeout = 2 * time.Second

// reserveMayHaveApplied reports whether a failed reserve may have left a hold:
// every failure but the store's own refusals (no such account, an invalid
// argument) may come after Redis ran the script — a reply lost once go-redis's
// retries ran out, a timeout, the app hanging up during the call.
func reserveMayHaveApplied(err error) bool {
	return !errors.Is(err, billing.ErrAccountNotFound) && !errors.Is(err, billing.ErrInvalid)
}

// releaseAfterFailedReserve releases x's hold id after a reserve that failed
// ambiguously, so a hold Redis made while the app got 503 does not count as
// reserved until hold_ttl. Best effort: one try within unsureReleaseTimeout,
// not spooled (in an outage every 503 would be, and the hold expires anyway).
// Release is idempotent by hold id, and for a hold that was never made it books
// nothing (a release event of 0) and leaves a released record under this
// request's id — which no other request uses — so a reserve of it still on
// the wire answers "already released" instead of holding.
func (p *Proxy) releaseAfterFailedReserve(x *exchange, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.in.Context()), unsureReleaseTimeout)
	defer cancel()
	u := billing.Usage{RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(), Note: "reserve failed: answered 503"}
	_, err := p.opts.Ledger.Release(ctx, x.key.Account, x.id, u)
	fields := []zap.Field{zap.String("request_id", x.id), zap.String("account", x.key.Account), zap.NamedError("reserve_error", cause)}
	if err != nil {
		p.log.Warn("reserve failed and the release after it too: a hold Redis may have made counts as reserved until hold_ttl",
			append(fields, zapErr(err))...)
		return
	}
	p.log.Info("reserve failed; its hold id released in case Redis had applied it", fields...)
}

// prepareForward sets the body the upstream gets: the app's, byte for byte, but for
// the output cap lowered to the hold and the stream usage the proxy needs
// (metering's Request.Rewrite).
func (p *Proxy) prepareForward(x *exchange) *apiError {
	body, err := x.req.Rewrite(x.body, x.clampedTo)
	if err != nil {
		p.release(x.in.Context(), x, "request rewrite failed")
		p.log.Error("request rewrite failed", zap.String("request_id", x.id), zapErr(err))
		return errInternal()
	}
	r := x.in
	x.forward.Reset(body)
	r.Body = &x.forward
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Length")
	return nil
}

// readLimited reads the request body up to limit bytes (a larger body is an
// *http.MaxBytesError), in one allocation when the client sent a Content-Length.
func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength <= 0 {
		return io.ReadAll(rd)
	}
	buf := make([]byte, r.ContentLength+1) // +1 to see EOF without growing
	n, err := io.ReadFull(rd, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return buf[:n], nil // shorter than announced: the server reports a truncated body itself
	case err != nil:
		return nil, err
	}
	// Longer than announced: read the rest through the limit.
	rest, err := io.ReadAll(rd)
	return append(buf[:n], rest...), err
}
