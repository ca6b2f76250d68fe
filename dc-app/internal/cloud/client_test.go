package cloud

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
)

// proxyHits counts requests that went through the test proxy.
var proxyHits atomic.Int32

// TestMain starts a forward proxy and names it in HTTP_PROXY before any
// client reads the environment (net/http reads it once per process).
// Loopback URLs are never proxied, so the other tests go direct.
func TestMain(m *testing.M) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxyHits.Add(1)
		if r.URL.Host != "cloud.test" {
			http.Error(w, "unexpected host", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"tokenId":"jti-via-proxy-000001","state":"usable"}`))
	}))
	os.Setenv("HTTP_PROXY", proxy.URL)
	os.Setenv("HTTPS_PROXY", proxy.URL)
	code := m.Run()
	proxy.Close()
	os.Exit(code)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestClient_Proxy(t *testing.T) {
	c := New(Options{Timeout: 5 * time.Second})
	p, err := c.Preview(context.Background(), mustURL(t, "http://cloud.test"), "tok")
	if err != nil || p.TokenID != "jti-via-proxy-000001" || proxyHits.Load() != 1 {
		t.Fatalf("preview through HTTP_PROXY: %+v, %v, %d proxy hits", p, err, proxyHits.Load())
	}
}

func TestClient_NoRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	c := New(Options{})
	_, err := c.Redeem(context.Background(), mustURL(t, redirector.URL), protocol.RedemptionRequest{Token: "t"})
	var unknown *UnknownOutcomeError
	if !errors.As(err, &unknown) || unknown.Status != http.StatusTemporaryRedirect {
		t.Errorf("redirect answer: %v", err)
	}
	if _, err := c.Preview(context.Background(), mustURL(t, redirector.URL), "t"); !errors.As(err, &unknown) {
		t.Errorf("preview redirect: %v", err)
	}
	if targetHits.Load() != 0 {
		t.Errorf("the redirect was followed %d times", targetHits.Load())
	}
}

func TestClient_Outcomes(t *testing.T) {
	ctx := context.Background()
	c := New(Options{Timeout: 2 * time.Second})
	t.Run("NotSent", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close() // nothing listens: the connection is refused
		_, err := c.Redeem(ctx, mustURL(t, "http://"+addr), protocol.RedemptionRequest{Token: "t"})
		var ns *NotSentError
		if !errors.As(err, &ns) {
			t.Errorf("refused connection: %T %v", err, err)
		}
	})
	t.Run("UnknownAfterSending", func(t *testing.T) {
		var got atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Add(1)
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}))
		defer srv.Close()
		_, err := c.Redeem(ctx, mustURL(t, srv.URL), protocol.RedemptionRequest{Token: "t"})
		var unknown *UnknownOutcomeError
		if !errors.As(err, &unknown) || got.Load() == 0 {
			t.Errorf("answer lost after sending: %T %v (server saw %d)", err, err, got.Load())
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		defer srv.Close()
		defer close(release)
		short := New(Options{Timeout: 200 * time.Millisecond})
		_, err := short.Redeem(ctx, mustURL(t, srv.URL), protocol.RedemptionRequest{Token: "t"})
		var unknown *UnknownOutcomeError
		if !errors.As(err, &unknown) {
			t.Errorf("timeout after sending: %T %v", err, err)
		}
	})
	answer := func(status int, body string) *url.URL {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return mustURL(t, srv.URL)
	}
	t.Run("Refusal", func(t *testing.T) {
		_, err := c.Redeem(ctx, answer(409, `{"error":{"code":"token_used","message":"used"}}`), protocol.RedemptionRequest{})
		var ref *Refusal
		if !errors.As(err, &ref) || ref.Code != apperr.TokenUsed || !ref.Final() {
			t.Errorf("409 token_used: %v", err)
		}
	})
	t.Run("NonFinalRefusal", func(t *testing.T) {
		_, err := c.Redeem(ctx, answer(503, `{"error":{"code":"unavailable","message":"down"}}`), protocol.RedemptionRequest{})
		var ref *Refusal
		if !errors.As(err, &ref) || ref.Final() {
			t.Errorf("503 unavailable must not be final: %v", err)
		}
	})
	t.Run("NoCode", func(t *testing.T) {
		_, err := c.Redeem(ctx, answer(400, `<html>Bad Request</html>`), protocol.RedemptionRequest{})
		var unknown *UnknownOutcomeError
		if !errors.As(err, &unknown) {
			t.Errorf("an answer without a code is no definite refusal: %v", err)
		}
	})
	t.Run("Created", func(t *testing.T) {
		r, err := c.Redeem(ctx, answer(201, `{"link":{"id":"l1","syncId":"s1","status":"active"}}`), protocol.RedemptionRequest{})
		if err != nil || r.Link.ID != "l1" || !r.Created {
			t.Errorf("201: %+v %v", r, err)
		}
		r, err = c.Redeem(ctx, answer(200, `{"link":{"id":"l1"}}`), protocol.RedemptionRequest{})
		if err != nil || r.Created {
			t.Errorf("200 replay: %+v %v", r, err)
		}
	})
	t.Run("Unlink", func(t *testing.T) {
		if err := c.Unlink(ctx, answer(204, ``), "s"); err != nil {
			t.Errorf("204: %v", err)
		}
		if err := c.Unlink(ctx, answer(401, `{"error":{"code":"unauthorized","message":"no"}}`), "s"); !errors.Is(err, ErrNoLink) {
			t.Errorf("401 with a code: %v", err)
		}
		if err := c.Unlink(ctx, answer(401, `Proxy says no`), "s"); errors.Is(err, ErrNoLink) || err == nil {
			t.Errorf("a 401 without a protocol body must not count as no link: %v", err)
		}
	})
}

func TestClient_BearerAndPath(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.Path, r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	if err := New(Options{}).Unlink(context.Background(), mustURL(t, srv.URL+"/cloud/"), "secret-value"); err != nil {
		t.Fatal(err)
	}
	if gotPath != "/cloud"+protocol.PathLinkSelf || gotAuth != "Bearer secret-value" {
		t.Errorf("path %q, auth %q", gotPath, gotAuth)
	}
}
