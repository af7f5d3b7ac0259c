package proxy

import (
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"

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

// callerAccount authenticates the app key and loads its account. On failure it has
// answered the request and returns false.
func (p *Proxy) callerAccount(w http.ResponseWriter, r *http.Request) (billing.Account, bool) {
	key, _, aerr := p.authenticate(r)
	if aerr != nil {
		writeError(w, aerr)
		return billing.Account{}, false
	}
	noteCaller(w, key)
	a, err := p.opts.Ledger.GetAccount(r.Context(), key.Account)
	if err != nil {
		writeError(w, p.storeError(err, "account lookup failed", zap.String("path", r.URL.Path)))
		return billing.Account{}, false
	}
	return a, true
}

// serveCredits answers GET /v1/credits for the app key's account: live grants only.
func (p *Proxy) serveCredits(w http.ResponseWriter, r *http.Request) {
	a, ok := p.callerAccount(w, r)
	if !ok {
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
