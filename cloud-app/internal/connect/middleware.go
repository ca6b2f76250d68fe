package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
)

// Identity is who made an authenticated request: the tenant named by the
// token's iss and the Atlassian account id of its sub. Tenant may be shared
// with other requests (it comes from the tenant cache): read it, never
// change it.
type Identity struct {
	Tenant    *store.Tenant
	AccountID string
}

const identityKey = "connect.identity"

// IdentityFrom returns the identity the Page or Context middleware put in
// c. Behind those middlewares it is always there; elsewhere the error is a
// 401 unauthorized *apperr.Error, so a handler can simply return it.
func IdentityFrom(c echo.Context) (*Identity, error) {
	if id, ok := c.Get(identityKey).(*Identity); ok && id != nil {
		return id, nil
	}
	return nil, refuse(ErrNoToken)
}

// Authenticator verifies the HS256 JWTs Confluence gives the app's iframe.
// Each route accepts exactly one kind:
//
//   - page loads (Page): the token is the `jwt` query parameter and its qsh
//     is the computed hash of this request relative to our base URL's path;
//   - iframe API calls (Context): the token comes from AP.context.getToken()
//     in `Authorization: JWT <token>` and its qsh is exactly "context-qsh".
//
// Both pin HS256, find the tenant by iss only (never by xdm_e or a display
// URL), verify the HMAC with its shared secret in constant time, check exp
// with Leeway, and require a sub: an anonymous token may read and change
// nothing. The tenant must be installed or enabled.
type Authenticator struct {
	tenants  TenantLookup
	basePath string
	now      func() time.Time
}

// NewAuthenticator returns an Authenticator that finds tenants with
// tenants (normally a *store.TenantCache) and computes page qsh relative to
// baseURL's path. now is the clock (nil: time.Now).
func NewAuthenticator(tenants TenantLookup, baseURL *url.URL, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	return &Authenticator{tenants: tenants, basePath: strings.TrimSuffix(baseURL.EscapedPath(), "/"), now: now}
}

// Page is the middleware of page-load routes (GET /pages/...): the token
// in the `jwt` query parameter, qsh computed over this request.
func (a *Authenticator) Page() echo.MiddlewareFunc {
	return a.middleware(a.VerifyPage)
}

// Context is the middleware of iframe API routes (/api/ui/...): the token
// in `Authorization: JWT`, qsh exactly "context-qsh".
func (a *Authenticator) Context() echo.MiddlewareFunc {
	return a.middleware(a.VerifyContext)
}

func (a *Authenticator) middleware(verify func(context.Context, *http.Request) (*Identity, error)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id, err := verify(c.Request().Context(), c.Request())
			if err != nil {
				return err
			}
			c.Set(identityKey, id)
			return next(c)
		}
	}
}

// VerifyPage authenticates a page load; see Page. The error is an
// *apperr.Error (unauthorized) wrapping the reason, or a store error.
func (a *Authenticator) VerifyPage(ctx context.Context, r *http.Request) (*Identity, error) {
	if r.Header.Get("Authorization") != "" {
		return nil, refuse(fmt.Errorf("%w: a page load carries its token in the jwt parameter only", ErrNoToken))
	}
	rawPath, rawQuery := requestTarget(r)
	raw, err := queryToken(rawQuery)
	if err != nil {
		return nil, refuse(err)
	}
	tok, t, err := a.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !tok.HasQSH || tok.Claims.QSH == "" || tok.Claims.QSH == ContextQSH {
		return nil, refuse(fmt.Errorf("%w: a page load needs the computed qsh", ErrQSH))
	}
	want, err := RequestQSH(r.Method, rawPath, rawQuery, a.basePath)
	if err != nil {
		return nil, refuse(fmt.Errorf("%w: %w", ErrQSH, err))
	}
	if tok.Claims.QSH != want {
		return nil, refuse(ErrQSH)
	}
	return a.identity(tok, t)
}

// VerifyContext authenticates an iframe API call; see Context. The error
// is an *apperr.Error (unauthorized) wrapping the reason, or a store error.
func (a *Authenticator) VerifyContext(ctx context.Context, r *http.Request) (*Identity, error) {
	if _, rawQuery := requestTarget(r); rawQuery != "" {
		if vals, err := jwtParams(rawQuery); err != nil || len(vals) > 0 {
			return nil, refuse(fmt.Errorf("%w: an API call carries its token in the Authorization header only", ErrNoToken))
		}
	}
	raw, err := headerToken(r)
	if err != nil {
		return nil, refuse(err)
	}
	tok, t, err := a.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !tok.HasQSH || tok.Claims.QSH != ContextQSH {
		return nil, refuse(fmt.Errorf("%w: an API call needs a context token (qsh %q)", ErrQSH, ContextQSH))
	}
	return a.identity(tok, t)
}

// verify does what both kinds share: decode, pin HS256, find the tenant by
// iss, check the HMAC and the time.
func (a *Authenticator) verify(ctx context.Context, raw string) (*Token, *store.Tenant, error) {
	tok, err := ParseToken(raw)
	if err != nil {
		return nil, nil, refuse(err)
	}
	if tok.Header.Alg != HS256 {
		return nil, nil, refuse(ErrAlgorithm)
	}
	t, err := a.tenants.TenantByClientKey(ctx, tok.Claims.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, refuse(ErrIssuer)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := tok.VerifyHS256(t.SharedSecret); err != nil {
		return nil, nil, refuse(err)
	}
	if err := tok.CheckTime(a.now()); err != nil {
		return nil, nil, refuse(err)
	}
	if !t.Active() {
		return nil, nil, refuse(ErrTenantState)
	}
	return tok, t, nil
}

func (a *Authenticator) identity(tok *Token, t *store.Tenant) (*Identity, error) {
	if tok.Claims.Subject == "" {
		return nil, apperr.Wrap(ErrNoSubject, apperr.Unauthorized, "Log in to Confluence to use Space Sync.")
	}
	return &Identity{Tenant: t, AccountID: tok.Claims.Subject}, nil
}

// jwtParams returns the values of the `jwt` parameters of a raw query.
// Names are decoded as the canonical request decodes them, so the
// parameter the qsh leaves out is the one read here.
func jwtParams(rawQuery string) ([]string, error) {
	var out []string
	for rest := rawQuery; rest != ""; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "&")
		rn, rv, _ := strings.Cut(seg, "=")
		name, err := unescape(rn)
		if err != nil {
			return nil, ErrMalformed
		}
		if name != "jwt" {
			continue
		}
		v, err := unescape(rv)
		if err != nil {
			return nil, ErrMalformed
		}
		out = append(out, v)
	}
	return out, nil
}

// queryToken returns the single, non-empty `jwt` parameter of a raw query.
func queryToken(rawQuery string) (string, error) {
	vals, err := jwtParams(rawQuery)
	switch {
	case err != nil:
		return "", err
	case len(vals) == 0 || vals[0] == "":
		return "", ErrNoToken
	case len(vals) > 1:
		return "", fmt.Errorf("%w: more than one jwt parameter", ErrMalformed)
	}
	return vals[0], nil
}
