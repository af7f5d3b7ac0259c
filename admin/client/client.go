// Package client is a typed Go client of creditgate's control-plane API, the one
// package admin serves; the creditgate CLI is built on it. Requests and answers are
// admin's wire types, so money stays exact six-decimal strings end to end. Every
// method sends the admin token as a bearer token and returns an *APIError, carrying
// the server's status, error type, code, message and the field at fault, for any
// answer that is not a success. Calls that move money carry an Idempotency-Key
// (generated when the caller gives none) and are retried with it while their
// outcome is unknown (retry.go), so they apply at most once.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/creditgate/creditgate/admin"
)

// DefaultTimeout bounds a request when Client.HTTP is nil.
const DefaultTimeout = 30 * time.Second

// maxResponseBytes bounds what is read of an answer; a full ledger page of
// 1000 events is well under a megabyte.
const maxResponseBytes = 32 << 20

var defaultHTTPClient = &http.Client{Timeout: DefaultTimeout}

// Client calls the control-plane API at BaseURL ("http://127.0.0.1:8081") with
// the admin Token. HTTP nil means a client with DefaultTimeout. A Client is safe
// for concurrent use.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
	// Retry bounds how a call that moves money (AddCredits, Adjust) is retried,
	// with the same Idempotency-Key, after a 502, 503 or 504 or no answer at all.
	// The zero value is DefaultRetry.
	Retry Retry
	// OnRetry, when set, is told of each such retry before its pause (the CLI
	// prints them).
	OnRetry func(RetryEvent)
}

// APIError is a non-2xx answer. For the API's own errors Type, Code, Message and
// Param are its error body; for anything else (a proxy in between, say) Message
// describes what came back.
type APIError struct {
	Status  int
	Type    string
	Code    string
	Message string
	Param   string
	// Problems are every field at fault when there are several (the message
	// joins them).
	Problems []admin.FieldError
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	b.WriteString(" (HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(", ")
		b.WriteString(e.Code)
	}
	b.WriteString(")")
	return b.String()
}

// CreateAccount creates account id in tier ("" = the server's default tier).
func (c *Client) CreateAccount(ctx context.Context, id, tier string) (admin.Account, error) {
	var out admin.Account
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/accounts", nil, nil, admin.CreateAccountRequest{ID: id, Tier: tier}, &out)
	return out, err
}

// ListAccounts lists every account, sorted by id.
func (c *Client) ListAccounts(ctx context.Context) (admin.AccountList, error) {
	var out admin.AccountList
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/accounts", nil, nil, nil, &out)
	return out, err
}

// GetAccount returns one account with its grants and auto-recharge settings.
func (c *Client) GetAccount(ctx context.Context, id string) (admin.Account, error) {
	path, err := accountPath(id, "")
	if err != nil {
		return admin.Account{}, err
	}
	var out admin.Account
	_, err = c.do(ctx, http.MethodGet, path, nil, nil, nil, &out)
	return out, err
}

// CreateKey issues an app key for account. The answer holds the secret, which
// the server never shows again.
func (c *Client) CreateKey(ctx context.Context, account, name string) (admin.CreatedKey, error) {
	return c.CreateKeyWith(ctx, account, admin.CreateKeyRequest{Name: name})
}

// CreateKeyWith issues an app key with the settings of req (limits, expiry, models…).
func (c *Client) CreateKeyWith(ctx context.Context, account string, req admin.CreateKeyRequest) (admin.CreatedKey, error) {
	path, err := accountPath(account, "/keys")
	if err != nil {
		return admin.CreatedKey{}, err
	}
	var out admin.CreatedKey
	_, err = c.do(ctx, http.MethodPost, path, nil, nil, req, &out)
	return out, err
}

// ListKeys lists account's keys, without secrets.
func (c *Client) ListKeys(ctx context.Context, account string) (admin.KeyList, error) {
	path, err := accountPath(account, "/keys")
	if err != nil {
		return admin.KeyList{}, err
	}
	var out admin.KeyList
	_, err = c.do(ctx, http.MethodGet, path, nil, nil, nil, &out)
	return out, err
}

// RevokeKey deletes key keyID of account.
func (c *Client) RevokeKey(ctx context.Context, account, keyID string) error {
	if err := checkSegment("key id", keyID); err != nil {
		return err
	}
	path, err := accountPath(account, "/keys/"+url.PathEscape(keyID))
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodDelete, path, nil, nil, nil, nil)
	return err
}

// UpdateKey changes the settings of key keyID of account (PATCH …/keys/{key_id})
// and returns the key as it now is.
func (c *Client) UpdateKey(ctx context.Context, account, keyID string, req admin.UpdateKeyRequest) (admin.Key, error) {
	if err := checkSegment("key id", keyID); err != nil {
		return admin.Key{}, err
	}
	path, err := accountPath(account, "/keys/"+url.PathEscape(keyID))
	if err != nil {
		return admin.Key{}, err
	}
	var out admin.Key
	_, err = c.do(ctx, http.MethodPatch, path, nil, nil, req, &out)
	return out, err
}

// AddCredits buys a grant of amount (a decimal string such as "25.00") for
// account. expiresAt nil means the server's default lifetime; otherwise the grant
// is promotional and expires then. idemKey is sent as the Idempotency-Key header
// (a new key when empty) and every retry carries it: repeating the call with the
// same key and arguments credits nothing more and returns the original result
// with Replayed set. When no try gets a definite answer the error is an
// *UnconfirmedError with the key, to call again with.
func (c *Client) AddCredits(ctx context.Context, account, amount string, expiresAt *time.Time, idemKey string) (admin.CreditResult, error) {
	return c.AddCreditsWith(ctx, account, admin.AddCreditsRequest{Amount: amount, ExpiresAt: expiresAt}, idemKey)
}

// AddCreditsWith is AddCredits with the whole request: besides the amount and
// expiry, the operator's own payment reference (ExternalID) and a Note, which the
// ledger keeps on the top-up event (payment_ref, note) and which are part of
// what an Idempotency-Key replays.
func (c *Client) AddCreditsWith(ctx context.Context, account string, body admin.AddCreditsRequest, idemKey string) (admin.CreditResult, error) {
	path, err := accountPath(account, "/credits")
	if err != nil {
		return admin.CreditResult{}, err
	}
	if body.ExpiresAt != nil {
		utc := body.ExpiresAt.UTC()
		body.ExpiresAt = &utc
	}
	var out admin.CreditResult
	out.Replayed, err = c.postIdempotent(ctx, path, idemKey, body, &out)
	return out, err
}

// Adjust records an operator's correction of account's credit: amount is a
// signed decimal string ("-1.50" takes credit back, earliest-expiring grants
// first; "2.00" credits a grant of source adjustment, paying debt first), reason
// is required and goes into the ledger. expiresAt (positive amounts only) nil
// means the server's default lifetime. No purchase limits apply. idemKey is sent
// as the Idempotency-Key header (a new key when empty) and every retry carries
// it: repeating the call with the same key and arguments changes nothing more
// and returns the original result with Replayed set. When no try gets a
// definite answer the error is an *UnconfirmedError with the key.
func (c *Client) Adjust(ctx context.Context, account, amount, reason string, expiresAt *time.Time, idemKey string) (admin.AdjustmentResult, error) {
	path, err := accountPath(account, "/adjustments")
	if err != nil {
		return admin.AdjustmentResult{}, err
	}
	body := admin.AdjustmentRequest{Amount: amount, Reason: reason}
	if expiresAt != nil {
		utc := expiresAt.UTC()
		body.ExpiresAt = &utc
	}
	var out admin.AdjustmentResult
	out.Replayed, err = c.postIdempotent(ctx, path, idemKey, body, &out)
	return out, err
}

// SetAutoRecharge replaces account's auto-recharge settings and returns them as stored.
func (c *Client) SetAutoRecharge(ctx context.Context, account string, settings admin.AutoRechargeRequest) (admin.AutoRecharge, error) {
	path, err := accountPath(account, "/auto-recharge")
	if err != nil {
		return admin.AutoRecharge{}, err
	}
	var out admin.AutoRecharge
	_, err = c.do(ctx, http.MethodPut, path, nil, nil, settings, &out)
	return out, err
}

// Ledger returns up to limit events of account after the cursor after ("" = from
// the start), oldest first. limit 0 means the server's default (100).
func (c *Client) Ledger(ctx context.Context, account, after string, limit int) (admin.EventList, error) {
	path, err := accountPath(account, "/ledger")
	if err != nil {
		return admin.EventList{}, err
	}
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out admin.EventList
	_, err = c.do(ctx, http.MethodGet, path, q, nil, nil, &out)
	return out, err
}

// Healthz checks that the server is up.
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil, nil)
	return err
}

// Readyz checks that the server is ready; the *APIError says why not.
func (c *Client) Readyz(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil, nil)
	return err
}

// accountPath is the escaped path of an account's resource.
func accountPath(id, rest string) (string, error) {
	if err := checkSegment("account id", id); err != nil {
		return "", err
	}
	return "/admin/v1/accounts/" + url.PathEscape(id) + rest, nil
}

// checkSegment rejects ids that would change the path's meaning once escaped
// ("" and dot segments); the server validates everything else.
func checkSegment(what, s string) error {
	if s == "" || s == "." || s == ".." {
		return fmt.Errorf("creditgate admin client: %s %q is not valid", what, s)
	}
	return nil
}

// do sends one request and decodes a 2xx answer into out (when non-nil). It
// returns the status, and an *APIError for any other answer.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, header http.Header, body, out any) (int, error) {
	if c.BaseURL == "" {
		return 0, errors.New("creditgate admin client: BaseURL is empty")
	}
	target := strings.TrimRight(c.BaseURL, "/") + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("creditgate admin client: encoding the request: %w", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reqBody)
	if err != nil {
		return 0, fmt.Errorf("creditgate admin client: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "creditgate-admin-client")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error names the method and URL, never the headers, so the token stays out.
		return 0, fmt.Errorf("creditgate admin client: %w", noAnswer{err})
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("creditgate admin client: reading the answer to %s %s: %w", method, path, noAnswer{err})
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, apiError(resp.StatusCode, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("creditgate admin client: decoding the answer to %s %s: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// apiError reads an error answer: the API's error body, /readyz's status body, or
// whatever else came back.
func apiError(status int, data []byte) *APIError {
	e := &APIError{Status: status}
	var body admin.ErrorResponse
	if json.Unmarshal(data, &body) == nil && body.Error.Message != "" {
		e.Type, e.Code, e.Message, e.Param = body.Error.Type, body.Error.Code, body.Error.Message, body.Error.Param
		e.Problems = body.Error.Problems
		return e
	}
	var health admin.Health
	if json.Unmarshal(data, &health) == nil && health.Status != "" {
		e.Code = health.Status
		e.Message = "not ready: " + health.Reason
		return e
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	e.Message = http.StatusText(status)
	if text != "" {
		e.Message += ": " + text
	}
	return e
}
