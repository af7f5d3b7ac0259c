package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing/billingtest"
)

// readCounter is a request body that counts the bytes read from it, and fails
// with err once they are all read (io.EOF for a whole body).
type readCounter struct {
	r   io.Reader
	n   int
	err error
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if err == io.EOF {
		err = c.err
	}
	return n, err
}

func (c *readCounter) Close() error { return nil }

// Authentication comes before the body: a request with a missing, foreign or
// unknown key is refused without a byte of its body read, and its connection
// closed after the answer (net/http would otherwise read what is left of the
// body to keep it, however slowly it came). A body cut by the server's read
// deadline (too slow) is answered 408; one that breaks otherwise, 400.
func TestTheBodyIsReadOnlyAfterTheKey(t *testing.T) {
	body := chatBody("gpt-4o-mini", false, "")
	tests := []struct {
		name        string
		key         string
		bodyErr     error
		wantStatus  int
		wantRead    bool
		wantClose   bool
		wantErrCode string
	}{
		{"no key", "", io.EOF, 401, false, true, "invalid_api_key"},
		{"a foreign key", "sk-proj-abc", io.EOF, 401, false, true, "invalid_api_key"},
		{"an unknown key", "sk-cg-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", io.EOF, 401, false, true, "invalid_api_key"},
		{"a body too slow", ruleKey, fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded), 408, true, false, "request_timeout"},
		{"a broken body", ruleKey, errors.New("connection reset by peer"), 400, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ruleProxy(t, &billingtest.Ledger{}, true)
			rc := &readCounter{r: strings.NewReader(body), err: tt.bodyErr}
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			r.Body, r.ContentLength = rc, int64(len(body))+10 // more announced than sent: the read fails at the end
			if tt.key != "" {
				r.Header.Set("Authorization", "Bearer "+tt.key)
			}
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", w.Code, w.Body, tt.wantStatus)
			}
			if (rc.n > 0) != tt.wantRead {
				t.Fatalf("%d body bytes read; want read: %v", rc.n, tt.wantRead)
			}
			if got := w.Header().Get("Connection") == "close"; got != tt.wantClose {
				t.Fatalf("Connection: %q; want close: %v", w.Header().Get("Connection"), tt.wantClose)
			}
			if tt.wantErrCode != "" && !strings.Contains(w.Body.String(), `"code": "`+tt.wantErrCode+`"`) {
				t.Fatalf("body %s, want code %s", w.Body, tt.wantErrCode)
			}
		})
	}
}
