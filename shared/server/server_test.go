package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A client cannot mint metric series with made-up methods: whatever it
// sends, the method label takes one of a fixed set of values.
func TestMetrics_MethodLabelIsBounded(t *testing.T) {
	s := New(Options{Name: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.GET("/thing", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	for _, m := range []string{"GET", "POST", "AAA1", "AAA2", "BREW", "get", strings.Repeat("X", 200)} {
		s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, "/thing", nil))
	}
	mfs, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "test_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					methods[l.GetValue()] = true
				}
			}
		}
	}
	if len(methods) != 3 || !methods["GET"] || !methods["POST"] || !methods["OTHER"] {
		t.Errorf("method labels %v; want GET, POST and OTHER", methods)
	}
	if n := testutil.CollectAndCount(s.Registry, "test_http_requests_total"); n > 6 {
		t.Errorf("%d request series for 7 requests on one route; made-up methods must share one", n)
	}
}

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":                "203.0.113.7",
		"::ffff:203.0.113.7":         "203.0.113.7",
		"2001:db8:1:2:aaaa::1":       "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::99": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":            "2001:db8:1:3::/64",
		"::1":                        "::/64",
		"not an ip":                  "not an ip",
	} {
		if got := LimitKey(in); got != want {
			t.Errorf("LimitKey(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestWaitOK(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := WaitOK(context.Background(), srv.URL, 10*time.Second); err != nil || calls.Load() != 3 {
		t.Errorf("WaitOK: %v after %d calls; want nil after 3", err, calls.Load())
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	if err := WaitOK(context.Background(), down.URL, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "answered 503") {
		t.Errorf("WaitOK on a 503: %v; want an error naming the 503", err)
	}
}
