package billing

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/creditgate/creditgate/money"
)

// An Audit replays one account's ledger and checks the SPEC's invariants against
// the account's stored state. Feed it the events of a snapshot in order (Event),
// then call Finish. It keeps O(grants) memory plus one small map entry per hold
// (an 8-byte hash and what ended it, to catch a hold settled twice or ended two
// ways), so a ledger of any length streams through it.
//
// What it checks, by name:
//   - amounts: every amount is non-negative, except an adjustment's, which is
//     non-zero; a usage event's from_credit + to_debt = cost = amount.
//   - balance: the balance replayed from the events (grants and positive
//     adjustments +, usage, expiry and negative adjustments −)
//     equals every event's balance_after, and credit_after − debt_after agrees.
//   - debt: debt replayed from usage (to_debt) and debt_repaid events equals every
//     event's debt_after; a grant (or positive adjustment) that repaid debt is
//     followed by its debt_repaid; a negative adjustment leaves debt unchanged and
//     takes exactly its amount from credit.
//   - grants: every grant event (topup, auto_recharge, positive adjustment) names
//     a stored grant with the same amount and source, exactly once (no double
//     credit), and only adjustments credit grants of source adjustment; every
//     stored grant has its event; expiry never forfeits more than a grant held.
//   - takebacks: a take-back (an adjustment with a payment_ref: a refunded or
//     disputed payment's credit taken back, possibly 0) names the grant an
//     earlier event credited with that same payment_ref, and what all take-backs
//     and expiry took from a grant never exceeds what the grant credited (its
//     amount less the debt it repaid); it is counted in adjusted out.
//   - usage: no hold is settled twice (no double debit).
//   - holds: each hold ends in exactly one of usage, release or hold_expired, or
//     in hold_expired then usage (a late settle): no release after a usage, a
//     release or a hold_expired, no usage after a release, no hold_expired after
//     any of them or twice; a hold_expired event names its hold and leaves the
//     balance, credit and debt as they were.
//   - state: the replay's balance, credit, debt and totals equal the stored ones;
//     Σ granted = Σ consumed + Σ debt repaid + Σ expired + Σ adjusted out + credit;
//     Σ usage − Σ consumed = debt + Σ debt repaid; the grants' remaining amounts
//     sum to credit, each within [0, amount]; no expired grant has credit left.
//   - tiers: tier_change and account_update events leave the balance as it
//     was; each tier_change moves from the tier the one before it moved to, to
//     another tier, and the stored tier is the last one's; the stored paid
//     total is at most what the ledger's payments (topup events of source
//     purchase, auto_recharge events) add up to (accounts that paid before it
//     was counted hold less).
//
// A trimmed ledger (Account.Checkpoint set) is audited from its checkpoint: the
// replay starts from the checkpoint's figures, events at or before it are
// skipped, and the checks above apply to the events after it, with three more
// under the same names. state: the checkpoint conserves money on its own
// (Σ granted = Σ consumed + Σ debt repaid + Σ expired + Σ adjusted out + credit,
// Σ usage − Σ consumed = debt + Σ debt repaid, every figure ≥ 0). grants: the
// stored grants whose grant event is not after the checkpoint number exactly the
// grant events the checkpoint counted (a grant credited twice across it, or a
// grant without any event, shows). takebacks: a take-back of a grant credited
// before the checkpoint is checked against the checkpoint's entry for it, or,
// for a grant no longer live then (which no entry keeps), against the stored
// grant alone. What the tail cannot show is a hold ended both before and after
// the checkpoint; the settle and release scripts' hold records, and
// HoldTrimmed, are what keep that from happening.
type Audit struct {
	acct Account
	cp   *Checkpoint

	events                   int
	balance, credit, debt    money.Micros
	granted, usage, consumed money.Micros
	expired, repaid          money.Micros
	adjustedOut              money.Micros
	// pendingRepay is the debt a grant event said it repaid, which its
	// debt_repaid event must follow with.
	pendingRepay   money.Micros
	pendingGrant   string
	grantEvents    map[string]int
	expiredByGrant map[string]money.Micros
	// credited is what each grant event credited (for take-backs to check).
	credited map[string]*creditedGrant
	holds    map[uint64]holdEnd
	// lastTier is the tier the last tier_change moved to ("" before any);
	// paid sums the payments replayed.
	lastTier string
	paid     money.Micros
	problems []AuditProblem
	done     bool
}

// creditedGrant is what a grant event credited: the grant's amount less the debt
// it repaid, the payment that paid it, and what take-backs took from it since.
type creditedGrant struct {
	credit, takenBack money.Micros
	paymentRef        string
}

// AuditProblem is one mismatch. EventID names the first event where it showed, or
// is empty when the mismatch is in the stored state.
type AuditProblem struct {
	Check   string
	EventID string
	Message string
}

// AuditReport is the outcome of an audit.
type AuditReport struct {
	Account     string
	Events      int    // events replayed
	LastEventID string // the snapshot's newest event
	// Checkpoint is the event of the checkpoint the replay started from ("":
	// the ledger's first event), and Trimmed how many events it stands for.
	Checkpoint string
	Trimmed    int64
	Problems   []AuditProblem
}

// OK reports whether the account passed every check.
func (r AuditReport) OK() bool { return len(r.Problems) == 0 }

// maxAuditProblems bounds a report: after the first mismatch, later ones are
// mostly its echoes.
const maxAuditProblems = 20

// NewAudit starts an audit of the snapshot a (from GetAccount: grants, totals,
// LastEventID and AsOf filled).
// When a.Checkpoint is set, the replay starts from it (see Audit).
func NewAudit(a Account) *Audit {
	au := &Audit{
		acct:           a,
		grantEvents:    map[string]int{},
		expiredByGrant: map[string]money.Micros{},
		credited:       map[string]*creditedGrant{},
		holds:          map[uint64]holdEnd{},
		done:           a.LastEventID == "",
	}
	if cp := a.Checkpoint; cp != nil {
		au.cp = cp
		au.done = au.done || a.LastEventID == cp.EventID
		au.balance, au.credit, au.debt = cp.Balance(), cp.Credit, cp.Debt
		t := cp.Totals
		au.granted, au.usage, au.consumed = t.Granted, t.Usage, t.Consumed
		au.expired, au.repaid, au.adjustedOut = t.Expired, t.DebtRepaid, t.AdjustedOut
		au.paid, au.lastTier = cp.Paid, cp.Tier
		au.pendingRepay, au.pendingGrant = cp.PendingRepay, cp.PendingGrant
		for _, g := range cp.Credited {
			au.credited[g.ID] = &creditedGrant{credit: g.Credit, takenBack: g.Lost, paymentRef: g.PaymentRef}
		}
	}
	return au
}

func (au *Audit) fail(check, eventID, format string, args ...any) {
	if len(au.problems) < maxAuditProblems {
		au.problems = append(au.problems, AuditProblem{Check: check, EventID: eventID, Message: fmt.Sprintf(format, args...)})
	}
}

// Done reports whether the snapshot's last event has been replayed: later events
// happened after the snapshot and must not be fed.
func (au *Audit) Done() bool { return au.done }

// Event replays the next event. Events after the snapshot's last one are ignored.
func (au *Audit) Event(ev Event) {
	if au.done || (au.cp != nil && CompareEventIDs(ev.ID, au.cp.EventID) <= 0) {
		return // after the snapshot, or covered by the checkpoint
	}
	if ev.ID == au.acct.LastEventID || CompareEventIDs(ev.ID, au.acct.LastEventID) >= 0 {
		au.done = true
		if ev.ID != au.acct.LastEventID {
			au.fail("state", ev.ID, "the snapshot's last event %s is missing from the ledger", au.acct.LastEventID)
			return
		}
	}
	au.events++
	if au.pendingRepay > 0 && ev.Type != EventDebtRepaid {
		au.fail("debt", ev.ID, "grant %s repaid %s of debt but no debt_repaid event follows it", au.pendingGrant, au.pendingRepay)
		au.pendingRepay = 0
	}
	if ev.Amount < 0 && ev.Type != EventAdjustment {
		au.fail("amounts", ev.ID, "%s event has a negative amount %s", ev.Type, ev.Amount)
	}
	switch ev.Type {
	case EventTopUp, EventAutoRecharge:
		au.grantEvent(ev)
		if ev.Type == EventAutoRecharge || ev.Source == SourcePurchase {
			au.paid += ev.Amount
		}
	case EventTierChange:
		switch {
		case ev.TierTo == "" || ev.TierTo == ev.TierFrom:
			au.fail("tiers", ev.ID, "tier_change from %q to %q changes nothing", ev.TierFrom, ev.TierTo)
		case au.lastTier != "" && ev.TierFrom != au.lastTier:
			au.fail("tiers", ev.ID, "tier_change from %q, but the tier_change before it moved to %q", ev.TierFrom, au.lastTier)
		}
		au.lastTier = ev.TierTo
	case EventAccountUpdate:
		if len(ev.Changes) == 0 {
			au.fail("tiers", ev.ID, "account_update names no change")
		}
	case EventDebtRepaid:
		if ev.GrantID != au.pendingGrant || ev.Amount != au.pendingRepay {
			au.fail("debt", ev.ID, "debt_repaid of %s for grant %s does not match the grant event before it (%s for %s)", ev.Amount, ev.GrantID, au.pendingRepay, au.pendingGrant)
		}
		au.pendingRepay = 0
	case EventUsage:
		if ev.FromCredit < 0 || ev.ToDebt < 0 || ev.FromCredit+ev.ToDebt != ev.Cost || ev.Cost != ev.Amount {
			au.fail("amounts", ev.ID, "usage: from_credit %s + to_debt %s, cost %s, amount %s do not add up", ev.FromCredit, ev.ToDebt, ev.Cost, ev.Amount)
		}
		au.balance -= ev.Amount
		au.usage += ev.Amount
		au.consumed += ev.FromCredit
		au.credit -= ev.FromCredit
		au.debt += ev.ToDebt
		if ev.HoldID != "" {
			au.holdEnded(ev, endUsage)
		}
	case EventExpire:
		au.balance -= ev.Amount
		au.expired += ev.Amount
		au.credit -= ev.Amount
		au.expiredByGrant[ev.GrantID] += ev.Amount
		g, ok := au.grant(ev.GrantID)
		switch {
		case !ok:
			au.fail("grants", ev.ID, "expire event names grant %s, which is not stored", ev.GrantID)
		case au.expiredByGrant[ev.GrantID] > g.Amount:
			au.fail("grants", ev.ID, "grant %s of %s has %s forfeited", g.ID, g.Amount, au.expiredByGrant[ev.GrantID])
		}
	case EventAdjustment:
		switch {
		case ev.Amount > 0: // credits a grant of source adjustment, like a top-up
			au.grantEvent(ev)
		case ev.PaymentRef != "": // a take-back: a refunded or disputed payment's credit
			au.takeBack(ev)
		case ev.Amount < 0: // takes credit back; debt is untouched
			au.balance += ev.Amount
			au.credit += ev.Amount
			au.adjustedOut -= ev.Amount
			if ev.GrantID != "" {
				au.fail("grants", ev.ID, "a negative adjustment names grant %s; it takes credit back and credits none", ev.GrantID)
			}
		default:
			au.fail("amounts", ev.ID, "adjustment of zero")
		}
	case EventRelease:
		// no effect on the balance
		if ev.HoldID != "" {
			au.holdEnded(ev, endRelease)
		}
	case EventHoldExpired:
		// no effect on the balance (the checks below hold it to that)
		if ev.HoldID == "" {
			au.fail("holds", ev.ID, "hold_expired event names no hold")
		} else {
			au.holdEnded(ev, endExpired)
		}
	case EventAutoRechargeFailed, EventAutoRechargeSkipped:
		// no effect on the balance
	default:
		au.fail("amounts", ev.ID, "unknown event type %q", ev.Type)
	}
	if ev.BalanceAfter != au.balance || ev.CreditAfter-ev.DebtAfter != ev.BalanceAfter {
		au.fail("balance", ev.ID, "%s event says balance %s (credit %s − debt %s); the replay says %s", ev.Type, ev.BalanceAfter, ev.CreditAfter, ev.DebtAfter, au.balance)
		au.balance = ev.BalanceAfter // report the first break, not every event after it
	}
	if ev.DebtAfter != au.debt || ev.CreditAfter != au.credit {
		au.fail("debt", ev.ID, "%s event says credit %s, debt %s; the replay says credit %s, debt %s", ev.Type, ev.CreditAfter, ev.DebtAfter, au.credit, au.debt)
		au.credit, au.debt = ev.CreditAfter, ev.DebtAfter
	}
}

// holdEnd records which events ended a hold (a set of bits).
type holdEnd uint8

const (
	endUsage holdEnd = 1 << iota
	endRelease
	endExpired
)

func (e holdEnd) String() string {
	switch {
	case e&endUsage != 0:
		return "usage"
	case e&endRelease != 0:
		return "release"
	case e&endExpired != 0:
		return "hold_expired"
	}
	return "none"
}

// holdEnded checks that ev (usage, release or hold_expired) may end its hold
// after what already did, and records it. Holds are keyed by a 64-bit hash of
// their id: a collision (about 1 in 10^9 for 10^5 holds) could only report a
// problem that is not there, never hide one.
func (au *Audit) holdEnded(ev Event, end holdEnd) {
	h := fnv.New64a()
	h.Write([]byte(ev.HoldID))
	k := h.Sum64()
	before := au.holds[k]
	switch {
	case end == endUsage && before&endUsage != 0:
		au.fail("usage", ev.ID, "hold %s is settled a second time (double debit)", ev.HoldID)
	case end == endUsage && before&endRelease != 0:
		au.fail("holds", ev.ID, "hold %s is settled after its release", ev.HoldID)
	case end == endRelease && before != 0:
		au.fail("holds", ev.ID, "hold %s is released after its %s", ev.HoldID, before)
	case end == endExpired && before != 0:
		au.fail("holds", ev.ID, "hold %s expires after its %s", ev.HoldID, before)
	}
	au.holds[k] = before | end
}

// grantEvent replays an event that credits a grant (topup, auto_recharge, a
// positive adjustment): the grant pays debt first, and a debt_repaid event must
// follow when it did.
func (au *Audit) grantEvent(ev Event) {
	au.balance += ev.Amount
	au.granted += ev.Amount
	au.grantEvents[ev.GrantID]++
	if au.grantEvents[ev.GrantID] > 1 {
		au.fail("grants", ev.ID, "grant %s is credited a second time (double credit)", ev.GrantID)
	}
	au.checkGrant(ev)
	repay := au.debt - ev.DebtAfter
	if repay < 0 || repay > ev.Amount {
		au.fail("debt", ev.ID, "grant %s of %s takes debt from %s to %s", ev.GrantID, ev.Amount, au.debt, ev.DebtAfter)
		repay = 0
	}
	au.debt -= repay
	au.repaid += repay
	au.pendingRepay, au.pendingGrant = repay, ev.GrantID
	au.credit += ev.Amount - repay
	au.credited[ev.GrantID] = &creditedGrant{credit: ev.Amount - repay, paymentRef: ev.PaymentRef}
}

// takeBack replays a take-back: like a negative adjustment it takes credit (not
// debt), but from the one grant its payment credited, never more than that grant
// credited.
func (au *Audit) takeBack(ev Event) {
	au.balance += ev.Amount
	au.credit += ev.Amount
	au.adjustedOut -= ev.Amount
	g, ok := au.credited[ev.GrantID]
	switch {
	case !ok && au.cp != nil && au.grantEvents[ev.GrantID] == 0:
		// credited before the checkpoint and spent by then: only the stored grant is left to check against
		if sg, stored := au.grant(ev.GrantID); !stored || -ev.Amount > sg.Amount {
			au.fail("takebacks", ev.ID, "take-back of %s from payment %s names grant %q, which is not stored with that much", -ev.Amount, ev.PaymentRef, ev.GrantID)
		}
		return
	case !ok:
		au.fail("takebacks", ev.ID, "take-back of payment %s names grant %q, which no earlier event credited", ev.PaymentRef, ev.GrantID)
		return
	case g.paymentRef != ev.PaymentRef:
		au.fail("takebacks", ev.ID, "take-back of payment %s names grant %s, which payment %q credited", ev.PaymentRef, ev.GrantID, g.paymentRef)
	}
	g.takenBack -= ev.Amount
	if lost := g.takenBack + au.expiredByGrant[ev.GrantID]; lost > g.credit {
		au.fail("takebacks", ev.ID, "grant %s credited %s, but take-backs took %s and expiry %s of it", ev.GrantID, g.credit, g.takenBack, au.expiredByGrant[ev.GrantID])
	}
}

func (au *Audit) grant(id string) (Grant, bool) {
	for _, g := range au.acct.Grants {
		if g.ID == id {
			return g, true
		}
	}
	return Grant{}, false
}

func (au *Audit) checkGrant(ev Event) {
	g, ok := au.grant(ev.GrantID)
	if !ok {
		au.fail("grants", ev.ID, "%s event credits grant %s, which is not stored", ev.Type, ev.GrantID)
		return
	}
	if g.Amount != ev.Amount {
		au.fail("grants", ev.ID, "grant %s is stored with amount %s but was credited %s", g.ID, g.Amount, ev.Amount)
	}
	if ev.Source != "" && g.Source != ev.Source {
		au.fail("grants", ev.ID, "grant %s is stored with source %s but was credited as %s", g.ID, g.Source, ev.Source)
	}
	if (ev.Type == EventAdjustment) != (g.Source == SourceAdjustment) {
		au.fail("grants", ev.ID, "grant %s of source %s is credited by a %s event", g.ID, g.Source, ev.Type)
	}
}

// Finish checks the replay against the stored state and returns the report.
func (au *Audit) Finish() AuditReport {
	a := au.acct
	if !au.done {
		au.fail("state", "", "the ledger ends before the snapshot's last event %s", a.LastEventID)
	}
	if au.pendingRepay > 0 {
		au.fail("debt", a.LastEventID, "grant %s repaid %s of debt but no debt_repaid event follows it", au.pendingGrant, au.pendingRepay)
	}
	if au.cp != nil {
		au.checkCheckpoint()
	}
	t := a.Totals
	for _, c := range []struct {
		name           string
		stored, replay money.Micros
	}{
		{"balance", a.Balance(), au.balance},
		{"credit", a.Credit, au.credit},
		{"debt", a.Debt, au.debt},
		{"total granted", t.Granted, au.granted},
		{"total usage", t.Usage, au.usage},
		{"total consumed", t.Consumed, au.consumed},
		{"total expired", t.Expired, au.expired},
		{"total debt repaid", t.DebtRepaid, au.repaid},
		{"total adjusted out", t.AdjustedOut, au.adjustedOut},
	} {
		if c.stored != c.replay {
			au.fail("state", "", "stored %s is %s; the ledger replays to %s", c.name, c.stored, c.replay)
		}
	}
	if t.Granted != t.Consumed+t.DebtRepaid+t.Expired+t.AdjustedOut+a.Credit {
		au.fail("state", "", "conservation: granted %s ≠ consumed %s + debt repaid %s + expired %s + adjusted out %s + credit %s",
			t.Granted, t.Consumed, t.DebtRepaid, t.Expired, t.AdjustedOut, a.Credit)
	}
	if t.Usage-t.Consumed != a.Debt+t.DebtRepaid {
		au.fail("state", "", "debt: usage %s − consumed %s ≠ debt %s + debt repaid %s", t.Usage, t.Consumed, a.Debt, t.DebtRepaid)
	}
	var remaining, amounts money.Micros
	var creditedBefore int64 // stored grants without a grant event after the checkpoint
	for _, g := range a.Grants {
		remaining += g.Remaining
		amounts += g.Amount
		if g.Remaining < 0 || g.Remaining > g.Amount {
			au.fail("state", "", "grant %s has %s remaining of %s", g.ID, g.Remaining, g.Amount)
		}
		if g.Remaining > 0 && !a.AsOf.IsZero() && !g.ExpiresAt.After(a.AsOf) {
			au.fail("state", "", "grant %s expired at %s but still has %s of credit", g.ID, g.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"), g.Remaining)
		}
		switch {
		case au.grantEvents[g.ID] > 0:
		case au.cp != nil:
			creditedBefore++
		default:
			au.fail("grants", "", "grant %s of %s has no grant event in the ledger", g.ID, g.Amount)
		}
	}
	if au.cp != nil && creditedBefore != au.cp.Grants {
		au.fail("grants", au.cp.EventID, "%d stored grants have no grant event after the checkpoint, which counts %d grant events before it", creditedBefore, au.cp.Grants)
	}
	if au.lastTier != "" && a.Tier != au.lastTier {
		au.fail("tiers", "", "stored tier is %q, but the last tier_change moved to %q", a.Tier, au.lastTier)
	}
	if a.PaidTotal > au.paid {
		au.fail("tiers", "", "stored paid total is %s, but the ledger's payments add up to %s", a.PaidTotal, au.paid)
	}
	if remaining != a.Credit {
		au.fail("state", "", "the grants' remaining amounts sum to %s, but credit is %s", remaining, a.Credit)
	}
	if amounts != t.Granted {
		au.fail("state", "", "the grants' amounts sum to %s, but total granted is %s", amounts, t.Granted)
	}
	r := AuditReport{Account: a.ID, Events: au.events, LastEventID: a.LastEventID, Problems: au.problems}
	if au.cp != nil {
		r.Checkpoint, r.Trimmed = au.cp.EventID, au.cp.Events
	}
	return r
}

// checkCheckpoint checks that the checkpoint conserves money on its own.
func (au *Audit) checkCheckpoint() {
	cp := au.cp
	t := cp.Totals
	for _, m := range []money.Micros{cp.Credit, cp.Debt, cp.Paid, cp.PendingRepay, t.Granted, t.Usage, t.Consumed, t.DebtRepaid, t.Expired, t.AdjustedOut} {
		if m < 0 {
			au.fail("state", cp.EventID, "the checkpoint holds a negative figure: %+v", *cp)
			return
		}
	}
	if t.Granted != t.Consumed+t.DebtRepaid+t.Expired+t.AdjustedOut+cp.Credit {
		au.fail("state", cp.EventID, "conservation at the checkpoint: granted %s ≠ consumed %s + debt repaid %s + expired %s + adjusted out %s + credit %s",
			t.Granted, t.Consumed, t.DebtRepaid, t.Expired, t.AdjustedOut, cp.Credit)
	}
	if t.Usage-t.Consumed != cp.Debt+t.DebtRepaid {
		au.fail("state", cp.EventID, "debt at the checkpoint: usage %s − consumed %s ≠ debt %s + debt repaid %s", t.Usage, t.Consumed, cp.Debt, t.DebtRepaid)
	}
}

// CompareEventIDs orders two ledger event ids ("<ms>-<seq>", Redis stream ids):
// −1, 0 or +1. A malformed id sorts first.
func CompareEventIDs(a, b string) int {
	am, as := splitEventID(a)
	bm, bs := splitEventID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitEventID(id string) (uint64, uint64) {
	msPart, seqPart, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseUint(msPart, 10, 64)
	seq, _ := strconv.ParseUint(seqPart, 10, 64)
	return ms, seq
}

// auditPageSize is how many events AuditAccount reads per call.
const auditPageSize = 1000

// AuditAccount audits account id of l: it takes a snapshot (GetAccount), streams
// the ledger up to the snapshot's last event through an Audit, and returns the
// report. Activity on the account during the audit does not disturb it.
//
// When the store was trimmed but l serves the events trimmed (a HistoryLedger
// whose archive holds them all), the replay starts from the first event again
// instead of the checkpoint, and the checkpoint is held to the ledger: its
// event count and its credit and debt must be those of the replay at its event
// (check "state").
//
// A trim of the store while the ledger is read (a shipper's, with an archive)
// would take events from under the replay, which then disagrees with the
// snapshot: a report with problems is taken again when the checkpoint moved
// meanwhile, up to auditAttempts times.
func AuditAccount(ctx context.Context, l Ledger, id string) (AuditReport, error) {
	for attempt := 1; ; attempt++ {
		r, checkpoint, err := auditOnce(ctx, l, id)
		if err != nil || r.OK() || attempt == auditAttempts {
			return r, err
		}
		a, err := l.GetAccount(ctx, id)
		if err != nil {
			return AuditReport{}, err
		}
		if checkpointID(a) == checkpoint {
			return r, nil // nothing trimmed meanwhile: the problems are the ledger's
		}
	}
}

// auditAttempts bounds how often AuditAccount reads an account that trims keep
// moving under it.
const auditAttempts = 5

func checkpointID(a Account) string {
	if a.Checkpoint == nil {
		return ""
	}
	return a.Checkpoint.EventID
}

// auditOnce is one AuditAccount read, with the checkpoint it started from.
func auditOnce(ctx context.Context, l Ledger, id string) (AuditReport, string, error) {
	a, err := l.GetAccount(ctx, id)
	if err != nil {
		return AuditReport{}, "", err
	}
	checkpoint := checkpointID(a)
	var cp *Checkpoint
	if hl, ok := l.(HistoryLedger); ok && a.Checkpoint != nil {
		whole, err := hl.WholeHistory(ctx, id, *a.Checkpoint)
		if err != nil {
			return AuditReport{}, "", err
		}
		if whole {
			cp, a.Checkpoint = a.Checkpoint, nil
		}
	}
	au := NewAudit(a)
	var upToCheckpoint int64
	var atCheckpoint *Event
	after := ""
	for !au.Done() {
		page, err := l.Events(ctx, id, after, auditPageSize)
		if err != nil {
			return AuditReport{}, "", err
		}
		for _, ev := range page.Events {
			au.Event(ev)
			if cp != nil && CompareEventIDs(ev.ID, cp.EventID) <= 0 {
				upToCheckpoint++
				if ev.ID == cp.EventID {
					atCheckpoint = &ev
				}
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	r := au.Finish()
	if cp != nil {
		switch {
		case upToCheckpoint != cp.Events:
			r.Problems = append(r.Problems, AuditProblem{Check: "state", EventID: cp.EventID,
				Message: fmt.Sprintf("the checkpoint counts %d events trimmed, but the ledger read has %d up to it", cp.Events, upToCheckpoint)})
		case atCheckpoint == nil:
			r.Problems = append(r.Problems, AuditProblem{Check: "state", EventID: cp.EventID,
				Message: "the checkpoint's event is missing from the ledger read"})
		case atCheckpoint.CreditAfter != cp.Credit || atCheckpoint.DebtAfter != cp.Debt:
			r.Problems = append(r.Problems, AuditProblem{Check: "state", EventID: cp.EventID,
				Message: fmt.Sprintf("the checkpoint says credit %s, debt %s; its event says credit %s, debt %s", cp.Credit, cp.Debt, atCheckpoint.CreditAfter, atCheckpoint.DebtAfter)})
		}
	}
	return r, checkpoint, nil
}
