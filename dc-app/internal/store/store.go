// Package store owns all of dc-app's database access. Every exported method
// is one transaction and stamps "now" once from the injected clock. Methods
// take ctx first and return domain structs; a missing row is ErrNotFound,
// never (nil, nil).
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
)

// Errors the methods return, besides database errors.
var (
	// ErrNotFound means the row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate means a unique key is taken: a token id imported
	// already, or a username in use.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrBusy means a pending import is being redeemed by someone else
	// right now (its lease has not run out).
	ErrBusy = errors.New("store: busy")
	// ErrConflict means the row is not in the state the change needs.
	ErrConflict = errors.New("store: conflict")
)

// Store is dc-app's data access.
type Store struct {
	db  *db.DB
	now func() time.Time
	// box seals the token and the link secret of a synced space.
	box *secret.Box
}

// New returns a Store over d. now is the clock; key seals secrets at rest.
func New(d *db.DB, now func() time.Time, key secret.Key) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		db:  d,
		now: func() time.Time { return now().UTC() },
		box: secret.NewBox(key, "dc-app/synced-space-secrets"),
	}
}

// DB returns the underlying database.
func (s *Store) DB() *db.DB { return s.db }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// newID returns a random UUID (version 4) for a row id.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// translate maps gorm's errors to the store's.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return ErrDuplicate
	}
	return err
}

type installationRow struct {
	Singleton  int       `gorm:"column:singleton;primaryKey"`
	InstanceID string    `gorm:"column:instance_id"`
	CreatedAt  time.Time `gorm:"column:created_at;autoCreateTime:false"`
}

func (installationRow) TableName() string { return "installation" }

// InstanceID returns this installation's instance id, generating and
// storing it the first time. Every replica gets the same id.
func (s *Store) InstanceID(ctx context.Context) (string, error) {
	var id string
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		row := installationRow{Singleton: 1, InstanceID: newID(), CreatedAt: s.now()}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
			return err
		}
		var got installationRow
		if err := tx.Where("singleton = 1").Take(&got).Error; err != nil {
			return err
		}
		id = got.InstanceID
		return nil
	})
	return id, translate(err)
}
