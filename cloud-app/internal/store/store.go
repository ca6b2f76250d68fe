// Package store owns all of cloud-app's database access. Every exported
// method is one transaction and stamps "now" once from the injected clock.
// Methods take ctx first and return domain structs; a missing row is
// ErrNotFound (or an *apperr.Error with a domain code), never (nil, nil).
package store

import (
	"errors"
	"time"

	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
)

// ErrNotFound means the row does not exist (for this tenant).
var ErrNotFound = errors.New("store: not found")

// Store is cloud-app's data access.
type Store struct {
	db  *db.DB
	now func() time.Time
	// secrets seals tenant shared secrets; tokens seals queued email tokens.
	secrets *secret.Box
	tokens  *secret.Box
}

// New returns a Store over d. now is the clock; key seals secrets at rest.
func New(d *db.DB, now func() time.Time, key secret.Key) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		db:      d,
		now:     func() time.Time { return now().UTC() },
		secrets: secret.NewBox(key, "cloud-app/tenant-shared-secret"),
		tokens:  secret.NewBox(key, "cloud-app/queued-email-token"),
	}
}

// DB returns the underlying database (for readiness checks and tests).
func (s *Store) DB() *db.DB { return s.db }
