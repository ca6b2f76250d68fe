// Package server builds the Echo server both services run on: request ids,
// panic recovery, an access log that keeps secrets out, an explicit client-IP
// extractor, Prometheus metrics, health and readiness endpoints, the one error
// hook that renders *apperr.Error, and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
)

// Options configures New.
type Options struct {
	// Name is the service name, used as the metrics namespace prefix.
	Name   string
	Logger *slog.Logger
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	// Empty means the client IP is the TCP peer, always.
	TrustedProxies []*net.IPNet
	// Registry receives the HTTP metrics; nil means a new registry.
	Registry *prometheus.Registry
	// HTMLError renders an error page for browser requests; nil means JSON
	// everywhere.
	HTMLError func(c echo.Context, e *apperr.Error, requestID string) error
	// IsAPI tells whether a request wants JSON errors; nil means paths under
	// /api/ and requests that accept JSON but not HTML.
	IsAPI func(c echo.Context) bool
}

// Server is an Echo instance with its metrics registry.
type Server struct {
	*echo.Echo
	Registry *prometheus.Registry
	log      *slog.Logger
	trusted  []*net.IPNet
}

// New returns a configured Echo server. Routes are added by the service.
func New(o Options) *Server {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = IPExtractor(o.TrustedProxies)
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{Echo: e, Registry: reg, log: o.Logger, trusted: o.TrustedProxies}
	isAPI := o.IsAPI
	if isAPI == nil {
		isAPI = DefaultIsAPI
	}
	e.HTTPErrorHandler = errorHandler(o.Logger, isAPI, o.HTMLError)
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: newRequestID,
	}))
	e.Use(accessLog(o.Logger, newMetrics(o.Name, reg)))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			o.Logger.Error("panic", "request_id", RequestID(c), "err", err, "stack", string(stack))
			return err
		},
	}))
	return s
}

// DefaultIsAPI treats /api/ paths and JSON-only clients as API requests.
func DefaultIsAPI(c echo.Context) bool {
	r := c.Request()
	if strings.HasPrefix(r.URL.Path, "/api/") {
		return true
	}
	accept := r.Header.Get("Accept")
	return !strings.Contains(accept, "text/html")
}

// IPExtractor returns Echo's X-Forwarded-For extractor trusting only the
// given networks, or the direct peer address when there are none. Loopback,
// link-local and private ranges are not trusted implicitly.
func IPExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// TLSRequest reports whether r reached the service over TLS: on a TLS
// connection, or from a trusted proxy (Options.TrustedProxies, the direct
// peer) whose X-Forwarded-Proto says https. The header from any other peer
// is ignored, so a client cannot claim TLS; Echo's Context.Scheme, which
// believes it from anyone, must not be used for security decisions.
func (s *Server) TLSRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if len(s.trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer := net.ParseIP(host)
	if peer == nil || !slices.ContainsFunc(s.trusted, func(n *net.IPNet) bool { return n.Contains(peer) }) {
		return false
	}
	// A proxy that appends rather than replaces puts its own value last.
	vals := r.Header.Values(echo.HeaderXForwardedProto)
	if len(vals) == 0 {
		return false
	}
	last := vals[len(vals)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}

// RequestID returns the request id of c.
func RequestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

func newRequestID() string {
	var b [12]byte
	randRead(b[:])
	return fmt.Sprintf("%x", b)
}

// Health registers GET /healthz (the process is up), GET /readyz (the
// database answers and its schema is current) and GET /metrics.
func (s *Server) Health(d *db.DB) {
	s.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	s.GET("/readyz", func(c echo.Context) error {
		if err := d.Ready(c.Request().Context()); err != nil {
			s.log.Warn("not ready", "err", err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": readinessReason(err)})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	s.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})))
}

func readinessReason(err error) string {
	if db.Unavailable(err) {
		return "database unreachable"
	}
	if strings.Contains(err.Error(), "schema at version") {
		return "database schema is not current"
	}
	return "database not ready"
}

// Serve listens on addr and serves until ctx is done, then shuts down
// gracefully, giving in-flight requests up to grace to finish. ready, if
// not nil, receives the bound address once listening.
func (s *Server) Serve(ctx context.Context, addr string, grace time.Duration, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           s.Echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// RedactedURI is the request URI with the values of secret-bearing query
// parameters (jwt, token, signature) replaced, for logs.
func RedactedURI(u *url.URL) string {
	if u.RawQuery == "" {
		return u.EscapedPath()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return u.EscapedPath() + "?<unparsable query>"
	}
	for k := range q {
		switch strings.ToLower(k) {
		case "jwt", "token", "signature", "secret", "password":
			q[k] = []string{"REDACTED"}
		}
	}
	return u.EscapedPath() + "?" + q.Encode()
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(name string, reg *prometheus.Registry) *metrics {
	ns := strings.ReplaceAll(name, "-", "_")
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// metricMethod is the method label: the standard methods as they are, any
// other string a client sends as OTHER, so that clients cannot mint series.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func accessLog(log *slog.Logger, m *metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			d := time.Since(start)
			method := metricMethod(c.Request().Method)
			m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
			m.duration.WithLabelValues(route, method).Observe(d.Seconds())
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				return nil
			}
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("request_id", RequestID(c)),
				slog.String("method", c.Request().Method),
				slog.String("uri", RedactedURI(c.Request().URL)),
				slog.Int("status", status),
				slog.Duration("duration", d),
				slog.String("ip", c.RealIP()),
			)
			return nil
		}
	}
}

// Probe is the container health check: it GETs http://127.0.0.1<port>/readyz
// (the port taken from addr) and returns an error unless it answers 200.
// Images without a shell or curl run the binary itself as the check.
func Probe(addr, path string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port) + path)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", path, resp.StatusCode)
	}
	return nil
}

// WaitOK polls url until it answers 200, for at most timeout (start-up
// waits of the local stack and of tests). The error names the last answer.
func WaitOK(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %v: %w", url, timeout, errors.Join(last, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LimitKey is the key a per-client rate limit counts under for ip (as
// c.RealIP() gives it): the address itself for IPv4, and its /64 network
// for IPv6, because one IPv6 client is typically given a whole /64 and can
// rotate through it. A value that is not an IP address is its own key.
func LimitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
