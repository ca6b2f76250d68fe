package web

import (
	"os"
	"testing"

	"spacesync.io/shared/dbtest"
)

// TestMain removes the throwaway Postgres cluster after the package's
// tests. It is the web package's only TestMain.
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
