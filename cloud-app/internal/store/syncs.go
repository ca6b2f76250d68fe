package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
)

// Sync statuses (DESIGN section 11; shown as "NOT SYNC YET" and "SYNCED").
const (
	SyncNotSyncedYet = "NOT_SYNCED_YET"
	SyncSynced       = "SYNCED"
)

// Principal types of a sync's permissions.
const (
	PrincipalUser  = "user"
	PrincipalGroup = "group"
)

// Limits on what a sync holds.
const (
	// MaxSyncPermissions is the most users and groups a sync lists.
	MaxSyncPermissions = 50
	// MaxSyncNameLength is the longest sync name, in characters.
	MaxSyncNameLength = 255
	// maxPrincipalField bounds a principal's id and name.
	maxPrincipalField = 255
)

// Principal is a user or group allowed to run sync for a pairing.
type Principal struct {
	// Type is PrincipalUser or PrincipalGroup.
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Sync is a Cloud space's pairing slot: what a token for it grants and
// whether it is linked to a Data Center instance.
type Sync struct {
	ID           string
	TenantID     string
	SpaceID      string
	SpaceKey     string
	SpaceName    string
	Name         string
	Permissions  []Principal
	SyncComments bool
	SyncLabels   bool
	// Status is SyncNotSyncedYet or SyncSynced.
	Status    string
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	// LinkedTo is the Data Center instance of the sync's active link, set
	// only by ListSyncs (the list names it on SYNCED rows).
	LinkedTo *Instance
}

// NewSync is what CreateSync needs. The space fields must be the ones the
// caller verified with Confluence, never the client's word.
type NewSync struct {
	TenantID     string
	SpaceID      string
	SpaceKey     string
	SpaceName    string
	Name         string
	Permissions  []Principal
	SyncComments bool
	SyncLabels   bool
	// CreatedBy is the Atlassian account id of the creator.
	CreatedBy string
}

// syncRow is the GORM shape of a syncs row.
type syncRow struct {
	ID           string `gorm:"primaryKey"`
	TenantID     string
	SpaceID      string
	SpaceKey     string
	SpaceName    string
	Name         string
	Permissions  string
	SyncComments bool
	SyncLabels   bool
	Status       string
	CreatedBy    string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DeletedAt    *time.Time
}

func (syncRow) TableName() string { return "syncs" }

func (r syncRow) domain() (Sync, error) {
	var perms []Principal
	if err := json.Unmarshal([]byte(r.Permissions), &perms); err != nil {
		return Sync{}, fmt.Errorf("store: sync %s: permissions: %w", r.ID, err)
	}
	if perms == nil {
		perms = []Principal{}
	}
	return Sync{
		ID: r.ID, TenantID: r.TenantID, SpaceID: r.SpaceID, SpaceKey: r.SpaceKey, SpaceName: r.SpaceName,
		Name: r.Name, Permissions: perms, SyncComments: r.SyncComments, SyncLabels: r.SyncLabels,
		Status: r.Status, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}, nil
}

// nowKey carries the transaction's "now" in the context of its *gorm.DB so
// that helpers such as audit stamp the same instant.
type nowKey struct{}

// txNow runs fn in one transaction (db.Tx: serialization failures and
// deadlocks are retried a bounded number of times) with "now" stamped once
// per attempt from the store's clock, at the database's precision. A
// transient conflict that outlives the retries is unavailable (503, try
// again), never a 500.
func (s *Store) txNow(ctx context.Context, fn func(tx *gorm.DB, now time.Time) error) error {
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		now := s.now().Truncate(time.Microsecond)
		tx = tx.WithContext(context.WithValue(tx.Statement.Context, nowKey{}, now))
		return fn(tx, now)
	})
	if err != nil && db.Retryable(err) {
		return &apperr.Error{Code: apperr.Unavailable, Message: "The service is busy. Try again shortly.", RetryAfter: 1, Cause: err}
	}
	return err
}

// txTime returns the "now" txNow stamped on tx, or the wall clock for a
// transaction begun elsewhere.
func txTime(tx *gorm.DB) time.Time {
	if tx.Statement != nil && tx.Statement.Context != nil {
		if t, ok := tx.Statement.Context.Value(nowKey{}).(time.Time); ok {
			return t
		}
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// newRecordID returns a random UUID for a new row (ids appear in URLs).
func newRecordID() string { return uuid.NewString() }

// validateNewSync checks what a user typed and picked; the space fields are
// the caller's and only checked for presence.
func validateNewSync(n *NewSync) error {
	if n.TenantID == "" || n.SpaceID == "" || n.SpaceKey == "" || n.CreatedBy == "" {
		return errors.New("store: CreateSync needs a tenant, a verified space id and key, and a creator")
	}
	fields := map[string]string{}
	n.Name = strings.TrimSpace(n.Name)
	switch {
	case n.Name == "":
		fields["name"] = "Enter a name for the sync."
	case !utf8.ValidString(n.Name) || hasControl(n.Name):
		fields["name"] = "The name contains characters that are not allowed."
	case utf8.RuneCountInString(n.Name) > MaxSyncNameLength:
		fields["name"] = fmt.Sprintf("Keep the name to %d characters or fewer.", MaxSyncNameLength)
	}
	if len(n.Permissions) > MaxSyncPermissions {
		fields["permissions"] = fmt.Sprintf("Choose at most %d users and groups.", MaxSyncPermissions)
	} else {
		seen := map[Principal]bool{}
		for _, p := range n.Permissions {
			key := Principal{Type: p.Type, ID: p.ID}
			switch {
			case p.Type != PrincipalUser && p.Type != PrincipalGroup:
				fields["permissions"] = "Each permission must be a user or a group."
			case p.ID == "" || len(p.ID) > maxPrincipalField || len(p.Name) > maxPrincipalField ||
				!utf8.ValidString(p.ID) || !utf8.ValidString(p.Name) || hasControl(p.ID) || hasControl(p.Name):
				fields["permissions"] = "A chosen user or group is not valid. Pick it again from the list."
			case seen[key]:
				fields["permissions"] = "A user or group is listed twice."
			}
			seen[key] = true
		}
	}
	if len(fields) > 0 {
		return apperr.Validation(fields)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return true
		}
	}
	return false
}

// CreateSync stores a new sync in status NOT_SYNCED_YET and audits it. It
// returns validation_failed (with field errors for "name" and
// "permissions") for bad user input.
func (s *Store) CreateSync(ctx context.Context, n NewSync) (Sync, error) {
	if err := validateNewSync(&n); err != nil {
		return Sync{}, err
	}
	perms := n.Permissions
	if perms == nil {
		perms = []Principal{}
	}
	pj, err := json.Marshal(perms)
	if err != nil {
		return Sync{}, err
	}
	var out Sync
	err = s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		row := syncRow{
			ID: newRecordID(), TenantID: n.TenantID, SpaceID: n.SpaceID, SpaceKey: n.SpaceKey, SpaceName: n.SpaceName,
			Name: n.Name, Permissions: string(pj), SyncComments: n.SyncComments, SyncLabels: n.SyncLabels,
			Status: SyncNotSyncedYet, CreatedBy: n.CreatedBy, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if err := audit(tx, n.TenantID, row.ID, n.CreatedBy, "sync.created", map[string]any{
			"name": n.Name, "spaceKey": n.SpaceKey, "permissions": len(perms),
			"syncComments": n.SyncComments, "syncLabels": n.SyncLabels,
		}); err != nil {
			return err
		}
		out, err = row.domain()
		return err
	})
	return out, err
}

// ListSyncs returns the live syncs of a space of a tenant, oldest first.
func (s *Store) ListSyncs(ctx context.Context, tenantID, spaceKey string) ([]Sync, error) {
	// One statement, outside a transaction: this is the page's hottest
	// read. A sync has at most one active link (a unique index says so),
	// so the join adds no rows.
	var rows []syncListRow
	err := s.db.WithContext(ctx).Raw(`SELECT s.id, s.tenant_id, s.space_id, s.space_key, s.space_name, s.name, s.permissions,
		s.sync_comments, s.sync_labels, s.status, s.created_by, s.created_at, s.updated_at, l.instance_id AS link_instance_id,
		l.instance_name AS link_name, l.instance_base_url AS link_instance_url
		FROM syncs s LEFT JOIN links l ON l.sync_id = s.id AND l.tenant_id = s.tenant_id AND l.status = ?
		WHERE s.tenant_id = ? AND s.space_key = ? AND s.deleted_at IS NULL
		ORDER BY s.created_at, s.id`, LinkActive, tenantID, spaceKey).Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make([]Sync, 0, len(rows))
	for _, r := range rows {
		d, err := r.sync().domain()
		if err != nil {
			return nil, err
		}
		if r.LinkInstanceID != nil {
			d.LinkedTo = &Instance{ID: *r.LinkInstanceID, Name: deref(r.LinkName), BaseURL: deref(r.LinkInstanceURL)}
		}
		out = append(out, d)
	}
	return out, nil
}

// syncListRow is a sync with its active link's instance, if any.
type syncListRow struct {
	ID, TenantID, SpaceID, SpaceKey, SpaceName, Name, Permissions string
	SyncComments, SyncLabels                                      bool
	Status, CreatedBy                                             string
	CreatedAt, UpdatedAt                                          time.Time
	LinkInstanceID, LinkName, LinkInstanceURL                     *string
}

func (r syncListRow) sync() syncRow {
	return syncRow{ID: r.ID, TenantID: r.TenantID, SpaceID: r.SpaceID, SpaceKey: r.SpaceKey, SpaceName: r.SpaceName,
		Name: r.Name, Permissions: r.Permissions, SyncComments: r.SyncComments, SyncLabels: r.SyncLabels,
		Status: r.Status, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// SpaceSyncCounts is how many live syncs a space has, and how many of them
// are linked.
type SpaceSyncCounts struct {
	Total  int
	Synced int
}

// CountSyncsBySpace returns, for each of the given space keys that has live
// syncs, how many it has; keys without syncs are absent. It is one query
// for a page of the space list.
func (s *Store) CountSyncsBySpace(ctx context.Context, tenantID string, spaceKeys []string) (map[string]SpaceSyncCounts, error) {
	out := map[string]SpaceSyncCounts{}
	if len(spaceKeys) == 0 {
		return out, nil
	}
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		var rows []struct {
			SpaceKey string
			Status   string
			N        int
		}
		if err := tx.Model(&syncRow{}).Select("space_key, status, COUNT(*) AS n").
			Where("tenant_id = ? AND space_key IN ? AND deleted_at IS NULL", tenantID, spaceKeys).
			Group("space_key, status").Scan(&rows).Error; err != nil {
			return err
		}
		for _, r := range rows {
			c := out[r.SpaceKey]
			c.Total += r.N
			if r.Status == SyncSynced {
				c.Synced += r.N
			}
			out[r.SpaceKey] = c
		}
		return nil
	})
	return out, err
}

// GetSync returns a live sync of the tenant. Another tenant's sync, a
// deleted one or an unknown id is ErrNotFound.
func (s *Store) GetSync(ctx context.Context, tenantID, syncID string) (Sync, error) {
	var out Sync
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		row, err := liveSync(tx, tenantID, syncID)
		if err != nil {
			return err
		}
		out, err = row.domain()
		return err
	})
	return out, err
}

// liveSync loads a sync of the tenant that is not deleted.
func liveSync(tx *gorm.DB, tenantID, syncID string) (syncRow, error) {
	var row syncRow
	if _, err := uuid.Parse(syncID); err != nil {
		return row, ErrNotFound
	}
	err := tx.Where("id = ? AND tenant_id = ? AND deleted_at IS NULL", syncID, tenantID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, ErrNotFound
	}
	return row, err
}

// lockSync takes the sync's row lock (on Postgres; SQLite serialises
// writers anyway) by touching it. Every multi-row change of a sync's
// tokens or links begins here, as a redemption does, so such changes queue
// on one row instead of deadlocking on several. ErrNotFound if the sync is
// not a live sync of the tenant.
func lockSync(tx *gorm.DB, tenantID, syncID string, now time.Time) error {
	if _, err := uuid.Parse(syncID); err != nil {
		return ErrNotFound
	}
	res := tx.Exec(`UPDATE syncs SET updated_at = ? WHERE id = ? AND tenant_id = ? AND deleted_at IS NULL`, now, syncID, tenantID)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteSync soft-deletes a live sync of the tenant: its outstanding tokens
// are revoked (reason sync_deleted), its active link, if any, is unlinked,
// and the deletion is audited. ErrNotFound if there is no such live sync.
func (s *Store) DeleteSync(ctx context.Context, tenantID, syncID, actor string) error {
	return s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		if err := lockSync(tx, tenantID, syncID, now); err != nil {
			return err
		}
		if err := tx.Exec(`UPDATE syncs SET deleted_at = ? WHERE id = ?`, now, syncID).Error; err != nil {
			return err
		}
		revoked, err := revokeOutstanding(tx, syncID, "", RevokeSyncDeleted, now)
		if err != nil {
			return err
		}
		res := tx.Exec(`UPDATE links SET status = ?, unlinked_at = ? WHERE sync_id = ? AND status = ?`,
			LinkUnlinked, now, syncID, LinkActive)
		if res.Error != nil {
			return res.Error
		}
		return audit(tx, tenantID, syncID, actor, "sync.deleted", map[string]any{
			"tokensRevoked": revoked, "linksUnlinked": res.RowsAffected,
		})
	})
}

// RevokeTokens makes every unused token of a live sync of the tenant stop
// working (reason revoked) and audits it. It returns how many tokens it
// revoked; ErrNotFound if there is no such live sync.
func (s *Store) RevokeTokens(ctx context.Context, tenantID, syncID, actor string) (int, error) {
	var n int
	err := s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		if err := lockSync(tx, tenantID, syncID, now); err != nil {
			return err
		}
		var err error
		n, err = revokeOutstanding(tx, syncID, "", RevokeRevoked, now)
		if err != nil {
			return err
		}
		return audit(tx, tenantID, syncID, actor, "tokens.revoked", map[string]any{"count": n})
	})
	return n, err
}
