// Package web is cloud-app's HTTP surface: the route table (routes.go), the
// handlers, and the background workers they rely on.
package web

import (
	"context"
	"log/slog"
	"time"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/server"
	"spacesync.io/shared/token"
)

// Deps are what the app is built from; main fills them from the config.
type Deps struct {
	Config    *config.Config
	Logger    *slog.Logger
	DB        *db.DB
	SecretKey secret.Key
	TokenKeys *token.KeySet
	Now       func() time.Time
}

// App is the assembled service.
type App struct {
	Server *server.Server
	deps   Deps
	log    *slog.Logger
	stop   []func()
}

// New builds the app and starts its background workers; they stop when ctx
// is done or Close is called.
func New(ctx context.Context, d Deps) (*App, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &App{deps: d, log: d.Logger}
	a.Server = server.New(server.Options{
		Name:           "cloud_app",
		Logger:         d.Logger,
		TrustedProxies: d.Config.TrustedProxies,
	})
	a.routes()
	return a, nil
}

// Close stops the background workers.
func (a *App) Close() {
	for i := len(a.stop) - 1; i >= 0; i-- {
		a.stop[i]()
	}
}
