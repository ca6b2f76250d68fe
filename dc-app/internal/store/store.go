// Package store owns all of dc-app's database access. Every exported method
// is one transaction and stamps "now" once from the injected clock. Methods
// take ctx first and return domain structs; a missing row is ErrNotFound,
// never (nil, nil).
package store

import (
	"errors"
	"time"

	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
)

// ErrNotFound means the row does not exist.
var ErrNotFound = errors.New("store: not found")

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
