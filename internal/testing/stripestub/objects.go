package stripestub

// The Stripe objects the stand-in keeps, in Stripe's JSON shape (the fields
// creditgate and stripe-go read, with Stripe's names). Unexpanded references are
// ids, as Stripe sends them.

// Customer is a Stripe customer.
type Customer struct {
	ID              string            `json:"id"`
	Object          string            `json:"object"` // "customer"
	Created         int64             `json:"created"`
	Email           *string           `json:"email"`
	Name            *string           `json:"name"`
	Description     *string           `json:"description"`
	Metadata        map[string]string `json:"metadata"`
	Livemode        bool              `json:"livemode"`
	InvoiceSettings InvoiceSettings   `json:"invoice_settings"`
}

// InvoiceSettings holds the customer's default payment method: an id, the
// expanded PaymentMethod, or nil.
type InvoiceSettings struct {
	DefaultPaymentMethod any `json:"default_payment_method"`
}

// PaymentMethod is a saved (or one-time) card.
type PaymentMethod struct {
	ID       string            `json:"id"`
	Object   string            `json:"object"` // "payment_method"
	Type     string            `json:"type"`   // "card"
	Card     CardDetails       `json:"card"`
	Customer *string           `json:"customer"` // nil unless saved to a customer
	Created  int64             `json:"created"`
	Livemode bool              `json:"livemode"`
	Metadata map[string]string `json:"metadata"`
}

// CardDetails is what Stripe tells about a card.
type CardDetails struct {
	Brand    string `json:"brand"`
	Last4    string `json:"last4"`
	ExpMonth int64  `json:"exp_month"`
	ExpYear  int64  `json:"exp_year"`
	Funding  string `json:"funding"`
	Country  string `json:"country"`
}

// CheckoutSession is a Checkout Session in mode payment.
type CheckoutSession struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"` // "checkout.session"
	Mode              string            `json:"mode"`
	Status            string            `json:"status"`         // open, complete, expired
	PaymentStatus     string            `json:"payment_status"` // unpaid, paid
	AmountSubtotal    int64             `json:"amount_subtotal"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
	ClientReferenceID *string           `json:"client_reference_id"`
	Customer          *string           `json:"customer"`
	CustomerEmail     *string           `json:"customer_email"`
	Metadata          map[string]string `json:"metadata"`
	PaymentIntent     *string           `json:"payment_intent"` // set once the customer pays
	SuccessURL        string            `json:"success_url"`
	CancelURL         *string           `json:"cancel_url"`
	URL               *string           `json:"url"` // nil once complete or expired
	ExpiresAt         int64             `json:"expires_at"`
	Created           int64             `json:"created"`
	Livemode          bool              `json:"livemode"`

	// What the session was created with that Stripe does not echo: the
	// PaymentIntent's future data.
	PaymentIntentData PaymentIntentData `json:"-"`
}

// PaymentIntentData is a session's payment_intent_data.
type PaymentIntentData struct {
	SetupFutureUsage string
	Metadata         map[string]string
	Description      string
}

// PaymentIntent is a payment.
type PaymentIntent struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"` // "payment_intent"
	Amount           int64             `json:"amount"`
	AmountReceived   int64             `json:"amount_received"`
	Currency         string            `json:"currency"`
	Customer         *string           `json:"customer"`
	PaymentMethod    *string           `json:"payment_method"`
	Status           string            `json:"status"`
	SetupFutureUsage *string           `json:"setup_future_usage"`
	Metadata         map[string]string `json:"metadata"`
	Description      *string           `json:"description"`
	LatestCharge     *string           `json:"latest_charge"`
	LastPaymentError *PaymentError     `json:"last_payment_error"`
	ClientSecret     string            `json:"client_secret"`
	Created          int64             `json:"created"`
	Livemode         bool              `json:"livemode"`
}

// PaymentError is a PaymentIntent's last_payment_error and the body of a card error.
type PaymentError struct {
	Type          string         `json:"type"` // "card_error"
	Code          string         `json:"code"`
	DeclineCode   string         `json:"decline_code,omitempty"`
	Message       string         `json:"message"`
	DocURL        string         `json:"doc_url,omitempty"`
	Charge        string         `json:"charge,omitempty"`
	PaymentIntent *PaymentIntent `json:"payment_intent,omitempty"`
	PaymentMethod *PaymentMethod `json:"payment_method,omitempty"`
}

// Charge is a card charge of a PaymentIntent.
type Charge struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"` // "charge"
	Amount         int64             `json:"amount"`
	AmountCaptured int64             `json:"amount_captured"`
	AmountRefunded int64             `json:"amount_refunded"`
	Refunded       bool              `json:"refunded"`
	Disputed       bool              `json:"disputed"`
	Captured       bool              `json:"captured"`
	Paid           bool              `json:"paid"`
	Status         string            `json:"status"` // succeeded, failed
	Currency       string            `json:"currency"`
	Customer       *string           `json:"customer"`
	PaymentIntent  string            `json:"payment_intent"`
	PaymentMethod  string            `json:"payment_method"`
	FailureCode    *string           `json:"failure_code"`
	FailureMessage *string           `json:"failure_message"`
	Metadata       map[string]string `json:"metadata"` // copied from the PaymentIntent, as Stripe does
	ReceiptURL     *string           `json:"receipt_url"`
	Created        int64             `json:"created"`
	Livemode       bool              `json:"livemode"`
}

// Refund gives back part or all of a charge.
type Refund struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"` // "refund"
	Amount        int64             `json:"amount"`
	Charge        string            `json:"charge"`
	PaymentIntent string            `json:"payment_intent"`
	Currency      string            `json:"currency"`
	Status        string            `json:"status"`
	Metadata      map[string]string `json:"metadata"`
	Created       int64             `json:"created"`
}

// Dispute is a cardholder's chargeback of a charge.
type Dispute struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"` // "dispute"
	Amount        int64             `json:"amount"`
	Charge        string            `json:"charge"`
	PaymentIntent string            `json:"payment_intent"`
	Currency      string            `json:"currency"`
	Reason        string            `json:"reason"`
	Status        string            `json:"status"`
	Metadata      map[string]string `json:"metadata"`
	Created       int64             `json:"created"`
	Livemode      bool              `json:"livemode"`
}

// list is Stripe's list object; searchResult its search result.
type list struct {
	Object  string `json:"object"` // "list"
	Data    any    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

type searchResult struct {
	Object   string  `json:"object"` // "search_result"
	Data     any     `json:"data"`
	HasMore  bool    `json:"has_more"`
	NextPage *string `json:"next_page"`
	URL      string  `json:"url"`
}

// apiError is Stripe's error body: {"error": {...}}.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Type          string         `json:"type"`
	Code          string         `json:"code,omitempty"`
	DeclineCode   string         `json:"decline_code,omitempty"`
	Message       string         `json:"message"`
	Param         string         `json:"param,omitempty"`
	DocURL        string         `json:"doc_url,omitempty"`
	Charge        string         `json:"charge,omitempty"`
	PaymentIntent *PaymentIntent `json:"payment_intent,omitempty"`
	PaymentMethod *PaymentMethod `json:"payment_method,omitempty"`
	RequestLogURL string         `json:"request_log_url,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// copyMeta copies metadata so a snapshot does not share the map.
func copyMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
