package confluencesim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"spacesync.io/devstack/confluencesim/internal/connectjwt"
)

// Version strings sent in lifecycle payloads, shaped like Confluence
// Cloud's.
const (
	serverVersion  = "6452"
	pluginsVersion = "1001.0.0-SNAPSHOT"
)

// lifecyclePayload is the body of every lifecycle callback, as Atlassian
// sends it.
type lifecyclePayload struct {
	Key            string `json:"key"`
	ClientKey      string `json:"clientKey"`
	SharedSecret   string `json:"sharedSecret"`
	ServerVersion  string `json:"serverVersion"`
	PluginsVersion string `json:"pluginsVersion"`
	BaseURL        string `json:"baseUrl"`
	DisplayURL     string `json:"displayUrl"`
	ProductType    string `json:"productType"`
	Description    string `json:"description"`
	EventType      string `json:"eventType"`
}

// lifecycleClaims are the claims of a lifecycle JWT. Aud is set only on the
// RS256 (signed-install) callbacks.
type lifecycleClaims struct {
	Iss string `json:"iss"`
	Aud string `json:"aud,omitempty"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Qsh string `json:"qsh"`
}

// LifecycleError is returned when the app answers a lifecycle callback with
// a status other than 200 or 204.
type LifecycleError struct {
	Event  string
	URL    string
	Status int
	// Body is the start of the app's answer, for the test log.
	Body string
}

func (e *LifecycleError) Error() string {
	return fmt.Sprintf("confluencesim: the app answered the %s callback (%s) with %d: %s", e.Event, e.URL, e.Status, e.Body)
}

// Install fetches the app descriptor and sends the installed callback
// (RS256-signed when the descriptor opts into signed-install), then the
// enabled callback. Called again while installed, it is an upgrade: the
// descriptor is re-read and installed is sent again with the same secret. A
// reinstall after Uninstall gets a new shared secret.
func (s *Sim) Install(ctx context.Context) error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	d, raw, err := s.fetchDescriptor(ctx)
	if err != nil {
		return err
	}
	st, _ := s.snapshot()
	secret, signWith := st.SharedSecret, ""
	switch {
	case st.Installed:
		signWith = st.SharedSecret
	case st.EverInstalled:
		// Legacy mode signs a reinstall with the old secret, which proves
		// continuity; signed-install mode ignores signWith.
		secret, signWith = newSecret(), st.SharedSecret
	}
	if err := s.sendLifecycle(ctx, d, "installed", st.ClientKey, secret, signWith); err != nil {
		return err
	}
	s.mu.Lock()
	s.st.SharedSecret, s.st.Installed, s.st.EverInstalled, s.st.Descriptor = secret, true, true, raw
	s.desc = d
	err = s.saveLocked()
	s.mu.Unlock()
	if err != nil || st.Installed {
		// An upgrade leaves the enabled state as it was.
		return err
	}
	return s.enable(ctx)
}

// Uninstall sends disabled (if enabled) and then uninstalled, and forgets
// the installation even if the app answers with an error, as the product
// does. The clientKey is kept for a later reinstall.
func (s *Sim) Uninstall(ctx context.Context) error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return ErrNotInstalled
	}
	var errs []error
	if st.Enabled {
		errs = append(errs, s.sendLifecycle(ctx, d, "disabled", st.ClientKey, st.SharedSecret, st.SharedSecret))
	}
	errs = append(errs, s.sendLifecycle(ctx, d, "uninstalled", st.ClientKey, st.SharedSecret, st.SharedSecret))
	s.mu.Lock()
	s.st.Installed, s.st.Enabled = false, false
	errs = append(errs, s.saveLocked())
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Enable sends the enabled callback and marks the app enabled if the app
// accepts it. It does nothing if the app is already enabled.
func (s *Sim) Enable(ctx context.Context) error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return ErrNotInstalled
	}
	if st.Enabled {
		return nil
	}
	return s.enable(ctx)
}

func (s *Sim) enable(ctx context.Context) error {
	st, d := s.snapshot()
	if err := s.sendLifecycle(ctx, d, "enabled", st.ClientKey, st.SharedSecret, st.SharedSecret); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Enabled = true
	return s.saveLocked()
}

// Disable sends the disabled callback and marks the app disabled even if
// the app refuses it, as the product does.
func (s *Sim) Disable(ctx context.Context) error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return ErrNotInstalled
	}
	if !st.Enabled {
		return nil
	}
	err := s.sendLifecycle(ctx, d, "disabled", st.ClientKey, st.SharedSecret, st.SharedSecret)
	s.mu.Lock()
	s.st.Enabled = false
	err = errors.Join(err, s.saveLocked())
	s.mu.Unlock()
	return err
}

// RotateSecret reinstalls the app with a new shared secret (the installed
// callback fires again, as on a real rotation). If the app refuses it, the
// old secret stays in force.
func (s *Sim) RotateSecret(ctx context.Context) error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return ErrNotInstalled
	}
	secret := newSecret()
	if err := s.sendLifecycle(ctx, d, "installed", st.ClientKey, secret, st.SharedSecret); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.SharedSecret = secret
	return s.saveLocked()
}

// sendLifecycle POSTs one lifecycle callback. secret goes in the body;
// signWith is the HS256 key where one is used (legacy installed, enabled,
// disabled, legacy uninstalled). A callback the descriptor does not declare
// is skipped, except installed, which parseDescriptor requires.
func (s *Sim) sendLifecycle(ctx context.Context, d *descriptor, event, clientKey, secret, signWith string) error {
	var rel string
	switch event {
	case "installed":
		rel = d.Lifecycle.Installed
	case "uninstalled":
		rel = d.Lifecycle.Uninstalled
	case "enabled":
		rel = d.Lifecycle.Enabled
	case "disabled":
		rel = d.Lifecycle.Disabled
	}
	if rel == "" {
		return nil
	}
	target := d.appURL(rel)
	displayURL := s.cfg.DisplayURL
	if displayURL == "" {
		displayURL = s.baseURL
	}
	body, err := json.Marshal(lifecyclePayload{
		Key: d.Key, ClientKey: clientKey, SharedSecret: secret,
		ServerVersion: serverVersion, PluginsVersion: pluginsVersion,
		BaseURL: s.baseURL, DisplayURL: displayURL, ProductType: "confluence",
		Description: "Atlassian Confluence at " + s.baseURL, EventType: event,
	})
	if err != nil {
		return fmt.Errorf("confluencesim: encode %s payload: %w", event, err)
	}
	basePath, _ := connectjwt.SplitURL(d.baseURL())
	path, query := connectjwt.SplitURL(target)
	qsh, err := connectjwt.QSH(http.MethodPost, path, query, basePath)
	if err != nil {
		return fmt.Errorf("confluencesim: %s URL %s: %w", event, target, err)
	}
	now := s.now()
	claims := lifecycleClaims{Iss: clientKey, Iat: now.Unix(), Exp: now.Add(lifecycleTokenTTL).Unix(), Qsh: qsh}
	var token, mode string
	switch {
	case (event == "installed" || event == "uninstalled") && d.signedInstall():
		claims.Aud = d.baseURL()
		token, err = connectjwt.SignRS256(claims, s.key, s.kid)
		mode = "RS256"
	case signWith != "":
		token, err = connectjwt.SignHS256(claims, []byte(signWith))
		mode = "HS256"
	default:
		mode = "unsigned" // legacy first install
	}
	if err != nil {
		return fmt.Errorf("confluencesim: sign %s callback: %w", event, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("confluencesim: %s request: %w", event, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Atlassian HttpClient 4.1.0 / Confluence-"+serverVersion+" (confluencesim)")
	if token != "" {
		req.Header.Set("Authorization", "JWT "+token)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "lifecycle callback failed", logAttrs(event, target, mode, 0, start)...)
		return fmt.Errorf("confluencesim: %s callback to %s: %w", event, target, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	s.log.LogAttrs(ctx, slog.LevelInfo, "lifecycle callback", logAttrs(event, target, mode, resp.StatusCode, start)...)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return &LifecycleError{Event: event, URL: target, Status: resp.StatusCode, Body: string(snippet)}
	}
	return nil
}

// logAttrs describes a lifecycle call for the log: never the token or body.
func logAttrs(event, target, mode string, status int, start time.Time) []slog.Attr {
	return []slog.Attr{
		slog.String("event", event), slog.String("url", target), slog.String("auth", mode),
		slog.Int("status", status), slog.Duration("took", time.Since(start)),
	}
}
