package store

import (
	"os"
	"testing"

	"spacesync.io/shared/dbtest"
)

// TestMain removes the throwaway Postgres cluster after the package's
// tests. It is the store package's only TestMain: add nothing here that
// only one resource's tests need.
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
