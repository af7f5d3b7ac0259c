package admin

import "net/http"

// registerDashboard adds the operator web dashboard.
func (s *Server) registerDashboard(mux *http.ServeMux) {}
