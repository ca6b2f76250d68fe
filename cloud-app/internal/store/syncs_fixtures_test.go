package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// Fixtures for the sync, token, link and audit tests. Names start with fx
// so they do not collide with other resources' test helpers.

// fxClock is a settable clock for a Store under test.
type fxClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fxClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fxClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// fxEnv is a store over a fresh database with a clock.
type fxEnv struct {
	tb    testing.TB
	db    *db.DB
	store *Store
	clock *fxClock
	ctx   context.Context
}

func fxNew(tb testing.TB, d *db.DB) *fxEnv {
	tb.Helper()
	clock := &fxClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	return &fxEnv{tb: tb, db: d, store: New(d, clock.Now, secret.NewKey()), clock: clock, ctx: context.Background()}
}

// fxEach runs fn on a fresh Postgres and a fresh SQLite database
// (dbtest.Each).
func fxEach(t *testing.T, fn func(t *testing.T, e *fxEnv)) {
	t.Helper()
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) { fn(t, fxNew(t, d)) })
}

// fxTenant inserts an installed tenant row directly (the tenants code is
// someone else's) and returns its id.
func (e *fxEnv) fxTenant(clientKey, baseURL string) string {
	e.tb.Helper()
	id := newRecordID()
	now := e.clock.Now()
	err := e.db.Exec(`INSERT INTO tenants (id, client_key, base_url, display_url, product_type, shared_secret_sealed, state, event_seq, installed_at, updated_at)
		VALUES (?, ?, ?, '', 'confluence', 'sealed', 'installed', 1, ?, ?)`, id, clientKey, baseURL, now, now).Error
	if err != nil {
		e.tb.Fatalf("insert tenant: %v", err)
	}
	return id
}

func (e *fxEnv) fxSetTenantState(tenantID, state string) {
	e.tb.Helper()
	if err := e.db.Exec(`UPDATE tenants SET state = ? WHERE id = ?`, state, tenantID).Error; err != nil {
		e.tb.Fatal(err)
	}
}

func (e *fxEnv) fxSync(tenantID, spaceKey string) Sync {
	e.tb.Helper()
	s, err := e.store.CreateSync(e.ctx, NewSync{
		TenantID: tenantID, SpaceID: "id-" + spaceKey, SpaceKey: spaceKey, SpaceName: spaceKey + " space",
		Name: spaceKey + " sync", Permissions: []Principal{{Type: PrincipalUser, ID: "acc-1", Name: "Ada"}, {Type: PrincipalGroup, ID: "g-1", Name: "admins"}},
		SyncComments: true, SyncLabels: false, CreatedBy: "acc-admin",
	})
	if err != nil {
		e.tb.Fatalf("CreateSync: %v", err)
	}
	return s
}

// fxIssued is a stored token and the claims a real token for it would have.
type fxIssued struct {
	Record TokenRecord
	Claims *token.Claims
}

// fxIssue stores a downloaded token for the sync and returns its claims.
func (e *fxEnv) fxIssue(s Sync) fxIssued {
	e.tb.Helper()
	site := e.fxSiteOf(s.TenantID)
	c := token.NewClaims("http://127.0.0.1:8081", e.clock.Now(), site,
		token.Space{ID: s.SpaceID, Key: s.SpaceKey, Name: s.SpaceName},
		token.Sync{ID: s.ID, Name: s.Name, Comments: s.SyncComments, Labels: s.SyncLabels}, "hello")
	rec := TokenRecord{
		JTI: c.ID, TenantID: s.TenantID, SyncID: s.ID, KeyID: "k1", RSHash: SecretHash(c.RedemptionSecret),
		Channel: ChannelDownload, IssuedBy: "acc-admin", IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry,
	}
	if err := e.store.IssueToken(e.ctx, rec, nil); err != nil {
		e.tb.Fatalf("IssueToken: %v", err)
	}
	return fxIssued{Record: rec, Claims: &c}
}

func (e *fxEnv) fxSiteOf(tenantID string) token.Site {
	e.tb.Helper()
	var t struct{ ClientKey, BaseURL string }
	if err := e.db.Raw(`SELECT client_key, base_url FROM tenants WHERE id = ?`, tenantID).Scan(&t).Error; err != nil {
		e.tb.Fatal(err)
	}
	return token.Site{ClientKey: t.ClientKey, BaseURL: t.BaseURL}
}

// fxRedeemInput is a well-formed redemption of is by instance with secret.
func fxRedeemInput(is fxIssued, instance, linkSecret string) RedeemInput {
	c := is.Claims
	return RedeemInput{
		Claims:     c,
		Instance:   Instance{ID: instance, Name: "DC " + instance, BaseURL: "https://dc.example.com"},
		Name:       "Imported " + c.Space.Key,
		LinkSecret: linkSecret,
		Expect:     Expect{SiteBaseURL: c.Site.BaseURL, SpaceID: c.Space.ID, SyncID: c.Sync.ID},
	}
}

// fxCode is the apperr code of err, "" for nil.
func fxCode(err error) apperr.Code {
	if err == nil {
		return ""
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "not an apperr: " + apperr.Code(err.Error())
}

// fxDiff returns "" when want and got are deeply equal, and both otherwise.
// (go-cmp is not a dependency of this module.)
func fxDiff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("want %+v\n got %+v", want, got)
}

// fxLinkSecret is a deterministic, well-formed link secret: 32 bytes,
// base64url.
func fxLinkSecret(n byte) string {
	var b [32]byte
	for i := range b {
		b[i] = n
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// fxCount counts rows with a raw query.
func (e *fxEnv) fxCount(query string, args ...any) int {
	e.tb.Helper()
	var n int64
	if err := e.db.Raw(query, args...).Scan(&n).Error; err != nil {
		e.tb.Fatalf("%s: %v", query, err)
	}
	return int(n)
}
