package store

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/dc-app/internal/store/migrations"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t *testing.T, d *db.DB) (*Store, *clock) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	return New(d, c.now, secret.NewKey()), c
}

func pending(jti string) NewSyncedSpace {
	return NewSyncedSpace{
		JTI: jti, Name: "Handbook", CloudURL: "https://cloud.example", SiteBaseURL: "https://acme.atlassian.net/wiki",
		SpaceID: "s1", SpaceKey: "ACME", SpaceName: "Acme", SyncID: "sync1", SyncName: "Handbook",
		CloudPermissions: []Principal{{Type: "group", ID: "g", Name: "docs"}},
		TokenExpiresAt:   time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC), ImportedBy: "admin",
		Token: "the-token-text", LinkSecret: "the-link-secret", Lease: time.Minute,
	}
}

func TestStore_InsertPending(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, _ := newStore(t, d)
		ctx := context.Background()
		sp, err := s.InsertPending(ctx, pending("jti-0000000000000001"))
		if err != nil {
			t.Fatal(err)
		}
		if sp.Status != StatusPending || sp.Attempts != 1 || len(sp.CloudPermissions) != 1 || sp.LocalPermissions == nil {
			t.Errorf("inserted %+v", sp)
		}
		t.Run("ErrDuplicate", func(t *testing.T) {
			if _, err := s.InsertPending(ctx, pending("jti-0000000000000001")); !errors.Is(err, ErrDuplicate) {
				t.Errorf("second insert of a jti: %v, want ErrDuplicate", err)
			}
		})
		t.Run("SealedAtRest", func(t *testing.T) {
			var row syncedSpaceRow
			if err := d.Where("id = ?", sp.ID).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if strings.Contains(row.TokenSealed, "the-token-text") || strings.Contains(row.LinkSecretSealed, "the-link-secret") ||
				!strings.HasPrefix(row.TokenSealed, "v1.") {
				t.Errorf("secrets stored in the clear: %q %q", row.TokenSealed, row.LinkSecretSealed)
			}
			got, err := s.LinkSecret(ctx, sp.ID)
			if err != nil || got != "the-link-secret" {
				t.Errorf("LinkSecret = %q, %v", got, err)
			}
		})
		t.Run("JTIImported", func(t *testing.T) {
			if ok, _ := s.JTIImported(ctx, "jti-0000000000000001"); !ok {
				t.Error("imported jti not found")
			}
			if ok, _ := s.JTIImported(ctx, "jti-0000000000000002"); ok {
				t.Error("unknown jti found")
			}
		})
	})
}

func TestStore_Claim(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, clk := newStore(t, d)
		ctx := context.Background()
		sp, err := s.InsertPending(ctx, pending("jti-claim-000000001"))
		if err != nil {
			t.Fatal(err)
		}
		// The importer holds attempt 1 for its lease.
		if got, _ := s.ClaimDue(ctx, 10, time.Minute); len(got) != 0 {
			t.Fatal("claimed a row whose first attempt is running")
		}
		if _, err := s.Claim(ctx, sp.ID, time.Minute); !errors.Is(err, ErrBusy) {
			t.Fatalf("Claim while running: %v, want ErrBusy", err)
		}
		// The attempt ends without an answer; the next is due in an hour.
		if err := s.Postpone(ctx, sp.ID, 1, clk.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ClaimDue(ctx, 10, time.Minute); len(got) != 0 {
			t.Fatal("claimed a row before it was due")
		}
		// Removal may claim early.
		r, err := s.Claim(ctx, sp.ID, time.Minute)
		if err != nil || r.Token != "the-token-text" || r.LinkSecret != "the-link-secret" || r.Space.Attempts != 2 {
			t.Fatalf("early Claim = %+v, %v", r, err)
		}
		// A stale postpone from attempt 1 changes nothing.
		if err := s.Postpone(ctx, sp.ID, 1, clk.now()); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ClaimDue(ctx, 10, time.Minute); len(got) != 0 {
			t.Fatal("a stale postpone released a claimed row")
		}
		if err := s.Postpone(ctx, sp.ID, 2, clk.now()); err != nil {
			t.Fatal(err)
		}
		t.Run("ConcurrentClaimsOnce", func(t *testing.T) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			claimed := 0
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := s.ClaimDue(ctx, 10, time.Minute)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					claimed += len(got)
					mu.Unlock()
				}()
			}
			wg.Wait()
			if claimed != 1 {
				t.Errorf("8 concurrent passes claimed %d times, want 1", claimed)
			}
		})
		t.Run("LeaseRunsOut", func(t *testing.T) {
			clk.add(2 * time.Minute)
			got, err := s.ClaimDue(ctx, 10, time.Minute)
			if err != nil || len(got) != 1 || got[0].Space.Attempts != 4 {
				t.Fatalf("after the lease: %d claimed, %v", len(got), err)
			}
		})
		t.Run("Activate", func(t *testing.T) {
			a, err := s.Activate(ctx, sp.ID, "link-1", "retry")
			if err != nil || a.Status != StatusLinked || a.LinkID != "link-1" || a.LinkedAt.IsZero() {
				t.Fatalf("Activate = %+v, %v", a, err)
			}
			var row syncedSpaceRow
			d.Where("id = ?", sp.ID).Take(&row)
			if row.TokenSealed != "" || row.LinkSecretSealed == "" {
				t.Error("token kept or link secret dropped after linking")
			}
			if _, err := s.Claim(ctx, sp.ID, time.Minute); !errors.Is(err, ErrConflict) {
				t.Errorf("Claim of a LINKED row: %v", err)
			}
			if err := s.DeletePending(ctx, sp.ID, "x", "y"); !errors.Is(err, ErrConflict) {
				t.Errorf("DeletePending of a LINKED row: %v", err)
			}
			if err := s.Fail(ctx, sp.ID, "x", "y"); !errors.Is(err, ErrConflict) {
				t.Errorf("Fail of a LINKED row: %v", err)
			}
		})
	})
}

func TestStore_ClaimUnreadable(t *testing.T) {
	d := dbtest.SQLite(t, migrations.FS)
	s, _ := newStore(t, d)
	ctx := context.Background()
	sp, _ := s.InsertPending(ctx, pending("jti-unreadable-0001"))
	_ = s.Postpone(ctx, sp.ID, 1, time.Time{})
	other := New(d, s.now, secret.NewKey()) // the key changed
	got, err := other.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(got) != 0 {
		t.Fatalf("ClaimDue = %d, %v", len(got), err)
	}
	after, _ := s.Get(ctx, sp.ID)
	if after.Status != StatusFailed || !strings.Contains(after.StatusReason, "DC_APP_SECRET_KEY") {
		t.Errorf("unreadable row: %s %q", after.Status, after.StatusReason)
	}
}

func TestStore_Sessions(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, clk := newStore(t, d)
		ctx := context.Background()
		created, err := s.CreateFirstAdmin(ctx, "admin", "hash")
		if err != nil || !created {
			t.Fatalf("CreateFirstAdmin = %v, %v", created, err)
		}
		if again, err := s.CreateFirstAdmin(ctx, "other", "hash"); err != nil || again {
			t.Fatalf("second CreateFirstAdmin = %v, %v", again, err)
		}
		a, _ := s.AdminByUsername(ctx, "admin")
		if _, err := s.AdminByUsername(ctx, "other"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown admin: %v", err)
		}
		s1, err := s.CreateSession(ctx, NewSession{AdminID: a.ID, IDHash: "h1", CSRFToken: "c1", TTL: time.Hour})
		if err != nil || s1.Admin.Username != "admin" {
			t.Fatal(err)
		}
		if _, err := s.CreateSession(ctx, NewSession{AdminID: a.ID, IDHash: "h2", CSRFToken: "c2", TTL: time.Hour, Replaces: "h1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByHash(ctx, "h1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("replaced session: %v", err)
		}
		if got, err := s.SessionByHash(ctx, "h2"); err != nil || got.CSRFToken != "c2" {
			t.Errorf("live session: %+v %v", got, err)
		}
		if _, err := s.CreateSession(ctx, NewSession{AdminID: a.ID, IDHash: "h3", CSRFToken: "c3", TTL: 3 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if err := s.ChangePassword(ctx, a.ID, "hash2", "h3"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByHash(ctx, "h2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("other session survived a password change: %v", err)
		}
		clk.add(2 * time.Hour)
		if _, err := s.SessionByHash(ctx, "h3"); err != nil {
			t.Errorf("kept session: %v", err)
		}
		clk.add(2 * time.Hour)
		if _, err := s.SessionByHash(ctx, "h3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired session: %v", err)
		}
		if n, err := s.DeleteExpiredSessions(ctx); err != nil || n != 1 {
			t.Errorf("DeleteExpiredSessions = %d, %v", n, err)
		}
	})
}

func TestStore_InstanceID(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, _ := newStore(t, d)
		var wg sync.WaitGroup
		ids := make([]string, 6)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := s.InstanceID(context.Background())
				if err != nil {
					t.Error(err)
				}
				ids[i] = id
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] || len(id) != 36 {
				t.Errorf("instance ids %v", ids)
				break
			}
		}
	})
}
