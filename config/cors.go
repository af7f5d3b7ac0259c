package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxCORSMaxAge bounds cors.max_age: Firefox's own cap (Chromium's is 2h).
const maxCORSMaxAge = 24 * time.Hour

// validateCORS checks the allowed origins (each exact, or "*" alone), that
// credentials are never allowed with "*", and the preflight cache's age.
func validateCORS(c *Config, ps *Problems) {
	cors := c.CORS
	seen := map[string]bool{}
	for i, o := range cors.AllowedOrigins {
		key := "cors.allowed_origins[" + strconv.Itoa(i) + "]"
		switch {
		case o == "*":
			if len(cors.AllowedOrigins) > 1 {
				ps.add(key, `"*" allows every origin: list it alone, or list exact origins`)
			}
			if cors.AllowCredentials {
				ps.add("cors.allow_credentials", `cannot be true with "*" in cors.allowed_origins: credentials are only ever allowed for exact origins`)
			}
		case seen[o]:
			ps.add(key, "%q is listed twice", o)
		default:
			if msg := originProblem(o); msg != "" {
				ps.add(key, "%q %s", o, msg)
			}
		}
		seen[o] = true
	}
	if cors.MaxAge < 0 || cors.MaxAge > maxCORSMaxAge {
		ps.add("cors.max_age", "must be from 0 to %s, got %s", maxCORSMaxAge, cors.MaxAge)
	}
}

// originProblem says what is wrong with an origin as browsers send it in the
// Origin header: scheme://host[:port], lower case, nothing after; "" when
// nothing is.
func originProblem(o string) string {
	u, err := url.Parse(o)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return `is not an origin: want scheme://host[:port], e.g. "https://app.example.com"`
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be http or https"
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "/"):
		return `has more than scheme://host[:port] (browsers send no path, query or trailing slash): want e.g. "https://app.example.com"`
	case o != strings.ToLower(o):
		return "must be lower case, as browsers send it"
	case strings.Contains(u.Host, "*"):
		return `has a wildcard: list each origin, or "*" alone`
	}
	return ""
}
