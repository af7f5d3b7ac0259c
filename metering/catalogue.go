package metering

import "sort"

// Alias is a model name billed as a priced model.
type Alias struct {
	Name, Model string
}

// Aliases returns the table's aliases, sorted by name: with Models, the
// catalogue GET /v1/models lists.
func (p *Pricing) Aliases() []Alias {
	out := make([]Alias, 0, len(p.aliases))
	for from, to := range p.aliases {
		out = append(out, Alias{Name: from, Model: to})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
