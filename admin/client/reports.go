package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/creditgate/creditgate/admin"
)

// UsageQuery selects a usage report. From and To are RFC 3339 times or UTC dates
// ("2026-03-01"; a date To includes that day); empty means from the first event,
// and up to now. GroupBy is admin.GroupByModel (the default), GroupByDay or
// GroupByKey, or several of them joined by commas ("day,model").
type UsageQuery struct {
	From, To string
	GroupBy  string
}

// ExportQuery selects a ledger export: Format admin.FormatJSONL (the default) or
// admin.FormatCSV, and a range as in UsageQuery.
type ExportQuery struct {
	Format   string
	From, To string
}

// streamingHTTP downloads exports when Client.HTTP is nil: no overall timeout, as
// an export of a long ledger may take a while; the context bounds it, and the
// server must start answering within DefaultTimeout.
var streamingHTTP = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = DefaultTimeout
	return &http.Client{Transport: t}
}()

// Usage returns account's usage report: settled requests, tokens by class and
// cost, grouped by model, day or key.
func (c *Client) Usage(ctx context.Context, account string, q UsageQuery) (admin.UsageReport, error) {
	path, err := accountPath(account, "/usage")
	if err != nil {
		return admin.UsageReport{}, err
	}
	v := url.Values{}
	setNonEmpty(v, "from", q.From)
	setNonEmpty(v, "to", q.To)
	setNonEmpty(v, "group_by", q.GroupBy)
	var out admin.UsageReport
	_, err = c.do(ctx, http.MethodGet, path, v, nil, nil, &out)
	return out, err
}

// RecentLedger returns a page of account's ledger newest first (GET
// …/ledger/recent): the newest limit events (0: the server's default) with ids
// below before ("" for the newest of all). The page's Next, when HasMore, is the
// before of the next, older page.
func (c *Client) RecentLedger(ctx context.Context, account, before string, limit int) (admin.EventList, error) {
	path, err := accountPath(account, "/ledger/recent")
	if err != nil {
		return admin.EventList{}, err
	}
	v := url.Values{}
	setNonEmpty(v, "before", before)
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out admin.EventList
	_, err = c.do(ctx, http.MethodGet, path, v, nil, nil, &out)
	return out, err
}

// Audit replays account's ledger on the server and returns the report; a
// mismatch is a report with OK false, not an error.
func (c *Client) Audit(ctx context.Context, account string) (admin.AuditReport, error) {
	path, err := accountPath(account, "/audit")
	if err != nil {
		return admin.AuditReport{}, err
	}
	var out admin.AuditReport
	_, err = c.do(ctx, http.MethodGet, path, nil, nil, nil, &out)
	return out, err
}

// ExportLedger streams account's ledger export into w as it arrives, without
// holding it in memory, and returns the bytes written. A transfer the server cut
// short (it does so when it fails mid-export) is an error, so a partial export is
// never mistaken for a complete one.
func (c *Client) ExportLedger(ctx context.Context, account string, q ExportQuery, w io.Writer) (int64, error) {
	path, err := accountPath(account, "/ledger/export")
	if err != nil {
		return 0, err
	}
	if c.BaseURL == "" {
		return 0, errors.New("creditgate admin client: BaseURL is empty")
	}
	v := url.Values{}
	setNonEmpty(v, "format", q.Format)
	setNonEmpty(v, "from", q.From)
	setNonEmpty(v, "to", q.To)
	target := strings.TrimRight(c.BaseURL, "/") + path
	if len(v) > 0 {
		target += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, fmt.Errorf("creditgate admin client: %w", err)
	}
	req.Header.Set("User-Agent", "creditgate-admin-client")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = streamingHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("creditgate admin client: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return 0, apiError(resp.StatusCode, data)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("creditgate admin client: the export of %q stopped after %d bytes: %w", account, n, err)
	}
	return n, nil
}

func setNonEmpty(v url.Values, k, s string) {
	if s != "" {
		v.Set(k, s)
	}
}
