package app

import (
	"cmp"
	"context"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/activity"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/metrics"
)

// recordingLedger is the ledger the proxy and the spool use: the store, with
// each settlement booked and each refusal told to the console's aggregate
// (billing/activity) after the store answered. The recorder only queues, so
// the request path gains no Redis call; replayed settlements are not counted
// twice.
type recordingLedger struct {
	billing.Ledger
	rec *activity.Recorder
}

func (l recordingLedger) Reserve(ctx context.Context, q billing.ReserveRequest) (billing.Reservation, error) {
	res, err := l.Ledger.Reserve(ctx, q)
	if err == nil && !res.Admitted {
		// The proxy's hold id is its request id; the key and model are known
		// here only when the caller passes them in the request.
		l.rec.Denied(activity.Request{Account: q.Account, KeyID: q.KeyID, RequestID: cmp.Or(q.RequestID, q.HoldID), Model: q.Model,
			Endpoint: q.Endpoint, BalanceAfter: res.Available}, res.Reason)
	}
	return res, err
}

func (l recordingLedger) Settle(ctx context.Context, q billing.SettleRequest) (billing.Settlement, error) {
	st, err := l.Ledger.Settle(ctx, q)
	if err == nil && !st.Replayed {
		u := q.Usage
		l.rec.Settled(activity.Request{Account: q.Account, KeyID: u.KeyID, RequestID: u.RequestID, Model: u.Model,
			Endpoint: u.Endpoint, PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, Cost: st.Cost,
			BalanceAfter: st.BalanceAfter})
	}
	return st, err
}

// rechargeObservers tells the metrics every recharge outcome, and the
// console's aggregate those that did not pay.
type rechargeObservers struct {
	metrics *metrics.Metrics
	rec     *activity.Recorder
}

var _ recharge.NoticeObserver = rechargeObservers{}

func (o rechargeObservers) RechargeDone(r recharge.Report) {
	o.metrics.RechargeDone(r)
	switch r.Result {
	case recharge.Declined, recharge.RequiresAction, recharge.NoCard, recharge.Refused, recharge.GaveUp:
		o.rec.RechargeFailed(string(r.Result))
	}
}

func (o rechargeObservers) NoticeDropped(noticeType string) { o.metrics.NoticeDropped(noticeType) }
