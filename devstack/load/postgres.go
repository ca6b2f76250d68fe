package load

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"spacesync.io/shared/dbtest"
)

// Postgres modes. ModeFast is dbtest's test settings (no fsync, no
// synchronous commit, no full-page writes): fast and unsafe. ModeDurable is
// what production runs: fsync, synchronous commit and full-page writes on.
const (
	ModeFast    = "fast"
	ModeDurable = "durable"
)

// modeSettings are the server settings of each mode, as -c options.
var modeSettings = map[string][]string{
	ModeFast:    {"fsync=off", "synchronous_commit=off", "full_page_writes=off"},
	ModeDurable: {"fsync=on", "synchronous_commit=on", "full_page_writes=on"},
}

// Postgres is a throwaway cluster started by dbtest.StartCluster and, when
// the mode or the options differ from dbtest's, restarted with them.
type Postgres struct {
	*dbtest.Cluster
	Mode string
	// BinDir holds the server and client binaries (pgbench).
	BinDir string
	// Dir is the cluster's directory (data, socket, log), owned by the
	// server's user.
	Dir string
	// Settings are the server's own answers to SHOW for the settings that
	// matter to a benchmark, in a stable order.
	Settings [][2]string
	// Version is SELECT version().
	Version string

	cred *syscall.Credential
}

// StartPostgres starts a cluster in mode (ModeFast or ModeDurable). With
// statements, pg_stat_statements is preloaded so the report can list the
// statements that took the time.
func StartPostgres(ctx context.Context, mode string, statements bool) (*Postgres, error) {
	if _, ok := modeSettings[mode]; !ok {
		return nil, fmt.Errorf("unknown Postgres mode %q (want %s or %s)", mode, ModeFast, ModeDurable)
	}
	c, err := dbtest.StartCluster()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Cluster: c, Mode: mode}
	ok := false
	defer func() {
		if !ok {
			c.Remove()
		}
	}()
	admin, err := sql.Open("pgx", c.URL("postgres"))
	if err != nil {
		return nil, err
	}
	var dataDir string
	err = admin.QueryRowContext(ctx, `SELECT current_setting('data_directory'),
		(SELECT setting FROM pg_config WHERE name = 'BINDIR')`).Scan(&dataDir, &p.BinDir)
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("read the cluster's directories: %w", err)
	}
	p.Dir = filepath.Dir(dataDir)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if mode != ModeFast || statements {
		// The -c options dbtest starts with outrank postgresql.conf and
		// ALTER SYSTEM, so other settings need a restart with other
		// options.
		if err := c.Stop(); err != nil {
			return nil, err
		}
		opts := []string{"-p", strconv.Itoa(c.Port()), "-k", p.Dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"}
		for _, s := range modeSettings[mode] {
			opts = append(opts, "-c", s)
		}
		if statements {
			opts = append(opts, "-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all")
		}
		out, err := p.command(ctx, "pg_ctl", "-D", dataDir, "-l", filepath.Join(p.Dir, "log"), "-w", "-t", "60",
			"-o", strings.Join(opts, " "), "start").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("pg_ctl start (%s): %v\n%s", mode, err, out)
		}
	}
	if err := p.readSettings(ctx); err != nil {
		return nil, err
	}
	if statements {
		if err := p.Exec(ctx, "postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			return nil, err
		}
	}
	ok = true
	return p, nil
}

// command is a server or client binary of the cluster, run as the server's
// user when this process is root.
func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = p.Dir
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

// benchSettings are the settings the report shows.
var benchSettings = []string{
	"fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "wal_buffers",
	"max_wal_size", "checkpoint_timeout", "max_connections", "shared_preload_libraries",
}

func (p *Postgres) readSettings(ctx context.Context) error {
	db, err := sql.Open("pgx", p.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&p.Version); err != nil {
		return fmt.Errorf("read the Postgres version: %w", err)
	}
	p.Settings = p.Settings[:0]
	for _, name := range benchSettings {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return fmt.Errorf("read setting %s: %w", name, err)
		}
		p.Settings = append(p.Settings, [2]string{name, v})
	}
	return nil
}

// Exec runs one statement in database name.
func (p *Postgres) Exec(ctx context.Context, name, stmt string) error {
	db, err := sql.Open("pgx", p.URL(name))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", firstWords(stmt), err)
	}
	return nil
}

// CreateDatabase creates an empty database.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	return p.Exec(ctx, "postgres", "CREATE DATABASE "+name)
}

// PostmasterPID is the pid of the server's main process.
func (p *Postgres) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(p.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}
