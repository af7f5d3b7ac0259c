package proxy

import (
	"net/http"
	"strings"
)

// The Realtime API (/v1/realtime: a WebSocket, and its /v1/realtime/… session
// and call endpoints) is not metered: its usage arrives as events over a
// session of any length, which no hold bounds. creditgate refuses it with
// 400 unsupported_endpoint (not a 5xx, which the SDKs would retry) instead of
// the 404 of an unknown path, so an app learns why.

// isRealtimePath matches /v1/realtime and everything under it.
func isRealtimePath(path string) bool {
	return path == "/v1/realtime" || strings.HasPrefix(path, "/v1/realtime/")
}

func errRealtimeUnsupported() *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, code: "unsupported_endpoint",
		message: "The Realtime API (/v1/realtime) is not available through creditgate: it does not meter realtime sessions. Use /v1/chat/completions or /v1/responses (streamed), or call the Realtime API directly."}
}
