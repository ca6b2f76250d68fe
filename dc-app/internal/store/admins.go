package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Admin is a dc-app administrator account.
type Admin struct {
	ID                string
	Username          string
	PasswordHash      string
	CreatedAt         time.Time
	PasswordChangedAt time.Time
}

type adminRow struct {
	ID                string    `gorm:"column:id;primaryKey"`
	Username          string    `gorm:"column:username"`
	PasswordHash      string    `gorm:"column:password_hash"`
	CreatedAt         time.Time `gorm:"column:created_at;autoCreateTime:false"`
	PasswordChangedAt time.Time `gorm:"column:password_changed_at"`
}

func (adminRow) TableName() string { return "admins" }

func (r adminRow) admin() Admin {
	return Admin{ID: r.ID, Username: r.Username, PasswordHash: r.PasswordHash, CreatedAt: r.CreatedAt.UTC(), PasswordChangedAt: r.PasswordChangedAt.UTC()}
}

// CreateFirstAdmin creates the admin account username with the given
// password hash if no admin exists yet, and reports whether it did. When
// two replicas start at once, exactly one creates it.
func (s *Store) CreateFirstAdmin(ctx context.Context, username, passwordHash string) (bool, error) {
	created := false
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		created = false
		var n int64
		if err := tx.Model(&adminRow{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		now := s.now()
		row := adminRow{ID: newID(), Username: username, PasswordHash: passwordHash, CreatedAt: now, PasswordChangedAt: now}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		created = true
		return nil
	})
	if translate(err) == ErrDuplicate {
		return false, nil
	}
	return created, translate(err)
}

// AdminByUsername returns the admin called username, or ErrNotFound.
func (s *Store) AdminByUsername(ctx context.Context, username string) (Admin, error) {
	var row adminRow
	err := s.db.WithContext(ctx).Where("username = ?", username).Take(&row).Error
	return row.admin(), translate(err)
}

// AdminByID returns the admin with the id, or ErrNotFound.
func (s *Store) AdminByID(ctx context.Context, id string) (Admin, error) {
	var row adminRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	return row.admin(), translate(err)
}

// ChangePassword stores a new password hash for the admin and, in the same
// transaction, revokes every session of the admin except the one whose
// hash is keepSession (the session that made the change). It returns
// ErrNotFound for an unknown admin.
func (s *Store) ChangePassword(ctx context.Context, adminID, passwordHash, keepSession string) error {
	return translate(s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&adminRow{}).Where("id = ?", adminID).
			Updates(map[string]any{"password_hash": passwordHash, "password_changed_at": s.now()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Where("admin_id = ? AND id_hash <> ?", adminID, keepSession).Delete(&sessionRow{}).Error; err != nil {
			return err
		}
		return writeAudit(tx, s.now(), adminID, "admin.password_changed", "", nil)
	}))
}
