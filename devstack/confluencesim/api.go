package confluencesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"spacesync.io/devstack/confluencesim/internal/connectjwt"
)

// contextPath is Confluence Cloud's context path; qsh paths are relative to
// it.
const contextPath = "/wiki"

// apiFlavor selects the error body shape: the v1 REST API and the v2 API
// answer errors differently.
type apiFlavor int

const (
	flavorV1 apiFlavor = iota
	flavorV2
)

// apiError is an error a REST handler returns; the api middleware renders it
// in the shape of the endpoint's API version.
type apiError struct {
	status  int
	code    string // v2 error code, e.g. INVALID_REQUEST_PARAMETER
	message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, "NOT_FOUND", fmt.Sprintf(format, args...)}
}

// call is what the api middleware hands a REST handler: the verified
// request's decoded query and the installed app.
type call struct {
	query map[string][]string
	app   *descriptor
}

// first returns the first value of a query parameter, or "".
func (c *call) first(name string) string {
	if v := c.query[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

type apiHandler func(w http.ResponseWriter, r *http.Request, c *call) error

// authFailure is why a request was refused with 401 or 403. The message is
// sent to the app and recorded; it never contains the token or a secret.
type authFailure struct {
	status  int
	message string
}

// api wraps a REST handler: it verifies the app's JWT as Confluence does,
// enforces scopes, applies injected faults, records the call and renders
// errors.
func (s *Sim) api(flavor apiFlavor, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rawPath, rawQuery := requestTarget(r)
		sw := &statusWriter{ResponseWriter: w}
		rec := RecordedRequest{Method: r.Method, Path: rawPath, Query: redactJWT(rawQuery), Time: start}
		defer func() {
			rec.Status = sw.status
			s.record(rec)
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "api call",
				slog.String("method", r.Method), slog.String("path", rawPath),
				slog.Bool("verified", rec.Verified), slog.Int("status", sw.status),
				slog.String("refused", rec.Reason), slog.Duration("took", time.Since(start)))
		}()
		c, fail := s.verify(r, rawPath, rawQuery)
		if fail != nil {
			rec.Reason = fail.message
			writeJSON(sw, fail.status, map[string]any{"code": fail.status, "message": fail.message})
			return
		}
		rec.Verified = true
		if r.Method == http.MethodGet && !c.app.scopes()["READ"] {
			rec.Reason = "the app's descriptor does not request the READ scope"
			writeJSON(sw, http.StatusForbidden, map[string]any{"code": http.StatusForbidden, "message": "Unauthorized; scope does not match"})
			return
		}
		if f, ok := s.nextFault(rawPath, rawQuery); ok {
			rec.Reason = "injected fault"
			f.write(sw)
			return
		}
		if err := h(sw, r, c); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				s.log.Error("api handler failed", "path", rawPath, "err", err)
				ae = &apiError{http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "internal simulator error"}
			}
			rec.Reason = ae.message
			writeAPIError(sw, flavor, ae)
		}
	})
}

// verify checks the request's JWT as Confluence Cloud does for calls from
// an app: Authorization "JWT <token>", HS256 with the tenant's shared
// secret, iss equal to the app key, exp and iat, and a qsh equal to the hash
// of this request with its path relative to /wiki.
func (s *Sim) verify(r *http.Request, rawPath, rawQuery string) (*call, *authFailure) {
	unauthorized := func(format string, args ...any) (*call, *authFailure) {
		return nil, &authFailure{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
	}
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return unauthorized("No app is installed on this site.")
	}
	if !st.Enabled {
		return unauthorized("The app %s is disabled on this site.", d.Key)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return unauthorized("Missing Authorization header; Connect apps send Authorization: JWT <token>.")
	}
	scheme, raw, _ := strings.Cut(h, " ")
	if scheme != "JWT" {
		return unauthorized("Authorization scheme %q is not accepted; Connect apps send Authorization: JWT <token>.", truncate(scheme, 20))
	}
	tok, err := connectjwt.Parse(strings.TrimSpace(raw))
	if err != nil {
		return unauthorized("The JWT is malformed: %v.", err)
	}
	if tok.Header.Alg != "HS256" {
		return unauthorized("The JWT algorithm %q is not accepted; app requests are signed with HS256.", truncate(tok.Header.Alg, 20))
	}
	if tok.Claims.Iss != d.Key {
		hint := ""
		if tok.Claims.Iss == st.ClientKey {
			hint = " (it is the clientKey; requests to the product carry the app key)"
		}
		return unauthorized("The JWT iss %q is not the key of an app installed here%s.", truncate(tok.Claims.Iss, 80), hint)
	}
	if err := tok.VerifyHS256([]byte(st.SharedSecret)); err != nil {
		return unauthorized("The JWT signature does not verify with this site's shared secret.")
	}
	if err := tok.CheckTimes(s.now(), verifyLeeway); err != nil {
		return unauthorized("The JWT is not valid now: %v.", err)
	}
	canonical, err := connectjwt.CanonicalRequest(r.Method, rawPath, rawQuery, contextPath)
	if err != nil {
		return unauthorized("The query string does not parse: %v.", err)
	}
	switch tok.Claims.Qsh {
	case "":
		return unauthorized("The JWT has no qsh claim.")
	case connectjwt.ContextQSH:
		return unauthorized("A context token (qsh %q) cannot call the product's REST API.", connectjwt.ContextQSH)
	case connectjwt.Hash(canonical):
	default:
		return unauthorized("The JWT qsh does not match this request (canonical request: %q).", canonical)
	}
	// The query parsed while hashing; parse again for the handler.
	q, _ := connectjwt.ParseQuery(rawQuery)
	return &call{query: q, app: d}, nil
}

// requestTarget returns the raw path and raw query exactly as the client
// sent them.
func requestTarget(r *http.Request) (path, query string) {
	if strings.HasPrefix(r.RequestURI, "/") {
		return connectjwt.SplitURL(r.RequestURI)
	}
	return r.URL.EscapedPath(), r.URL.RawQuery
}

// redactJWT removes the value of any jwt parameter from a raw query.
func redactJWT(rawQuery string) string {
	if !strings.Contains(rawQuery, "jwt") {
		return rawQuery
	}
	parts := strings.Split(rawQuery, "&")
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok && name == "jwt" {
			parts[i] = "jwt=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"statusCode":500,"message":"internal simulator error"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeAPIError renders an error in the endpoint's API flavour: v2 answers
// {"errors":[{status, code, title, detail}]}, v1 answers
// {statusCode, data, message}.
func writeAPIError(w http.ResponseWriter, flavor apiFlavor, e *apiError) {
	if flavor == flavorV2 {
		writeJSON(w, e.status, map[string]any{"errors": []map[string]any{
			{"status": e.status, "code": e.code, "title": e.message, "detail": nil},
		}})
		return
	}
	writeJSON(w, e.status, map[string]any{
		"statusCode": e.status,
		"data":       map[string]any{"authorized": e.status != http.StatusForbidden, "valid": e.status != http.StatusBadRequest, "errors": []any{}, "successful": false},
		"message":    e.message,
	})
}
