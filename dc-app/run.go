package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"spacesync.io/dc-app/internal/config"
	"spacesync.io/dc-app/internal/store/migrations"
	"spacesync.io/dc-app/internal/web"
	"spacesync.io/shared/db"
	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"
)

// run starts dc-app and serves until ctx is done. The log goes to logOut;
// the one-time print of a generated admin password goes to stdout, never to
// the log. ready, when not nil, receives the listening address.
func run(ctx context.Context, lookup func(string) (string, bool), stdout, logOut io.Writer, ready func(net.Addr)) error {
	cfg, err := config.Load(lookup)
	if err != nil {
		return err
	}
	dev := cfg.BaseURL.Scheme == "http"
	log := newLogger(logOut, dev)
	log.Info("starting dc-app", cfg.LogAttrs()...)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	secretKey, err := resolveSecretKey(cfg, log)
	if err != nil {
		return err
	}
	d, err := db.Open(ctx, db.Options{
		URL: cfg.DatabaseURL, DataDir: cfg.DataDir, File: "dc-app.db",
		Migrations: migrations.FS, Logger: log,
	})
	if err != nil {
		if cfg.DatabaseURL != "" {
			return fmt.Errorf("DC_APP_DATABASE_URL: %s", env.OneLine(err))
		}
		return fmt.Errorf("DC_APP_DATA_DIR: %s", env.OneLine(err))
	}
	defer d.Close()
	log.Info("database ready", "dialect", d.Dialect)

	app, err := web.New(ctx, web.Deps{
		Config: cfg, Logger: log, DB: d, SecretKey: secretKey, Now: time.Now, Out: stdout,
	})
	if err != nil {
		return err
	}
	defer app.Close()
	err = app.Server.Serve(ctx, cfg.Addr, 15*time.Second, func(a net.Addr) {
		log.Info("listening", "addr", a.String(), "base_url", cfg.BaseURL.String())
		if ready != nil {
			ready(a)
		}
	})
	log.Info("stopped")
	return err
}

func newLogger(w io.Writer, dev bool) *slog.Logger {
	if dev {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// resolveSecretKey returns DC_APP_SECRET_KEY, or on the embedded default
// the key kept in the data directory, generated on first start.
func resolveSecretKey(cfg *config.Config, log *slog.Logger) (secret.Key, error) {
	raw := cfg.SecretKeyRaw
	if raw == "" {
		path := filepath.Join(cfg.DataDir, "secret.key")
		v, created, err := secret.LoadOrCreateFile(path, func() (string, error) { return secret.NewKey().Encode(), nil })
		if err != nil {
			return secret.Key{}, fmt.Errorf("DC_APP_DATA_DIR: cannot keep the generated secret key (DC_APP_SECRET_KEY is not set): %w", err)
		}
		if created {
			log.Warn("generated a new secret key (DC_APP_SECRET_KEY is not set)", "file", path)
		}
		raw = v
	}
	k, err := secret.ParseKey(raw)
	if err != nil {
		return k, fmt.Errorf("invalid DC_APP_SECRET_KEY: %v", err)
	}
	return k, nil
}
