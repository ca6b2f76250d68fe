package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/token"
)

func TestStore_Redeem_OK(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		other := e.fxIssue(s)
		is := e.fxIssue(s)
		secret := fxLinkSecret(7)
		e.clock.Add(time.Minute)
		link, replay, err := e.store.Redeem(e.ctx, fxRedeemInput(is, "inst-1", secret))
		if err != nil || replay {
			t.Fatalf("Redeem = %v, replay %v; want a new link", err, replay)
		}
		now := e.clock.Now()
		if link.Status != LinkActive || link.SyncID != s.ID || link.TokenJTI != is.Record.JTI || link.TenantID != a ||
			link.Instance != (Instance{ID: "inst-1", Name: "DC inst-1", BaseURL: "https://dc.example.com"}) ||
			link.Name != "Imported ENG" || !link.CreatedAt.Equal(now) || link.LastUsedAt != nil ||
			link.Sync.Status != SyncSynced || link.Sync.Name != s.Name || link.Site.BaseURL != "https://a.atlassian.net/wiki" {
			t.Errorf("link = %+v", link)
		}
		got, err := e.store.GetSync(e.ctx, a, s.ID)
		if err != nil || got.Status != SyncSynced {
			t.Errorf("sync status = %q, %v; want SYNCED", got.Status, err)
		}
		if c := fxCode(e.store.CheckToken(e.ctx, other.Claims)); c != apperr.TokenRevoked {
			t.Errorf("the other token: %q; want token_revoked (superseded)", c)
		}
		details, err := e.store.SyncDetails(e.ctx, a, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if details.ActiveLink == nil || details.ActiveLink.ID != link.ID || len(details.Links) != 1 || len(details.Tokens) != 2 {
			t.Fatalf("details = %+v", details)
		}
		states := map[string]string{}
		for _, tok := range details.Tokens {
			states[tok.JTI] = tok.State(now) + "/" + tok.RevokeReason
		}
		want := map[string]string{is.Record.JTI: TokenStateUsed + "/", other.Record.JTI: TokenStateRevoked + "/" + RevokeSuperseded}
		if d := fxDiff(want, states); d != "" {
			t.Errorf("token states: %s", d)
		}
		trail, _ := e.store.AuditTrail(e.ctx, a, s.ID, 0)
		if len(trail) == 0 || trail[0].Action != "link.created" || trail[0].Actor != InstanceActor("inst-1") {
			t.Errorf("newest audit event = %+v; want link.created by the instance", trail)
		}
		// Neither secret is stored anywhere, only hashes.
		for _, sec := range []string{secret, is.Claims.RedemptionSecret} {
			for _, q := range []string{
				`SELECT COUNT(*) FROM links WHERE secret_hash = ? OR id = ? OR name = ? OR instance_id = ?`,
				`SELECT COUNT(*) FROM tokens WHERE rs_hash = ? OR jti = ? OR recipient = ? OR kid = ?`,
			} {
				if n := e.fxCount(q, sec, sec, sec, sec); n != 0 {
					t.Errorf("a plain secret is stored: %s", q)
				}
			}
			var details []string
			e.db.Raw(`SELECT detail FROM audit_events`).Scan(&details)
			if strings.Contains(strings.Join(details, "\n"), sec) {
				t.Errorf("a secret is in the audit details")
			}
		}
		if n := e.fxCount(`SELECT COUNT(*) FROM links WHERE secret_hash = ?`, SecretHash(secret)); n != 1 {
			t.Errorf("links with the secret's hash: %d; want 1", n)
		}
	})
}

// TestStore_Redeem_Refusals checks every refusal, each in a fresh sync, in
// the refusal order: a case that breaks several rules at once must get the
// earliest code. The "OK" case is the twin that passes with the same setup.
func TestStore_Redeem_Refusals(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		tenantN := 0
		type fixture struct {
			tenant string
			sync   Sync
			tok    fxIssued
			secret string
			in     RedeemInput
		}
		setup := func() *fixture {
			tenantN++
			ck := "ck-" + strings.Repeat("x", tenantN)
			f := &fixture{tenant: e.fxTenant(ck, "https://"+ck+".atlassian.net/wiki")}
			f.sync = e.fxSync(f.tenant, "ENG")
			f.tok = e.fxIssue(f.sync)
			// Link secrets are unique across links: each case has its own.
			f.secret = token.NewRedemptionSecret()
			f.in = fxRedeemInput(f.tok, "inst-1", f.secret)
			return f
		}
		uninstall := func(f *fixture) { e.fxSetTenantState(f.tenant, "uninstalled") }
		deleteSync := func(f *fixture) {
			if err := e.store.DeleteSync(e.ctx, f.tenant, f.sync.ID, "acc"); err != nil {
				t.Fatal(err)
			}
		}
		revoke := func(f *fixture) {
			if _, err := e.store.RevokeTokens(e.ctx, f.tenant, f.sync.ID, "acc"); err != nil {
				t.Fatal(err)
			}
		}
		redeem := func(f *fixture, instance, secret string) {
			if _, _, err := e.store.Redeem(e.ctx, fxRedeemInput(f.tok, instance, secret)); err != nil {
				t.Fatalf("first redemption: %v", err)
			}
		}
		unknownJTI := func(f *fixture) {
			c := *f.tok.Claims
			c.ID = token.NewID()
			f.in.Claims = &c
		}
		wrongRS := func(f *fixture) {
			c := *f.tok.Claims
			c.RedemptionSecret = token.NewRedemptionSecret()
			f.in.Claims = &c
		}
		for _, tc := range []struct {
			name string
			edit func(f *fixture)
			want apperr.Code
		}{
			{"OK", func(f *fixture) {}, ""},
			{"ErrUnknownJTI", unknownJTI, apperr.InvalidToken},
			{"ErrUnknownJTI_BeforeEverything", func(f *fixture) {
				revoke(f)
				deleteSync(f)
				uninstall(f)
				unknownJTI(f)
				f.in.Expect.SpaceID = "other"
			}, apperr.InvalidToken},
			{"ErrWrongRS", wrongRS, apperr.InvalidToken},
			{"ErrWrongRS_BeforeState", func(f *fixture) { redeem(f, "inst-1", f.secret); wrongRS(f) }, apperr.InvalidToken},
			{"ErrOtherTenantsClientKey", func(f *fixture) {
				c := *f.tok.Claims
				c.Site.ClientKey = "ck-someone-else"
				f.in.Claims = &c
			}, apperr.InvalidToken},
			{"ErrMismatchSite", func(f *fixture) { f.in.Expect.SiteBaseURL = "https://evil.atlassian.net/wiki" }, apperr.TokenMismatch},
			{"ErrMismatchSpace", func(f *fixture) { f.in.Expect.SpaceID = "other" }, apperr.TokenMismatch},
			{"ErrMismatchSync", func(f *fixture) { f.in.Expect.SyncID = newRecordID() }, apperr.TokenMismatch},
			{"ErrMismatch_BeforeState", func(f *fixture) { uninstall(f); f.in.Expect.SpaceID = "other" }, apperr.TokenMismatch},
			{"OK_SiteTrailingSlash", func(f *fixture) { f.in.Expect.SiteBaseURL += "/" }, ""},
			{"ErrTenantUninstalled", func(f *fixture) { uninstall(f) }, apperr.TenantUninstalled},
			{"ErrTenantUninstalled_BeforeSyncDeleted", func(f *fixture) { deleteSync(f); uninstall(f) }, apperr.TenantUninstalled},
			{"OK_TenantDisabled", func(f *fixture) { e.fxSetTenantState(f.tenant, "disabled") }, ""},
			{"ErrSyncDeleted", deleteSync, apperr.SyncDeleted},
			{"ErrSyncDeleted_BeforeRevoked", func(f *fixture) { revoke(f); deleteSync(f) }, apperr.SyncDeleted},
			{"ErrRevoked", revoke, apperr.TokenRevoked},
			{"ErrSuperseded", func(f *fixture) {
				other := e.fxIssue(f.sync)
				if _, _, err := e.store.Redeem(e.ctx, fxRedeemInput(other, "inst-2", token.NewRedemptionSecret())); err != nil {
					t.Fatal(err)
				}
			}, apperr.TokenRevoked},
			{"ErrUsed_OtherInstance", func(f *fixture) { redeem(f, "inst-2", f.secret) }, apperr.TokenUsed},
			{"ErrUsed_OtherSecret", func(f *fixture) { redeem(f, "inst-1", token.NewRedemptionSecret()) }, apperr.TokenUsed},
			{"OK_ExactReplay", func(f *fixture) { redeem(f, "inst-1", f.secret) }, ""},
			{"ErrUsed_ReplayAfterAuthenticatedCall", func(f *fixture) {
				redeem(f, "inst-1", f.secret)
				l, err := e.store.LinkBySecret(e.ctx, f.secret)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.store.TouchLink(e.ctx, l.ID); err != nil {
					t.Fatal(err)
				}
			}, apperr.TokenUsed},
			{"ErrUsed_ReplayAfterUnlink", func(f *fixture) {
				redeem(f, "inst-1", f.secret)
				l, _ := e.store.LinkBySecret(e.ctx, f.secret)
				if err := e.store.Unlink(e.ctx, l.ID, "x"); err != nil {
					t.Fatal(err)
				}
			}, apperr.TokenUsed},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := setup()
				tc.edit(f)
				checkErr := e.store.CheckToken(e.ctx, f.in.Claims)
				link, replay, err := e.store.Redeem(e.ctx, f.in)
				if got := fxCode(err); got != tc.want {
					t.Fatalf("Redeem: code %q (%v); want %q", got, err, tc.want)
				}
				if err != nil {
					if link.ID != "" || replay {
						t.Errorf("a refusal returned a link: %+v, replay %v", link, replay)
					}
					// The preview shows the same code, except for token
					// mismatch, which needs a redemption's expect, and for a
					// replay, which a preview cannot tell apart.
					wantCheck := tc.want
					if wantCheck == apperr.TokenMismatch {
						wantCheck = ""
						if strings.Contains(tc.name, "BeforeState") {
							wantCheck = apperr.TenantUninstalled
						}
					}
					if got := fxCode(checkErr); got != wantCheck {
						t.Errorf("CheckToken: code %q; want %q", got, wantCheck)
					}
					return
				}
				if link.Status != LinkActive || link.SyncID != f.sync.ID {
					t.Errorf("link = %+v", link)
				}
				if wantReplay := strings.Contains(tc.name, "Replay"); replay != wantReplay {
					t.Errorf("replay = %v; want %v", replay, wantReplay)
				}
				if n := e.fxCount(`SELECT COUNT(*) FROM links WHERE sync_id = ?`, f.sync.ID); n != 1 {
					t.Errorf("%d links for the sync; want 1", n)
				}
			})
		}
	})
}

func TestStore_Redeem_ReusedLinkSecret(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		s1, s2 := e.fxSync(a, "ENG"), e.fxSync(a, "OPS")
		t1, t2 := e.fxIssue(s1), e.fxIssue(s2)
		if _, _, err := e.store.Redeem(e.ctx, fxRedeemInput(t1, "inst", fxLinkSecret(1))); err != nil {
			t.Fatal(err)
		}
		// The unique secret hash refuses a reused secret, as token_used and
		// with nothing written.
		_, _, err := e.store.Redeem(e.ctx, fxRedeemInput(t2, "inst", fxLinkSecret(1)))
		if fxCode(err) != apperr.TokenUsed {
			t.Fatalf("err = %v; want token_used", err)
		}
		if err := e.store.CheckToken(e.ctx, t2.Claims); err != nil {
			t.Errorf("the second token after the refusal: %v; want usable (rolled back)", err)
		}
		if _, _, err := e.store.Redeem(e.ctx, fxRedeemInput(t2, "inst", fxLinkSecret(2))); err != nil {
			t.Errorf("with its own secret: %v", err)
		}
	})
}

func TestStore_Unlink(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		// The clock moves between steps so that the audit trail has an order.
		s := e.fxSync(a, "ENG")
		e.clock.Add(time.Second)
		first := e.fxIssue(s)
		e.clock.Add(time.Second)
		link, _, err := e.store.Redeem(e.ctx, fxRedeemInput(first, "inst", fxLinkSecret(1)))
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Second)
		t.Run("ErrNotFound", func(t *testing.T) {
			if err := e.store.Unlink(e.ctx, newRecordID(), "x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v; want ErrNotFound", err)
			}
		})
		t.Run("ErrIssueWhileLinked", func(t *testing.T) {
			c := token.NewClaims("http://x", e.clock.Now(), token.Site{}, token.Space{}, token.Sync{}, "")
			err := e.store.IssueToken(e.ctx, TokenRecord{JTI: c.ID, TenantID: a, SyncID: s.ID, KeyID: "k", RSHash: SecretHash("x"),
				Channel: ChannelDownload, IssuedBy: "acc", IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry}, nil)
			var ae *apperr.Error
			if !errors.As(err, &ae) || ae.Code != apperr.ValidationFailed || ae.Fields["sync"] == "" {
				t.Errorf("err = %v; want validation_failed on sync", err)
			}
		})
		t.Run("OK", func(t *testing.T) {
			if err := e.store.Unlink(e.ctx, link.ID, InstanceActor("inst")); err != nil {
				t.Fatal(err)
			}
			e.clock.Add(time.Second)
			got, _ := e.store.GetSync(e.ctx, a, s.ID)
			if got.Status != SyncNotSyncedYet {
				t.Errorf("sync status = %q; want NOT_SYNCED_YET", got.Status)
			}
			l, err := e.store.LinkBySecret(e.ctx, fxLinkSecret(1))
			if err != nil || l.Status != LinkUnlinked || l.UnlinkedAt == nil {
				t.Errorf("link = %+v, %v; want unlinked", l, err)
			}
			if _, err := e.store.TouchLink(e.ctx, link.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("TouchLink on an unlinked link: %v; want ErrNotFound", err)
			}
			// Idempotent.
			if err := e.store.Unlink(e.ctx, link.ID, "x"); err != nil {
				t.Errorf("second unlink: %v", err)
			}
			// A new token pairs the sync again; the old one stays used.
			second := e.fxIssue(s)
			e.clock.Add(time.Second)
			l2, replay, err := e.store.Redeem(e.ctx, fxRedeemInput(second, "inst-2", fxLinkSecret(2)))
			if err != nil || replay || l2.ID == link.ID {
				t.Fatalf("redeem after unlink: %+v, %v, %v", l2, replay, err)
			}
			if c := fxCode(e.store.CheckToken(e.ctx, first.Claims)); c != apperr.TokenUsed {
				t.Errorf("first token: %q; want token_used", c)
			}
			trail, _ := e.store.AuditTrail(e.ctx, a, s.ID, 0)
			var actions []string
			for _, ev := range trail {
				actions = append(actions, ev.Action)
			}
			want := []string{"link.created", "token.issued", "link.unlinked", "link.created", "token.issued", "sync.created"}
			// (newest first)
			if d := fxDiff(want, actions); d != "" {
				t.Errorf("audit trail: %s", d)
			}
		})
	})
}

func TestStore_LinkBySecret(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		link, _, err := e.store.Redeem(e.ctx, fxRedeemInput(e.fxIssue(s), "inst", fxLinkSecret(1)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.LinkBySecret(e.ctx, fxLinkSecret(2)); !errors.Is(err, ErrNotFound) {
			t.Errorf("wrong secret: %v; want ErrNotFound", err)
		}
		got, err := e.store.LinkBySecret(e.ctx, fxLinkSecret(1))
		if err != nil || got.ID != link.ID || got.TenantUninstalled {
			t.Fatalf("got %+v, %v", got, err)
		}
		e.clock.Add(time.Hour)
		at, err := e.store.TouchLink(e.ctx, link.ID)
		if err != nil || !at.Equal(e.clock.Now()) {
			t.Fatalf("TouchLink = %v, %v", at, err)
		}
		e.fxSetTenantState(a, "uninstalled")
		got, err = e.store.LinkBySecret(e.ctx, fxLinkSecret(1))
		if err != nil || !got.TenantUninstalled || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
			t.Errorf("after uninstall: %+v, %v; want TenantUninstalled and LastUsedAt %v", got, err, at)
		}
	})
}

func TestStore_IssueToken(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		b := e.fxTenant("ck-b", "https://b.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		rec := func() TokenRecord {
			c := token.NewClaims("http://x", e.clock.Now(), token.Site{}, token.Space{}, token.Sync{}, "")
			return TokenRecord{JTI: c.ID, TenantID: a, SyncID: s.ID, KeyID: "k1", RSHash: SecretHash(c.RedemptionSecret),
				Channel: ChannelDownload, IssuedBy: "acc-admin", IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry}
		}
		t.Run("OK", func(t *testing.T) {
			r := rec()
			if err := e.store.IssueToken(e.ctx, r, nil); err != nil {
				t.Fatal(err)
			}
			d, err := e.store.SyncDetails(e.ctx, a, s.ID)
			if err != nil || len(d.Tokens) != 1 || d.ActiveLink != nil || len(d.Links) != 0 {
				t.Fatalf("details = %+v, %v", d, err)
			}
			if _, err := e.store.SyncDetails(e.ctx, b, s.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("details for another tenant: %v; want ErrNotFound", err)
			}
			want := Token{JTI: r.JTI, SyncID: s.ID, Channel: ChannelDownload, IssuedBy: "acc-admin", IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt}
			if diff := fxDiff(want, d.Tokens[0]); diff != "" {
				t.Error(diff)
			}
			if st := d.Tokens[0].State(r.ExpiresAt); st != TokenStateExpired {
				t.Errorf("state at expiry = %q; want expired", st)
			}
			if st := d.Tokens[0].State(r.ExpiresAt.Add(-time.Second)); st != TokenStateUsable {
				t.Errorf("state before expiry = %q; want usable", st)
			}
			trail, _ := e.store.AuditTrail(e.ctx, a, s.ID, 1)
			if len(trail) != 1 || trail[0].Action != "token.issued" || trail[0].Detail["jti"] != r.JTI || trail[0].Detail["channel"] != ChannelDownload {
				t.Errorf("audit = %+v", trail)
			}
		})
		t.Run("OK_Email", func(t *testing.T) {
			r := rec()
			r.Channel, r.Recipient = ChannelEmail, "dc-admin@example.com"
			const tok = "eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIn0.the-token-itself"
			em := EmailRecord{ID: newRecordID(), TenantID: a, SyncID: s.ID, TokenJTI: r.JTI, To: r.Recipient,
				Subject: "Your token", Message: "hi", Token: tok, CreatedBy: "acc-admin"}
			if err := e.store.IssueToken(e.ctx, r, &em); err != nil {
				t.Fatal(err)
			}
			if n := e.fxCount(`SELECT COUNT(*) FROM token_emails WHERE id = ? AND token_jti = ? AND status = 'queued'`, em.ID, r.JTI); n != 1 {
				t.Errorf("%d queued emails for the token; want 1", n)
			}
			if n := e.fxCount(`SELECT COUNT(*) FROM token_emails WHERE token_sealed LIKE ?`, "%the-token-itself%"); n != 0 {
				t.Error("the token is stored in the clear")
			}
			trail, _ := e.store.AuditTrail(e.ctx, a, s.ID, 1)
			if len(trail) != 1 || trail[0].Detail["recipient"] != "dc-admin@example.com" || trail[0].Detail["channel"] != ChannelEmail {
				t.Errorf("audit = %+v", trail)
			}
		})
		t.Run("ErrEmailRollsBackToken", func(t *testing.T) {
			r := rec()
			r.Channel, r.Recipient = ChannelEmail, "dc-admin@example.com"
			em := EmailRecord{ID: "not-a-uuid", TenantID: a, SyncID: s.ID, TokenJTI: r.JTI, To: r.Recipient,
				Token: "x.y.z.w.v", CreatedBy: "acc-admin"}
			if err := e.store.IssueToken(e.ctx, r, &em); err == nil {
				t.Fatal("an invalid email was queued")
			}
			if n := e.fxCount(`SELECT COUNT(*) FROM tokens WHERE jti = ?`, r.JTI); n != 0 {
				t.Error("the token row was kept without its email")
			}
			em.TokenJTI = "another"
			em.ID = newRecordID()
			if err := e.store.IssueToken(e.ctx, r, &em); err == nil {
				t.Error("an email for another token was accepted")
			}
		})
		t.Run("ErrOtherTenant", func(t *testing.T) {
			r := rec()
			r.TenantID = b
			if err := e.store.IssueToken(e.ctx, r, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v; want ErrNotFound", err)
			}
		})
		t.Run("ErrDuplicateJTI", func(t *testing.T) {
			r := rec()
			if err := e.store.IssueToken(e.ctx, r, nil); err != nil {
				t.Fatal(err)
			}
			if err := e.store.IssueToken(e.ctx, r, nil); err == nil {
				t.Error("a duplicate jti was stored")
			}
		})
		t.Run("ErrIncomplete", func(t *testing.T) {
			for name, edit := range map[string]func(*TokenRecord){
				"no hash":          func(r *TokenRecord) { r.RSHash = "" },
				"no issuer":        func(r *TokenRecord) { r.IssuedBy = "" },
				"bad channel":      func(r *TokenRecord) { r.Channel = "carrier pigeon" },
				"email, no record": func(r *TokenRecord) { r.Channel = ChannelEmail; r.Recipient = "a@b.example" },
				"download with to": func(r *TokenRecord) { r.Recipient = "a@b.example" },
			} {
				r := rec()
				edit(&r)
				if err := e.store.IssueToken(e.ctx, r, nil); err == nil {
					t.Errorf("%s: stored", name)
				}
			}
		})
	})
}

func TestStore_Audit_RefusesSecrets(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		for _, key := range []string{"token", "linkSecret", "rs", "sharedSecret", "jwt", "tokenSealed"} {
			err := e.store.txNow(e.ctx, func(tx *gorm.DB, _ time.Time) error {
				return audit(tx, a, "", "x", "test", map[string]any{key: "v"})
			})
			if err == nil {
				t.Errorf("detail key %q was accepted", key)
			}
		}
		err := e.store.txNow(e.ctx, func(tx *gorm.DB, _ time.Time) error {
			return audit(tx, a, "s", "x", "test", map[string]any{"jti": "j", "tokenCount": 2})
		})
		if err != nil {
			t.Errorf("harmless keys refused: %v", err)
		}
		if trail, _ := e.store.AuditTrail(e.ctx, a, "s", 0); len(trail) != 1 || !trail[0].CreatedAt.Equal(e.clock.Now()) {
			t.Errorf("trail = %+v; want one event stamped with the store clock", trail)
		}
	})
}
