package web

// The dc-app-facing API (DESIGN sections 5 and 11). There is no session:
// the token, or after linking the link secret, is the credential. Every
// response is Cache-Control: no-store, bodies are capped at 64 KiB, and
// failed previews and redemptions are rate-limited per client IP. Nothing
// here logs a token, a redemption secret or a link secret.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/server"
	"spacesync.io/shared/token"
)

// Limits of the dc-app-facing API.
const (
	// apiV1BodyLimit caps request bodies (a token is at most 16 KiB).
	apiV1BodyLimit = "64K"
	// apiV1FailureLimit failed previews or redemptions per client IP per
	// apiV1FailureWindow are allowed; the next request is rate_limited.
	apiV1FailureLimit  = 30
	apiV1FailureWindow = time.Minute
	// Bounds of the redemption request's fields.
	maxInstanceID      = 128
	maxDisplayName     = 255
	maxURLLength       = 2048
	maxExpectID        = 255
	linkSecretChars    = 43 // 32 bytes, base64url without padding
	linkSecretBytes    = 32
	failureWindowMaxIP = 100_000
)

// apiV1NoStore marks every dc-app-facing response uncacheable: several
// carry token contents, and none should be kept by a proxy.
func apiV1NoStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		return next(c)
	}
}

// limitFailures refuses a client IP that has had apiV1FailureLimit failed
// (4xx) calls in the current window, and counts this call if it fails.
// Successful calls are not limited. The IP is c.RealIP(), which the
// server's extractor takes from trusted proxies only, counted per address
// for IPv4 and per /64 for IPv6 (server.LimitKey).
func (a *App) limitFailures(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ip := server.LimitKey(c.RealIP())
		if retry, blocked := a.apiFailures.blocked(ip); blocked {
			return &apperr.Error{Code: apperr.RateLimited, RetryAfter: retry,
				Message: "Too many failed attempts from this address. Wait a minute and try again."}
		}
		err := next(c)
		if err != nil {
			if st := server.ToAppError(err).Status(); st >= 400 && st < 500 {
				a.apiFailures.fail(ip)
			}
		}
		return err
	}
}

// handlePreview answers POST /api/v1/token-previews: the authenticated
// contents of a token and the state a redemption would meet now, consuming
// nothing. A token that does not open, or that cloud-app has no record of,
// is refused (invalid_token, unknown_key, token_expired, ...); a known token
// that cannot be redeemed is a 200 whose state is the refusal code.
func (a *App) handlePreview(c echo.Context) error {
	var req protocol.PreviewRequest
	if err := decodeAPIJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Token) == "" {
		return apperr.Validation(map[string]string{"token": "Paste or upload the token."})
	}
	claims, err := a.tokenOpener.Open([]byte(req.Token))
	if err != nil {
		return err
	}
	p := protocol.Preview{
		TokenID:   claims.ID,
		State:     protocol.StateUsable,
		Site:      protocol.Site{BaseURL: claims.Site.BaseURL, DisplayURL: claims.Site.DisplayURL},
		Space:     protocol.Space{ID: claims.Space.ID, Key: claims.Space.Key, Name: claims.Space.Name},
		SyncID:    claims.Sync.ID,
		SyncName:  claims.Sync.Name,
		Settings:  tokenSettings(claims.Sync),
		Message:   claims.Message,
		IssuedAt:  claims.IssuedAt,
		ExpiresAt: claims.Expiry,
	}
	if err := a.store.CheckToken(c.Request().Context(), claims); err != nil {
		var ae *apperr.Error
		if !errors.As(err, &ae) || ae.Code == apperr.InvalidToken {
			return err // a token we have no record of is refused, not previewed
		}
		p.State, p.Reason = string(ae.Code), ae.Message
	}
	return c.JSON(http.StatusOK, p)
}

// handleRedeem answers POST /api/v1/redemptions (DESIGN section 5): 201 with
// a new link, 200 with the same link for an exact replay, or a refusal.
func (a *App) handleRedeem(c echo.Context) error {
	var req protocol.RedemptionRequest
	if err := decodeAPIJSON(c, &req); err != nil {
		return err
	}
	if err := validateRedemption(&req); err != nil {
		return err
	}
	claims, err := a.tokenOpener.Open([]byte(req.Token))
	if err != nil && claims == nil {
		return err
	}
	in := store.RedeemInput{
		Claims:     claims,
		Instance:   store.Instance{ID: req.Instance.ID, Name: req.Instance.Name, BaseURL: req.Instance.BaseURL},
		Name:       req.Name,
		LinkSecret: req.LinkSecret,
		Expect:     store.Expect{SiteBaseURL: req.Expect.SiteBaseURL, SpaceID: req.Expect.SpaceID, SyncID: req.Expect.SyncID},
	}
	if err != nil {
		// Expired but authentic: only an exact replay of the redemption
		// that used it still gets its link (dc-app's retry of a lost answer).
		link, err := a.store.ReplayExpired(c.Request().Context(), in, err)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, protocol.RedemptionResponse{Link: protocolLink(link)})
	}
	link, replay, err := a.store.Redeem(c.Request().Context(), in)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if replay {
		status = http.StatusOK
	}
	return c.JSON(status, protocol.RedemptionResponse{Link: protocolLink(link)})
}

// handleLinkSelf answers GET /api/v1/links/self: the link the bearer's link
// secret belongs to, in any status, so dc-app learns of an unlink or a
// deleted sync. A call on an active link marks it used: from then on a
// replayed redemption of its token is token_used.
func (a *App) handleLinkSelf(c echo.Context) error {
	link, err := a.linkFromBearer(c)
	if err != nil {
		return err
	}
	if link.TenantUninstalled {
		return apperr.New(apperr.TenantUninstalled, "The Confluence Cloud site of this link has uninstalled Space Sync.")
	}
	if link.Status == store.LinkActive {
		at, err := a.store.TouchLink(c.Request().Context(), link.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			link.Status = store.LinkUnlinked // unlinked a moment ago
		case err != nil:
			return err
		default:
			link.LastUsedAt = &at
		}
	}
	return c.JSON(http.StatusOK, protocol.RedemptionResponse{Link: protocolLink(link)})
}

// handleUnlinkSelf answers DELETE /api/v1/links/self: the link ends and its
// sync returns to NOT_SYNCED_YET. Repeating it is harmless (204 again).
func (a *App) handleUnlinkSelf(c echo.Context) error {
	link, err := a.linkFromBearer(c)
	if err != nil {
		return err
	}
	if err := a.store.Unlink(c.Request().Context(), link.ID, store.InstanceActor(link.Instance.ID)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

var errBadLinkCredential = apperr.New(apperr.Unauthorized,
	"This request needs the link's credential (Authorization: Bearer <link secret>); it is missing or not valid.")

// linkFromBearer returns the link whose secret is the request's bearer
// credential, or unauthorized.
func (a *App) linkFromBearer(c echo.Context) (store.Link, error) {
	scheme, secret, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !validLinkSecret(secret) {
		return store.Link{}, errBadLinkCredential
	}
	link, err := a.store.LinkBySecret(c.Request().Context(), secret)
	if errors.Is(err, store.ErrNotFound) {
		return store.Link{}, errBadLinkCredential
	}
	return link, err
}

// decodeAPIJSON reads one JSON object from the request body into v. Unknown
// members are ignored (bodies may grow); anything else that is not one JSON
// object is validation_failed, and a body over the limit payload_too_large.
func decodeAPIJSON(c echo.Context, v any) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return apperr.New(apperr.ValidationFailed, "Send the request as JSON (Content-Type: application/json).")
	}
	dec := json.NewDecoder(c.Request().Body)
	err = dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he // the body limit
		}
		return apperr.Wrap(err, apperr.ValidationFailed, "The request body is not a valid JSON object of the expected form.")
	}
	return nil
}

// validateRedemption checks the fields of a redemption request other than
// the token, which Open checks.
func validateRedemption(r *protocol.RedemptionRequest) error {
	f := map[string]string{}
	if strings.TrimSpace(r.Token) == "" {
		f["token"] = "The token is required."
	}
	if !validLinkSecret(r.LinkSecret) {
		f["linkSecret"] = "The link secret must be 32 random bytes, base64url-encoded without padding."
	}
	if n := len(r.Instance.ID); n == 0 || n > maxInstanceID || !printableASCII(r.Instance.ID) {
		f["instance.id"] = "The instance id is required: up to 128 printable ASCII characters."
	}
	if msg := checkDisplayName(r.Instance.Name, "instance name"); msg != "" {
		f["instance.name"] = msg
	}
	if r.Instance.BaseURL != "" && !validDisplayURL(r.Instance.BaseURL) {
		f["instance.baseUrl"] = "The instance base URL must be an http or https URL."
	}
	if msg := checkDisplayName(r.Name, "name"); msg != "" {
		f["name"] = msg
	}
	if !validDisplayURL(r.Expect.SiteBaseURL) {
		f["expect.siteBaseUrl"] = "The expected site base URL is required and must be an http or https URL."
	}
	if n := len(r.Expect.SpaceID); n == 0 || n > maxExpectID || !printableASCII(r.Expect.SpaceID) {
		f["expect.spaceId"] = "The expected space id is required."
	}
	if n := len(r.Expect.SyncID); n == 0 || n > maxExpectID || !printableASCII(r.Expect.SyncID) {
		f["expect.syncId"] = "The expected sync id is required."
	}
	if len(f) > 0 {
		return apperr.Validation(f)
	}
	return nil
}

// validLinkSecret reports whether s is 32 bytes in canonical, unpadded
// base64url.
func validLinkSecret(s string) bool {
	if len(s) != linkSecretChars {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == linkSecretBytes
}

func checkDisplayName(s, what string) string {
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return "The " + what + " is required."
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) }):
		return "The " + what + " contains characters that are not allowed."
	case utf8.RuneCountInString(s) > maxDisplayName:
		return "The " + what + " must be at most 255 characters."
	}
	return ""
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7F {
			return false
		}
	}
	return true
}

// validDisplayURL reports whether s is an absolute http or https URL with a
// host and no user info, short enough to store and show.
func validDisplayURL(s string) bool {
	if len(s) == 0 || len(s) > maxURLLength || !printableASCII(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

func tokenSettings(s token.Sync) protocol.SyncSettings {
	perms := make([]protocol.Principal, len(s.Permissions))
	for i, p := range s.Permissions {
		perms[i] = protocol.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	return protocol.SyncSettings{Permissions: perms, Comments: s.Comments, Labels: s.Labels}
}

// protocolLink is the wire form of a link; it never carries a secret.
func protocolLink(l store.Link) protocol.Link {
	perms := make([]protocol.Principal, len(l.Sync.Permissions))
	for i, p := range l.Sync.Permissions {
		perms[i] = protocol.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	return protocol.Link{
		ID:        l.ID,
		SyncID:    l.SyncID,
		Status:    l.Status,
		Site:      protocol.Site{BaseURL: l.Site.BaseURL, DisplayURL: l.Site.DisplayURL},
		Space:     protocol.Space{ID: l.Sync.SpaceID, Key: l.Sync.SpaceKey, Name: l.Sync.SpaceName},
		SyncName:  l.Sync.Name,
		Settings:  protocol.SyncSettings{Permissions: perms, Comments: l.Sync.SyncComments, Labels: l.Sync.SyncLabels},
		CreatedAt: l.CreatedAt,
	}
}

// failureWindow counts failed calls per client IP in fixed windows. It
// lives in memory, so it is per replica and lost on restart: an
// approximate brake on guessing, which DESIGN section 3 allows.
type failureWindow struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	byIP map[string]ipFailures
}

type ipFailures struct {
	start time.Time
	n     int
}

func newFailureWindow(limit int, window time.Duration, now func() time.Time) *failureWindow {
	return &failureWindow{limit: limit, window: window, now: now, byIP: map[string]ipFailures{}}
}

// blocked reports whether ip has used up its failures in the current
// window, and if so in how many seconds the window ends.
func (w *failureWindow) blocked(ip string) (retryAfter int, blocked bool) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.byIP[ip]
	if !ok || now.Sub(f.start) >= w.window {
		return 0, false
	}
	if f.n < w.limit {
		return 0, false
	}
	left := f.start.Add(w.window).Sub(now)
	return max(1, int(math.Ceil(left.Seconds()))), true
}

// fail counts a failed call from ip.
func (w *failureWindow) fail(ip string) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.byIP[ip]
	if !ok || now.Sub(f.start) >= w.window {
		if !ok && len(w.byIP) >= failureWindowMaxIP {
			w.sweep(now)
		}
		f = ipFailures{start: now}
	}
	f.n++
	w.byIP[ip] = f
}

// sweep drops ended windows, and everything if that is not enough: the
// counts are safe to lose.
func (w *failureWindow) sweep(now time.Time) {
	for ip, f := range w.byIP {
		if now.Sub(f.start) >= w.window {
			delete(w.byIP, ip)
		}
	}
	if len(w.byIP) >= failureWindowMaxIP {
		clear(w.byIP)
	}
}
