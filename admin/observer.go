package admin

import "github.com/creditgate/creditgate/money"

// Observer is told about the money the admin API moved, once per booking: a
// replayed top-up or adjustment (the same Idempotency-Key) is not reported
// again. The CLI's credits commands go through the API and are reported here
// too. Methods are called on the request path and must not block.
type Observer interface {
	// ToppedUp reports a top-up: source is billing.SourcePurchase, or
	// billing.SourcePromo for one with its own expires_at.
	ToppedUp(source string, amount money.Micros)
	// Adjusted reports an adjustment of the signed amount.
	Adjusted(amount money.Micros)
}
