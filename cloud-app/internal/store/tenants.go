package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// TenantState is the lifecycle state of a tenant (tenants.state).
type TenantState string

// The states a tenant moves through. An uninstalled tenant keeps its data;
// only a later verified installed brings it back.
const (
	TenantInstalled   TenantState = "installed"
	TenantEnabled     TenantState = "enabled"
	TenantDisabled    TenantState = "disabled"
	TenantUninstalled TenantState = "uninstalled"
)

// SharedSecret is a tenant's Connect shared secret. It prints and logs as
// "[hidden]" whatever the verb, so a Tenant can be logged safely.
type SharedSecret []byte

// Format prints nothing of the secret.
func (SharedSecret) Format(f fmt.State, _ rune) { f.Write([]byte("[hidden]")) }

// LogValue hides the secret from slog.
func (SharedSecret) LogValue() slog.Value { return slog.StringValue("[hidden]") }

// Tenant is a Confluence Cloud site that installed the app, keyed by its
// clientKey (a site import gives the same base URL a new clientKey; both
// tenants coexist).
type Tenant struct {
	ID          string
	ClientKey   string
	BaseURL     string
	DisplayURL  string
	ProductType string
	// SharedSecret is the HS256 key of the tenant's JWTs, opened from its
	// sealed form.
	SharedSecret SharedSecret
	State        TenantState
	// EventSeq increases with every accepted lifecycle event.
	EventSeq      int64
	InstalledAt   time.Time
	UpdatedAt     time.Time
	UninstalledAt *time.Time
}

// Active reports whether requests from the tenant are served: it is
// installed or enabled, not disabled or uninstalled.
func (t *Tenant) Active() bool {
	return t.State == TenantInstalled || t.State == TenantEnabled
}

// SiteURL is the URL to show users: the display URL (a custom domain) when
// there is one, otherwise the base URL.
func (t *Tenant) SiteURL() string {
	if t.DisplayURL != "" {
		return t.DisplayURL
	}
	return t.BaseURL
}

// Installation is what a verified installed callback stores.
type Installation struct {
	ClientKey    string
	BaseURL      string
	DisplayURL   string
	ProductType  string
	SharedSecret string
}

type tenantRow struct {
	ID                 string     `gorm:"column:id;primaryKey"`
	ClientKey          string     `gorm:"column:client_key"`
	BaseURL            string     `gorm:"column:base_url"`
	DisplayURL         string     `gorm:"column:display_url"`
	ProductType        string     `gorm:"column:product_type"`
	SharedSecretSealed string     `gorm:"column:shared_secret_sealed"`
	State              string     `gorm:"column:state"`
	EventSeq           int64      `gorm:"column:event_seq"`
	InstalledAt        time.Time  `gorm:"column:installed_at"`
	UpdatedAt          time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	UninstalledAt      *time.Time `gorm:"column:uninstalled_at"`
}

func (tenantRow) TableName() string { return "tenants" }

func (s *Store) tenantFromRow(r tenantRow) (*Tenant, error) {
	secret, err := s.secrets.Open(r.SharedSecretSealed, []byte(r.ClientKey))
	if err != nil {
		return nil, fmt.Errorf("store: open the shared secret of tenant %s: %w", r.ID, err)
	}
	return &Tenant{
		ID: r.ID, ClientKey: r.ClientKey, BaseURL: r.BaseURL, DisplayURL: r.DisplayURL,
		ProductType: r.ProductType, SharedSecret: secret, State: TenantState(r.State),
		EventSeq: r.EventSeq, InstalledAt: r.InstalledAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		UninstalledAt: tenantUTCPtr(r.UninstalledAt),
	}, nil
}

func tenantUTCPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Store) tenantWhere(tx *gorm.DB, query string, arg any) (*Tenant, error) {
	var r tenantRow
	err := tx.Where(query, arg).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.tenantFromRow(r)
}

// InstallTenant records a verified installed callback: it inserts the
// tenant, or updates the one with the same clientKey (never another key's
// tenant, even at the same base URL). A reinstall replaces the shared
// secret (sealed at rest, bound to the clientKey), clears an uninstall and
// keeps a disabled tenant disabled until enabled arrives. It is one
// statement, so racing installs of a new clientKey cannot both insert.
func (s *Store) InstallTenant(ctx context.Context, in Installation) (*Tenant, error) {
	if in.ClientKey == "" || in.BaseURL == "" || in.SharedSecret == "" {
		return nil, errors.New("store: InstallTenant needs a clientKey, a base URL and a shared secret")
	}
	now := s.now()
	sealed := s.secrets.Seal([]byte(in.SharedSecret), []byte(in.ClientKey))
	var t *Tenant
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		err := tx.Exec(`INSERT INTO tenants (id, client_key, base_url, display_url, product_type,
				shared_secret_sealed, state, event_seq, installed_at, updated_at, uninstalled_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, NULL)
			ON CONFLICT (client_key) DO UPDATE SET
				base_url = excluded.base_url,
				display_url = excluded.display_url,
				product_type = excluded.product_type,
				shared_secret_sealed = excluded.shared_secret_sealed,
				state = CASE WHEN tenants.state = ? THEN tenants.state ELSE excluded.state END,
				event_seq = tenants.event_seq + 1,
				installed_at = excluded.installed_at,
				updated_at = excluded.updated_at,
				uninstalled_at = NULL`,
			uuid.NewString(), in.ClientKey, in.BaseURL, in.DisplayURL, in.ProductType,
			sealed, string(TenantInstalled), now, now, string(TenantDisabled)).Error
		if err != nil {
			return err
		}
		t, err = s.tenantWhere(tx, "client_key = ?", in.ClientKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// UninstallTenant records a verified uninstalled callback: the tenant is
// marked uninstalled and keeps its data. ErrNotFound if no tenant has the
// clientKey.
func (s *Store) UninstallTenant(ctx context.Context, clientKey string) (*Tenant, error) {
	now := s.now()
	var t *Tenant
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE tenants SET state = ?, event_seq = event_seq + 1, updated_at = ?,
				uninstalled_at = CASE WHEN state = ? THEN uninstalled_at ELSE ? END
			WHERE client_key = ?`,
			string(TenantUninstalled), now, string(TenantUninstalled), now, clientKey)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		var err error
		t, err = s.tenantWhere(tx, "client_key = ?", clientKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// SetTenantEnabled records a verified enabled or disabled callback. It is
// ignored for an uninstalled tenant (an uninstalled wins until a later
// installed), so disabled and uninstalled racing always end uninstalled;
// applied tells whether the state changed. ErrNotFound if no tenant has
// the clientKey.
func (s *Store) SetTenantEnabled(ctx context.Context, clientKey string, enabled bool) (applied bool, err error) {
	state := TenantDisabled
	if enabled {
		state = TenantEnabled
	}
	now := s.now()
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE tenants SET state = ?, event_seq = event_seq + 1, updated_at = ?
			WHERE client_key = ? AND state <> ?`,
			string(state), now, clientKey, string(TenantUninstalled))
		if res.Error != nil {
			return res.Error
		}
		applied = res.RowsAffected == 1
		if applied {
			return nil
		}
		var n int64
		if err := tx.Model(&tenantRow{}).Where("client_key = ?", clientKey).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	return applied, err
}

// TenantByClientKey returns the tenant with the clientKey (the iss of its
// JWTs), in any state. ErrNotFound if there is none.
func (s *Store) TenantByClientKey(ctx context.Context, clientKey string) (*Tenant, error) {
	return s.tenantWhere(s.db.WithContext(ctx), "client_key = ?", clientKey)
}

// TenantByID returns the tenant with the id, in any state. ErrNotFound if
// there is none.
func (s *Store) TenantByID(ctx context.Context, id string) (*Tenant, error) {
	return s.tenantWhere(s.db.WithContext(ctx), "id = ?", id)
}

// TenantCache keeps recently used tenants in memory by clientKey so that
// verifying a request costs no database round trip when hot. It is safe to
// lose and approximate across replicas: entries live for a short TTL, and
// this process invalidates an entry whenever it records a lifecycle event
// for it. Another replica may serve a rotated secret or an uninstalled
// tenant for at most the TTL.
type TenantCache struct {
	store *Store
	ttl   time.Duration
	max   int
	now   func() time.Time

	mu      sync.RWMutex
	entries map[string]tenantEntry
}

type tenantEntry struct {
	t       *Tenant
	expires time.Time
}

// NewTenantCache returns a cache over s holding at most max tenants for
// ttl each (defaults 30 s and 10,000). now is the clock (nil: time.Now).
func NewTenantCache(s *Store, ttl time.Duration, max int, now func() time.Time) *TenantCache {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	if max <= 0 {
		max = 10000
	}
	if now == nil {
		now = time.Now
	}
	return &TenantCache{store: s, ttl: ttl, max: max, now: now, entries: map[string]tenantEntry{}}
}

// TenantByClientKey returns the tenant from the cache, or from the store
// (then caching it). The result is shared: treat it as read-only.
// ErrNotFound if there is no such tenant (not cached).
func (c *TenantCache) TenantByClientKey(ctx context.Context, clientKey string) (*Tenant, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[clientKey]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.t, nil
	}
	t, err := c.store.TenantByClientKey(ctx, clientKey)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[clientKey] = tenantEntry{t: t, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return t, nil
}

// Invalidate drops the cached tenant with the clientKey.
func (c *TenantCache) Invalidate(clientKey string) {
	c.mu.Lock()
	delete(c.entries, clientKey)
	c.mu.Unlock()
}
