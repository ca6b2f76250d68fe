package web

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/cloud-app/internal/tokens"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/token"
)

// v1Case is one token scenario: what a preview and what a redemption of it
// answer. Each case has its own tenant, sync and token.
type v1Case struct {
	name string
	// setup returns the token to present and the redemption to send.
	setup func(e *v1Env, f *v1Fixture)
	// preview: the status and, for 200, the state; for errors the code.
	previewStatus int
	previewWant   string
	redeemStatus  int
	redeemCode    apperr.Code
	// later moves the app's clock forward after setup (and back after the
	// case): a replay that arrives after the token expired.
	later time.Duration
}

type v1Fixture struct {
	tenant *store.Tenant
	sync   store.Sync
	tok    string
	rec    store.TokenRecord
	req    protocol.RedemptionRequest
	// first is the link created by a setup that redeems first.
	first protocol.Link
}

func (f *v1Fixture) useToken(tok string) { f.tok, f.req.Token = tok, tok }

// redeemFirst redeems the fixture's token once, as instance with secret.
func (f *v1Fixture) redeemFirst(e *v1Env, instance, secret string) {
	e.tb.Helper()
	r := e.redeem(v1Redemption(f.tok, f.tenant, f.sync, instance, secret))
	if r.Code != http.StatusCreated {
		e.tb.Fatalf("first redemption: %s", r)
	}
	f.first = v1Link(e.tb, r)
}

func v1Cases() []v1Case {
	otherKeys := func(e *v1Env, kid string) *tokens.Minter {
		ks, err := token.GenerateKeySet(kid)
		if err != nil {
			e.tb.Fatal(err)
		}
		return tokens.NewMinter(ks, v1BaseURL, e.clock.Now)
	}
	uninstall := func(e *v1Env, f *v1Fixture) {
		if _, err := e.app.store.UninstallTenant(e.ctx, f.tenant.ClientKey); err != nil {
			e.tb.Fatal(err)
		}
	}
	revoke := func(e *v1Env, f *v1Fixture) {
		if _, err := e.app.store.RevokeTokens(e.ctx, f.tenant.ID, f.sync.ID, "acc-admin"); err != nil {
			e.tb.Fatal(err)
		}
	}
	return []v1Case{
		{name: "OK", setup: func(e *v1Env, f *v1Fixture) {},
			previewStatus: 200, previewWant: protocol.StateUsable, redeemStatus: 201},
		{name: "ErrGarbage", setup: func(e *v1Env, f *v1Fixture) { f.useToken("this is not a token") },
			previewStatus: 400, previewWant: string(apperr.InvalidToken), redeemStatus: 400, redeemCode: apperr.InvalidToken},
		{name: "ErrTampered", setup: func(e *v1Env, f *v1Fixture) {
			// Change one character of the ciphertext segment.
			parts := strings.Split(f.tok, ".")
			c := []byte(parts[3])
			if c[0] == 'A' {
				c[0] = 'B'
			} else {
				c[0] = 'A'
			}
			parts[3] = string(c)
			f.useToken(strings.Join(parts, "."))
		}, previewStatus: 400, previewWant: string(apperr.InvalidToken), redeemStatus: 400, redeemCode: apperr.InvalidToken},
		{name: "ErrWrongKeySameKid", setup: func(e *v1Env, f *v1Fixture) {
			tok, _ := e.mintWith(otherKeys(e, "k1"), f.tenant, f.sync, false)
			f.useToken(tok)
		}, previewStatus: 400, previewWant: string(apperr.InvalidToken), redeemStatus: 400, redeemCode: apperr.InvalidToken},
		{name: "ErrUnknownKid", setup: func(e *v1Env, f *v1Fixture) {
			tok, _ := e.mintWith(otherKeys(e, "k9"), f.tenant, f.sync, false)
			f.useToken(tok)
		}, previewStatus: 400, previewWant: string(apperr.UnknownKey), redeemStatus: 400, redeemCode: apperr.UnknownKey},
		{name: "ErrOtherIssuer", setup: func(e *v1Env, f *v1Fixture) {
			tok, _ := e.mintWith(tokens.NewMinter(e.keys, "https://cloud.other.example", e.clock.Now), f.tenant, f.sync, true)
			f.useToken(tok)
		}, previewStatus: 400, previewWant: string(apperr.UntrustedIssuer), redeemStatus: 400, redeemCode: apperr.UntrustedIssuer},
		{name: "ErrExpired", setup: func(e *v1Env, f *v1Fixture) {
			old := func() time.Time { return e.clock.Now().Add(-token.Lifetime - time.Hour) }
			tok, _ := e.mintWith(tokens.NewMinter(e.keys, v1BaseURL, old), f.tenant, f.sync, true)
			f.useToken(tok)
		}, previewStatus: 410, previewWant: string(apperr.TokenExpired), redeemStatus: 410, redeemCode: apperr.TokenExpired},
		{name: "ErrExpired_BeforeRevoked", setup: func(e *v1Env, f *v1Fixture) {
			old := func() time.Time { return e.clock.Now().Add(-token.Lifetime - time.Hour) }
			tok, _ := e.mintWith(tokens.NewMinter(e.keys, v1BaseURL, old), f.tenant, f.sync, true)
			f.useToken(tok)
			revoke(e, f)
		}, previewStatus: 410, previewWant: string(apperr.TokenExpired), redeemStatus: 410, redeemCode: apperr.TokenExpired},
		{name: "OK_AlmostExpired", setup: func(e *v1Env, f *v1Fixture) {
			old := func() time.Time { return e.clock.Now().Add(-token.Lifetime + time.Minute) }
			tok, rec := e.mintWith(tokens.NewMinter(e.keys, v1BaseURL, old), f.tenant, f.sync, true)
			f.useToken(tok)
			f.rec = rec
		}, previewStatus: 200, previewWant: protocol.StateUsable, redeemStatus: 201},
		{name: "ErrNotYetValid", setup: func(e *v1Env, f *v1Fixture) {
			future := func() time.Time { return e.clock.Now().Add(time.Hour) }
			tok, _ := e.mintWith(tokens.NewMinter(e.keys, v1BaseURL, future), f.tenant, f.sync, true)
			f.useToken(tok)
		}, previewStatus: 400, previewWant: string(apperr.TokenNotYetValid), redeemStatus: 400, redeemCode: apperr.TokenNotYetValid},
		{name: "ErrUnknownJTI", setup: func(e *v1Env, f *v1Fixture) {
			tok, _ := e.mint(f.tenant, f.sync, false) // our key, never stored
			f.useToken(tok)
		}, previewStatus: 400, previewWant: string(apperr.InvalidToken), redeemStatus: 400, redeemCode: apperr.InvalidToken},
		{name: "ErrUnknownJTI_BeforeAnyState", setup: func(e *v1Env, f *v1Fixture) {
			tok, _ := e.mint(f.tenant, f.sync, false)
			f.useToken(tok)
			revoke(e, f)
			if err := e.app.store.DeleteSync(e.ctx, f.tenant.ID, f.sync.ID, "acc-admin"); err != nil {
				e.tb.Fatal(err)
			}
			uninstall(e, f)
			f.req.Expect.SpaceID = "another-space"
		}, previewStatus: 400, previewWant: string(apperr.InvalidToken), redeemStatus: 400, redeemCode: apperr.InvalidToken},
		{name: "ErrRevoked", setup: revoke,
			previewStatus: 200, previewWant: string(apperr.TokenRevoked), redeemStatus: 410, redeemCode: apperr.TokenRevoked},
		{name: "ErrSuperseded", setup: func(e *v1Env, f *v1Fixture) {
			other, _ := e.mint(f.tenant, f.sync, true)
			if r := e.redeem(v1Redemption(other, f.tenant, f.sync, "inst-2", e.newLinkSecret())); r.Code != 201 {
				e.tb.Fatalf("redeem the other token: %s", r)
			}
		}, previewStatus: 200, previewWant: string(apperr.TokenRevoked), redeemStatus: 410, redeemCode: apperr.TokenRevoked},
		{name: "ErrUsed_OtherInstance", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, "inst-2", f.req.LinkSecret)
		}, previewStatus: 200, previewWant: string(apperr.TokenUsed), redeemStatus: 409, redeemCode: apperr.TokenUsed},
		{name: "ErrUsed_WrongSecret", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, f.req.Instance.ID, e.newLinkSecret())
		}, previewStatus: 200, previewWant: string(apperr.TokenUsed), redeemStatus: 409, redeemCode: apperr.TokenUsed},
		{name: "OK_ExactReplay", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, f.req.Instance.ID, f.req.LinkSecret)
		}, previewStatus: 200, previewWant: string(apperr.TokenUsed), redeemStatus: 200},
		{name: "ErrUsed_ReplayAfterAuthenticatedGET", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, f.req.Instance.ID, f.req.LinkSecret)
			if r := e.linkSelf(http.MethodGet, f.req.LinkSecret); r.Code != 200 {
				e.tb.Fatalf("GET links/self: %s", r)
			}
		}, previewStatus: 200, previewWant: string(apperr.TokenUsed), redeemStatus: 409, redeemCode: apperr.TokenUsed},
		// dc-app retries a redemption whose answer was lost until it gets a
		// definite one (DESIGN section 5), possibly after the token expired:
		// the exact replay still gets its link, anyone else token_expired.
		{name: "OK_ExactReplay_AfterExpiry", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, f.req.Instance.ID, f.req.LinkSecret)
		}, later: token.Lifetime + time.Hour,
			previewStatus: 410, previewWant: string(apperr.TokenExpired), redeemStatus: 200},
		{name: "ErrExpired_WrongSecretReplay", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, f.req.Instance.ID, e.newLinkSecret())
		}, later: token.Lifetime + time.Hour,
			previewStatus: 410, previewWant: string(apperr.TokenExpired), redeemStatus: 410, redeemCode: apperr.TokenExpired},
		{name: "ErrExpired_ReplayAfterAuthenticatedGET", setup: func(e *v1Env, f *v1Fixture) {
			f.redeemFirst(e, f.req.Instance.ID, f.req.LinkSecret)
			if r := e.linkSelf(http.MethodGet, f.req.LinkSecret); r.Code != 200 {
				e.tb.Fatalf("GET links/self: %s", r)
			}
		}, later: token.Lifetime + time.Hour,
			previewStatus: 410, previewWant: string(apperr.TokenExpired), redeemStatus: 410, redeemCode: apperr.TokenExpired},
		{name: "ErrExpired_UnusedNoReplay", setup: func(e *v1Env, f *v1Fixture) {},
			later:         token.Lifetime + time.Hour,
			previewStatus: 410, previewWant: string(apperr.TokenExpired), redeemStatus: 410, redeemCode: apperr.TokenExpired},
		{name: "ErrMismatch", setup: func(e *v1Env, f *v1Fixture) { f.req.Expect.SpaceID = "another-space" },
			previewStatus: 200, previewWant: protocol.StateUsable, redeemStatus: 409, redeemCode: apperr.TokenMismatch},
		{name: "ErrMismatchSite_BeforeState", setup: func(e *v1Env, f *v1Fixture) {
			revoke(e, f)
			f.req.Expect.SiteBaseURL = "https://victim.atlassian.net/wiki"
		}, previewStatus: 200, previewWant: string(apperr.TokenRevoked), redeemStatus: 409, redeemCode: apperr.TokenMismatch},
		{name: "ErrSyncDeleted", setup: func(e *v1Env, f *v1Fixture) {
			if err := e.app.store.DeleteSync(e.ctx, f.tenant.ID, f.sync.ID, "acc-admin"); err != nil {
				e.tb.Fatal(err)
			}
		}, previewStatus: 200, previewWant: string(apperr.SyncDeleted), redeemStatus: 410, redeemCode: apperr.SyncDeleted},
		{name: "ErrTenantUninstalled", setup: uninstall,
			previewStatus: 200, previewWant: string(apperr.TenantUninstalled), redeemStatus: 410, redeemCode: apperr.TenantUninstalled},
	}
}

func TestAPIV1_PreviewAndRedeem(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newV1Env(t, d, nil)
		for i, tc := range v1Cases() {
			t.Run(tc.name, func(t *testing.T) {
				e.tb = t
				f := &v1Fixture{tenant: e.tenant(fmt.Sprintf("site-%d", i))}
				f.sync = e.sync(f.tenant, "ENG")
				f.tok, f.rec = e.mint(f.tenant, f.sync, true)
				f.req = v1Redemption(f.tok, f.tenant, f.sync, "inst-1", e.newLinkSecret())
				tc.setup(e, f)
				if tc.later != 0 {
					e.clock.Add(tc.later)
					t.Cleanup(func() { e.clock.Add(-tc.later) })
				}

				// The preview, twice: it consumes nothing.
				for range 2 {
					r := e.preview(f.tok)
					if r.Code != tc.previewStatus {
						t.Fatalf("preview: %s; want status %d", r, tc.previewStatus)
					}
					if r.Code != 200 {
						if got := r.ErrCode(); string(got) != tc.previewWant {
							t.Fatalf("preview: code %q; want %q", got, tc.previewWant)
						}
						continue
					}
					p := v1Preview(t, r)
					if p.State != tc.previewWant {
						t.Fatalf("preview state %q (%s); want %q", p.State, p.Reason, tc.previewWant)
					}
					if p.TokenID != f.rec.JTI || p.SyncID != f.sync.ID || p.SyncName != f.sync.Name ||
						p.Site.BaseURL != f.tenant.BaseURL || p.Space != (protocol.Space{ID: f.sync.SpaceID, Key: "ENG", Name: "ENG space"}) ||
						p.Message != "Please import" || !p.Settings.Comments || !p.Settings.Labels || len(p.Settings.Permissions) != 1 ||
						!p.ExpiresAt.Equal(f.rec.ExpiresAt) || !p.IssuedAt.Equal(f.rec.IssuedAt) {
						t.Errorf("preview contents: %+v", p)
					}
					if (p.State == protocol.StateUsable) != (p.Reason == "") {
						t.Errorf("preview reason %q for state %q", p.Reason, p.State)
					}
				}

				r := e.redeem(f.req)
				if r.Code != tc.redeemStatus || r.ErrCode() != tc.redeemCode {
					t.Fatalf("redemption: %s; want %d %q", r, tc.redeemStatus, tc.redeemCode)
				}
				if r.Code >= 300 {
					return
				}
				link := v1Link(t, r)
				if link.Status != protocol.LinkActive || link.SyncID != f.sync.ID || link.SyncName != f.sync.Name ||
					link.Site.BaseURL != f.tenant.BaseURL || link.Space.Key != "ENG" || !link.Settings.Comments {
					t.Errorf("link: %+v", link)
				}
				if strings.Contains(string(r.Body), f.req.LinkSecret) || strings.Contains(strings.ToLower(string(r.Body)), "secret") {
					t.Errorf("the redemption answer carries a secret: %s", r.Body)
				}
				if r.Code == 200 && link.ID != f.first.ID {
					t.Errorf("replay answered link %s; want the first link %s", link.ID, f.first.ID)
				}
				if n := e.count(`SELECT COUNT(*) FROM links WHERE sync_id = ?`, f.sync.ID); n != 1 {
					t.Errorf("%d links; want 1", n)
				}
				got, err := e.app.store.GetSync(e.ctx, f.tenant.ID, f.sync.ID)
				if err != nil || got.Status != store.SyncSynced {
					t.Errorf("sync status %q, %v; want SYNCED", got.Status, err)
				}
				// Now the preview says used.
				if tc.later != 0 {
					return
				}
				if p := v1Preview(t, e.preview(f.tok)); p.State != string(apperr.TokenUsed) {
					t.Errorf("preview after redemption: %q; want token_used", p.State)
				}
			})
		}
	})
}

func TestAPIV1_Redeem_Validation(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newV1Env(t, d, nil)
		tenant := e.tenant("site-v")
		s := e.sync(tenant, "ENG")
		tok, _ := e.mint(tenant, s, true)
		b64 := base64.RawURLEncoding.EncodeToString
		for _, tc := range []struct {
			name  string
			edit  func(r *protocol.RedemptionRequest)
			field string
		}{
			{"ErrNoToken", func(r *protocol.RedemptionRequest) { r.Token = " " }, "token"},
			{"ErrNoLinkSecret", func(r *protocol.RedemptionRequest) { r.LinkSecret = "" }, "linkSecret"},
			{"ErrLinkSecretShort", func(r *protocol.RedemptionRequest) { r.LinkSecret = b64(make([]byte, 31)) }, "linkSecret"},
			{"ErrLinkSecretLong", func(r *protocol.RedemptionRequest) { r.LinkSecret = b64(make([]byte, 33)) }, "linkSecret"},
			{"ErrLinkSecretPadded", func(r *protocol.RedemptionRequest) {
				r.LinkSecret = base64.URLEncoding.EncodeToString(make([]byte, 32))
			}, "linkSecret"},
			{"ErrLinkSecretStdAlphabet", func(r *protocol.RedemptionRequest) { r.LinkSecret = strings.Repeat("+", 43) }, "linkSecret"},
			{"ErrLinkSecretNotCanonical", func(r *protocol.RedemptionRequest) { r.LinkSecret = strings.Repeat("A", 42) + "B" }, "linkSecret"},
			{"ErrNoInstanceID", func(r *protocol.RedemptionRequest) { r.Instance.ID = "" }, "instance.id"},
			{"ErrInstanceIDTooLong", func(r *protocol.RedemptionRequest) { r.Instance.ID = strings.Repeat("i", 129) }, "instance.id"},
			{"ErrInstanceIDSpace", func(r *protocol.RedemptionRequest) { r.Instance.ID = "a b" }, "instance.id"},
			{"ErrNoInstanceName", func(r *protocol.RedemptionRequest) { r.Instance.Name = "  " }, "instance.name"},
			{"ErrInstanceNameTooLong", func(r *protocol.RedemptionRequest) { r.Instance.Name = strings.Repeat("n", 256) }, "instance.name"},
			{"ErrInstanceBaseURL", func(r *protocol.RedemptionRequest) { r.Instance.BaseURL = "javascript:alert(1)" }, "instance.baseUrl"},
			{"ErrNoName", func(r *protocol.RedemptionRequest) { r.Name = "" }, "name"},
			{"ErrNameTooLong", func(r *protocol.RedemptionRequest) { r.Name = strings.Repeat("é", 256) }, "name"},
			{"ErrNameControl", func(r *protocol.RedemptionRequest) { r.Name = "a\x00b" }, "name"},
			{"ErrNoExpectSite", func(r *protocol.RedemptionRequest) { r.Expect.SiteBaseURL = "" }, "expect.siteBaseUrl"},
			{"ErrNoExpectSpace", func(r *protocol.RedemptionRequest) { r.Expect.SpaceID = "" }, "expect.spaceId"},
			{"ErrNoExpectSync", func(r *protocol.RedemptionRequest) { r.Expect.SyncID = "" }, "expect.syncId"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := v1Redemption(tok, tenant, s, "inst-1", e.newLinkSecret())
				tc.edit(&req)
				r := e.redeem(req)
				if r.Code != 422 || r.ErrCode() != apperr.ValidationFailed || !strings.Contains(string(r.Body), `"`+tc.field+`"`) {
					t.Fatalf("%s; want 422 validation_failed on %s", r, tc.field)
				}
			})
		}
		for _, tc := range []struct {
			name, ct string
			body     any
			status   int
			code     apperr.Code
		}{
			{"ErrNotJSON", "application/json", "token=abc", 422, apperr.ValidationFailed},
			{"ErrWrongContentType", "text/plain", `{"token":"x"}`, 422, apperr.ValidationFailed},
			{"ErrTrailingData", "application/json", `{"token":"x"} {"token":"y"}`, 422, apperr.ValidationFailed},
			{"ErrArray", "application/json", `[]`, 422, apperr.ValidationFailed},
			{"ErrTooLarge", "application/json", `{"token":"` + strings.Repeat("a", 64<<10) + `"}`, 413, apperr.PayloadTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{protocol.PathRedemptions, protocol.PathPreviews} {
					r := e.do(v1Request{Method: http.MethodPost, Path: path, Body: tc.body, ContentType: tc.ct})
					if r.Code != tc.status || r.ErrCode() != tc.code {
						t.Errorf("%s: %s; want %d %s", path, r, tc.status, tc.code)
					}
				}
			})
		}
		// The twin: the limits themselves pass, with unknown members
		// ignored (bodies may grow) and a parameter on the media type.
		t.Run("OK_Limits", func(t *testing.T) {
			req := v1Redemption(tok, tenant, s, strings.Repeat("i", 128), e.newLinkSecret())
			req.Instance.Name = strings.Repeat("n", 255)
			req.Name = strings.Repeat("é", 255)
			req.Instance.BaseURL = ""
			body := map[string]any{"token": req.Token, "instance": req.Instance, "name": req.Name, "linkSecret": req.LinkSecret,
				"expect": req.Expect, "futureField": true}
			r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathRedemptions, Body: body, ContentType: "application/json; charset=utf-8"})
			if r.Code != 201 {
				t.Fatalf("%s; want 201", r)
			}
			if l := v1Link(t, r); l.SyncID != s.ID {
				t.Errorf("link %+v", l)
			}
		})
	})
}

func TestAPIV1_LinkSelf(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newV1Env(t, d, nil)
		tenant := e.tenant("site-l")
		s := e.sync(tenant, "ENG")
		tok, _ := e.mint(tenant, s, true)
		secret := e.newLinkSecret()
		r := e.redeem(v1Redemption(tok, tenant, s, "inst-1", secret))
		if r.Code != 201 {
			t.Fatal(r)
		}
		link := v1Link(t, r)

		t.Run("ErrUnauthorized", func(t *testing.T) {
			for name, hdr := range map[string]map[string]string{
				"none":           nil,
				"basic":          {"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+secret))},
				"malformed":      {"Authorization": "Bearer not-a-secret"},
				"unknown secret": {"Authorization": "Bearer " + e.newLinkSecret()},
				"no scheme":      {"Authorization": secret},
			} {
				for _, m := range []string{http.MethodGet, http.MethodDelete} {
					r := e.do(v1Request{Method: m, Path: protocol.PathLinkSelf, Header: hdr})
					if r.Code != 401 || r.ErrCode() != apperr.Unauthorized || r.Header.Get("WWW-Authenticate") != "" {
						t.Errorf("%s %s: %s; want 401 unauthorized", m, name, r)
					}
				}
			}
			if got, _ := e.app.store.GetSync(e.ctx, tenant.ID, s.ID); got.Status != store.SyncSynced {
				t.Errorf("a refused DELETE changed the sync: %q", got.Status)
			}
		})
		t.Run("OK_GET", func(t *testing.T) {
			r := e.do(v1Request{Method: http.MethodGet, Path: protocol.PathLinkSelf, Header: map[string]string{"Authorization": "bearer " + secret}})
			if r.Code != 200 {
				t.Fatal(r)
			}
			got := v1Link(t, r)
			if got.ID != link.ID || got.Status != protocol.LinkActive || got.Space.Key != "ENG" {
				t.Errorf("link %+v", got)
			}
			if n := e.count(`SELECT COUNT(*) FROM links WHERE id = ? AND last_used_at IS NOT NULL`, link.ID); n != 1 {
				t.Error("GET did not mark the link used")
			}
		})
		t.Run("OK_DELETE", func(t *testing.T) {
			if r := e.linkSelf(http.MethodDelete, secret); r.Code != 204 {
				t.Fatal(r)
			}
			if r := e.linkSelf(http.MethodDelete, secret); r.Code != 204 {
				t.Errorf("second DELETE: %s; want 204", r)
			}
			got, _ := e.app.store.GetSync(e.ctx, tenant.ID, s.ID)
			if got.Status != store.SyncNotSyncedYet {
				t.Errorf("sync after unlink: %q; want NOT_SYNCED_YET", got.Status)
			}
			r := e.linkSelf(http.MethodGet, secret)
			if r.Code != 200 || v1Link(t, r).Status != protocol.LinkUnlinked {
				t.Errorf("GET after unlink: %s; want 200 unlinked", r)
			}
			// The old token stays used; a new token pairs the sync again.
			if r := e.redeem(v1Redemption(tok, tenant, s, "inst-1", secret)); r.Code != 409 || r.ErrCode() != apperr.TokenUsed {
				t.Errorf("old token after unlink: %s; want 409 token_used", r)
			}
			tok2, _ := e.mint(tenant, s, true)
			secret2 := e.newLinkSecret()
			r = e.redeem(v1Redemption(tok2, tenant, s, "inst-2", secret2))
			if r.Code != 201 {
				t.Fatalf("new token after unlink: %s; want 201", r)
			}
			if l := v1Link(t, r); l.ID == link.ID {
				t.Error("the new link reuses the old id")
			}
			if r := e.linkSelf(http.MethodGet, secret2); r.Code != 200 || v1Link(t, r).Status != protocol.LinkActive {
				t.Errorf("GET with the new secret: %s", r)
			}
		})
		t.Run("ErrTenantUninstalled", func(t *testing.T) {
			t2 := e.tenant("site-l2")
			s2 := e.sync(t2, "OPS")
			tok, _ := e.mint(t2, s2, true)
			sec := e.newLinkSecret()
			if r := e.redeem(v1Redemption(tok, t2, s2, "inst-1", sec)); r.Code != 201 {
				t.Fatal(r)
			}
			if _, err := e.app.store.UninstallTenant(e.ctx, t2.ClientKey); err != nil {
				t.Fatal(err)
			}
			if r := e.linkSelf(http.MethodGet, sec); r.Code != 410 || r.ErrCode() != apperr.TenantUninstalled {
				t.Errorf("%s; want 410 tenant_uninstalled", r)
			}
		})
		t.Run("OK_SyncDeletedShowsUnlinked", func(t *testing.T) {
			t3 := e.tenant("site-l3")
			s3 := e.sync(t3, "DOC")
			tok, _ := e.mint(t3, s3, true)
			sec := e.newLinkSecret()
			if r := e.redeem(v1Redemption(tok, t3, s3, "inst-1", sec)); r.Code != 201 {
				t.Fatal(r)
			}
			if err := e.app.store.DeleteSync(e.ctx, t3.ID, s3.ID, "acc-admin"); err != nil {
				t.Fatal(err)
			}
			if r := e.linkSelf(http.MethodGet, sec); r.Code != 200 || v1Link(t, r).Status != protocol.LinkUnlinked {
				t.Errorf("%s; want 200 unlinked", r)
			}
		})
	})
}
