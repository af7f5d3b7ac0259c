package portal

import (
	"net/http"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/report"
	"github.com/creditgate/creditgate/money"
)

// recentRequests is how many requests the page lists; recentScan how many of
// the newest ledger events it reads to find them (the rest are top-ups,
// releases and the like).
const (
	recentRequests = 20
	recentScan     = 200
)

type usageJSON struct {
	Month       string    `json:"month"` // "2026-03", UTC
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	LastEventID string    `json:"last_event_id"`
	// Days are the month's days up to today ("2026-03-01"…), the chart's axis.
	Days []string `json:"days"`
	// Cells are the chart: cost per day and model.
	Cells   []cellJSON     `json:"cells"`
	ByModel []usageRowJSON `json:"by_model"`
	ByKey   []usageRowJSON `json:"by_key"`
	Total   usageRowJSON   `json:"total"`
	Recent  []requestJSON  `json:"recent"`
}

type cellJSON struct {
	Day      string       `json:"day"`
	Model    string       `json:"model"`
	Requests int64        `json:"requests"`
	Cost     money.Micros `json:"cost"`
}

type usageRowJSON struct {
	// Name is the model, or the key's name ("" for usage without a key;
	// Deleted for a key that no longer exists).
	Name             string       `json:"name"`
	Deleted          bool         `json:"deleted,omitempty"`
	Requests         int64        `json:"requests"`
	PromptTokens     int64        `json:"prompt_tokens"`
	CompletionTokens int64        `json:"completion_tokens"`
	Cost             money.Micros `json:"cost"`
}

type requestJSON struct {
	At               time.Time    `json:"at"`
	Model            string       `json:"model"`
	Endpoint         string       `json:"endpoint"`
	Key              string       `json:"key"`
	PromptTokens     int64        `json:"prompt_tokens"`
	CompletionTokens int64        `json:"completion_tokens"`
	Cost             money.Micros `json:"cost"`
}

func rowFrom(name string, r report.Row) usageRowJSON {
	return usageRowJSON{Name: name, Requests: r.Requests, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, Cost: r.Cost}
}

// usage is this calendar month's (UTC) usage and the recent requests of the
// session's account: GET api/usage.
func (h *Handler) usage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	a, err := h.Ledger.GetAccount(ctx, s.Account)
	if err != nil {
		h.fail(w, "reading the account", s, err)
		return
	}
	now := h.now().UTC()
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rng := report.Range{From: from, To: now.Add(time.Second)}
	snap := report.SnapshotOf(a)
	out := usageJSON{Month: billing.MonthOf(now), From: rng.From, To: rng.To, LastEventID: a.LastEventID,
		Cells: []cellJSON{}, ByModel: []usageRowJSON{}, ByKey: []usageRowJSON{}, Recent: []requestJSON{}}
	for d := from; !d.After(now); d = d.AddDate(0, 0, 1) {
		out.Days = append(out.Days, d.Format(time.DateOnly))
	}

	cells, err := report.Usage(ctx, h.Ledger, snap, rng, report.ByDay, report.ByModel)
	if err != nil {
		h.fail(w, "reading usage", s, err)
		return
	}
	// The by-model table sums the chart's cells: one scan of the month fewer.
	models := map[string]*usageRowJSON{}
	for _, row := range cells.Rows {
		model := row.By[report.ByModel]
		out.Cells = append(out.Cells, cellJSON{Day: row.By[report.ByDay], Model: model, Requests: row.Requests, Cost: row.Cost})
		m := models[model]
		if m == nil {
			m = &usageRowJSON{Name: model}
			models[model] = m
		}
		m.Requests += row.Requests
		m.PromptTokens += row.PromptTokens
		m.CompletionTokens += row.CompletionTokens
		m.Cost += row.Cost
	}
	out.Total = rowFrom("", cells.Total)
	for _, m := range models {
		out.ByModel = append(out.ByModel, *m)
	}
	sortRows(out.ByModel)

	names, err := h.keyNames(r, s)
	if err != nil {
		h.fail(w, "listing keys", s, err)
		return
	}
	byKey, err := report.Usage(ctx, h.Ledger, snap, rng, report.ByKey)
	if err != nil {
		h.fail(w, "reading usage", s, err)
		return
	}
	for _, row := range byKey.Rows {
		name, known := names[row.Group]
		kr := rowFrom(name, row)
		kr.Deleted = row.Group != "" && !known
		out.ByKey = append(out.ByKey, kr)
	}
	sortRows(out.ByKey)

	page, err := report.Recent(ctx, h.Ledger, snap, "", recentScan)
	if err != nil {
		h.fail(w, "reading recent requests", s, err)
		return
	}
	for _, ev := range page.Events {
		if ev.Type != billing.EventUsage {
			continue
		}
		out.Recent = append(out.Recent, requestJSON{At: ev.At, Model: ev.Model, Endpoint: ev.Endpoint, Key: names[ev.KeyID],
			PromptTokens: ev.PromptTokens, CompletionTokens: ev.CompletionTokens, Cost: ev.Cost})
		if len(out.Recent) == recentRequests {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// keyNames maps the account's key ids to their names; ids are never shown.
func (h *Handler) keyNames(r *http.Request, s *session) (map[string]string, error) {
	names := map[string]string{}
	if h.Keys == nil {
		return names, nil
	}
	keys, err := h.Keys.ListKeys(r.Context(), s.Account)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		name := k.Name
		if name == "" {
			name = k.Hint // a key created without a name: its non-secret hint
		}
		names[k.ID] = name
	}
	return names, nil
}
