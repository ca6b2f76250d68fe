package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/cloud-app/internal/web"
	"spacesync.io/shared/db"
	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// run starts cloud-app and serves until ctx is done. ready, when not nil,
// receives the listening address.
func run(ctx context.Context, lookup func(string) (string, bool), logOut io.Writer, ready func(net.Addr)) error {
	cfg, err := config.Load(lookup)
	if err != nil {
		return err
	}
	log := newLogger(logOut, cfg.DevMode())
	log.Info("starting cloud-app", cfg.LogAttrs()...)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}

	secretKey, err := resolveSecretKey(cfg, log)
	if err != nil {
		return err
	}
	keys, err := resolveTokenKeys(cfg, log)
	if err != nil {
		return err
	}

	d, err := db.Open(ctx, db.Options{
		URL: cfg.DatabaseURL, DataDir: cfg.DataDir, File: "cloud-app.db",
		Migrations: migrations.FS, Logger: log,
	})
	if err != nil {
		if cfg.DatabaseURL != "" {
			return fmt.Errorf("CLOUD_APP_DATABASE_URL: %s", env.OneLine(err))
		}
		return fmt.Errorf("CLOUD_APP_DATA_DIR: %s", env.OneLine(err))
	}
	defer d.Close()
	log.Info("database ready", "dialect", d.Dialect)

	app, err := web.New(ctx, web.Deps{
		Config: cfg, Logger: log, DB: d, SecretKey: secretKey, TokenKeys: keys, Now: time.Now,
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

// resolveSecretKey returns CLOUD_APP_SECRET_KEY, or on the embedded default
// the key kept in the data directory, generated on first start.
func resolveSecretKey(cfg *config.Config, log *slog.Logger) (secret.Key, error) {
	raw := cfg.SecretKeyRaw
	if raw == "" {
		path := filepath.Join(cfg.DataDir, "secret.key")
		v, created, err := secret.LoadOrCreateFile(path, func() (string, error) { return secret.NewKey().Encode(), nil })
		if err != nil {
			return secret.Key{}, fmt.Errorf("CLOUD_APP_DATA_DIR: cannot keep the generated secret key (CLOUD_APP_SECRET_KEY is not set): %w", err)
		}
		if created {
			log.Warn("generated a new secret key (CLOUD_APP_SECRET_KEY is not set)", "file", path)
		}
		raw = v
	}
	k, err := secret.ParseKey(raw)
	if err != nil {
		return k, fmt.Errorf("invalid CLOUD_APP_SECRET_KEY: %v", err)
	}
	return k, nil
}

// resolveTokenKeys returns the SPACESYNC_TOKEN_KEYS key set, or on the
// embedded default the set kept in the data directory, generated on first
// start.
func resolveTokenKeys(cfg *config.Config, log *slog.Logger) (*token.KeySet, error) {
	if cfg.TokenKeys != nil {
		log.Info("token keys loaded", "kids", cfg.TokenKeys.String())
		return cfg.TokenKeys, nil
	}
	path := filepath.Join(cfg.DataDir, "token-keys")
	raw, created, err := secret.LoadOrCreateFile(path, func() (string, error) {
		ks, err := token.GenerateKeySet("k" + time.Now().UTC().Format("20060102"))
		if err != nil {
			return "", err
		}
		return ks.Encode(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("CLOUD_APP_DATA_DIR: cannot keep the generated token keys (SPACESYNC_TOKEN_KEYS is not set): %w", err)
	}
	if created {
		log.Warn("generated a new token key set (SPACESYNC_TOKEN_KEYS is not set)", "file", path)
	}
	ks, err := token.ParseKeySet(raw)
	if err != nil {
		return nil, fmt.Errorf("the token key set in %s is malformed: %v", path, err)
	}
	log.Info("token keys loaded", "kids", ks.String())
	return ks, nil
}
