package connect

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// kidPattern is the strict shape a key id must have before it goes into a
// URL: letters, digits, "_", "-" and "/" (as GitLab allows), at most 128
// characters. validKID also refuses "..", a leading or trailing "/" and
// empty segments.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_\-/]{1,128}$`)

// ValidKID reports whether kid may be used to build an install-keys URL.
func ValidKID(kid string) bool {
	return kidPattern.MatchString(kid) && !strings.Contains(kid, "..") &&
		!strings.HasPrefix(kid, "/") && !strings.HasSuffix(kid, "/") && !strings.Contains(kid, "//")
}

// InstallKeys fetches the RSA public keys that sign installed and
// uninstalled callbacks from the install-keys service
// (CLOUD_APP_INSTALL_KEYS_URL), by key id. Keys are immutable per id, so
// each one is cached (up to a bound); unknown ids are remembered briefly so
// a flood of made-up ids cannot turn into a flood of fetches.
type InstallKeys struct {
	base    string
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	mu       sync.Mutex
	keys     map[string]*rsa.PublicKey
	missing  map[string]time.Time
	inflight map[string]*keyFetch
}

type keyFetch struct {
	done chan struct{}
	key  *rsa.PublicKey
	err  error
}

const (
	maxCachedKeys   = 256
	maxKeyBody      = 16 << 10
	missingKeyTTL   = time.Minute
	defaultKeyFetch = 5 * time.Second
)

// NewInstallKeys returns a fetcher for keys under base (e.g.
// https://connect-install-keys.atlassian.com). client must not follow
// redirects (a nil client gets one that does not); timeout bounds each fetch
// (0 means 5 s).
func NewInstallKeys(base *url.URL, client *http.Client, timeout time.Duration) *InstallKeys {
	client = withoutRedirects(client)
	if timeout <= 0 {
		timeout = defaultKeyFetch
	}
	return &InstallKeys{
		base:     strings.TrimSuffix(base.String(), "/"),
		client:   client,
		timeout:  timeout,
		now:      time.Now,
		keys:     map[string]*rsa.PublicKey{},
		missing:  map[string]time.Time{},
		inflight: map[string]*keyFetch{},
	}
}

// Key returns the public key with id kid. The errors wrap ErrBadKeyID (the
// id does not match the strict pattern; nothing is fetched), ErrUnknownKey
// (the service does not know it) or ErrKeyFetch.
func (k *InstallKeys) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if !ValidKID(kid) {
		return nil, ErrBadKeyID
	}
	k.mu.Lock()
	if key, ok := k.keys[kid]; ok {
		k.mu.Unlock()
		return key, nil
	}
	if until, ok := k.missing[kid]; ok {
		if k.now().Before(until) {
			k.mu.Unlock()
			return nil, ErrUnknownKey
		}
		delete(k.missing, kid)
	}
	if f, ok := k.inflight[kid]; ok {
		k.mu.Unlock()
		select {
		case <-f.done:
			return f.key, f.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrKeyFetch, ctx.Err())
		}
	}
	f := &keyFetch{done: make(chan struct{})}
	k.inflight[kid] = f
	k.mu.Unlock()

	f.key, f.err = k.fetch(ctx, kid)

	k.mu.Lock()
	delete(k.inflight, kid)
	switch {
	case f.err == nil:
		if len(k.keys) >= maxCachedKeys {
			for id := range k.keys { // keys rotate rarely: dropping any one is fine
				delete(k.keys, id)
				break
			}
		}
		k.keys[kid] = f.key
	case f.err == ErrUnknownKey:
		if len(k.missing) >= maxCachedKeys {
			clear(k.missing)
		}
		k.missing[kid] = k.now().Add(missingKeyTTL)
	}
	k.mu.Unlock()
	close(f.done)
	return f.key, f.err
}

func (k *InstallKeys) fetch(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+"/"+kid, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFetch, err)
	}
	req.Header.Set("Accept", "application/x-pem-file, text/plain, */*")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFetch, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrUnknownKey
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: install-keys service answered %d", ErrKeyFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFetch, err)
	}
	if len(body) > maxKeyBody {
		return nil, fmt.Errorf("%w: key larger than %d bytes", ErrKeyFetch, maxKeyBody)
	}
	key, err := ParseRSAPublicKeyPEM(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFetch, err)
	}
	return key, nil
}

// ParseRSAPublicKeyPEM reads an RSA public key of at least 2048 bits from
// PEM text ("PUBLIC KEY" or "RSA PUBLIC KEY"), with LF or CRLF line ends.
func ParseRSAPublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("not PEM")
	}
	var key *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad public key: %v", err)
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("not an RSA key")
		}
		key = rk
	case "RSA PUBLIC KEY":
		rk, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad public key: %v", err)
		}
		key = rk
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits is too small", key.N.BitLen())
	}
	return key, nil
}

// withoutRedirects returns a copy of client (or a new client) that does not
// follow redirects.
func withoutRedirects(client *http.Client) *http.Client {
	if client == nil {
		return NewHTTPClient()
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// NewHTTPClient returns the outbound client cloud-app uses for Atlassian:
// HTTPS_PROXY honoured (loopback is never proxied), redirects not followed
// (a redirect is answered as is and treated as a failure), and an overall
// timeout as a backstop to the per-call contexts.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = 20 * time.Second
	return &http.Client{
		Transport:     t,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
