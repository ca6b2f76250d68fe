package web

// routes registers every route and middleware of cloud-app. It is the one
// place to read to know the whole surface (DESIGN section 11).
func (a *App) routes() {
	s := a.Server
	s.Use(a.securityHeaders)

	// Operations: liveness, readiness (database and schema), Prometheus.
	s.Health(a.deps.DB)
}
