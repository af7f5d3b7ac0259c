package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
)

var billingLine = regexp.MustCompile(`(?m)^  (http://\S+/billing/login\?token=\S+)$`)

// checkBillingLink: when the banner prints a Billing link (the store keeps
// portal sessions), it opens the demo account's page once.
func checkBillingLink(t *testing.T, out string, b quickstartBanner) {
	t.Helper()
	m := billingLine.FindStringSubmatch(out)
	if m == nil {
		if strings.Contains(out, "Billing page") {
			t.Errorf("the banner names a Billing page without its link:\n%s", out)
		}
		return
	}
	if !strings.HasPrefix(m[1], strings.TrimSuffix(b.baseURL, "/v1")+"/billing/login?token=") {
		t.Errorf("Billing link %s is not on the data plane %s", m[1], b.baseURL)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="account">demo<`) {
		t.Errorf("the Billing link: HTTP %d at %s", res.StatusCode, res.Request.URL)
	}
}

// TestBannerBillingLine: the banner prints the Billing link when it has one.
func TestBannerBillingLine(t *testing.T) {
	for _, tc := range []struct {
		link string
		want bool
	}{{"http://localhost:8080/billing/login?token=abc", true}, {"", false}} {
		var buf bytes.Buffer
		if err := printBanner(&buf, banner{DataURL: "http://localhost:8080", AdminURL: "http://127.0.0.1:8081", Key: "sk-cg-x", BillingURL: tc.link}); err != nil {
			t.Fatal(err)
		}
		got := billingLine.FindStringSubmatch(buf.String())
		if (got != nil) != tc.want || (tc.want && got[1] != tc.link) {
			t.Errorf("link %q: banner\n%s", tc.link, buf.String())
		}
		if strings.Contains(buf.String(), "Billing page") != tc.want {
			t.Errorf("link %q: the Billing line is %v in\n%s", tc.link, !tc.want, buf.String())
		}
	}
}
