// Package dbtest hands each test a fresh, migrated database: a real Postgres
// database cloned from a migrated template, and an embedded SQLite file.
//
// Postgres comes from TEST_DATABASE_URL when it is set (a server where the
// tests may create databases), otherwise from a throwaway cluster that Main
// starts from the local server binaries once per test package.
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"spacesync.io/shared/db"
)

var (
	mainCalled atomic.Bool
	clusterMu  sync.Mutex
	cluster    *Cluster
	serverURL  string // admin URL of the server (TEST_DATABASE_URL or the cluster)
	templates  sync.Map
	seq        atomic.Int64
)

// Main runs the package's tests and removes the throwaway cluster, if one
// was started, when they are done.
func Main(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	clusterMu.Lock()
	if cluster != nil {
		cluster.Remove()
	}
	clusterMu.Unlock()
	return code
}

func server(tb testing.TB) string {
	tb.Helper()
	if !mainCalled.Load() {
		tb.Fatalf("dbtest: call os.Exit(dbtest.Main(m)) from TestMain so the throwaway cluster is removed")
	}
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if serverURL != "" {
		return serverURL
	}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		serverURL = u
		return serverURL
	}
	c, err := StartCluster()
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	cluster = c
	serverURL = c.URL("postgres")
	return serverURL
}

func withDatabase(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func migrationsHash(m fs.FS) string {
	h := sha256.New()
	var names []string
	_ = fs.WalkDir(m, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(m, n)
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// template returns the name of a database migrated with m, creating it once.
func template(tb testing.TB, admin string, m fs.FS) string {
	tb.Helper()
	name := "tmpl_" + migrationsHash(m)
	v, _ := templates.LoadOrStore(name, &sync.Once{})
	var err error
	v.(*sync.Once).Do(func() {
		err = createTemplate(admin, name, m)
		if err != nil {
			templates.Delete(name)
		}
	})
	if err != nil {
		tb.Fatalf("dbtest: migrate template: %v", err)
	}
	return name
}

func createTemplate(admin, name string, m fs.FS) error {
	adm, err := sql.Open("pgx", admin)
	if err != nil {
		return err
	}
	defer adm.Close()
	var exists bool
	if err := adm.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := name + "_building"
	_, _ = adm.Exec(`DROP DATABASE IF EXISTS ` + building)
	if _, err := adm.Exec(`CREATE DATABASE ` + building); err != nil {
		return err
	}
	gdb, err := openGorm(withDatabase(admin, building))
	if err != nil {
		return err
	}
	d, err := db.Wrap(gdb, db.Postgres, m)
	if err == nil {
		err = d.Migrate(context.Background())
		d.Close()
	}
	if err != nil {
		return err
	}
	_, err = adm.Exec(`ALTER DATABASE ` + building + ` RENAME TO ` + name)
	return err
}

func openGorm(dsn string) (*gorm.DB, error) {
	return gorm.Open(postgres.New(postgres.Config{DSN: dsn}), &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
	})
}

// PostgresURL creates a fresh database migrated with m and returns its URL;
// the database is dropped when the test ends.
func PostgresURL(tb testing.TB, m fs.FS) string {
	tb.Helper()
	admin := server(tb)
	tmpl := template(tb, admin, m)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), seq.Add(1))
	adm, err := sql.Open("pgx", admin)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	if _, err := adm.Exec(`CREATE DATABASE ` + name + ` TEMPLATE ` + tmpl); err != nil {
		adm.Close()
		tb.Fatalf("dbtest: clone template: %v", err)
	}
	tb.Cleanup(func() {
		defer adm.Close()
		if _, err := adm.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			tb.Errorf("dbtest: drop %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// Postgres returns a fresh migrated Postgres database, closed and dropped
// when the test ends.
func Postgres(tb testing.TB, m fs.FS) *db.DB {
	tb.Helper()
	dsn := PostgresURL(tb, m)
	gdb, err := openGorm(dsn)
	if err != nil {
		tb.Fatalf("dbtest: open: %v", err)
	}
	d, err := db.Wrap(gdb, db.Postgres, m)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	d.SQL().SetMaxOpenConns(40)
	tb.Cleanup(func() { d.Close() })
	return d
}

// SQLite returns a fresh migrated SQLite database in a temporary directory.
func SQLite(tb testing.TB, m fs.FS) *db.DB {
	tb.Helper()
	d, err := db.Open(context.Background(), db.Options{DataDir: tb.TempDir(), File: "test.db", Migrations: m})
	if err != nil {
		tb.Fatalf("dbtest: open sqlite: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// Each runs fn as two subtests, one on Postgres and one on SQLite.
func Each(t *testing.T, m fs.FS, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t, m)) })
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t, m)) })
}

// DataDir returns a temporary directory usable by services under test.
func DataDir(tb testing.TB) string { return filepath.Join(tb.TempDir(), "data") }
