package confluencesim

import (
	"net/http"
)

// routes is the simulator's one route table.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()

	// Called by the app: its signed-install verifier fetches the key here
	// (CLOUD_APP_INSTALL_KEYS_URL = InstallKeysURL()), and its pages load
	// the all.js stand-in from the tenant's origin.
	mux.HandleFunc("GET /install-keys/{kid}", s.handleInstallKey)
	mux.HandleFunc("GET /atlassian-connect/all.js", s.handleAllJS)

	// The REST API the app calls, JWT-verified.
	mux.Handle("GET /wiki/api/v2/spaces", s.api(flavorV2, s.listSpaces))
	mux.Handle("GET /wiki/api/v2/spaces/{id}", s.api(flavorV2, s.getSpace))
	mux.Handle("GET /wiki/api/v2/spaces/{id}/permissions", s.api(flavorV2, s.listSpacePermissions))
	mux.Handle("GET /wiki/rest/api/user", s.api(flavorV1, s.getUser))
	mux.Handle("GET /wiki/rest/api/user/memberof", s.api(flavorV1, s.memberOf))
	mux.Handle("GET /wiki/rest/api/search/user", s.api(flavorV1, s.searchUsers))
	mux.Handle("GET /wiki/rest/api/group/picker", s.api(flavorV1, s.groupPicker))
	mux.Handle("/wiki/api/", s.api(flavorV2, s.unknownEndpoint(mux)))
	mux.Handle("/wiki/rest/", s.api(flavorV1, s.unknownEndpoint(mux)))

	// Browser pages.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/wiki/", http.StatusFound) })
	mux.HandleFunc("GET /wiki", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/wiki/", http.StatusFound) })
	mux.HandleFunc("GET /wiki/{$}", s.handleIndex)
	mux.HandleFunc("GET /wiki/plugins/servlet/ac/{appKey}/{moduleKey}", s.handleModule)
	mux.HandleFunc("GET /wiki/admin/apps", s.handleAdmin)
	mux.HandleFunc("POST /wiki/admin/apps/{action}", s.handleAdminAction)
	mux.HandleFunc("POST /wiki/_sim/user", s.handleSwitchUser)
	// host.js asks for a context token here when the app iframe calls
	// AP.context.getToken.
	mux.HandleFunc("POST /wiki/_sim/context-token", s.handleContextToken)
	mux.HandleFunc("GET /wiki/_sim/static/{file}", s.handleStatic)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"statusCode": http.StatusNotFound, "message": "No resource at " + truncate(r.URL.Path, 200)})
	})
	return s.recoverer(mux)
}

// unknownEndpoint answers REST paths the simulator does not serve: 405 for
// a known path with another method, 404 otherwise.
func (s *Sim) unknownEndpoint(mux *http.ServeMux) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		if r.Method != http.MethodGet {
			probe := r.Clone(r.Context())
			probe.Method = http.MethodGet
			if _, pattern := mux.Handler(probe); pattern != "/wiki/api/" && pattern != "/wiki/rest/" {
				w.Header().Set("Allow", "GET")
				return &apiError{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method " + r.Method + " is not supported here"}
			}
		}
		return notFound("No endpoint at %s (the simulator serves only the endpoints Space Sync calls)", truncate(r.URL.Path, 200))
	}
}

// recoverer turns a panic into a 500 so one bad request cannot take the
// simulator down; handlers are written not to panic.
func (s *Sim) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, map[string]any{"statusCode": 500, "message": "internal simulator error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
