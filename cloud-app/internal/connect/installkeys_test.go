package connect

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// keyServer is an httptest install-keys service serving PEM by kid.
type keyServer struct {
	*httptest.Server
	keys    map[string]string
	fetches atomic.Int64
}

func newKeyServer(t *testing.T, keys map[string]string) *keyServer {
	t.Helper()
	ks := &keyServer{keys: keys}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		kid := strings.TrimPrefix(r.URL.Path, "/")
		switch kid {
		case "slow":
			time.Sleep(500 * time.Millisecond)
		case "redirect":
			http.Redirect(w, r, "/kid-1", http.StatusFound)
			return
		case "huge":
			w.Write([]byte(strings.Repeat("A", maxKeyBody+10)))
			return
		case "broken":
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		}
		pem, ok := ks.keys[kid]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write([]byte(pem))
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) url(t *testing.T) *url.URL {
	u, err := url.Parse(ks.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestValidKID(t *testing.T) {
	tests := []struct {
		kid  string
		want bool
	}{
		{"0e50fccb-239d-4991-a5db-dc850ba3f236", true},
		{"connect/prod/key_1", true},
		{"", false},
		{"../secret", false},
		{"a/../b", false},
		{"/etc/passwd", false},
		{"a//b", false},
		{"a/", false},
		{"a.b", false},
		{"a?b", false},
		{"a%2Fb", false},
		{"a b", false},
		{"https://evil.example/x", false},
		{"é", false},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		if got := ValidKID(tt.kid); got != tt.want {
			t.Errorf("ValidKID(%q) = %v, want %v", tt.kid, got, tt.want)
		}
	}
}

func TestInstallKeys_Key(t *testing.T) {
	lf := publicPEM(t, testRSAKey())
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	ks := newKeyServer(t, map[string]string{"kid-1": lf, "kid-crlf": crlf, "nested/kid-2": lf, "not-pem": "hello"})
	keys := NewInstallKeys(ks.url(t), nil, 200*time.Millisecond)
	ctx := context.Background()

	tests := []struct {
		kid  string
		want error
	}{
		{"kid-1", nil},
		{"kid-crlf", nil},
		{"nested/kid-2", nil},
		{"unknown", ErrUnknownKey},
		{"../kid-1", ErrBadKeyID},
		{"not-pem", ErrKeyFetch},
		{"slow", ErrKeyFetch},
		{"redirect", ErrKeyFetch},
		{"huge", ErrKeyFetch},
		{"broken", ErrKeyFetch},
	}
	for _, tt := range tests {
		t.Run(tt.kid, func(t *testing.T) {
			k, err := keys.Key(ctx, tt.kid)
			if tt.want == nil {
				if err != nil || k == nil || k.N.Cmp(testRSAKey().N) != 0 {
					t.Fatalf("got %v, %v; want the test key", k, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	// Cached per kid: no second fetch for a known or a recently unknown kid.
	before := ks.fetches.Load()
	for range 3 {
		if _, err := keys.Key(ctx, "kid-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Key(ctx, "unknown"); !errors.Is(err, ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if got := ks.fetches.Load() - before; got != 0 {
		t.Errorf("cached keys fetched %d more times, want 0", got)
	}
	// An invalid kid is refused without a request.
	if _, err := keys.Key(ctx, "/abs"); !errors.Is(err, ErrBadKeyID) {
		t.Fatal(err)
	}
	if got := ks.fetches.Load() - before; got != 0 {
		t.Errorf("an invalid kid made %d requests, want 0", got)
	}
}

func TestParseRSAPublicKeyPEM(t *testing.T) {
	good := publicPEM(t, testRSAKey())
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, pem string
		ok        bool
	}{
		{"PKIX LF", good, true},
		{"PKIX CRLF", strings.ReplaceAll(good, "\n", "\r\n"), true},
		{"not PEM", "hello", false},
		{"private key block", strings.ReplaceAll(good, "PUBLIC KEY", "PRIVATE KEY"), false},
		{"garbage body", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", false},
		{"1024-bit key", publicPEM(t, small), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRSAPublicKeyPEM([]byte(tt.pem))
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
