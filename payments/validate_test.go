package payments

import (
	"errors"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/money"
)

func TestCheckoutValidate(t *testing.T) {
	good := Checkout{PurchaseID: "pur_1", Account: "acme", Amount: 10 * money.Dollar,
		SuccessURL: "https://shop.example/ok?s={CHECKOUT_SESSION_ID}", CancelURL: "http://localhost:8080/billing/"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good checkout: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Checkout)
		want   string
	}{
		{"no purchase id", func(c *Checkout) { c.PurchaseID = "" }, "purchase id is empty"},
		{"purchase id with space", func(c *Checkout) { c.PurchaseID = "p 1" }, "purchase id"},
		{"purchase id too long", func(c *Checkout) { c.PurchaseID = strings.Repeat("p", MaxIDLen+1) }, "longer than"},
		{"no account", func(c *Checkout) { c.Account = "" }, "account id is empty"},
		{"account with quote", func(c *Checkout) { c.Account = "a'b" }, "account id"},
		{"account starting with dot", func(c *Checkout) { c.Account = ".a" }, "account id"},
		{"zero amount", func(c *Checkout) { c.Amount = 0 }, "must be positive"},
		{"negative amount", func(c *Checkout) { c.Amount = -money.Dollar }, "must be positive"},
		{"fraction of a cent", func(c *Checkout) { c.Amount = money.MustParse("10.001") }, "whole number of cents"},
		{"no success URL", func(c *Checkout) { c.SuccessURL = "" }, "success URL is empty"},
		{"relative cancel URL", func(c *Checkout) { c.CancelURL = "/billing/" }, "cancel URL"},
		{"javascript URL", func(c *Checkout) { c.SuccessURL = "javascript:alert(1)" }, "success URL"},
	}
	for _, tt := range tests {
		c := good
		tt.change(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v; want ErrInvalid mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestChargeValidate(t *testing.T) {
	good := Charge{ID: "rc_1", Account: "acme", CustomerID: "cus_1", PaymentMethodID: "pm_1", Amount: 5 * money.Dollar}
	if err := good.Validate(); err != nil {
		t.Fatalf("good charge: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Charge)
		want   string
	}{
		{"no id", func(c *Charge) { c.ID = "" }, "recharge id is empty"},
		{"no account", func(c *Charge) { c.Account = "" }, "account id is empty"},
		{"no customer", func(c *Charge) { c.CustomerID = "" }, "no customer"},
		{"no payment method", func(c *Charge) { c.PaymentMethodID = "" }, "no payment method"},
		{"fraction of a cent", func(c *Charge) { c.Amount = 1 }, "whole number of cents"},
		{"zero", func(c *Charge) { c.Amount = 0 }, "must be positive"},
	}
	for _, tt := range tests {
		c := good
		tt.change(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v; want ErrInvalid mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestCardString(t *testing.T) {
	tests := []struct {
		card       Card
		str, expir string
	}{
		{Card{Brand: "visa", Last4: "4242", ExpMonth: 3, ExpYear: 2031}, "Visa •••• 4242", "03/2031"},
		{Card{Brand: "amex", Last4: "0005", ExpMonth: 12, ExpYear: 2030}, "American Express •••• 0005", "12/2030"},
		{Card{Brand: "demo", Last4: "4242"}, "Demo card •••• 4242", "00/0000"},
		{Card{Brand: "new_brand", Last4: "1111"}, "New brand •••• 1111", "00/0000"},
		{Card{Brand: "", Last4: "1111"}, "Card •••• 1111", "00/0000"},
	}
	for _, tt := range tests {
		if got := tt.card.String(); got != tt.str {
			t.Errorf("%+v.String() = %q, want %q", tt.card, got, tt.str)
		}
		if got := tt.card.Expiry(); got != tt.expir {
			t.Errorf("%+v.Expiry() = %q, want %q", tt.card, got, tt.expir)
		}
	}
}
