package client

import "github.com/creditgate/creditgate/billing/billingtest"

// The billing fakes are shared: see billing/billingtest.
type (
	fakeLedger = billingtest.Ledger
	fakeKeys   = billingtest.Keys
)
