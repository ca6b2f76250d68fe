// Package confluencesim is a Confluence Cloud simulator for the Space Sync
// dev stack and end-to-end tests.
//
// It installs a Connect app from its descriptor with a signed install (its
// own RSA key, served at its own install-keys endpoint), serves the REST
// endpoints the app calls with Atlassian's response shapes, verifies every
// call as Atlassian does (iss = app key, HS256 with the shared secret, qsh
// relative to /wiki, expiry), hosts the app's general pages in a sandboxed
// cross-site iframe with page JWTs, and serves an all.js stand-in whose
// AP.context.getToken returns context tokens minted for the current user.
//
// Its JWT and qsh code (internal/connectjwt) is its own, checked against npm
// atlassian-jwt, and it imports nothing from cloud-app.
package confluencesim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Config configures a simulator. PublicURL and AppDescriptorURL are
// required; everything else has a default.
type Config struct {
	// PublicURL is the simulator's origin as browsers and the app reach it,
	// e.g. "http://localhost:8080". The site baseUrl is PublicURL + "/wiki".
	PublicURL string
	// AppDescriptorURL is where the app serves atlassian-connect.json,
	// e.g. "http://127.0.0.1:8081/atlassian-connect.json".
	AppDescriptorURL string
	// Seed is the site content; nil means the embedded default seed.
	Seed *Seed
	// ClientKey is the tenant id; empty means a random one per simulator
	// (or the one kept in StateFile).
	ClientKey string
	// SharedSecret is the first shared secret; empty means a random
	// 43-character one. Tests may set a short secret: Atlassian promises no
	// minimum length.
	SharedSecret string
	// DisplayURL is sent as displayUrl in lifecycle payloads; empty means
	// the baseUrl.
	DisplayURL string
	// StateFile, when set, is a JSON file where the simulator keeps the
	// clientKey, shared secret, RSA key and installation state, so a restart
	// keeps the installation. It is written with mode 0600.
	StateFile string
	// RSAKey signs installed/uninstalled callbacks; nil means a new 2048-bit
	// key (or the one kept in StateFile). Tests can share one key to save
	// the generation time.
	RSAKey *rsa.PrivateKey
	// HTTPClient makes the calls to the app; nil means a client with a 10 s
	// timeout that does not follow redirects.
	HTTPClient *http.Client
	// Logger receives the simulator's log; nil discards it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Token lifetimes. Atlassian does not publish them; these are the values
// seen in the wild (connect.md section 3).
const (
	pageTokenTTL      = 3 * time.Minute
	contextTokenTTL   = 15 * time.Minute
	lifecycleTokenTTL = 5 * time.Minute
	// verifyLeeway is the clock skew allowed on exp and iat. Atlassian's
	// Java JWT library is believed to allow 30 s; Atlassian does not
	// document the product's value.
	verifyLeeway = 30 * time.Second
)

// Errors returned by the lifecycle methods.
var (
	ErrNotInstalled = errors.New("confluencesim: the app is not installed")
	ErrNotEnabled   = errors.New("confluencesim: the app is disabled")
)

// Sim is a running simulator. Its methods are safe for concurrent use.
type Sim struct {
	cfg       Config
	origin    string // scheme://host[:port] of PublicURL
	baseURL   string // origin + "/wiki"
	site      *site
	client    *http.Client
	log       *slog.Logger
	now       func() time.Time
	key       *rsa.PrivateKey
	kid       string
	publicPEM []byte
	pages     *template.Template
	handler   http.Handler

	// lifecycleMu serialises install, uninstall, enable, disable and
	// rotation, which each make calls to the app.
	lifecycleMu sync.Mutex

	mu       sync.Mutex
	st       persistedState
	desc     *descriptor // parsed st.Descriptor; nil before the first install
	faults   []*faultQueue
	requests []RecordedRequest
}

// New validates cfg, loads or creates the simulator's state and returns a
// simulator. It makes no network calls: call Install once the app is up.
func New(cfg Config) (*Sim, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("confluencesim: PublicURL %q must be an http(s) origin such as http://localhost:8080", cfg.PublicURL)
	}
	if d, err := url.Parse(cfg.AppDescriptorURL); err != nil || (d.Scheme != "http" && d.Scheme != "https") || d.Host == "" {
		return nil, fmt.Errorf("confluencesim: AppDescriptorURL %q must be an absolute http(s) URL", cfg.AppDescriptorURL)
	}
	if cfg.Seed == nil {
		cfg.Seed = DefaultSeed()
	}
	// The caller keeps its Seed; the simulator serves its own copy.
	cfg.Seed = cfg.Seed.clone()
	st, err := newSite(cfg.Seed)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:    cfg,
		origin: u.Scheme + "://" + u.Host,
		site:   st,
		client: cfg.HTTPClient,
		log:    cfg.Logger,
		now:    cfg.Now,
	}
	s.baseURL = s.origin + "/wiki"
	if s.client == nil {
		s.client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.loadState(); err != nil {
		return nil, err
	}
	if s.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// loadState reads StateFile if there is one, fills in what is missing and
// writes the result back.
func (s *Sim) loadState() error {
	ps, err := readState(s.cfg.StateFile)
	if err != nil {
		return err
	}
	if s.cfg.ClientKey != "" && ps.ClientKey != "" && ps.ClientKey != s.cfg.ClientKey {
		return fmt.Errorf("confluencesim: Config.ClientKey differs from the clientKey in %s; remove one of them", s.cfg.StateFile)
	}
	if ps.ClientKey == "" {
		ps.ClientKey = s.cfg.ClientKey
	}
	if ps.ClientKey == "" {
		ps.ClientKey = newClientKey()
	}
	if ps.SharedSecret == "" {
		ps.SharedSecret = s.cfg.SharedSecret
	}
	if ps.SharedSecret == "" {
		ps.SharedSecret = newSecret()
	}
	switch {
	case ps.PrivateKeyPEM != "":
		s.key, err = parsePrivateKey(ps.PrivateKeyPEM)
		if err != nil {
			return fmt.Errorf("confluencesim: %s: %w", s.cfg.StateFile, err)
		}
	case s.cfg.RSAKey != nil:
		s.key = s.cfg.RSAKey
	default:
		if s.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return fmt.Errorf("confluencesim: generate RSA key: %w", err)
		}
	}
	if s.cfg.StateFile != "" && ps.PrivateKeyPEM == "" {
		der, err := x509.MarshalPKCS8PrivateKey(s.key)
		if err != nil {
			return fmt.Errorf("confluencesim: encode RSA key: %w", err)
		}
		ps.PrivateKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	pub, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		return fmt.Errorf("confluencesim: encode RSA public key: %w", err)
	}
	s.publicPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	s.kid = keyID(pub)
	if len(ps.Descriptor) > 0 {
		d, err := parseDescriptor(ps.Descriptor)
		if err != nil {
			return fmt.Errorf("confluencesim: descriptor kept in %s: %w", s.cfg.StateFile, err)
		}
		s.desc = d
	}
	s.st = ps
	return writeState(s.cfg.StateFile, ps)
}

func parsePrivateKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("privateKeyPem is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("privateKeyPem: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("privateKeyPem is not an RSA key")
	}
	return rk, nil
}

// keyID derives a UUID-shaped kid from the public key, so a kept key keeps
// its kid.
func keyID(pubDER []byte) string {
	h := sha256.Sum256(pubDER)
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// newClientKey returns a random UUID-shaped client key, as Confluence's are.
func newClientKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// newSecret returns a random 43-character shared secret.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Handler returns the simulator's HTTP handler, to be served at PublicURL.
func (s *Sim) Handler() http.Handler { return s.handler }

// ClientKey returns the tenant's clientKey.
func (s *Sim) ClientKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ClientKey
}

// SharedSecret returns the current shared secret. Tests use it to sign as
// the app would; never log it.
func (s *Sim) SharedSecret() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.SharedSecret
}

// BaseURL returns the site baseUrl, PublicURL + "/wiki".
func (s *Sim) BaseURL() string { return s.baseURL }

// InstallKeysURL returns the install-keys service URL; the public key for a
// kid is at InstallKeysURL()+"/"+kid.
func (s *Sim) InstallKeysURL() string { return s.origin + "/install-keys" }

// KeyID returns the kid of the simulator's install-signing key.
func (s *Sim) KeyID() string { return s.kid }

// PublicKeyPEM returns the PEM of the install-signing public key.
func (s *Sim) PublicKeyPEM() []byte { return append([]byte(nil), s.publicPEM...) }

// Installed reports whether the app is installed, and Enabled whether it is
// also enabled.
func (s *Sim) Installed() (installed, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Installed, s.st.Installed && s.st.Enabled
}

// Seed returns a copy of the seed the simulator serves.
func (s *Sim) Seed() *Seed { return s.cfg.Seed.clone() }

// appKey returns the installed app's key, or "" before any install.
func (s *Sim) appKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desc == nil {
		return ""
	}
	return s.desc.Key
}

// snapshot returns the installation state under the lock.
func (s *Sim) snapshot() (persistedState, *descriptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, s.desc
}

// userLabel is for logs: account ids are not secret.
func userLabel(accountID string) string {
	if accountID == "" {
		return "anonymous"
	}
	return accountID
}
