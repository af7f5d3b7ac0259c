package report

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Usage groupings.
const (
	ByModel = "model"
	ByDay   = "day" // the UTC day, "2006-01-02"
	ByKey   = "key" // the key id ("" for usage recorded without one)
)

// ValidGrouping reports whether g is ByModel, ByDay or ByKey.
func ValidGrouping(g string) bool { return g == ByModel || g == ByDay || g == ByKey }

// Row sums the usage events of one group. Tokens are as the usage events record
// them: CachedTokens is the part of PromptTokens served from the prompt cache,
// ReasoningTokens the part of CompletionTokens spent on reasoning.
type Row struct {
	// Group is the priced model name, the UTC day ("2006-01-02") or the key id
	// ("" for usage recorded without one).
	Group string `json:"group"`
	// By is set only when the report groups by more than one field: the row's
	// value for each of them, e.g. {"day":"2026-03-01","model":"gpt-4o"}. Group
	// then joins those values with "/" in the groupings' order, for display.
	By               map[string]string `json:"by,omitempty"`
	Requests         int64             `json:"requests"`
	PromptTokens     int64             `json:"prompt_tokens"`
	CachedTokens     int64             `json:"cached_tokens"`
	CompletionTokens int64             `json:"completion_tokens"`
	ReasoningTokens  int64             `json:"reasoning_tokens"`
	Cost             money.Micros      `json:"cost"`
}

// Add counts one usage event into the row.
func (r *Row) Add(ev billing.Event) {
	r.Requests++
	r.PromptTokens += ev.PromptTokens
	r.CachedTokens += ev.CachedTokens
	r.CompletionTokens += ev.CompletionTokens
	r.ReasoningTokens += ev.ReasoningTokens
	r.Cost += ev.Cost
}

// UsageReport is the settled requests (usage events) of a snapshot in a range,
// grouped.
type UsageReport struct {
	// Rows has one row per group that occurred, sorted by the first grouping,
	// then the next (days chronologically, models and keys by name).
	Rows  []Row
	Total Row // Group is ""
}

// Usage sums the usage events of the snapshot in q, grouped by groupBy (one or
// more of ByModel, ByDay, ByKey, each at most once; none is one group of all).
func Usage(ctx context.Context, ledger Ledger, s Snapshot, q Range, groupBy ...string) (UsageReport, error) {
	groups := map[string]*Row{}
	values := map[*Row][]string{} // each row's values, in groupBy's order
	var total Row
	err := Scan(ctx, ledger, s, q, func(ev billing.Event) error {
		if ev.Type != billing.EventUsage {
			return nil
		}
		vals := make([]string, len(groupBy))
		for i, g := range groupBy {
			switch g {
			case ByModel:
				vals[i] = ev.Model
			case ByDay:
				vals[i] = ev.At.UTC().Format(time.DateOnly)
			case ByKey:
				vals[i] = ev.KeyID
			}
		}
		key := strings.Join(vals, "\x00") // NUL never occurs in a model name, day or key id
		row := groups[key]
		if row == nil {
			row = &Row{Group: strings.Join(vals, "/")}
			if len(vals) > 1 {
				row.By = make(map[string]string, len(vals))
				for i, g := range groupBy {
					row.By[g] = vals[i]
				}
			}
			groups[key] = row
			values[row] = vals
		}
		row.Add(ev)
		total.Add(ev)
		return nil
	})
	if err != nil {
		return UsageReport{}, err
	}
	rows := make([]*Row, 0, len(groups))
	for _, row := range groups {
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b *Row) int { return slices.Compare(values[a], values[b]) })
	out := UsageReport{Rows: make([]Row, 0, len(rows)), Total: total}
	for _, row := range rows {
		out.Rows = append(out.Rows, *row)
	}
	return out, nil
}
