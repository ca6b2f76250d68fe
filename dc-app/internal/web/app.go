// Package web is dc-app's HTTP surface: the route table (routes.go), the
// pages, the JSON API, and the background retry of pending imports.
package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/dc-app/internal/config"
	"spacesync.io/dc-app/internal/importer"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/server"
	"spacesync.io/shared/ui"
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
	// Cloud is the client of cloud-app; nil means one with default
	// options (30s timeout, proxies from the environment).
	Cloud *cloud.Client
	// Retry tunes the background retry of pending imports; zero fields
	// take the defaults.
	Retry importer.RetryPolicy
	// PasswordCost is the bcrypt cost of new password hashes (default 12;
	// tests lower it).
	PasswordCost int
}

// Sign-in and session policy.
const (
	sessionTTL     = 12 * time.Hour
	throttleWindow = 15 * time.Minute
	// Failed sign-ins allowed per window before further attempts wait.
	maxFailsPerIP   = 20
	maxFailsPerUser = 10
	defaultCost     = 12
)

// App is the assembled service.
type App struct {
	Server *server.Server
	// Store and Importer are exposed for tests and for main.
	Store    *store.Store
	Importer *importer.Service

	deps     Deps
	log      *slog.Logger
	assets   *ui.Assets
	pages    *pages
	throttle *throttle
	cost     int
	// dummyHash is compared against when a username is unknown, so that
	// a wrong username costs as much time as a wrong password.
	dummyHash []byte
	secure    bool
	origin    string
	// passwordChecks counts bcrypt comparisons (tests prove the throttle
	// runs before them).
	passwordChecks atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the app, creates the first admin and the instance id if this
// is the first start, and starts the background work (the retry of pending
// imports, also right away, and the cleanup of expired sessions). It stops
// when ctx is done or Close is called.
func New(ctx context.Context, d Deps) (*App, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Out == nil {
		d.Out = io.Discard
	}
	cost := d.PasswordCost
	if cost == 0 {
		cost = defaultCost
	}
	cl := d.Cloud
	if cl == nil {
		cl = cloud.New(cloud.Options{})
	}
	st := store.New(d.DB, d.Now, d.SecretKey)
	instanceID, err := st.InstanceID(ctx)
	if err != nil {
		return nil, fmt.Errorf("instance id: %w", err)
	}
	assets, err := ui.New("/static", staticFS())
	if err != nil {
		return nil, err
	}
	pg, err := newPages(assets)
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(randomToken()), cost)
	if err != nil {
		return nil, err
	}
	base := d.Config.BaseURL
	a := &App{
		Store: st,
		Importer: importer.New(st, cl, importer.Config{
			TrustedCloudURLs: d.Config.TrustedCloudURLs,
			TrustedSites:     d.Config.TrustedSites,
			InstanceID:       instanceID,
			BaseURL:          base,
			Now:              d.Now,
			Retry:            d.Retry,
		}, d.Logger.With("component", "importer")),
		deps: d, log: d.Logger, assets: assets, pages: pg,
		throttle:  newThrottle(throttleWindow, maxFailsPerIP, maxFailsPerUser, d.Now),
		cost:      cost,
		dummyHash: dummy,
		secure:    base.Scheme == "https",
		origin:    base.Scheme + "://" + base.Host,
	}
	a.Server = server.New(server.Options{
		Name:           "dc_app",
		Logger:         d.Logger,
		TrustedProxies: d.Config.TrustedProxies,
		HTMLError:      a.renderError,
	})
	a.routes()
	if err := a.bootstrapAdmin(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	context.AfterFunc(ctx, cancel)
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.Importer.RunRetrier(bg) }()
	go func() { defer a.wg.Done(); a.cleanSessions(bg) }()
	return a, nil
}

// Close stops the background work and waits for it.
func (a *App) Close() {
	a.cancel()
	a.wg.Wait()
}

// bootstrapAdmin creates the first admin account from
// DC_APP_ADMIN_USERNAME and DC_APP_ADMIN_PASSWORD. With no password set it
// generates a strong one and prints it once to deps.Out — never to the
// log.
func (a *App) bootstrapAdmin(ctx context.Context) error {
	cfg := a.deps.Config
	pw, generated := cfg.AdminPassword, false
	if pw == "" {
		pw, generated = randomPassword(), true
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), a.cost)
	if err != nil {
		return fmt.Errorf("hash the admin password: %w", err)
	}
	created, err := a.Store.CreateFirstAdmin(ctx, cfg.AdminUsername, string(hash))
	if err != nil {
		return fmt.Errorf("create the first admin: %w", err)
	}
	if !created {
		if cfg.AdminPassword != "" {
			a.log.Warn("DC_APP_ADMIN_USERNAME and DC_APP_ADMIN_PASSWORD are ignored: they create the first admin account only, and one exists; change a password under Change password")
		}
		return nil
	}
	a.log.Info("created the first admin account", "username", cfg.AdminUsername, "password_generated", generated)
	if generated {
		fmt.Fprintf(a.deps.Out, "\ndc-app: created the admin account %q with this generated password (shown only this once):\n\n    %s\n\nSign in at %s/login and change it under Change password.\n\n",
			cfg.AdminUsername, pw, cfg.BaseURL.String())
	}
	return nil
}

// cleanSessions deletes expired sessions every hour.
func (a *App) cleanSessions(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := a.Store.DeleteExpiredSessions(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("delete expired sessions", "err", err)
			} else if n > 0 {
				a.log.Info("deleted expired sessions", "count", n)
			}
		}
	}
}

// randomToken returns 256 random bits, base64url: session ids and CSRF
// tokens.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// randomPassword returns a generated admin password: 144 random bits in
// 24 URL-safe characters.
func randomPassword() string {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
