package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Status is the state of a synced space.
type Status string

// The statuses of DESIGN section 11.
const (
	// StatusPending: the redemption was sent, and Cloud's answer is not
	// known yet (shown as "waiting for Cloud confirmation").
	StatusPending Status = "PENDING"
	// StatusLinked: Cloud confirmed the link.
	StatusLinked Status = "LINKED"
	// StatusUnlinked: the link was ended on the Cloud side.
	StatusUnlinked Status = "UNLINKED"
	// StatusFailed: a retried redemption was refused for good; the row
	// stays so the admin sees why, until removed.
	StatusFailed Status = "FAILED"
)

// Principal is a user or group allowed to run sync.
type Principal struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// SyncedSpace is a space paired (or being paired) with a Confluence Cloud
// space. It never carries the sealed secrets.
type SyncedSpace struct {
	ID               string
	JTI              string
	Name             string
	CloudURL         string
	SiteBaseURL      string
	SiteDisplayURL   string
	SpaceID          string
	SpaceKey         string
	SpaceName        string
	SyncID           string
	SyncName         string
	CloudPermissions []Principal
	LocalPermissions []Principal
	SyncComments     bool
	SyncLabels       bool
	Status           Status
	StatusReason     string
	LinkID           string
	Attempts         int
	NextAttemptAt    time.Time // zero when nothing is scheduled
	TokenExpiresAt   time.Time
	ImportedBy       string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	LinkedAt         time.Time // zero until linked
}

type syncedSpaceRow struct {
	ID               string     `gorm:"column:id;primaryKey"`
	JTI              string     `gorm:"column:jti"`
	Name             string     `gorm:"column:name"`
	CloudURL         string     `gorm:"column:cloud_url"`
	SiteBaseURL      string     `gorm:"column:site_base_url"`
	SiteDisplayURL   string     `gorm:"column:site_display_url"`
	SpaceID          string     `gorm:"column:space_id"`
	SpaceKey         string     `gorm:"column:space_key"`
	SpaceName        string     `gorm:"column:space_name"`
	SyncID           string     `gorm:"column:sync_id"`
	SyncName         string     `gorm:"column:sync_name"`
	CloudPermissions string     `gorm:"column:cloud_permissions"`
	LocalPermissions string     `gorm:"column:local_permissions"`
	SyncComments     bool       `gorm:"column:sync_comments"`
	SyncLabels       bool       `gorm:"column:sync_labels"`
	Status           string     `gorm:"column:status"`
	StatusReason     string     `gorm:"column:status_reason"`
	TokenSealed      string     `gorm:"column:token_sealed"`
	LinkSecretSealed string     `gorm:"column:link_secret_sealed"`
	LinkID           string     `gorm:"column:link_id"`
	Attempts         int64      `gorm:"column:attempts"`
	NextAttemptAt    *time.Time `gorm:"column:next_attempt_at"`
	TokenExpiresAt   *time.Time `gorm:"column:token_expires_at"`
	LeaseUntil       *time.Time `gorm:"column:lease_until"`
	ImportedBy       string     `gorm:"column:imported_by"`
	CreatedAt        time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt        time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	LinkedAt         *time.Time `gorm:"column:linked_at"`
}

func (syncedSpaceRow) TableName() string { return "synced_spaces" }

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func (r *syncedSpaceRow) space() SyncedSpace {
	var cloudPerms, localPerms []Principal
	_ = json.Unmarshal([]byte(r.CloudPermissions), &cloudPerms)
	_ = json.Unmarshal([]byte(r.LocalPermissions), &localPerms)
	return SyncedSpace{
		ID: r.ID, JTI: r.JTI, Name: r.Name, CloudURL: r.CloudURL,
		SiteBaseURL: r.SiteBaseURL, SiteDisplayURL: r.SiteDisplayURL,
		SpaceID: r.SpaceID, SpaceKey: r.SpaceKey, SpaceName: r.SpaceName,
		SyncID: r.SyncID, SyncName: r.SyncName,
		CloudPermissions: cloudPerms, LocalPermissions: localPerms,
		SyncComments: r.SyncComments, SyncLabels: r.SyncLabels,
		Status: Status(r.Status), StatusReason: r.StatusReason, LinkID: r.LinkID,
		Attempts: int(r.Attempts), NextAttemptAt: utc(r.NextAttemptAt), TokenExpiresAt: utc(r.TokenExpiresAt),
		ImportedBy: r.ImportedBy, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), LinkedAt: utc(r.LinkedAt),
	}
}

func tokenAAD(id string) []byte      { return []byte("synced_space:" + id + ":token") }
func linkSecretAAD(id string) []byte { return []byte("synced_space:" + id + ":link_secret") }

// NewSyncedSpace is an import about to be redeemed.
type NewSyncedSpace struct {
	JTI              string
	Name             string
	CloudURL         string
	SiteBaseURL      string
	SiteDisplayURL   string
	SpaceID          string
	SpaceKey         string
	SpaceName        string
	SyncID           string
	SyncName         string
	CloudPermissions []Principal
	LocalPermissions []Principal
	SyncComments     bool
	SyncLabels       bool
	TokenExpiresAt   time.Time
	ImportedBy       string
	// Token and LinkSecret are sealed with the secret key before they are
	// stored.
	Token      string
	LinkSecret string
	// Lease is how long the caller holds the first redemption attempt;
	// the background retry leaves the row alone until it runs out.
	Lease time.Duration
}

// InsertPending stores a PENDING synced space holding the sealed token and
// link secret, counting the caller's redemption as attempt 1. It returns
// ErrDuplicate if the token id was imported before (whatever became of
// that import).
func (s *Store) InsertPending(ctx context.Context, n NewSyncedSpace) (SyncedSpace, error) {
	cloudPerms, err := json.Marshal(nonNil(n.CloudPermissions))
	if err != nil {
		return SyncedSpace{}, err
	}
	localPerms, err := json.Marshal(nonNil(n.LocalPermissions))
	if err != nil {
		return SyncedSpace{}, err
	}
	var out SyncedSpace
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		id := newID()
		next := now.Add(n.Lease)
		exp := n.TokenExpiresAt.UTC()
		row := syncedSpaceRow{
			ID: id, JTI: n.JTI, Name: n.Name, CloudURL: n.CloudURL,
			SiteBaseURL: n.SiteBaseURL, SiteDisplayURL: n.SiteDisplayURL,
			SpaceID: n.SpaceID, SpaceKey: n.SpaceKey, SpaceName: n.SpaceName,
			SyncID: n.SyncID, SyncName: n.SyncName,
			CloudPermissions: string(cloudPerms), LocalPermissions: string(localPerms),
			SyncComments: n.SyncComments, SyncLabels: n.SyncLabels,
			Status:           string(StatusPending),
			TokenSealed:      s.box.Seal([]byte(n.Token), tokenAAD(id)),
			LinkSecretSealed: s.box.Seal([]byte(n.LinkSecret), linkSecretAAD(id)),
			Attempts:         1, NextAttemptAt: &next, LeaseUntil: &next, TokenExpiresAt: &exp,
			ImportedBy: n.ImportedBy, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if err := writeAudit(tx, now, n.ImportedBy, "synced_space.import_started", id, map[string]string{
			"jti": n.JTI, "site": n.SiteBaseURL, "space": n.SpaceKey, "sync": n.SyncID,
		}); err != nil {
			return err
		}
		out = row.space()
		return nil
	})
	return out, translate(err)
}

func nonNil(p []Principal) []Principal {
	if p == nil {
		return []Principal{}
	}
	return p
}

// JTIImported reports whether a synced space exists for the token id.
func (s *Store) JTIImported(ctx context.Context, jti string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&syncedSpaceRow{}).Where("jti = ?", jti).Count(&n).Error
	return n > 0, translate(err)
}

// Get returns the synced space with the id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (SyncedSpace, error) {
	var row syncedSpaceRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	return row.space(), translate(err)
}

// List returns every synced space, newest first.
func (s *Store) List(ctx context.Context) ([]SyncedSpace, error) {
	var rows []syncedSpaceRow
	if err := s.db.WithContext(ctx).Order("created_at DESC, id").Find(&rows).Error; err != nil {
		return nil, translate(err)
	}
	out := make([]SyncedSpace, len(rows))
	for i := range rows {
		out[i] = rows[i].space()
	}
	return out, nil
}

// Activate marks the synced space LINKED with Cloud's link id and clears
// its sealed token, which is worth nothing now. A row already LINKED is
// left as it is (a concurrent retry got there first). A definite success
// from Cloud outranks a FAILED row, which is linked too. ErrNotFound if
// the row is gone.
func (s *Store) Activate(ctx context.Context, id, linkID, actor string) (SyncedSpace, error) {
	var out SyncedSpace
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		res := tx.Model(&syncedSpaceRow{}).
			Where("id = ? AND status IN ?", id, []string{string(StatusPending), string(StatusFailed)}).
			Updates(map[string]any{
				"status": string(StatusLinked), "status_reason": "", "link_id": linkID,
				"token_sealed": "", "next_attempt_at": nil, "lease_until": nil, "linked_at": now, "updated_at": now,
			})
		if res.Error != nil {
			return res.Error
		}
		var row syncedSpaceRow
		if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		if res.RowsAffected == 1 {
			if err := writeAudit(tx, now, actor, "synced_space.linked", id, map[string]string{"link": linkID}); err != nil {
				return err
			}
		}
		out = row.space()
		return nil
	})
	return out, translate(err)
}

// DeletePending removes a PENDING synced space whose redemption Cloud
// refused for good, or that was never sent, recording why. ErrConflict if
// the row is no longer PENDING.
func (s *Store) DeletePending(ctx context.Context, id, actor, reason string) error {
	return translate(s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND status = ?", id, string(StatusPending)).Delete(&syncedSpaceRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrConflict
		}
		return writeAudit(tx, s.now(), actor, "synced_space.import_refused", id, map[string]string{"reason": reason})
	}))
}

// Postpone ends the caller's redemption attempt number attempt of a
// PENDING synced space without a definite answer, and schedules the next
// one. If someone else has claimed the row since, nothing changes.
func (s *Store) Postpone(ctx context.Context, id string, attempt int, next time.Time) error {
	return translate(s.db.WithContext(ctx).Model(&syncedSpaceRow{}).
		Where("id = ? AND status = ? AND attempts = ?", id, string(StatusPending), attempt).
		Updates(map[string]any{"next_attempt_at": next.UTC(), "lease_until": nil, "updated_at": s.now()}).Error)
}

// Fail marks a PENDING synced space FAILED with a reason shown to the
// admin, and clears its sealed token. The link secret stays, so that
// removing the row can still end a link Cloud may hold. ErrConflict if the
// row is no longer PENDING.
func (s *Store) Fail(ctx context.Context, id, actor, reason string) error {
	return translate(s.db.Tx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		res := tx.Model(&syncedSpaceRow{}).Where("id = ? AND status = ?", id, string(StatusPending)).
			Updates(map[string]any{"status": string(StatusFailed), "status_reason": reason, "token_sealed": "", "next_attempt_at": nil, "lease_until": nil, "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrConflict
		}
		return writeAudit(tx, now, actor, "synced_space.failed", id, map[string]string{"reason": reason})
	}))
}

// Delete removes the synced space, whatever its status, recording who did
// it. ErrNotFound if it does not exist.
func (s *Store) Delete(ctx context.Context, id, actor string) error {
	return translate(s.db.Tx(ctx, func(tx *gorm.DB) error {
		var row syncedSpaceRow
		if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", id).Delete(&syncedSpaceRow{}).Error; err != nil {
			return err
		}
		return writeAudit(tx, s.now(), actor, "synced_space.removed", id, map[string]string{
			"jti": row.JTI, "status": row.Status, "site": row.SiteBaseURL, "space": row.SpaceKey,
		})
	}))
}

// LinkSecret returns the unsealed link secret of the synced space.
func (s *Store) LinkSecret(ctx context.Context, id string) (string, error) {
	var row syncedSpaceRow
	if err := s.db.WithContext(ctx).Select("id", "link_secret_sealed").Where("id = ?", id).Take(&row).Error; err != nil {
		return "", translate(err)
	}
	b, err := s.box.Open(row.LinkSecretSealed, linkSecretAAD(id))
	if err != nil {
		return "", fmt.Errorf("store: open link secret of %s: %w", id, err)
	}
	return string(b), nil
}

// Redemption is a claimed PENDING synced space with what it takes to
// repeat its redemption exactly.
type Redemption struct {
	Space      SyncedSpace
	Token      string
	LinkSecret string
}

// claim takes the next attempt of a PENDING row inside tx, by a
// conditional update on its attempt counter, and holds it for lease. It
// does nothing while another attempt holds the row, nor, unless early is
// set, before the row's next attempt is due.
func (s *Store) claim(tx *gorm.DB, row *syncedSpaceRow, now time.Time, lease time.Duration, early bool) (Redemption, bool, error) {
	if row.Status != string(StatusPending) || row.LeaseUntil != nil && row.LeaseUntil.UTC().After(now) {
		return Redemption{}, false, nil
	}
	if !early && row.NextAttemptAt != nil && row.NextAttemptAt.UTC().After(now) {
		return Redemption{}, false, nil
	}
	next := now.Add(lease)
	res := tx.Model(&syncedSpaceRow{}).
		Where("id = ? AND status = ? AND attempts = ?", row.ID, string(StatusPending), row.Attempts).
		Updates(map[string]any{"attempts": row.Attempts + 1, "next_attempt_at": next, "lease_until": next, "updated_at": now})
	if res.Error != nil {
		return Redemption{}, false, res.Error
	}
	if res.RowsAffected == 0 {
		return Redemption{}, false, nil
	}
	tok, err1 := s.box.Open(row.TokenSealed, tokenAAD(row.ID))
	ls, err2 := s.box.Open(row.LinkSecretSealed, linkSecretAAD(row.ID))
	if err := errors.Join(err1, err2); err != nil {
		// A row sealed with another key can never be redeemed; say so
		// once instead of failing every retry pass on it.
		reason := "This import cannot be read with the current DC_APP_SECRET_KEY (was the key changed?). Remove it, then ask the source space admin for a new token."
		if err := tx.Model(&syncedSpaceRow{}).Where("id = ?", row.ID).Updates(map[string]any{
			"status": string(StatusFailed), "status_reason": reason, "token_sealed": "", "next_attempt_at": nil, "lease_until": nil, "updated_at": now,
		}).Error; err != nil {
			return Redemption{}, false, err
		}
		if err := writeAudit(tx, now, "system:retry", "synced_space.failed", row.ID, map[string]string{"reason": "sealed secrets unreadable"}); err != nil {
			return Redemption{}, false, err
		}
		return Redemption{}, false, nil
	}
	row.Attempts++
	row.NextAttemptAt = &next
	row.LeaseUntil = &next
	return Redemption{Space: row.space(), Token: string(tok), LinkSecret: string(ls)}, true, nil
}

// ClaimDue claims up to limit PENDING synced spaces whose next attempt is
// due, each for lease, and returns them. Replicas running this at once
// never claim the same attempt twice.
func (s *Store) ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]Redemption, error) {
	var out []Redemption
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		out = nil
		now := s.now()
		var rows []syncedSpaceRow
		// Due-ness is decided in Go: SQLite keeps times as text whose
		// fractional digits vary, so SQL comparisons are not exact.
		if err := tx.Where("status = ?", string(StatusPending)).Order("next_attempt_at, id").Limit(500).Find(&rows).Error; err != nil {
			return err
		}
		for i := range rows {
			if len(out) == limit {
				break
			}
			r, ok, err := s.claim(tx, &rows[i], now, lease, false)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, translate(err)
}

// Claim claims the next attempt of one PENDING synced space for lease, even
// before it is due. ErrBusy if another attempt is running (holds the row),
// ErrConflict if it is not PENDING, ErrNotFound if it does not exist.
func (s *Store) Claim(ctx context.Context, id string, lease time.Duration) (Redemption, error) {
	var out Redemption
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var row syncedSpaceRow
		if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		if row.Status != string(StatusPending) {
			return ErrConflict
		}
		r, ok, err := s.claim(tx, &row, s.now(), lease, true)
		if err != nil {
			return err
		}
		if !ok {
			if row.LeaseUntil != nil && row.LeaseUntil.UTC().After(s.now()) {
				return ErrBusy
			}
			return ErrConflict // it could not be read and is FAILED now
		}
		out = r
		return nil
	})
	return out, translate(err)
}
