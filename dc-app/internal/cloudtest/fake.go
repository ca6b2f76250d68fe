// Package cloudtest is a strict stand-in for cloud-app's dc-app-facing API
// (DESIGN sections 4, 5 and 11), for dc-app's tests. It holds real token
// keys, mints real tokens with the token package and opens them with
// token.Opener, keeps the used, revoked and linked state of every token,
// sync and link, checks `expect`, the link secret and the replay rule, and
// answers protocol errors ({"error": {"code", "message"}}). It can also
// misbehave on purpose: lose the answer to a committed redemption, or
// refuse every connection after a preview.
package cloudtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/token"
)

// DefaultSite is the Cloud site tokens come from unless a test says
// otherwise.
var DefaultSite = token.Site{
	ClientKey:  "client-acme",
	BaseURL:    "https://acme.atlassian.net/wiki",
	DisplayURL: "https://wiki.acme.example",
}

// Sync statuses, as cloud-app names them.
const (
	NotSyncedYet = "NOT_SYNCED_YET"
	Synced       = "SYNCED"
)

// Sync is a sync on the fake's Cloud side.
type Sync struct {
	ID          string
	Name        string
	Site        token.Site
	Space       token.Space
	Permissions []token.Principal
	Comments    bool
	Labels      bool
	Status      string
	Deleted     bool
}

// Link is a link on the fake's Cloud side. It keeps only the SHA-256 of
// the link secret.
type Link struct {
	ID           string
	SyncID       string
	TokenID      string
	InstanceID   string
	InstanceName string
	Name         string
	Active       bool
	AuthCalled   bool
	CreatedAt    time.Time
	secretHash   [32]byte
}

type tokenRecord struct {
	jti     string
	syncID  string
	rsHash  [32]byte
	used    bool
	revoked bool
	linkID  string
}

// Fake is a running fake cloud-app.
type Fake struct {
	// URL is the fake's base URL (its token issuer).
	URL string
	// Keys are its token keys.
	Keys *token.KeySet

	srv    *httptest.Server
	opener *token.Opener
	now    func() time.Time

	mu                 sync.Mutex
	syncs              map[string]*Sync
	tokens             map[string]*tokenRecord
	links              map[string]*Link
	calls              map[string]int
	redeemed           int // redemptions committed (201)
	dropAnswers        int
	refuseAfterPreview bool
	seq                int
}

// New starts a fake cloud-app on a loopback port; it stops when the test
// ends.
func New(tb testing.TB) *Fake {
	tb.Helper()
	keys, err := token.GenerateKeySet("k1")
	if err != nil {
		tb.Fatal(err)
	}
	f := &Fake{
		Keys: keys, now: time.Now,
		syncs: map[string]*Sync{}, tokens: map[string]*tokenRecord{}, links: map[string]*Link{}, calls: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathPreviews, f.preview)
	mux.HandleFunc("POST "+protocol.PathRedemptions, f.redeem)
	mux.HandleFunc("GET "+protocol.PathLinkSelf, f.linkSelf)
	mux.HandleFunc("DELETE "+protocol.PathLinkSelf, f.linkSelf)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls[r.URL.Path]++
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	f.URL = f.srv.URL
	f.opener = &token.Opener{Keys: keys, Issuer: f.URL, Now: func() time.Time { return f.now() }}
	tb.Cleanup(f.srv.Close)
	return f
}

// ServeAs makes publicURL the fake's base URL (its token issuer), as when
// cloud-app runs behind a proxy whose address differs from the listener's
// (CLOUD_APP_BASE_URL). Call it before minting; requests must then reach
// the fake through that proxy. It returns the address the fake listens on.
func (f *Fake) ServeAs(publicURL string) (listenURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.URL = publicURL
	f.opener = &token.Opener{Keys: f.Keys, Issuer: publicURL, Now: func() time.Time { return f.now() }}
	return f.srv.URL
}

// MintOptions describe a token to mint. Zero values get defaults: the
// DefaultSite, a new sync of space ACME "Acme Handbook", now as the issue
// time.
type MintOptions struct {
	Site     *token.Site
	SyncID   string // an existing sync to mint another token for
	SpaceKey string
	Space    string
	SyncName string
	Message  string
	// Issuer overrides the token's issuer (the fake then refuses it as
	// another cloud-app's token).
	Issuer      string
	IssuedAt    time.Time
	Permissions []token.Principal
	Comments    bool
	Labels      bool
	// Keys mints with other keys than the fake's (a token it cannot open).
	Keys *token.KeySet
	// Unrecorded mints a token the fake never issued (no stored record).
	Unrecorded bool
}

// Mint mints a real token, records it as issued (and creates its sync
// when needed) and returns the token text.
func (f *Fake) Mint(tb testing.TB, o MintOptions) string {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var s *Sync
	if o.SyncID != "" {
		s = f.syncs[o.SyncID]
		if s == nil {
			tb.Fatalf("cloudtest: no sync %q", o.SyncID)
		}
	} else {
		f.seq++
		site := DefaultSite
		if o.Site != nil {
			site = *o.Site
		}
		key, name := o.SpaceKey, o.Space
		if key == "" {
			key = "ACME"
		}
		if name == "" {
			name = "Acme Handbook"
		}
		syncName := o.SyncName
		if syncName == "" {
			syncName = name
		}
		s = &Sync{
			ID: "sync-" + token.NewID(), Name: syncName, Site: site,
			Space:       token.Space{ID: "space-" + key, Key: key, Name: name},
			Permissions: o.Permissions, Comments: o.Comments, Labels: o.Labels, Status: NotSyncedYet,
		}
		if s.Permissions == nil {
			s.Permissions = []token.Principal{
				{Type: token.PrincipalUser, ID: "5b10ac8d82e05b22cc7d4ef5", Name: "Ana Admin"},
				{Type: token.PrincipalGroup, ID: "group-docs", Name: "docs-team"},
			}
		}
		f.syncs[s.ID] = s
	}
	iat := o.IssuedAt
	if iat.IsZero() {
		iat = f.now()
	}
	iss := f.URL
	if o.Issuer != "" {
		iss = o.Issuer
	}
	c := token.NewClaims(iss, iat, s.Site, s.Space,
		token.Sync{ID: s.ID, Name: s.Name, Permissions: s.Permissions, Comments: s.Comments, Labels: s.Labels}, o.Message)
	keys := f.Keys
	if o.Keys != nil {
		keys = o.Keys
	}
	tok, err := token.Mint(keys, c)
	if err != nil {
		tb.Fatalf("cloudtest: mint: %v", err)
	}
	if !o.Unrecorded {
		f.tokens[c.ID] = &tokenRecord{jti: c.ID, syncID: s.ID, rsHash: sha256.Sum256([]byte(c.RedemptionSecret))}
	}
	return tok
}

// SyncOf returns the sync a minted token belongs to.
func (f *Fake) SyncOf(tb testing.TB, tok string) Sync {
	tb.Helper()
	c, err := f.opener.Open([]byte(tok))
	if err != nil {
		tb.Fatalf("cloudtest: open: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.syncs[c.Sync.ID]
}

// Calls returns how many requests reached the path (any method, any
// outcome).
func (f *Fake) Calls(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

// TotalCalls returns how many requests reached the fake.
func (f *Fake) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// Redeemed returns how many redemptions created a link (201 answers,
// including those whose answer was then lost).
func (f *Fake) Redeemed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redeemed
}

// ActiveLinks returns the links that are active.
func (f *Fake) ActiveLinks() []Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Link
	for _, l := range f.links {
		if l.Active {
			out = append(out, *l)
		}
	}
	return out
}

// Links returns every link, active or not.
func (f *Fake) Links() []Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Link, 0, len(f.links))
	for _, l := range f.links {
		out = append(out, *l)
	}
	return out
}

// DropRedemptionAnswers makes the fake lose the answer to the next n
// redemptions it commits: it processes each fully, then closes the
// connection without a response.
func (f *Fake) DropRedemptionAnswers(n int) {
	f.mu.Lock()
	f.dropAnswers = n
	f.mu.Unlock()
}

// RefuseConnectionsAfterPreview makes the fake answer the next preview
// with "Connection: close" and then stop listening, so every later
// connection is refused.
func (f *Fake) RefuseConnectionsAfterPreview() {
	f.mu.Lock()
	f.refuseAfterPreview = true
	f.mu.Unlock()
}

// Revoke revokes a minted token.
func (f *Fake) Revoke(tb testing.TB, tok string) {
	tb.Helper()
	c, err := f.opener.Open([]byte(tok))
	if err != nil {
		tb.Fatalf("cloudtest: open: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[c.ID].revoked = true
}

// Close stops the fake now (later connections are refused).
func (f *Fake) Close() { f.srv.Close() }

func writeErr(w http.ResponseWriter, code apperr.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code.Status())
	_ = json.NewEncoder(w).Encode(apperr.Body{Error: apperr.BodyError{Code: code, Message: msg}})
}

func writeAppErr(w http.ResponseWriter, err error) {
	ae := apperr.As(err)
	writeErr(w, ae.Code, ae.Message)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly: the right content type, one object,
// no unknown member.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return apperr.New(apperr.ValidationFailed, "send application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apperr.New(apperr.ValidationFailed, "the body is not the expected JSON: "+err.Error())
	}
	if dec.More() {
		return apperr.New(apperr.ValidationFailed, "one JSON object only")
	}
	return nil
}

// open decrypts and checks a token, then its stored record, in the
// refusal order of DESIGN section 5.7. It returns the claims and record
// with f.mu held; the caller unlocks.
func (f *Fake) open(tok string) (*token.Claims, *tokenRecord, error) {
	c, err := f.opener.Open([]byte(tok))
	if err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	rec := f.tokens[c.ID]
	rs := sha256.Sum256([]byte(c.RedemptionSecret))
	if rec == nil || subtle.ConstantTimeCompare(rs[:], rec.rsHash[:]) != 1 {
		f.mu.Unlock()
		return nil, nil, apperr.New(apperr.InvalidToken, "This token was not issued here.")
	}
	return c, rec, nil
}

func (f *Fake) preview(w http.ResponseWriter, r *http.Request) {
	var req protocol.PreviewRequest
	if err := decode(w, r, &req); err != nil {
		writeAppErr(w, err)
		return
	}
	c, rec, err := f.open(req.Token)
	if err != nil {
		writeAppErr(w, err)
		return
	}
	s := f.syncs[rec.syncID]
	state, reason := protocol.StateUsable, ""
	switch {
	case s.Deleted:
		state, reason = string(apperr.SyncDeleted), "The sync was deleted on Confluence Cloud."
	case rec.used:
		state, reason = string(apperr.TokenUsed), "This token has already been used. Ask the source space admin for a new token."
	case rec.revoked:
		state, reason = string(apperr.TokenRevoked), "This token was revoked. Ask the source space admin for a new token."
	}
	refuse := f.refuseAfterPreview
	f.refuseAfterPreview = false
	f.mu.Unlock()
	perms := make([]protocol.Principal, len(c.Sync.Permissions))
	for i, p := range c.Sync.Permissions {
		perms[i] = protocol.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	if refuse {
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, http.StatusOK, protocol.Preview{
		TokenID: c.ID, State: state, Reason: reason,
		Site:   protocol.Site{BaseURL: c.Site.BaseURL, DisplayURL: c.Site.DisplayURL},
		Space:  protocol.Space{ID: c.Space.ID, Key: c.Space.Key, Name: c.Space.Name},
		SyncID: c.Sync.ID, SyncName: c.Sync.Name,
		Settings: protocol.SyncSettings{Permissions: perms, Comments: c.Sync.Comments, Labels: c.Sync.Labels},
		Message:  c.Message, IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry,
	})
	if refuse {
		f.srv.Listener.Close()
	}
}

func validSecret(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32 && len(s) == 43
}

func (f *Fake) redeem(w http.ResponseWriter, r *http.Request) {
	var req protocol.RedemptionRequest
	if err := decode(w, r, &req); err != nil {
		writeAppErr(w, err)
		return
	}
	switch {
	case req.Token == "" || req.Instance.ID == "" || strings.TrimSpace(req.Name) == "":
		writeErr(w, apperr.ValidationFailed, "token, instance.id and name are required")
		return
	case !validSecret(req.LinkSecret):
		writeErr(w, apperr.ValidationFailed, "linkSecret must be 32 bytes, base64url")
		return
	case req.Expect.SiteBaseURL == "" || req.Expect.SpaceID == "" || req.Expect.SyncID == "":
		writeErr(w, apperr.ValidationFailed, "expect needs siteBaseUrl, spaceId and syncId")
		return
	}
	c, rec, err := f.open(req.Token)
	if err != nil {
		writeAppErr(w, err)
		return
	}
	status, body, aerr := f.redeemLocked(c, rec, &req)
	drop := false
	if aerr == nil && f.dropAnswers > 0 {
		f.dropAnswers--
		drop = true
	}
	f.mu.Unlock()
	if aerr != nil {
		writeAppErr(w, aerr)
		return
	}
	if drop {
		// The redemption is committed; the answer never leaves.
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			return
		}
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, status, body)
}

// redeemLocked applies a redemption to the state; f.mu is held.
func (f *Fake) redeemLocked(c *token.Claims, rec *tokenRecord, req *protocol.RedemptionRequest) (int, any, error) {
	s := f.syncs[rec.syncID]
	if req.Expect.SiteBaseURL != c.Site.BaseURL || req.Expect.SpaceID != c.Space.ID || req.Expect.SyncID != c.Sync.ID {
		return 0, nil, apperr.New(apperr.TokenMismatch, "The token does not match what was previewed.")
	}
	if s.Deleted {
		return 0, nil, apperr.New(apperr.SyncDeleted, "The sync was deleted on Confluence Cloud.")
	}
	hash := sha256.Sum256([]byte(req.LinkSecret))
	if rec.used {
		l := f.links[rec.linkID]
		if l != nil && l.Active && !l.AuthCalled && l.InstanceID == req.Instance.ID &&
			subtle.ConstantTimeCompare(hash[:], l.secretHash[:]) == 1 {
			return http.StatusOK, protocol.RedemptionResponse{Link: f.linkJSON(l)}, nil
		}
		return 0, nil, apperr.New(apperr.TokenUsed, "This token has already been used. Ask the source space admin for a new token.")
	}
	if rec.revoked || s.Status != NotSyncedYet {
		return 0, nil, apperr.New(apperr.TokenRevoked, "This token was revoked. Ask the source space admin for a new token.")
	}
	// One "transaction": the sync, the token, the other tokens, the link.
	s.Status = Synced
	rec.used = true
	for _, t := range f.tokens {
		if t.syncID == s.ID && t != rec {
			t.revoked = true
		}
	}
	f.seq++
	l := &Link{
		ID: "link-" + token.NewID(), SyncID: s.ID, TokenID: rec.jti,
		InstanceID: req.Instance.ID, InstanceName: req.Instance.Name, Name: req.Name,
		Active: true, CreatedAt: f.now().UTC(), secretHash: hash,
	}
	f.links[l.ID] = l
	rec.linkID = l.ID
	f.redeemed++
	return http.StatusCreated, protocol.RedemptionResponse{Link: f.linkJSON(l)}, nil
}

func (f *Fake) linkJSON(l *Link) protocol.Link {
	s := f.syncs[l.SyncID]
	perms := make([]protocol.Principal, len(s.Permissions))
	for i, p := range s.Permissions {
		perms[i] = protocol.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	status := protocol.LinkActive
	if !l.Active {
		status = protocol.LinkUnlinked
	}
	return protocol.Link{
		ID: l.ID, SyncID: l.SyncID, Status: status,
		Site:     protocol.Site{BaseURL: s.Site.BaseURL, DisplayURL: s.Site.DisplayURL},
		Space:    protocol.Space{ID: s.Space.ID, Key: s.Space.Key, Name: s.Space.Name},
		SyncName: s.Name, CreatedAt: l.CreatedAt,
		Settings: protocol.SyncSettings{Permissions: perms, Comments: s.Comments, Labels: s.Labels},
	}
}

func (f *Fake) linkSelf(w http.ResponseWriter, r *http.Request) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !validSecret(secret) {
		writeErr(w, apperr.Unauthorized, "A link secret is required.")
		return
	}
	hash := sha256.Sum256([]byte(secret))
	f.mu.Lock()
	var found *Link
	for _, l := range f.links {
		if l.Active && subtle.ConstantTimeCompare(hash[:], l.secretHash[:]) == 1 {
			found = l
		}
	}
	if found == nil {
		f.mu.Unlock()
		writeErr(w, apperr.Unauthorized, "No active link has this secret.")
		return
	}
	found.AuthCalled = true
	if r.Method == http.MethodDelete {
		found.Active = false
		f.syncs[found.SyncID].Status = NotSyncedYet
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	body := protocol.RedemptionResponse{Link: f.linkJSON(found)}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// ErrNotOpened is returned by Open for a token the fake cannot open.
var ErrNotOpened = errors.New("cloudtest: cannot open token")

// Open opens a token with the fake's keys (for tests that inspect what
// dc-app sent).
func (f *Fake) Open(tok string) (*token.Claims, error) {
	c, err := f.opener.Open([]byte(tok))
	if err != nil {
		return nil, errors.Join(ErrNotOpened, err)
	}
	return c, nil
}
