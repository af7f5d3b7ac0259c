package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// creditsResponse is GET /v1/credits: the calling key's account balance.
type creditsResponse struct {
	Object    string         `json:"object"` // "credit_balance"
	Account   string         `json:"account"`
	Balance   money.Micros   `json:"balance"`
	Credit    money.Micros   `json:"credit"`
	Debt      money.Micros   `json:"debt"`
	Reserved  money.Micros   `json:"reserved"`
	Available money.Micros   `json:"available"`
	Grace     money.Micros   `json:"grace"`
	Grants    []creditsGrant `json:"grants"`
}

type creditsGrant struct {
	ID        string       `json:"id"`
	Amount    money.Micros `json:"amount"`
	Remaining money.Micros `json:"remaining"`
	GrantedAt time.Time    `json:"granted_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	Source    string       `json:"source"`
}

// serveCredits answers GET /v1/credits for the app key's account: live grants only.
func (p *Proxy) serveCredits(w http.ResponseWriter, r *http.Request) {
	key, _, aerr := p.authenticate(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	a, err := p.opts.Ledger.GetAccount(r.Context(), key.Account)
	switch {
	case errors.Is(err, billing.ErrUnavailable):
		writeError(w, errStoreUnavailable())
		return
	case errors.Is(err, billing.ErrAccountNotFound):
		writeError(w, errInvalidKey())
		return
	case err != nil:
		p.log.Error("credits lookup failed", zapErr(err))
		writeError(w, errInternal())
		return
	}
	out := creditsResponse{
		Object: "credit_balance", Account: a.ID, Balance: a.Balance(), Credit: a.Credit, Debt: a.Debt,
		Reserved: a.Reserved, Available: a.Available(), Grace: p.opts.Settings().Policy.Grace, Grants: []creditsGrant{},
	}
	for _, g := range a.Grants {
		if g.Remaining > 0 {
			out.Grants = append(out.Grants, creditsGrant{ID: g.ID, Amount: g.Amount, Remaining: g.Remaining, GrantedAt: g.GrantedAt, ExpiresAt: g.ExpiresAt, Source: g.Source})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
