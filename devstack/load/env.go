package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"spacesync.io/devstack/confluencesim"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// Config says how to set up an environment.
type Config struct {
	// BinDir holds the cloud-app and dc-app binaries (make build puts them
	// in ./bin).
	BinDir string
	// Mode is ModeFast or ModeDurable.
	Mode string
	// Statements preloads pg_stat_statements.
	Statements bool
	// Profile samples the service under test with perf(1) during the
	// last level of each scenario.
	Profile bool
	// Tenants is how many tenants the redemption tokens are spread over.
	Tenants int
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// Env is one Postgres cluster with cloud-app (and, when a scenario needs
// it, dc-app and the Confluence Cloud simulator) running against it.
type Env struct {
	cfg    Config
	dir    string
	PG     *Postgres
	Cloud  *Service
	DC     *Service
	Seeder *Seeder
	CPU    *CPUMeter

	tokenKeys *token.KeySet
	secretKey secret.Key

	sim       *confluencesim.Sim
	simServer *http.Server
	installed bool

	dcUser, dcPassword string
}

// Start starts the cluster, the Confluence simulator's listener and
// cloud-app, and seeds the tenants.
func Start(ctx context.Context, cfg Config) (_ *Env, err error) {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	e := &Env{cfg: cfg, CPU: &CPUMeter{PIDs: map[string]int{}}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "loadgen-"); err != nil {
		return nil, err
	}
	e.logf("starting Postgres (%s settings)", cfg.Mode)
	if e.PG, err = StartPostgres(ctx, cfg.Mode, cfg.Statements); err != nil {
		return nil, err
	}
	if e.CPU.Postmaster, err = e.PG.PostmasterPID(); err != nil {
		return nil, fmt.Errorf("postmaster pid: %w", err)
	}
	for _, db := range []string{"cloudapp", "dcapp"} {
		if err := e.PG.CreateDatabase(ctx, db); err != nil {
			return nil, err
		}
	}
	if e.tokenKeys, err = token.GenerateKeySet("load1"); err != nil {
		return nil, err
	}
	e.secretKey = secret.NewKey()

	cloudAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	cloudURL := "http://" + cloudAddr
	if err := e.startSim(cloudURL); err != nil {
		return nil, err
	}
	e.logf("starting cloud-app on %s", cloudAddr)
	e.Cloud, err = StartService(ctx, "cloud-app", filepath.Join(cfg.BinDir, "cloud-app"), cloudURL,
		filepath.Join(e.dir, "cloud-app.log"), []string{
			"CLOUD_APP_ADDR=" + cloudAddr,
			"CLOUD_APP_BASE_URL=" + cloudURL,
			"CLOUD_APP_DATABASE_URL=" + e.PG.URL("cloudapp"),
			"CLOUD_APP_SECRET_KEY=" + e.secretKey.Encode(),
			"SPACESYNC_TOKEN_KEYS=" + e.tokenKeys.Encode(),
			"CLOUD_APP_PRODUCT_HOSTS=localhost",
			"CLOUD_APP_INSTALL_KEYS_URL=" + e.sim.InstallKeysURL(),
			"CLOUD_APP_DATA_DIR=" + filepath.Join(e.dir, "cloud-app"),
			"MAIL_MODE=outbox",
		})
	if err != nil {
		return nil, err
	}
	e.CPU.PIDs[GroupCloudApp] = e.Cloud.PID()
	if e.Seeder, err = NewSeeder(ctx, e.PG.URL("cloudapp"), e.tokenKeys, cloudURL, e.secretKey); err != nil {
		return nil, err
	}
	if err := e.Seeder.AddTenants(ctx, max(cfg.Tenants, 1)); err != nil {
		return nil, err
	}
	return e, nil
}

// startSim starts the Confluence Cloud simulator on a free loopback port,
// named localhost so that the tenant's host matches
// CLOUD_APP_PRODUCT_HOSTS=localhost. The app is installed only when a
// scenario needs it (InstallSim).
func (e *Env) startSim(cloudURL string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	e.sim, err = confluencesim.New(confluencesim.Config{
		PublicURL:        fmt.Sprintf("http://localhost:%d", port),
		AppDescriptorURL: cloudURL + "/atlassian-connect.json",
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		l.Close()
		return fmt.Errorf("confluence simulator: %w", err)
	}
	e.simServer = &http.Server{Handler: e.sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go e.simServer.Serve(l)
	return nil
}

// InstallSim installs cloud-app into the simulated site (signed install,
// then enabled), once.
func (e *Env) InstallSim(ctx context.Context) error {
	if e.installed {
		return nil
	}
	e.logf("installing cloud-app into the Confluence simulator")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.sim.Install(ctx); err != nil {
		return fmt.Errorf("install into the Confluence simulator: %w", err)
	}
	e.installed = true
	return nil
}

// StartDCApp starts dc-app against the same cluster, trusting cloud-app,
// with a bootstrap admin whose password only this process knows.
func (e *Env) StartDCApp(ctx context.Context) error {
	if e.DC != nil {
		return nil
	}
	addr, err := FreeAddr()
	if err != nil {
		return err
	}
	e.dcUser, e.dcPassword = "loadgen", randomID(18)
	e.logf("starting dc-app on %s", addr)
	e.DC, err = StartService(ctx, "dc-app", filepath.Join(e.cfg.BinDir, "dc-app"), "http://"+addr,
		filepath.Join(e.dir, "dc-app.log"), []string{
			"DC_APP_ADDR=" + addr,
			"DC_APP_BASE_URL=http://" + addr,
			"DC_APP_DATABASE_URL=" + e.PG.URL("dcapp"),
			"DC_APP_SECRET_KEY=" + secret.NewKey().Encode(),
			"DC_APP_DATA_DIR=" + filepath.Join(e.dir, "dc-app"),
			"DC_APP_TRUSTED_CLOUD_URLS=" + e.Cloud.BaseURL,
			"DC_APP_ADMIN_USERNAME=" + e.dcUser,
			"DC_APP_ADMIN_PASSWORD=" + e.dcPassword,
		})
	if err != nil {
		e.DC = nil
		return err
	}
	e.CPU.PIDs[GroupDCApp] = e.DC.PID()
	return nil
}

// Close stops everything Start started and removes the cluster and the
// working directory, unless keep is set for a look at the logs.
func (e *Env) Close() { e.close(false) }

// CloseKeep stops everything but keeps the working directory (service
// logs) and says where it is.
func (e *Env) CloseKeep() string { e.close(true); return e.dir }

func (e *Env) close(keep bool) {
	if e.Seeder != nil {
		e.Seeder.Close()
	}
	if e.DC != nil {
		e.DC.Stop()
	}
	if e.Cloud != nil {
		e.Cloud.Stop()
	}
	if e.simServer != nil {
		e.simServer.Close()
	}
	if e.PG != nil {
		e.PG.Remove()
	}
	if e.dir != "" && !keep {
		os.RemoveAll(e.dir)
	}
}

// checkAlive fails when a service under test has died, with its log tail.
func (e *Env) checkAlive() error {
	var errs []error
	for _, s := range []*Service{e.Cloud, e.DC} {
		if s != nil && !s.Alive() {
			errs = append(errs, fmt.Errorf("%s exited during the run; last lines of its log:\n%s", s.Name, tail(s.LogPath, 15)))
		}
	}
	return errors.Join(errs...)
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "loadgen: %s "+strings.TrimSuffix(format, "\n")+"\n",
		append([]any{time.Now().Format("15:04:05")}, args...)...)
}
