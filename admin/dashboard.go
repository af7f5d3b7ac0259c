package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strings"
)

// DashboardPath is where the operator web dashboard is served.
const DashboardPath = "/dashboard/"

// dashboardCSP allows the page only its own script, stylesheet and same-origin
// API calls: no inline script or style, no eval, no framing, and no form
// submission by the browser (the page's script sends every form as JSON, so a
// form can never put the token into a URL, even if the script failed to load).
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// The page and its assets: plain HTML, CSS and JavaScript, no build step.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/app.css dashboard/favicon.svg
var dashboardFS embed.FS

// dashboardAsset is one embedded file, ready to serve.
type dashboardAsset struct {
	body        []byte
	contentType string
	etag        string
}

// dashboardAssets maps the name under DashboardPath ("" for the page) to its file.
var dashboardAssets = loadDashboard()

func loadDashboard() map[string]dashboardAsset {
	types := map[string]string{
		"index.html":  "text/html; charset=utf-8",
		"app.js":      "text/javascript; charset=utf-8",
		"app.css":     "text/css; charset=utf-8",
		"favicon.svg": "image/svg+xml",
	}
	assets := make(map[string]dashboardAsset, len(types)+1)
	for name, typ := range types {
		body, err := dashboardFS.ReadFile("dashboard/" + name)
		if err != nil {
			// Unreachable: the go:embed line above lists these very files, so
			// the build fails without them. A missing one would answer 404.
			continue
		}
		sum := sha256.Sum256(body)
		assets[name] = dashboardAsset{body: body, contentType: typ, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	if page, ok := assets["index.html"]; ok {
		assets[""] = page
	}
	return assets
}

// The dashboard's routes are public: the files hold no account data, and a
// browser cannot send a bearer token when it loads a page. The page's script
// asks the operator for the admin token and sends it with every API call, which
// the router checks as for any other client.
func init() {
	publicRoutes["GET /dashboard"] = true
	publicRoutes["GET "+DashboardPath] = true
}

// registerDashboard adds the operator web dashboard at DashboardPath.
func (s *Server) registerDashboard(mux *http.ServeMux) {
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, DashboardPath, http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET "+DashboardPath, serveDashboard)
}

func serveDashboard(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path+"/"), strings.TrimSuffix(DashboardPath, "/"))
	name = strings.TrimPrefix(name, "/")
	asset, ok := dashboardAssets[name]
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	// Revalidate on every load so an upgraded binary's page is picked up at once.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", asset.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, asset.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", asset.contentType)
	h.Set("Content-Length", fmt.Sprint(len(asset.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(asset.body)
	}
}

// etagMatches reports whether an If-None-Match header lists etag (or is "*").
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
