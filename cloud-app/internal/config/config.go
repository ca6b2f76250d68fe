// Package config reads cloud-app's configuration from the environment
// (DESIGN section 11), validates it, and describes it with secrets masked.
package config

import (
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// Mail modes.
const (
	MailSendGrid = "sendgrid"
	MailOutbox   = "outbox"
)

// Config is cloud-app's validated configuration.
type Config struct {
	Addr           string
	BaseURL        *url.URL
	DatabaseURL    string
	DataDir        string
	TrustedProxies []*net.IPNet
	InstallKeysURL *url.URL
	ProductHosts   []string
	AppKey         string

	// SecretKeyRaw and TokenKeysRaw are the configured values; empty means
	// generate on first start (embedded default only). The service resolves
	// them with the data directory at start.
	SecretKeyRaw string
	TokenKeysRaw string
	// TokenKeys is the parsed SPACESYNC_TOKEN_KEYS when it is set.
	TokenKeys *token.KeySet

	MailMode       string
	SendGridAPIKey string
	SendGridAPIURL *url.URL
	MailFrom       string

	// Warnings are things worth saying at start that are not errors.
	Warnings []string
}

// Embedded reports whether the service runs on the embedded default
// (SQLite in the data directory), where missing secrets are generated.
func (c *Config) Embedded() bool { return c.DatabaseURL == "" }

// DevMode reports whether the base URL is a loopback address, the only
// case where plain http is allowed (DESIGN section 6).
func (c *Config) DevMode() bool { return env.IsLoopback(c.BaseURL) }

// Load reads and validates the configuration. The error names the first
// bad variable in one line.
func Load(lookup func(string) (string, bool)) (*Config, error) {
	r := env.New(lookup)
	c := &Config{}
	c.Addr = r.Addr("CLOUD_APP_ADDR", ":8081")
	c.BaseURL = r.URL("CLOUD_APP_BASE_URL", defaultBaseURL(c.Addr))
	c.DatabaseURL = r.String("CLOUD_APP_DATABASE_URL", "")
	c.DataDir = r.String("CLOUD_APP_DATA_DIR", filepath.Join("data", "cloud-app"))
	c.TrustedProxies = r.CIDRs("CLOUD_APP_TRUSTED_PROXIES", "")
	c.InstallKeysURL = r.URL("CLOUD_APP_INSTALL_KEYS_URL", "https://connect-install-keys.atlassian.com")
	c.ProductHosts = r.List("CLOUD_APP_PRODUCT_HOSTS", "*.atlassian.net")
	c.AppKey = r.String("CLOUD_APP_KEY", "space-sync-dev")
	c.SecretKeyRaw = r.String("CLOUD_APP_SECRET_KEY", "")
	c.TokenKeysRaw = r.String("SPACESYNC_TOKEN_KEYS", "")
	c.SendGridAPIKey = r.String("SENDGRID_API_KEY", "")
	c.SendGridAPIURL = r.URL("SENDGRID_API_URL", "https://api.sendgrid.com")
	c.MailFrom = r.String("MAIL_FROM", "Space Sync <no-reply@spacesync.example>")
	defMode := MailOutbox
	if c.SendGridAPIKey != "" {
		defMode = MailSendGrid
	}
	c.MailMode = r.Enum("MAIL_MODE", defMode, MailSendGrid, MailOutbox)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("invalid CLOUD_APP_DATABASE_URL: must be a postgres:// URL")
		}
	}
	if !c.DevMode() && c.BaseURL.Scheme != "https" {
		return nil, fmt.Errorf("invalid CLOUD_APP_BASE_URL: %q must use https (plain http only for localhost, 127.0.0.1 or ::1)", c.BaseURL)
	}
	if !env.IsLoopback(c.InstallKeysURL) && c.InstallKeysURL.Scheme != "https" {
		return nil, fmt.Errorf("invalid CLOUD_APP_INSTALL_KEYS_URL: %q must use https", c.InstallKeysURL)
	}
	if !env.IsLoopback(c.SendGridAPIURL) && c.SendGridAPIURL.Scheme != "https" {
		return nil, fmt.Errorf("invalid SENDGRID_API_URL: %q must use https", c.SendGridAPIURL)
	}
	if len(c.AppKey) > 64 || strings.ContainsAny(c.AppKey, " /?#&") {
		return nil, fmt.Errorf("invalid CLOUD_APP_KEY: at most 64 characters, no spaces or URL delimiters")
	}
	for _, h := range c.ProductHosts {
		if _, err := path.Match(h, "x"); err != nil || strings.ContainsAny(h, "/:") {
			return nil, fmt.Errorf("invalid CLOUD_APP_PRODUCT_HOSTS: %q is not a host pattern such as *.atlassian.net", h)
		}
		if tooBroad(h) {
			return nil, fmt.Errorf("invalid CLOUD_APP_PRODUCT_HOSTS: %q would let any site on a public suffix install the app; name a domain, such as *.atlassian.net", h)
		}
	}
	if _, err := netmail.ParseAddress(c.MailFrom); err != nil {
		return nil, fmt.Errorf("invalid MAIL_FROM: %q is not an email address such as Space Sync <no-reply@example.com> (%v)", c.MailFrom, err)
	}
	if c.SecretKeyRaw != "" {
		if _, err := secret.ParseKey(c.SecretKeyRaw); err != nil {
			return nil, fmt.Errorf("invalid CLOUD_APP_SECRET_KEY: %v (want base64url of 32 bytes)", err)
		}
	}
	if c.TokenKeysRaw != "" {
		ks, err := token.ParseKeySet(c.TokenKeysRaw)
		if err != nil {
			return nil, fmt.Errorf("invalid SPACESYNC_TOKEN_KEYS: %v", err)
		}
		c.TokenKeys = ks
	}
	if !c.Embedded() {
		if c.SecretKeyRaw == "" {
			return nil, fmt.Errorf("invalid CLOUD_APP_SECRET_KEY: required when CLOUD_APP_DATABASE_URL is set (secrets are generated only on the embedded default)")
		}
		if c.TokenKeysRaw == "" {
			return nil, fmt.Errorf("invalid SPACESYNC_TOKEN_KEYS: required when CLOUD_APP_DATABASE_URL is set (keys are generated only on the embedded default)")
		}
	}
	if c.MailMode == MailSendGrid && c.SendGridAPIKey == "" {
		return nil, fmt.Errorf("invalid SENDGRID_API_KEY: required when MAIL_MODE is sendgrid")
	}
	if c.MailMode == MailOutbox {
		c.Warnings = append(c.Warnings, "MAIL_MODE is outbox: token emails are written as .eml files to "+filepath.Join(c.DataDir, "outbox")+" and are not sent")
	}
	return c, nil
}

func defaultBaseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8081"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func mask(v string) string {
	if v == "" {
		return "(unset)"
	}
	return "(set, hidden)"
}

// LogAttrs describes the configuration for the start-up log, secrets
// masked.
func (c *Config) LogAttrs() []any {
	db := "embedded SQLite in " + c.DataDir
	if c.DatabaseURL != "" {
		u, _ := url.Parse(c.DatabaseURL)
		db = "postgres://" + u.Host + u.Path // no user, password or options
	}
	proxies := make([]string, len(c.TrustedProxies))
	for i, n := range c.TrustedProxies {
		proxies[i] = n.String()
	}
	return []any{
		slog.String("CLOUD_APP_ADDR", c.Addr),
		slog.String("CLOUD_APP_BASE_URL", c.BaseURL.String()),
		slog.String("CLOUD_APP_DATABASE_URL", db),
		slog.String("CLOUD_APP_DATA_DIR", c.DataDir),
		slog.String("CLOUD_APP_TRUSTED_PROXIES", strings.Join(proxies, ",")),
		slog.String("CLOUD_APP_INSTALL_KEYS_URL", c.InstallKeysURL.String()),
		slog.String("CLOUD_APP_PRODUCT_HOSTS", strings.Join(c.ProductHosts, ",")),
		slog.String("CLOUD_APP_KEY", c.AppKey),
		slog.String("CLOUD_APP_SECRET_KEY", mask(c.SecretKeyRaw)),
		slog.String("SPACESYNC_TOKEN_KEYS", mask(c.TokenKeysRaw)),
		slog.String("MAIL_MODE", c.MailMode),
		slog.String("SENDGRID_API_KEY", mask(c.SendGridAPIKey)),
		slog.String("SENDGRID_API_URL", c.SendGridAPIURL.String()),
		slog.String("MAIL_FROM", c.MailFrom),
	}
}

// tooBroad says whether a host pattern's wildcard reaches above a
// registrable domain: "*", "*.com", "*com" (what follows the last wildcard
// must hold at least two labels, as in "*.atlassian.net").
func tooBroad(pattern string) bool {
	i := strings.LastIndexAny(pattern, "*?")
	if i < 0 {
		return false
	}
	return strings.Count(strings.Trim(pattern[i+1:], "."), ".") < 1
}
