package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Session is a signed-in browser session. The store never sees the cookie
// value, only its SHA-256 (IDHash).
type Session struct {
	IDHash    string
	Admin     Admin
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

type sessionRow struct {
	IDHash    string    `gorm:"column:id_hash;primaryKey"`
	AdminID   string    `gorm:"column:admin_id"`
	CSRFToken string    `gorm:"column:csrf_token"`
	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (sessionRow) TableName() string { return "sessions" }

// NewSession describes a session to create.
type NewSession struct {
	AdminID   string
	IDHash    string
	CSRFToken string
	TTL       time.Duration
	// Replaces, when not empty, is the hash of a session the browser
	// presented at sign-in; it is deleted in the same transaction, so a
	// session id planted before sign-in never becomes signed in.
	Replaces string
}

// CreateSession stores a new session and returns it.
func (s *Store) CreateSession(ctx context.Context, n NewSession) (Session, error) {
	var out Session
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		if n.Replaces != "" {
			if err := tx.Where("id_hash = ?", n.Replaces).Delete(&sessionRow{}).Error; err != nil {
				return err
			}
		}
		var a adminRow
		if err := tx.Where("id = ?", n.AdminID).Take(&a).Error; err != nil {
			return err
		}
		now := s.now()
		row := sessionRow{IDHash: n.IDHash, AdminID: n.AdminID, CSRFToken: n.CSRFToken, CreatedAt: now, ExpiresAt: now.Add(n.TTL)}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		out = Session{IDHash: row.IDHash, Admin: a.admin(), CSRFToken: row.CSRFToken, CreatedAt: now, ExpiresAt: row.ExpiresAt}
		return nil
	})
	return out, translate(err)
}

// SessionByHash returns the live session with the hash and its admin, or
// ErrNotFound when there is none or it has expired.
func (s *Store) SessionByHash(ctx context.Context, idHash string) (Session, error) {
	var out Session
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var row sessionRow
		if err := tx.Where("id_hash = ?", idHash).Take(&row).Error; err != nil {
			return err
		}
		// Compared here rather than in SQL: SQLite stores times as text
		// with a variable number of fractional digits.
		if !s.now().Before(row.ExpiresAt.UTC()) {
			return ErrNotFound
		}
		var a adminRow
		if err := tx.Where("id = ?", row.AdminID).Take(&a).Error; err != nil {
			return err
		}
		out = Session{IDHash: row.IDHash, Admin: a.admin(), CSRFToken: row.CSRFToken, CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC()}
		return nil
	})
	return out, translate(err)
}

// DeleteSession revokes the session with the hash; revoking a session that
// does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	return translate(s.db.WithContext(ctx).Where("id_hash = ?", idHash).Delete(&sessionRow{}).Error)
}

// DeleteExpiredSessions removes sessions that expired before now and
// returns how many it removed.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", s.now().Add(-time.Minute)).Delete(&sessionRow{})
	return res.RowsAffected, translate(res.Error)
}
