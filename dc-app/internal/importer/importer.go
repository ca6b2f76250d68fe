// Package importer turns a space token into a synced space, following
// DESIGN section 5 step by step:
//
//  1. header checks with no key and no network (token.HeaderReader against
//     DC_APP_TRUSTED_CLOUD_URLS; an untrusted issuer is refused before any
//     call), and the token id must not have been imported here before;
//  2. the preview from the trusted cloud-app the token names (the URL comes
//     from the configuration entry, never from the token), and the source
//     site checked against DC_APP_TRUSTED_SITES;
//  3. a PENDING row keyed by the token id, holding the token and a new
//     256-bit link secret sealed with DC_APP_SECRET_KEY;
//  4. the redemption with the installation's instance id and `expect` from
//     the preview, and its outcome: a link activates the row (LINKED); a
//     definite refusal removes the row; a connection that never happened
//     removes it too (cloud_unreachable, nothing stored); no answer after
//     sending keeps it PENDING for the background retry, which repeats the
//     same redemption until Cloud gives a definite answer.
//
// dc-app never holds the token keys: everything it shows about a token
// comes from cloud-app's preview.
package importer

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/token"
)

// Limits on what the admin enters.
const (
	// MaxNameLength is the longest synced-space name, in characters.
	MaxNameLength = 200
	// MaxLocalPermissions is the most users and groups that may be named
	// as allowed to run sync on this side.
	MaxLocalPermissions = 50
	// maxPrincipalName bounds one user or group name.
	maxPrincipalName = 255
)

// RetryPolicy says how pending imports are retried.
type RetryPolicy struct {
	// Every is how often the retry looks for due imports (default 15s).
	Every time.Duration
	// Base is the wait after the first attempt without an answer; it
	// doubles with each attempt (default 10s), up to Max (default 15m).
	Base time.Duration
	Max  time.Duration
	// Workers bounds concurrent retried redemptions (default 4).
	Workers int
	// Lease is how long one attempt holds a row before another replica
	// may try again (default the cloud timeout plus 30s).
	Lease time.Duration
	// GiveUp is how long after the token's expiry the retry keeps asking
	// before it marks the import FAILED (default 24h).
	GiveUp time.Duration
}

// Config configures a Service.
type Config struct {
	// TrustedCloudURLs are the only cloud-app base URLs ever called.
	TrustedCloudURLs []*url.URL
	// TrustedSites, when not empty, are the only Cloud sites tokens may
	// come from.
	TrustedSites []*url.URL
	// InstanceID is the installation's instance id (store.InstanceID).
	InstanceID string
	// BaseURL is dc-app's public base URL, sent as the display-only
	// instance.baseUrl.
	BaseURL *url.URL
	// Now is the clock (default time.Now); Leeway the clock skew allowed
	// on a token's dates (default token.DefaultLeeway).
	Now    func() time.Time
	Leeway time.Duration
	// CloudTimeout is the client's per-call timeout, used for the default
	// lease.
	CloudTimeout time.Duration
	Retry        RetryPolicy
}

// Service imports tokens, removes synced spaces and retries pending
// imports. It is safe for concurrent use.
type Service struct {
	store  *store.Store
	cloud  *cloud.Client
	cfg    Config
	log    *slog.Logger
	reader token.HeaderReader
}

// New returns a Service.
func New(st *store.Store, cl *cloud.Client, cfg Config, log *slog.Logger) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CloudTimeout <= 0 {
		cfg.CloudTimeout = 30 * time.Second
	}
	r := &cfg.Retry
	if r.Every <= 0 {
		r.Every = 15 * time.Second
	}
	if r.Base <= 0 {
		r.Base = 10 * time.Second
	}
	if r.Max <= 0 {
		r.Max = 15 * time.Minute
	}
	if r.Workers <= 0 {
		r.Workers = 4
	}
	if r.Lease <= 0 {
		r.Lease = cfg.CloudTimeout + 30*time.Second
	}
	if r.GiveUp <= 0 {
		r.GiveUp = 24 * time.Hour
	}
	issuers := make([]string, len(cfg.TrustedCloudURLs))
	for i, u := range cfg.TrustedCloudURLs {
		issuers[i] = u.String()
	}
	return &Service{
		store: st, cloud: cl, cfg: cfg, log: log,
		reader: token.HeaderReader{TrustedIssuers: issuers, Now: cfg.Now, Leeway: cfg.Leeway},
	}
}

// Preview is what a DC admin sees before importing: the claims replicated
// in the token's header, and cloud-app's authenticated account of the rest.
type Preview struct {
	// CloudURL is the trusted cloud-app base URL the token names.
	CloudURL string
	Header   token.Header
	Cloud    protocol.Preview
}

// checked is a token that passed every check before the import.
type checked struct {
	header  token.Header
	token   string // normalised
	base    *url.URL
	preview *protocol.Preview
}

// Preview runs the checks of an import without storing or consuming
// anything: header, not imported before, Cloud's preview, trusted site.
// Every refusal is an *apperr.Error.
func (s *Service) Preview(ctx context.Context, raw []byte) (*Preview, error) {
	c, err := s.check(ctx, raw)
	if err != nil {
		return nil, err
	}
	return &Preview{CloudURL: c.base.String(), Header: c.header, Cloud: *c.preview}, nil
}

func (s *Service) check(ctx context.Context, raw []byte) (*checked, error) {
	h, err := s.reader.Read(raw)
	if err != nil {
		return nil, err
	}
	tok, err := token.Normalize(raw)
	if err != nil {
		return nil, err
	}
	base, ok := s.trustedCloud(h.Issuer)
	if !ok { // Read checked the issuer; this is belt and braces.
		return nil, apperr.New(apperr.UntrustedIssuer, "This token was issued by a Space Sync this server does not trust.")
	}
	if done, err := s.store.JTIImported(ctx, h.ID); err != nil {
		return nil, err
	} else if done {
		return nil, errAlreadyImported()
	}
	p, err := s.cloud.Preview(ctx, base, tok)
	if err != nil {
		return nil, s.cloudError(base, err)
	}
	if p.TokenID != h.ID {
		return nil, apperr.New(apperr.InvalidToken, "Confluence Cloud described a different token than this one. Use the token file exactly as you received it.")
	}
	if !s.siteTrusted(p.Site.BaseURL) {
		return nil, apperr.Newf(apperr.UntrustedSite,
			"This token comes from the Confluence Cloud site %s, which this Space Sync is not set up to trust. If that site is right, an administrator can add it to DC_APP_TRUSTED_SITES; otherwise do not import it.",
			quote(p.Site.BaseURL))
	}
	if p.State != protocol.StateUsable {
		return nil, stateError(p)
	}
	return &checked{header: h, token: tok, base: base, preview: p}, nil
}

// trustedCloud returns the configuration entry that matches a token's
// issuer exactly (scheme, host, port and path).
func (s *Service) trustedCloud(iss string) (*url.URL, bool) {
	for _, u := range s.cfg.TrustedCloudURLs {
		if u.String() == iss || token.SameBaseURL(iss, u.String()) {
			return u, true
		}
	}
	return nil, false
}

func (s *Service) siteTrusted(site string) bool {
	if len(s.cfg.TrustedSites) == 0 {
		return true
	}
	for _, u := range s.cfg.TrustedSites {
		if token.SameBaseURL(site, u.String()) {
			return true
		}
	}
	return false
}

// Request is an import as the admin asked for it.
type Request struct {
	// Token is the token file's content, or the pasted text.
	Token []byte
	// Name is the synced space's name here (required).
	Name string
	// Permissions optionally say who may run sync on this side.
	Permissions []store.Principal
	// Expect, when set, is what the admin saw in the preview; an import of
	// a token that says otherwise is refused with token_mismatch.
	Expect *protocol.Expect
	// Actor is the admin's username.
	Actor string
}

// Result is an import that was not refused.
type Result struct {
	Space store.SyncedSpace
	// Pending is true when Cloud's answer is not known yet: the row stays
	// PENDING ("waiting for Cloud confirmation") and is retried.
	Pending bool
}

// Import imports a token. A refusal is an *apperr.Error and leaves nothing
// stored; a Result with Pending set means the redemption was sent but its
// outcome is unknown.
func (s *Service) Import(ctx context.Context, req Request) (Result, error) {
	name, perms, err := validate(req)
	if err != nil {
		return Result{}, err
	}
	c, err := s.check(ctx, req.Token)
	if err != nil {
		return Result{}, err
	}
	p := c.preview
	expect := protocol.Expect{SiteBaseURL: p.Site.BaseURL, SpaceID: p.Space.ID, SyncID: p.SyncID}
	if e := req.Expect; e != nil && (e.SiteBaseURL != expect.SiteBaseURL || e.SpaceID != expect.SpaceID || e.SyncID != expect.SyncID) {
		return Result{}, apperr.New(apperr.TokenMismatch,
			"This token is not the one you previewed. Choose the token file again and check what it grants before importing.")
	}
	linkSecret := newLinkSecret()
	row, err := s.store.InsertPending(ctx, store.NewSyncedSpace{
		JTI: c.header.ID, Name: name, CloudURL: c.base.String(),
		SiteBaseURL: p.Site.BaseURL, SiteDisplayURL: p.Site.DisplayURL,
		SpaceID: p.Space.ID, SpaceKey: p.Space.Key, SpaceName: p.Space.Name,
		SyncID: p.SyncID, SyncName: p.SyncName,
		CloudPermissions: principals(p.Settings.Permissions), LocalPermissions: perms,
		SyncComments: p.Settings.Comments, SyncLabels: p.Settings.Labels,
		TokenExpiresAt: c.header.Expiry, ImportedBy: req.Actor,
		Token: c.token, LinkSecret: linkSecret, Lease: s.cfg.Retry.Lease,
	})
	if errors.Is(err, store.ErrDuplicate) {
		return Result{}, errAlreadyImported()
	}
	if err != nil {
		return Result{}, err
	}
	// From here on the redemption must run to its end even if the browser
	// goes away: the row's fate depends on Cloud's answer.
	ctx = context.WithoutCancel(ctx)
	rr := s.redemptionRequest(name, c.token, linkSecret, expect)
	res, rerr := s.cloud.Redeem(ctx, c.base, rr)
	return s.settleFirst(ctx, row, res, rerr, req.Actor)
}

// settleFirst records the outcome of an import's first redemption attempt.
func (s *Service) settleFirst(ctx context.Context, row store.SyncedSpace, res *cloud.Redemption, rerr error, actor string) (Result, error) {
	var ref *cloud.Refusal
	var notSent *cloud.NotSentError
	switch {
	case rerr == nil:
		sp, err := s.store.Activate(ctx, row.ID, res.Link.ID, actor)
		if db.Unavailable(err) {
			// Cloud holds the link but the database went away before it
			// was recorded here. The row is still PENDING with this
			// attempt's lease, so the background retry replays the
			// redemption (Cloud answers 200 with the same link) and
			// activates it. Telling the admin "try again" would only earn
			// them already_imported.
			s.log.Warn("Cloud confirmed the import but the database is unavailable; the import stays pending and the retry records it", "synced_space", row.ID, "err", err)
			return Result{Space: row, Pending: true}, nil
		}
		if err != nil {
			return Result{}, err
		}
		return Result{Space: sp}, nil
	case errors.As(rerr, &ref) && ref.Final():
		// A definite refusal of the only attempt: Cloud holds no link.
		if err := s.store.DeletePending(ctx, row.ID, actor, string(ref.Code)); err != nil && !errors.Is(err, store.ErrConflict) {
			return Result{}, err
		}
		return Result{}, s.cloudError(nil, ref)
	case errors.As(rerr, &notSent):
		if err := s.store.DeletePending(ctx, row.ID, actor, string(apperr.CloudUnreachable)); err != nil && !errors.Is(err, store.ErrConflict) {
			return Result{}, err
		}
		base, _ := url.Parse(row.CloudURL)
		return Result{}, s.cloudError(base, rerr)
	}
	s.log.Warn("redemption outcome unknown; the import stays pending", "synced_space", row.ID, "err", rerr)
	if err := s.store.Postpone(ctx, row.ID, 1, s.nextAttempt(1)); err != nil {
		return Result{}, err
	}
	sp, err := s.store.Get(ctx, row.ID)
	if err != nil {
		return Result{}, err
	}
	return Result{Space: sp, Pending: true}, nil
}

func (s *Service) redemptionRequest(name, tok, linkSecret string, expect protocol.Expect) protocol.RedemptionRequest {
	inst := protocol.Instance{ID: s.cfg.InstanceID}
	if s.cfg.BaseURL != nil {
		inst.Name = "Confluence Data Center at " + s.cfg.BaseURL.Host
		inst.BaseURL = s.cfg.BaseURL.String()
	}
	return protocol.RedemptionRequest{Token: tok, Instance: inst, Name: name, LinkSecret: linkSecret, Expect: expect}
}

// nextAttempt is when attempt+1 is due: Base doubling per attempt, up to
// Max, less up to a fifth at random so replicas spread out.
func (s *Service) nextAttempt(attempt int) time.Time {
	d := s.cfg.Retry.Base
	for i := 1; i < attempt && d < s.cfg.Retry.Max; i++ {
		d *= 2
	}
	d = min(d, s.cfg.Retry.Max)
	var b [1]byte
	_, _ = rand.Read(b[:])
	d -= d / 5 * time.Duration(b[0]) / 255
	return s.cfg.Now().Add(d)
}

// newLinkSecret returns a new 256-bit link secret, base64url.
func newLinkSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func principals(ps []protocol.Principal) []store.Principal {
	out := make([]store.Principal, len(ps))
	for i, p := range ps {
		out[i] = store.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	return out
}

// validate checks what the admin typed.
func validate(req Request) (string, []store.Principal, error) {
	fields := map[string]string{}
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		fields["name"] = "Enter a name for the synced space."
	case utf8.RuneCountInString(name) > MaxNameLength:
		fields["name"] = fmt.Sprintf("Keep the name to %d characters or fewer.", MaxNameLength)
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		fields["name"] = "The name cannot contain control characters."
	}
	perms, problem := cleanPermissions(req.Permissions)
	if problem != "" {
		fields["permissions"] = problem
	}
	if len(fields) > 0 {
		return "", nil, apperr.Validation(fields)
	}
	return name, perms, nil
}

func cleanPermissions(in []store.Principal) ([]store.Principal, string) {
	seen := map[store.Principal]bool{}
	out := []store.Principal{}
	for _, p := range in {
		p.Name = strings.TrimSpace(p.Name)
		if p.Name == "" {
			continue
		}
		if p.Type != token.PrincipalUser && p.Type != token.PrincipalGroup {
			return nil, "Each entry must be a user or a group (user:NAME or group:NAME)."
		}
		if utf8.RuneCountInString(p.Name) > maxPrincipalName || !utf8.ValidString(p.Name) || strings.IndexFunc(p.Name, unicode.IsControl) >= 0 {
			return nil, fmt.Sprintf("Each user or group name must be plain text of at most %d characters.", maxPrincipalName)
		}
		p.ID = p.Name
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) > MaxLocalPermissions {
		return nil, fmt.Sprintf("Name at most %d users and groups.", MaxLocalPermissions)
	}
	return out, ""
}

// ParsePermissions reads the permissions field of the import form: one
// entry per line or comma, "user:NAME" or "group:NAME"; a bare name is a
// user. Validation happens at import.
func ParsePermissions(text string) []store.Principal {
	var out []store.Principal
	for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' || r == ';' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		typ, name, ok := strings.Cut(part, ":")
		if !ok {
			typ, name = token.PrincipalUser, part
		}
		out = append(out, store.Principal{Type: strings.ToLower(strings.TrimSpace(typ)), Name: strings.TrimSpace(name)})
	}
	return out
}
