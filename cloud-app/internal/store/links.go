package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// Link statuses.
const (
	LinkActive   = "active"
	LinkUnlinked = "unlinked"
)

// Site is a tenant's Confluence Cloud site as links report it.
type Site struct {
	BaseURL    string
	DisplayURL string
}

// Instance identifies a dc-app installation. BaseURL is display-only:
// cloud-app never calls it.
type Instance struct {
	ID      string
	Name    string
	BaseURL string
}

// Link pairs a sync with a Data Center instance. It never carries the link
// secret; the store keeps only its hash.
type Link struct {
	ID       string
	TenantID string
	SyncID   string
	// TokenJTI is the token that was redeemed to create it.
	TokenJTI string
	Instance Instance
	// Name is the name the DC admin gave the synced space.
	Name string
	// Status is LinkActive or LinkUnlinked.
	Status     string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	UnlinkedAt *time.Time

	// Sync is the linked sync (as it is now) and Site the tenant's site.
	Sync Sync
	Site Site
	// TenantUninstalled reports that the tenant has uninstalled the app;
	// the link then no longer works.
	TenantUninstalled bool
}

// linkRow is the GORM shape of a links row.
type linkRow struct {
	ID              string `gorm:"primaryKey"`
	TenantID        string
	SyncID          string
	TokenJTI        string `gorm:"column:token_jti"`
	InstanceID      string
	InstanceName    string
	InstanceBaseURL string `gorm:"column:instance_base_url"`
	Name            string
	SecretHash      string
	Status          string
	CreatedAt       time.Time
	LastUsedAt      *time.Time
	UnlinkedAt      *time.Time
}

func (linkRow) TableName() string { return "links" }

func (r linkRow) domain(sync Sync, site Site) Link {
	return Link{
		ID: r.ID, TenantID: r.TenantID, SyncID: r.SyncID, TokenJTI: r.TokenJTI,
		Instance: Instance{ID: r.InstanceID, Name: r.InstanceName, BaseURL: r.InstanceBaseURL},
		Name:     r.Name, Status: r.Status, CreatedAt: r.CreatedAt.UTC(),
		LastUsedAt: utcPtr(r.LastUsedAt), UnlinkedAt: utcPtr(r.UnlinkedAt),
		Sync: sync, Site: site,
	}
}

// tenantSite reads a tenant's site URLs and whether it is uninstalled.
// ErrNotFound if there is no such tenant.
func tenantSite(tx *gorm.DB, tenantID string) (Site, bool, error) {
	var t struct {
		ClientKey  string
		BaseURL    string `gorm:"column:base_url"`
		DisplayURL string `gorm:"column:display_url"`
		State      string
	}
	err := tx.Table("tenants").Select("client_key, base_url, display_url, state").Where("id = ?", tenantID).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Site{}, false, ErrNotFound
	}
	if err != nil {
		return Site{}, false, err
	}
	return Site{BaseURL: t.BaseURL, DisplayURL: t.DisplayURL}, t.State == string(TenantUninstalled), nil
}

// loadLink completes a link row with its sync (deleted or not) and site.
func loadLink(tx *gorm.DB, r linkRow) (Link, error) {
	var sr syncRow
	if err := tx.Where("id = ?", r.SyncID).Take(&sr).Error; err != nil {
		return Link{}, err
	}
	sync, err := sr.domain()
	if err != nil {
		return Link{}, err
	}
	site, uninstalled, err := tenantSite(tx, r.TenantID)
	if err != nil {
		return Link{}, err
	}
	l := r.domain(sync, site)
	l.TenantUninstalled = uninstalled
	return l, nil
}

// LinkBySecret returns the link whose secret is secret, in any status, so
// that dc-app can learn that it was unlinked. ErrNotFound if no link has
// that secret. The lookup is by hash: the secret is never stored.
func (s *Store) LinkBySecret(ctx context.Context, secret string) (Link, error) {
	var out Link
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		var r linkRow
		err := tx.Where("secret_hash = ?", SecretHash(secret)).Take(&r).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		out, err = loadLink(tx, r)
		return err
	})
	return out, err
}

// TouchLink records that dc-app made an authenticated call on an active
// link: from then on a replayed redemption of its token is token_used. It
// returns the time it stamped; ErrNotFound if the link is not active.
func (s *Store) TouchLink(ctx context.Context, linkID string) (time.Time, error) {
	var at time.Time
	err := s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		res := tx.Exec(`UPDATE links SET last_used_at = ? WHERE id = ? AND status = ?`, now, linkID, LinkActive)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		at = now
		return nil
	})
	return at, err
}

// errNoChange ends a transaction that found nothing to do.
var errNoChange = errors.New("store: no change")

// Unlink ends an active link: the link becomes unlinked, its sync (unless
// deleted) returns to NOT_SYNCED_YET so it can be paired again with a new
// token, and the unlink is audited with actor. Unlinking a link that is
// already unlinked changes nothing and is not an error; ErrNotFound if
// there is no such link.
func (s *Store) Unlink(ctx context.Context, linkID, actor string) error {
	err := s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		var r linkRow
		err := tx.Where("id = ?", linkID).Take(&r).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if r.Status != LinkActive {
			return errNoChange
		}
		// The sync row first, as in a redemption (see lockSync).
		if err := tx.Exec(`UPDATE syncs SET status = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL`,
			SyncNotSyncedYet, now, r.SyncID).Error; err != nil {
			return err
		}
		res := tx.Exec(`UPDATE links SET status = ?, unlinked_at = ? WHERE id = ? AND status = ?`,
			LinkUnlinked, now, r.ID, LinkActive)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errNoChange // unlinked concurrently; that unlink did the rest
		}
		return audit(tx, r.TenantID, r.SyncID, actor, "link.unlinked", map[string]any{
			"linkId": r.ID, "instanceId": r.InstanceID,
		})
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}
