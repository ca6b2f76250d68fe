// Package db opens a service's database — Postgres when a URL is configured,
// otherwise an embedded SQLite file — applies its embedded, versioned
// migrations, and provides the transaction helper both services use.
//
// One set of portable SQL migrations serves both databases: TEXT, BIGINT,
// BOOLEAN and TIMESTAMP columns (times are always stored in UTC), plain
// UNIQUE constraints and partial unique indexes (supported by both).
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database behind a *DB.
type Dialect string

// The two dialects a service can run on.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Options says which database to open.
type Options struct {
	// URL is a postgres:// URL; empty means the embedded SQLite file.
	URL string
	// DataDir holds the SQLite file when URL is empty.
	DataDir string
	// File is the SQLite file name inside DataDir (e.g. "cloud-app.db").
	File string
	// Migrations holds the goose SQL files at its root.
	Migrations fs.FS
	Logger     *slog.Logger
	// MaxOpenConns bounds the Postgres pool (default 20).
	MaxOpenConns int
}

// DB is an open database with its dialect and migrations.
type DB struct {
	*gorm.DB
	Dialect    Dialect
	migrations fs.FS
	sqlDB      *sql.DB
}

// Open connects, applies pending migrations and returns the database.
func Open(ctx context.Context, o Options) (*DB, error) {
	gcfg := &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
	var (
		gdb     *gorm.DB
		dialect Dialect
		err     error
	)
	if o.URL != "" {
		dialect = Postgres
		gdb, err = gorm.Open(postgres.New(postgres.Config{DSN: o.URL}), gcfg)
	} else {
		dialect = SQLite
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		path := filepath.Join(o.DataDir, o.File)
		if err := ensurePrivateFile(path); err != nil {
			return nil, err
		}
		gdb, err = gorm.Open(sqlite.Open(SQLiteDSN(path)), gcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	d, err := wrap(gdb, dialect, o.Migrations)
	if err != nil {
		return nil, err
	}
	if dialect == Postgres {
		n := o.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		d.sqlDB.SetMaxOpenConns(n)
		d.sqlDB.SetMaxIdleConns(n)
		d.sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := d.Migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Wrap adopts an already open *gorm.DB (tests use it with cloned databases).
func Wrap(gdb *gorm.DB, dialect Dialect, migrations fs.FS) (*DB, error) {
	return wrap(gdb, dialect, migrations)
}

func wrap(gdb *gorm.DB, dialect Dialect, migrations fs.FS) (*DB, error) {
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, err
	}
	if dialect == SQLite {
		// One connection serialises writers: SQLite allows a single writer,
		// and a pool of connections turns contention into SQLITE_BUSY.
		sqlDB.SetMaxOpenConns(1)
	}
	return &DB{DB: gdb, Dialect: dialect, migrations: migrations, sqlDB: sqlDB}, nil
}

// ensurePrivateFile creates the database file owner-only before SQLite
// opens it, and tightens an existing one (the WAL files inherit the mode).
func ensurePrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	f.Close()
	return os.Chmod(path, 0o600)
}

// SQLiteDSN is the connection string of an embedded database file: WAL,
// a busy timeout, foreign keys on, and write transactions begun IMMEDIATE.
func SQLiteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

func (d *DB) gooseDialect() goose.Dialect {
	if d.Dialect == Postgres {
		return goose.DialectPostgres
	}
	return goose.DialectSQLite3
}

func (d *DB) provider() (*goose.Provider, error) {
	return goose.NewProvider(d.gooseDialect(), d.sqlDB, d.migrations)
}

// Migrate applies every pending migration.
func (d *DB) Migrate(ctx context.Context) error {
	p, err := d.provider()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Ready reports whether the database answers and its schema is current.
func (d *DB) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := d.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	p, err := d.provider()
	if err != nil {
		return err
	}
	have, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	srcs := p.ListSources()
	if len(srcs) == 0 {
		return nil
	}
	if want := srcs[len(srcs)-1].Version; have != want {
		return fmt.Errorf("schema at version %d, want %d", have, want)
	}
	return nil
}

// Close closes the connection pool.
func (d *DB) Close() error { return d.sqlDB.Close() }

// SQL returns the underlying *sql.DB.
func (d *DB) SQL() *sql.DB { return d.sqlDB }

// maxAttempts bounds retries of serialization failures and deadlocks.
const maxAttempts = 8

// Tx runs fn in one transaction, retrying Postgres serialization failures
// and deadlocks (40001, 40P01) and SQLite busy errors a bounded number of
// times with a short backoff. fn must be safe to run again.
func (d *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = d.WithContext(ctx).Transaction(fn)
		if err == nil || !Retryable(err) || attempt == maxAttempts {
			return err
		}
		backoff := time.Duration(attempt*attempt) * 2 * time.Millisecond
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
	return err
}

// Retryable reports whether err is a transient conflict worth retrying.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// Unavailable reports whether err means the database cannot be reached
// (connection refused, reset, shut down), as opposed to a query error.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: admin shutdown,
		// crash shutdown, cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "failed to connect", "conn closed", "unexpected EOF", "server closed the connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
