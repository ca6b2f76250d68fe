// Package web is dc-app's HTTP surface: the route table (routes.go), the
// pages, the JSON API, and the background retry of pending imports.
package web

import (
	"context"
	"io"
	"log/slog"
	"time"

	"spacesync.io/dc-app/internal/config"
	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/server"
)

// Deps are what the app is built from; main fills them from the config.
type Deps struct {
	Config    *config.Config
	Logger    *slog.Logger
	DB        *db.DB
	SecretKey secret.Key
	Now       func() time.Time
	// Out receives the one-time print of a generated admin password.
	Out io.Writer
}

// App is the assembled service.
type App struct {
	Server *server.Server
	deps   Deps
	log    *slog.Logger
	stop   []func()
}

// New builds the app and starts its background work; it stops when ctx is
// done or Close is called.
func New(ctx context.Context, d Deps) (*App, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &App{deps: d, log: d.Logger}
	a.Server = server.New(server.Options{
		Name:           "dc_app",
		Logger:         d.Logger,
		TrustedProxies: d.Config.TrustedProxies,
	})
	a.routes()
	return a, nil
}

// Close stops the background work.
func (a *App) Close() {
	for i := len(a.stop) - 1; i >= 0; i-- {
		a.stop[i]()
	}
}
