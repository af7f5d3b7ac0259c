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
// When ledger is also a DailyUsageSource, the whole complete days of q are read
// from its rollup and only the rest of q is scanned (see DailyUsageSource).
func Usage(ctx context.Context, ledger Ledger, s Snapshot, q Range, groupBy ...string) (UsageReport, error) {
	g := grouper{groupBy: groupBy, groups: map[string]*Row{}, values: map[*Row][]string{}}
	scan := func(r Range) error {
		return Scan(ctx, ledger, s, r, func(ev billing.Event) error {
			if ev.Type == billing.EventUsage {
				g.add(ev.At.UTC().Format(time.DateOnly), ev.Model, ev.KeyID, rowOf(ev))
			}
			return nil
		})
	}
	var err error
	if src, ok := ledger.(DailyUsageSource); ok {
		err = usageWithRollup(ctx, src, s, q, &g, scan)
	} else {
		err = scan(q)
	}
	if err != nil {
		return UsageReport{}, err
	}
	return g.report(), nil
}

// rowOf is one usage event's row.
func rowOf(ev billing.Event) Row {
	var r Row
	r.Add(ev)
	return r
}

// grouper sums rows by the values of its groupings.
type grouper struct {
	groupBy []string
	groups  map[string]*Row
	values  map[*Row][]string // each row's values, in groupBy's order
	total   Row
}

// add counts r (sums of usage of one day, model and key) into its group.
func (g *grouper) add(day, model, key string, r Row) {
	vals := make([]string, len(g.groupBy))
	for i, by := range g.groupBy {
		switch by {
		case ByModel:
			vals[i] = model
		case ByDay:
			vals[i] = day
		case ByKey:
			vals[i] = key
		}
	}
	k := strings.Join(vals, "\x00") // NUL never occurs in a model name, day or key id
	row := g.groups[k]
	if row == nil {
		row = &Row{Group: strings.Join(vals, "/")}
		if len(vals) > 1 {
			row.By = make(map[string]string, len(vals))
			for i, by := range g.groupBy {
				row.By[by] = vals[i]
			}
		}
		g.groups[k] = row
		g.values[row] = vals
	}
	row.addRow(r)
	g.total.addRow(r)
}

func (r *Row) addRow(o Row) {
	r.Requests += o.Requests
	r.PromptTokens += o.PromptTokens
	r.CachedTokens += o.CachedTokens
	r.CompletionTokens += o.CompletionTokens
	r.ReasoningTokens += o.ReasoningTokens
	r.Cost += o.Cost
}

func (g *grouper) report() UsageReport {
	rows := make([]*Row, 0, len(g.groups))
	for _, row := range g.groups {
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b *Row) int { return slices.Compare(g.values[a], g.values[b]) })
	out := UsageReport{Rows: make([]Row, 0, len(rows)), Total: g.total}
	for _, row := range rows {
		out.Rows = append(out.Rows, *row)
	}
	return out
}
