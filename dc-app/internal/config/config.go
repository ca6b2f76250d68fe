// Package config reads dc-app's configuration from the environment
// (DESIGN section 11), validates it, and describes it with secrets masked.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"
)

// Config is dc-app's validated configuration.
type Config struct {
	Addr           string
	BaseURL        *url.URL
	DatabaseURL    string
	DataDir        string
	TrustedProxies []*net.IPNet
	// SecretKeyRaw is DC_APP_SECRET_KEY; empty means generate on first
	// start (embedded default only).
	SecretKeyRaw string
	// TrustedCloudURLs are the only cloud-app base URLs dc-app calls,
	// matched exactly on scheme, host, port and path.
	TrustedCloudURLs []*url.URL
	// TrustedSites, when not empty, are the only Cloud site base URLs
	// tokens may come from.
	TrustedSites  []*url.URL
	AdminUsername string
	AdminPassword string

	Warnings []string
}

// Embedded reports whether the service runs on the embedded default.
func (c *Config) Embedded() bool { return c.DatabaseURL == "" }

// Load reads and validates the configuration. The error names the first
// bad variable in one line.
func Load(lookup func(string) (string, bool)) (*Config, error) {
	r := env.New(lookup)
	c := &Config{}
	c.Addr = r.Addr("DC_APP_ADDR", ":8082")
	c.BaseURL = r.URL("DC_APP_BASE_URL", defaultBaseURL(c.Addr))
	c.DatabaseURL = r.String("DC_APP_DATABASE_URL", "")
	c.DataDir = r.String("DC_APP_DATA_DIR", filepath.Join("data", "dc-app"))
	c.TrustedProxies = r.CIDRs("DC_APP_TRUSTED_PROXIES", "")
	c.SecretKeyRaw = r.String("DC_APP_SECRET_KEY", "")
	c.TrustedCloudURLs = r.URLList("DC_APP_TRUSTED_CLOUD_URLS", "")
	c.TrustedSites = r.URLList("DC_APP_TRUSTED_SITES", "")
	c.AdminUsername = r.String("DC_APP_ADMIN_USERNAME", "admin")
	c.AdminPassword = r.String("DC_APP_ADMIN_PASSWORD", "")
	if err := r.Err(); err != nil {
		return nil, err
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("invalid DC_APP_DATABASE_URL: must be a postgres:// URL")
		}
	}
	if !env.IsLoopback(c.BaseURL) && c.BaseURL.Scheme != "https" {
		return nil, fmt.Errorf("invalid DC_APP_BASE_URL: %q must use https (plain http only for localhost, 127.0.0.1 or ::1)", c.BaseURL)
	}
	for _, u := range c.TrustedCloudURLs {
		if !env.IsLoopback(u) && u.Scheme != "https" {
			return nil, fmt.Errorf("invalid DC_APP_TRUSTED_CLOUD_URLS: %q must use https (plain http only for a loopback address)", u)
		}
	}
	if c.SecretKeyRaw != "" {
		if _, err := secret.ParseKey(c.SecretKeyRaw); err != nil {
			return nil, fmt.Errorf("invalid DC_APP_SECRET_KEY: %v (want base64url of 32 bytes)", err)
		}
	} else if !c.Embedded() {
		return nil, fmt.Errorf("invalid DC_APP_SECRET_KEY: required when DC_APP_DATABASE_URL is set (secrets are generated only on the embedded default)")
	}
	if len(c.AdminUsername) > 64 || strings.ContainsAny(c.AdminUsername, " \t\r\n:") {
		return nil, fmt.Errorf("invalid DC_APP_ADMIN_USERNAME: at most 64 characters, no spaces or colons")
	}
	if c.AdminPassword != "" && len([]rune(strings.TrimSpace(c.AdminPassword))) < 12 {
		return nil, fmt.Errorf("invalid DC_APP_ADMIN_PASSWORD: at least 12 characters, not counting spaces at either end")
	}
	if len(c.TrustedCloudURLs) == 0 {
		c.Warnings = append(c.Warnings, "DC_APP_TRUSTED_CLOUD_URLS is empty: every token import will be refused as untrusted_issuer")
	}
	return c, nil
}

func defaultBaseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8082"
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

func join(us []*url.URL) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

// LogAttrs describes the configuration for the start-up log, secrets
// masked.
func (c *Config) LogAttrs() []any {
	db := "embedded SQLite in " + c.DataDir
	if c.DatabaseURL != "" {
		u, _ := url.Parse(c.DatabaseURL)
		db = "postgres://" + u.Host + u.Path
	}
	proxies := make([]string, len(c.TrustedProxies))
	for i, n := range c.TrustedProxies {
		proxies[i] = n.String()
	}
	return []any{
		slog.String("DC_APP_ADDR", c.Addr),
		slog.String("DC_APP_BASE_URL", c.BaseURL.String()),
		slog.String("DC_APP_DATABASE_URL", db),
		slog.String("DC_APP_DATA_DIR", c.DataDir),
		slog.String("DC_APP_TRUSTED_PROXIES", strings.Join(proxies, ",")),
		slog.String("DC_APP_SECRET_KEY", mask(c.SecretKeyRaw)),
		slog.String("DC_APP_TRUSTED_CLOUD_URLS", join(c.TrustedCloudURLs)),
		slog.String("DC_APP_TRUSTED_SITES", join(c.TrustedSites)),
		slog.String("DC_APP_ADMIN_USERNAME", c.AdminUsername),
		slog.String("DC_APP_ADMIN_PASSWORD", mask(c.AdminPassword)),
	}
}
