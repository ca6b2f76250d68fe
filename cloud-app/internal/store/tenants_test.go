package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
)

// tnClock is a settable clock (tn: helpers of the tenant tests).
type tnClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tnClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *tnClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func tnStore(d *db.DB) (*Store, *tnClock) {
	c := &tnClock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	return New(d, c.now, secret.NewKey()), c
}

func tnInstall(t *testing.T, s *Store, clientKey, secret string) *Tenant {
	t.Helper()
	tn, err := s.InstallTenant(context.Background(), Installation{
		ClientKey: clientKey, BaseURL: "https://acme.atlassian.net/wiki", DisplayURL: "https://wiki.acme.com",
		ProductType: "confluence", SharedSecret: secret,
	})
	if err != nil {
		t.Fatalf("InstallTenant: %v", err)
	}
	return tn
}

func tnCount(t *testing.T, d *db.DB) int64 {
	t.Helper()
	var n int64
	if err := d.Raw(`SELECT COUNT(*) FROM tenants`).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStore_InstallTenant(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, clock := tnStore(d)
		ctx := context.Background()
		first := tnInstall(t, s, "ck-1", "secret-one")
		if first.ID == "" || first.ClientKey != "ck-1" || first.BaseURL != "https://acme.atlassian.net/wiki" ||
			first.DisplayURL != "https://wiki.acme.com" || first.ProductType != "confluence" ||
			string(first.SharedSecret) != "secret-one" || first.State != TenantInstalled || first.EventSeq != 1 ||
			!first.InstalledAt.Equal(clock.now()) || first.UninstalledAt != nil || !first.Active() {
			t.Fatalf("installed: %+v", first)
		}
		// At rest the secret is sealed.
		var sealed string
		if err := d.Raw(`SELECT shared_secret_sealed FROM tenants WHERE client_key = ?`, "ck-1").Scan(&sealed).Error; err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, "secret-one") || !strings.HasPrefix(sealed, "v1.") {
			t.Fatalf("shared secret stored as %q", sealed)
		}

		// A reinstall replaces the secret and keeps the tenant's id.
		clock.add(time.Minute)
		again := tnInstall(t, s, "ck-1", "secret-two")
		if again.ID != first.ID || string(again.SharedSecret) != "secret-two" || again.EventSeq != 2 || !again.InstalledAt.Equal(clock.now()) {
			t.Fatalf("reinstalled: %+v", again)
		}
		got, err := s.TenantByClientKey(ctx, "ck-1")
		if err != nil || string(got.SharedSecret) != "secret-two" {
			t.Fatalf("TenantByClientKey: %+v, %v", got, err)
		}
		byID, err := s.TenantByID(ctx, first.ID)
		if err != nil || byID.ClientKey != "ck-1" {
			t.Fatalf("TenantByID: %+v, %v", byID, err)
		}

		// A site import: same base URL, new clientKey; both tenants stay.
		imported := tnInstall(t, s, "ck-imported", "secret-three")
		if imported.ID == first.ID {
			t.Fatal("the imported site took over the old tenant")
		}
		if n := tnCount(t, d); n != 2 {
			t.Fatalf("tenants: %d, want 2", n)
		}
		if old, err := s.TenantByClientKey(ctx, "ck-1"); err != nil || string(old.SharedSecret) != "secret-two" {
			t.Fatalf("the old tenant after the import: %+v, %v", old, err)
		}
	})
}

func TestStore_InstallTenant_Invalid(t *testing.T) {
	s, _ := tnStore(dbtest.SQLite(t, migrations.FS))
	for _, in := range []Installation{
		{BaseURL: "https://a.atlassian.net/wiki", SharedSecret: "s"},
		{ClientKey: "ck", SharedSecret: "s"},
		{ClientKey: "ck", BaseURL: "https://a.atlassian.net/wiki"},
	} {
		if _, err := s.InstallTenant(context.Background(), in); err == nil {
			t.Errorf("InstallTenant(%+v): got nil, want an error", in)
		}
	}
	if n := tnCount(t, s.DB()); n != 0 {
		t.Fatalf("tenants: %d, want 0", n)
	}
}

func TestStore_TenantByClientKey_ErrNotFound(t *testing.T) {
	s, _ := tnStore(dbtest.SQLite(t, migrations.FS))
	tnInstall(t, s, "ck-1", "x")
	if _, err := s.TenantByClientKey(context.Background(), "ck-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if _, err := s.TenantByID(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if _, err := s.TenantByClientKey(context.Background(), "ck-1"); err != nil {
		t.Fatalf("twin: %v", err)
	}
}

// TestStore_Tenant_SecretBoundToClientKey moves one tenant's sealed secret
// onto another row: it does not open there.
func TestStore_Tenant_SecretBoundToClientKey(t *testing.T) {
	s, _ := tnStore(dbtest.SQLite(t, migrations.FS))
	tnInstall(t, s, "ck-1", "one")
	tnInstall(t, s, "ck-2", "two")
	if err := s.DB().Exec(`UPDATE tenants SET shared_secret_sealed = (SELECT shared_secret_sealed FROM tenants WHERE client_key = 'ck-1') WHERE client_key = 'ck-2'`).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := s.TenantByClientKey(context.Background(), "ck-2"); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("got %v, want secret.ErrOpen", err)
	}
	if _, err := s.TenantByClientKey(context.Background(), "ck-1"); err != nil {
		t.Fatalf("twin: %v", err)
	}
}

func TestStore_TenantLifecycle(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, clock := tnStore(d)
		ctx := context.Background()
		tn := tnInstall(t, s, "ck-1", "secret")
		state := func() *Tenant {
			t.Helper()
			got, err := s.TenantByClientKey(ctx, "ck-1")
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		if applied, err := s.SetTenantEnabled(ctx, "ck-1", true); !applied || err != nil || state().State != TenantEnabled {
			t.Fatalf("enable: %v %v %s", applied, err, state().State)
		}
		if applied, err := s.SetTenantEnabled(ctx, "ck-1", false); !applied || err != nil || state().State != TenantDisabled || state().Active() {
			t.Fatalf("disable: %v %v %s", applied, err, state().State)
		}
		// A reinstall (a secret rotation) keeps a disabled tenant disabled.
		tnInstall(t, s, "ck-1", "rotated")
		if got := state(); got.State != TenantDisabled || string(got.SharedSecret) != "rotated" {
			t.Fatalf("reinstall of a disabled tenant: %s", got.State)
		}
		if _, err := s.SetTenantEnabled(ctx, "ck-1", true); err != nil {
			t.Fatal(err)
		}
		clock.add(time.Hour)
		gone, err := s.UninstallTenant(ctx, "ck-1")
		if err != nil || gone.State != TenantUninstalled || gone.UninstalledAt == nil || !gone.UninstalledAt.Equal(clock.now()) || gone.Active() {
			t.Fatalf("uninstall: %+v, %v", gone, err)
		}
		// The data stays; enabled/disabled are now ignored.
		for _, enabled := range []bool{true, false} {
			if applied, err := s.SetTenantEnabled(ctx, "ck-1", enabled); applied || err != nil {
				t.Fatalf("SetTenantEnabled(%v) after uninstall: applied %v, %v", enabled, applied, err)
			}
			if got := state(); got.State != TenantUninstalled || got.ID != tn.ID || string(got.SharedSecret) != "rotated" {
				t.Fatalf("after an ignored event: %+v", got)
			}
		}
		// A later installed brings it back.
		back := tnInstall(t, s, "ck-1", "fresh")
		if back.State != TenantInstalled || back.UninstalledAt != nil || back.ID != tn.ID || string(back.SharedSecret) != "fresh" {
			t.Fatalf("reinstall after uninstall: %+v", back)
		}
		// Unknown client keys.
		if _, err := s.UninstallTenant(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("uninstall unknown: %v", err)
		}
		if _, err := s.SetTenantEnabled(ctx, "nope", true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("enable unknown: %v", err)
		}
	})
}

// TestStore_TenantRaces runs callbacks that race as Atlassian sends them,
// many times, and checks that each ends in the state of the rule "an
// uninstalled wins until a later verified installed".
func TestStore_TenantRaces(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		s, _ := tnStore(d)
		ctx := context.Background()
		for i := range 100 {
			ck := fmt.Sprintf("ck-race-%d", i)
			tnInstall(t, s, ck, "old")
			if _, err := s.SetTenantEnabled(ctx, ck, true); err != nil {
				t.Fatal(err)
			}
			// disabled and uninstalled a few ms apart, in either order.
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			wg.Add(2)
			go func() { defer wg.Done(); _, err := s.SetTenantEnabled(ctx, ck, false); errs <- err }()
			go func() { defer wg.Done(); _, err := s.UninstallTenant(ctx, ck); errs <- err }()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
			}
			got, err := s.TenantByClientKey(ctx, ck)
			if err != nil || got.State != TenantUninstalled {
				t.Fatalf("round %d: disabled and uninstalled racing ended %v (%v), want uninstalled", i, got.State, err)
			}
			// installed right after uninstalled: installed, with the new secret.
			back := tnInstall(t, s, ck, "new")
			if back.State != TenantInstalled || string(back.SharedSecret) != "new" || back.UninstalledAt != nil {
				t.Fatalf("round %d: installed after uninstalled: %+v", i, back)
			}
		}
		// Concurrent installs of one new clientKey make one tenant.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.InstallTenant(ctx, Installation{ClientKey: "ck-new", BaseURL: "https://n.atlassian.net/wiki", SharedSecret: fmt.Sprint("s", i)}); err != nil {
					t.Errorf("concurrent install: %v", err)
				}
			}()
		}
		wg.Wait()
		var n int64
		if err := d.Raw(`SELECT COUNT(*) FROM tenants WHERE client_key = 'ck-new'`).Scan(&n).Error; err != nil || n != 1 {
			t.Fatalf("tenants for ck-new: %d (%v), want 1", n, err)
		}
		got, err := s.TenantByClientKey(ctx, "ck-new")
		if err != nil || got.EventSeq != 8 {
			t.Fatalf("after 8 installs: %+v, %v; want event_seq 8", got, err)
		}
	})
}

func TestTenantCache(t *testing.T) {
	s, clock := tnStore(dbtest.SQLite(t, migrations.FS))
	ctx := context.Background()
	tnInstall(t, s, "ck-1", "one")
	c := NewTenantCache(s, 30*time.Second, 2, clock.now)
	if got, err := c.TenantByClientKey(ctx, "ck-1"); err != nil || string(got.SharedSecret) != "one" {
		t.Fatalf("first lookup: %+v, %v", got, err)
	}
	// Change the row behind the cache's back: the cache still answers.
	tnInstall(t, s, "ck-1", "two")
	if got, _ := c.TenantByClientKey(ctx, "ck-1"); string(got.SharedSecret) != "one" {
		t.Fatalf("cached lookup read the database (secret %q)", got.SharedSecret)
	}
	// Invalidate drops it.
	c.Invalidate("ck-1")
	if got, _ := c.TenantByClientKey(ctx, "ck-1"); string(got.SharedSecret) != "two" {
		t.Fatalf("after Invalidate: secret %q, want two", got.SharedSecret)
	}
	// So does the TTL.
	tnInstall(t, s, "ck-1", "three")
	clock.add(31 * time.Second)
	if got, _ := c.TenantByClientKey(ctx, "ck-1"); string(got.SharedSecret) != "three" {
		t.Fatalf("after the TTL: secret %q, want three", got.SharedSecret)
	}
	// Unknown keys are not cached, and the size bound holds.
	if _, err := c.TenantByClientKey(ctx, "ck-x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	tnInstall(t, s, "ck-2", "b")
	tnInstall(t, s, "ck-3", "c")
	for _, ck := range []string{"ck-1", "ck-2", "ck-3"} {
		if _, err := c.TenantByClientKey(ctx, ck); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.RLock()
	n := len(c.entries)
	c.mu.RUnlock()
	if n > 2 {
		t.Fatalf("cache holds %d tenants, bound 2", n)
	}
}

func TestSharedSecret_NeverPrinted(t *testing.T) {
	tn := &Tenant{ClientKey: "ck", SharedSecret: SharedSecret("s3cr3t-value")}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("t", "tenant", tn, "secret", tn.SharedSecret)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("t", "secret", tn.SharedSecret)
	out := fmt.Sprintf("%v %+v %s %x %q %#v", tn, *tn, tn.SharedSecret, tn.SharedSecret, tn.SharedSecret, tn.SharedSecret) + buf.String()
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, fmt.Sprintf("%x", []byte("s3cr3t"))) {
		t.Fatalf("the secret leaked: %s", out)
	}
	if !strings.Contains(out, "[hidden]") {
		t.Fatalf("twin: no [hidden] marker in %s", out)
	}
}
