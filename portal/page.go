package portal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

// The page and its assets: plain HTML, CSS and JavaScript, no build step. The
// page is a template only for the session's CSRF token (a hidden field of each
// form, which the script also sends as a header) and for what is known before
// the first fetch; everything else the script draws from the JSON API.
//
//go:embed static/index.html static/message.html static/app.js static/app.css static/favicon.svg
var staticFS embed.FS

var (
	pageTemplate    = template.Must(template.ParseFS(staticFS, "static/index.html"))
	messageTemplate = template.Must(template.ParseFS(staticFS, "static/message.html"))
)

// asset is one embedded file served as it is.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets maps a file name under Path+"static/" to its file.
var assets = func() map[string]asset {
	types := map[string]string{
		"app.js":      "text/javascript; charset=utf-8",
		"app.css":     "text/css; charset=utf-8",
		"favicon.svg": "image/svg+xml",
	}
	out := make(map[string]asset, len(types))
	for name, typ := range types {
		body, err := staticFS.ReadFile("static/" + name)
		if err != nil {
			panic(err) // unreachable: go:embed lists these files, the build fails without them
		}
		sum := sha256.Sum256(body)
		out[name] = asset{body: body, contentType: typ, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}()

// serveStatic serves the page's script, style and icon: public, they hold no
// account data.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.PathValue("file")]
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	// Revalidate on every load so an upgraded binary's page is picked up at once.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(a.body)
}

// pageData is what the page's template needs.
type pageData struct {
	Account   string
	CSRF      string
	ReturnURL string
	// Payments: a provider is configured, so the page can sell credit.
	Payments bool
	// Demo: the demo provider; the page says nobody is charged.
	Demo bool
}

// servePage is the Billing page of the session's account.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, s *session) {
	d := pageData{Account: s.Account, CSRF: s.CSRF, Payments: h.Purchases != nil, Demo: h.Provider == "demo"}
	if safeReturnURL(s.ReturnURL) {
		d.ReturnURL = s.ReturnURL
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		writeError(w, errUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// messagePage is a short page: a link refused, a session ended, a form refused.
type messagePage struct {
	Title, Message string
	// Back links to the Billing page (the session is still there).
	Back bool
	// ReturnURL links back to the operator's app.
	ReturnURL string
}

func (h *Handler) render(w http.ResponseWriter, status int, p messagePage) {
	var buf bytes.Buffer
	if err := messageTemplate.Execute(&buf, p); err != nil {
		http.Error(w, p.Message, status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (h *Handler) renderMessage(w http.ResponseWriter, status int, title, message string, back bool) {
	h.render(w, status, messagePage{Title: title, Message: message, Back: back})
}
