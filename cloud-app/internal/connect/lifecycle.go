package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/env"
)

// Event is a lifecycle event, named as in the descriptor's lifecycle block.
type Event string

// The four lifecycle events.
const (
	EventInstalled   Event = "installed"
	EventUninstalled Event = "uninstalled"
	EventEnabled     Event = "enabled"
	EventDisabled    Event = "disabled"
)

// Secret is a secret string from a payload. It prints and logs as
// "[hidden]" whatever the verb.
type Secret string

// Format prints nothing of the secret.
func (Secret) Format(f fmt.State, _ rune) { f.Write([]byte("[hidden]")) }

// LogValue hides the secret from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[hidden]") }

// Payload is the JSON body of a lifecycle callback (the fields we use).
type Payload struct {
	Key          string `json:"key"`
	ClientKey    string `json:"clientKey"`
	SharedSecret Secret `json:"sharedSecret"`
	BaseURL      string `json:"baseUrl"`
	DisplayURL   string `json:"displayUrl"`
	ProductType  string `json:"productType"`
	Description  string `json:"description"`
	EventType    string `json:"eventType"`
}

// TenantLookup finds a tenant by clientKey (the iss of its JWTs);
// *store.Store reads the database, *store.TenantCache remembers briefly.
// Both return store.ErrNotFound for an unknown clientKey.
type TenantLookup interface {
	TenantByClientKey(ctx context.Context, clientKey string) (*store.Tenant, error)
}

// maxSharedSecret bounds a shared secret (Atlassian's are up to 128
// characters).
const maxSharedSecret = 512

// LifecycleVerifier checks lifecycle callbacks before anything of them is
// stored: installed and uninstalled as RS256 with the install-keys
// service's key (signed install), enabled and disabled as HS256 with the
// tenant's stored shared secret.
type LifecycleVerifier struct {
	keys         *InstallKeys
	appKey       string
	baseURL      string
	basePath     string
	productHosts []string
	now          func() time.Time
}

// LifecycleConfig configures NewLifecycleVerifier.
type LifecycleConfig struct {
	// AppKey is the descriptor key (CLOUD_APP_KEY); payloads must name it.
	AppKey string
	// BaseURL is our base URL (CLOUD_APP_BASE_URL): the aud of signed
	// installs, and the base the qsh path is relative to.
	BaseURL *url.URL
	// ProductHosts are the host patterns a tenant base URL may have
	// (CLOUD_APP_PRODUCT_HOSTS, e.g. *.atlassian.net).
	ProductHosts []string
	Keys         *InstallKeys
	Now          func() time.Time
}

// NewLifecycleVerifier returns a verifier.
func NewLifecycleVerifier(c LifecycleConfig) *LifecycleVerifier {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &LifecycleVerifier{
		keys: c.Keys, appKey: c.AppKey, baseURL: strings.TrimSuffix(c.BaseURL.String(), "/"),
		basePath: strings.TrimSuffix(c.BaseURL.EscapedPath(), "/"), productHosts: c.ProductHosts, now: now,
	}
}

const unauthorizedMessage = "The request could not be verified as coming from Confluence. Reload the page and try again."

// refuse is the error of a failed verification: 401 unauthorized, with the
// reason kept for the log only.
func refuse(reason error) *apperr.Error {
	return apperr.Wrap(reason, apperr.Unauthorized, unauthorizedMessage)
}

// ErrSymmetricHook marks a refusal of an HS256 installed/uninstalled
// callback; the handler answers it with x-unexpected-symmetric-hook: true,
// as Atlassian Connect Express does.
var ErrSymmetricHook = errors.New("connect: HS256 lifecycle callback where signed install (RS256) is required")

// VerifySigned verifies an installed or uninstalled callback: a token in
// `Authorization: JWT`, RS256 with the key fetched by kid, within exp, aud
// containing our base URL, iss equal to the body's clientKey, the qsh of
// this request, the body naming our app key and an allowed https product
// host (loopback may be http), and for installed a shared secret. The error
// is an *apperr.Error (unauthorized, or forbidden for a host that is not
// allowed) wrapping the reason.
func (v *LifecycleVerifier) VerifySigned(ctx context.Context, r *http.Request, body []byte, event Event) (*Payload, error) {
	if event != EventInstalled && event != EventUninstalled {
		return nil, fmt.Errorf("connect: %s is not a signed lifecycle event", event)
	}
	raw, err := headerToken(r)
	if err != nil {
		return nil, refuse(err)
	}
	tok, err := ParseToken(raw)
	if err != nil {
		return nil, refuse(err)
	}
	if tok.Header.Alg != RS256 {
		if strings.HasPrefix(tok.Header.Alg, "HS") {
			return nil, refuse(fmt.Errorf("%w: %w", ErrAlgorithm, ErrSymmetricHook))
		}
		return nil, refuse(ErrAlgorithm)
	}
	if !ValidKID(tok.Header.Kid) {
		return nil, refuse(ErrBadKeyID)
	}
	p, err := v.payload(body, event)
	if err != nil {
		return nil, err
	}
	site, err := CheckSiteURL(p.BaseURL, v.productHosts)
	if err != nil {
		return nil, err
	}
	p.BaseURL = site.String()
	key, err := v.keys.Key(ctx, tok.Header.Kid)
	if errors.Is(err, ErrKeyFetch) {
		// Our side or the key service failed, not the caller: 503, so the
		// install is reported as failed rather than as forged.
		return nil, &apperr.Error{Code: apperr.Unavailable, RetryAfter: 5, Cause: err,
			Message: "The Atlassian install-keys service could not be reached. Try again in a minute."}
	}
	if err != nil {
		return nil, refuse(err)
	}
	if err := tok.VerifyRS256(key); err != nil {
		return nil, refuse(err)
	}
	if err := tok.CheckTime(v.now()); err != nil {
		return nil, refuse(err)
	}
	if !tok.Claims.Audience.Contains(v.baseURL) {
		return nil, refuse(ErrAudience)
	}
	if tok.Claims.Issuer != p.ClientKey {
		return nil, refuse(ErrIssuer)
	}
	if err := v.checkQSH(r, tok); err != nil {
		return nil, err
	}
	if event == EventInstalled {
		if p.SharedSecret == "" || len(p.SharedSecret) > maxSharedSecret {
			return nil, refuse(fmt.Errorf("%w: shared secret missing or too long", ErrBadPayload))
		}
		if p.DisplayURL != "" {
			d, err := CheckDisplayURL(p.DisplayURL)
			if err != nil {
				return nil, err
			}
			p.DisplayURL = d.String()
		}
	}
	return p, nil
}

// VerifyShared verifies an enabled or disabled callback: a token in
// `Authorization: JWT`, HS256 under the shared secret of the tenant its
// iss names (looked up with tenants), within exp, the qsh of this request,
// and a body naming our app key and the same clientKey. It returns the
// payload and the tenant, in whatever state it is (the caller ignores
// events for an uninstalled tenant).
func (v *LifecycleVerifier) VerifyShared(ctx context.Context, r *http.Request, body []byte, event Event, tenants TenantLookup) (*Payload, *store.Tenant, error) {
	if event != EventEnabled && event != EventDisabled {
		return nil, nil, fmt.Errorf("connect: %s is not a shared-secret lifecycle event", event)
	}
	raw, err := headerToken(r)
	if err != nil {
		return nil, nil, refuse(err)
	}
	tok, err := ParseToken(raw)
	if err != nil {
		return nil, nil, refuse(err)
	}
	if tok.Header.Alg != HS256 {
		return nil, nil, refuse(ErrAlgorithm)
	}
	t, err := tenants.TenantByClientKey(ctx, tok.Claims.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, refuse(ErrIssuer)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := tok.VerifyHS256(t.SharedSecret); err != nil {
		return nil, nil, refuse(err)
	}
	if err := tok.CheckTime(v.now()); err != nil {
		return nil, nil, refuse(err)
	}
	if err := v.checkQSH(r, tok); err != nil {
		return nil, nil, err
	}
	p, err := v.payload(body, event)
	if err != nil {
		return nil, nil, err
	}
	if p.ClientKey != t.ClientKey {
		return nil, nil, refuse(ErrIssuer)
	}
	return p, t, nil
}

func (v *LifecycleVerifier) checkQSH(r *http.Request, tok *Token) error {
	if !tok.HasQSH || tok.Claims.QSH == "" {
		return refuse(fmt.Errorf("%w: no qsh claim", ErrQSH))
	}
	rawPath, rawQuery := requestTarget(r)
	want, err := RequestQSH(r.Method, rawPath, rawQuery, v.basePath)
	if err != nil {
		return refuse(fmt.Errorf("%w: %w", ErrQSH, err))
	}
	if tok.Claims.QSH != want {
		return refuse(ErrQSH)
	}
	return nil
}

// payload decodes a lifecycle body and checks that it is for our app and
// this event.
func (v *LifecycleVerifier) payload(body []byte, event Event) (*Payload, error) {
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, refuse(fmt.Errorf("%w: %v", ErrBadPayload, err))
	}
	if p.ClientKey == "" || p.Key != v.appKey {
		return nil, refuse(fmt.Errorf("%w: missing clientKey or another app's key", ErrBadPayload))
	}
	if p.EventType != "" && p.EventType != string(event) {
		return nil, refuse(fmt.Errorf("%w: eventType %q on the %s callback", ErrBadPayload, p.EventType, event))
	}
	return &p, nil
}

// headerToken returns the token of an `Authorization: JWT <token>` header.
func headerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "JWT") {
		return "", fmt.Errorf("%w: the Authorization scheme must be JWT", ErrNoToken)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", ErrNoToken
	}
	return tok, nil
}

// requestTarget returns the path and query of r exactly as sent: from the
// request line when it is in origin form, else re-escaped from r.URL.
func requestTarget(r *http.Request) (rawPath, rawQuery string) {
	if uri := r.RequestURI; strings.HasPrefix(uri, "/") {
		rawPath, rawQuery, _ = strings.Cut(uri, "?")
		return rawPath, rawQuery
	}
	return r.URL.EscapedPath(), r.URL.RawQuery
}

// CheckSiteURL parses a tenant base URL and checks that it is https (or
// http on a loopback host) and that its host matches one of the product
// host patterns (CLOUD_APP_PRODUCT_HOSTS). The error is a 403 forbidden
// *apperr.Error wrapping ErrHostNotAllowed.
func CheckSiteURL(raw string, patterns []string) (*url.URL, error) {
	u, err := CheckDisplayURL(raw)
	if err != nil {
		return nil, err
	}
	if !HostAllowed(u.Hostname(), patterns) {
		return nil, apperr.Wrap(fmt.Errorf("%w: %q", ErrHostNotAllowed, u.Hostname()), apperr.Forbidden,
			"This Confluence site is not one Space Sync may be installed on.")
	}
	return u, nil
}

// CheckDisplayURL parses a site URL that need not match the product hosts
// (a display URL may be a custom domain): a plain https URL, or http on a
// loopback host.
func CheckDisplayURL(raw string) (*url.URL, error) {
	u, err := env.ParseBaseURL(raw)
	if err != nil || (u.Scheme != "https" && !env.IsLoopback(u)) {
		return nil, apperr.Wrap(fmt.Errorf("%w: bad site URL", ErrHostNotAllowed), apperr.Forbidden,
			"This Confluence site is not one Space Sync may be installed on.")
	}
	return u, nil
}

// HostAllowed reports whether host matches one of the glob patterns (as
// path.Match, case-insensitively): "*.atlassian.net" matches
// "acme.atlassian.net" but not "atlassian.net".
func HostAllowed(host string, patterns []string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	for _, p := range patterns {
		if ok, err := path.Match(strings.ToLower(p), host); err == nil && ok {
			return true
		}
	}
	return false
}
