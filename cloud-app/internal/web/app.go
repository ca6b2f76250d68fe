// Package web is cloud-app's HTTP surface: the route table (routes.go), the
// handlers, and the background workers they rely on.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/tokens"
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
	// HTTPClient makes the outbound calls to Atlassian (the install-keys
	// service and Confluence REST); nil means connect.NewHTTPClient()
	// (HTTPS_PROXY honoured). Redirects are never followed.
	HTTPClient *http.Client
	// TuneMailWorker, when not nil, adjusts the mail worker before it
	// starts (tests shorten its waits and attempts).
	TuneMailWorker func(*mail.Worker)
}

// App is the assembled service.
type App struct {
	Server *server.Server
	deps   Deps
	log    *slog.Logger
	stop   []func()

	// store is cloud-app's data access, shared by every handler.
	store *store.Store
	// tokenMinter mints space tokens (the download and email endpoints);
	// tokenOpener opens them (the dc-app-facing API, api_v1.go). Both use
	// cfg.BaseURL as the token issuer.
	tokenMinter *tokens.Minter
	tokenOpener *token.Opener
	// apiFailures rate-limits failed previews and redemptions per client IP.
	apiFailures *failureWindow

	// Connect (connect.go): the descriptor, the lifecycle verifier, the
	// page and iframe-API authenticator (tenants found through a short
	// in-memory cache), and the outbound Confluence client.
	descriptor connect.Descriptor
	tenants    *store.TenantCache
	lifecycle  *connect.LifecycleVerifier
	auth       *connect.Authenticator
	confluence *connect.Client

	// Mail (startMail): the worker that drains the token email queue with
	// the mailer MAIL_MODE picks, and the per-user and per-tenant send
	// limits the Send Token endpoint applies.
	mailWorker *mail.Worker
	mailLimits mail.Limits

	// ui is the Space Sync page and its iframe API (page.go, ui_*.go).
	ui *spaceSyncUI
}

// New builds the app and starts its background workers; they stop when ctx
// is done or Close is called.
func New(ctx context.Context, d Deps) (*App, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &App{deps: d, log: d.Logger}
	a.store = store.New(d.DB, d.Now, d.SecretKey)
	issuer := d.Config.BaseURL.String()
	a.tokenMinter = tokens.NewMinter(d.TokenKeys, issuer, d.Now)
	a.tokenOpener = &token.Opener{Keys: d.TokenKeys, Issuer: issuer, Now: d.Now}
	a.apiFailures = newFailureWindow(apiV1FailureLimit, apiV1FailureWindow, d.Now)
	a.initConnect()
	if err := a.startMail(ctx); err != nil {
		return nil, err
	}
	if err := a.initSpaceSyncUI(); err != nil {
		a.Close()
		return nil, err
	}
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

// startMail builds the mailer MAIL_MODE asks for (SendGrid at
// SENDGRID_API_URL, or the outbox in <CLOUD_APP_DATA_DIR>/outbox) and starts
// the worker that sends queued token emails; Close stops it once the sends
// in flight are recorded.
func (a *App) startMail(ctx context.Context) error {
	mailer, err := mail.FromConfig(a.deps.Config, a.deps.Now)
	if err != nil {
		return err
	}
	a.mailLimits = mail.DefaultLimits
	a.mailWorker = mail.NewWorker(a.store, mailer, a.log, a.deps.Now)
	if a.deps.TuneMailWorker != nil {
		a.deps.TuneMailWorker(a.mailWorker)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.mailWorker.Run(wctx)
	}()
	a.stop = append(a.stop, func() {
		cancel()
		<-done
	})
	return nil
}
