package confluencesim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// maxDescriptorSize bounds the descriptor the simulator reads.
const maxDescriptorSize = 1 << 20

// descriptor is the part of atlassian-connect.json the simulator uses.
type descriptor struct {
	Key            string `json:"key"`
	Name           string `json:"name"`
	BaseURL        string `json:"baseUrl"`
	Authentication struct {
		Type string `json:"type"`
	} `json:"authentication"`
	Lifecycle struct {
		Installed   string `json:"installed"`
		Uninstalled string `json:"uninstalled"`
		Enabled     string `json:"enabled"`
		Disabled    string `json:"disabled"`
	} `json:"lifecycle"`
	Scopes          []string       `json:"scopes"`
	EnableLicensing bool           `json:"enableLicensing"`
	APIMigrations   map[string]any `json:"apiMigrations"`
	Modules         struct {
		GeneralPages []pageModule `json:"generalPages"`
	} `json:"modules"`
}

// pageModule is a generalPages entry.
type pageModule struct {
	Key  string `json:"key"`
	Name struct {
		Value string `json:"value"`
	} `json:"name"`
	URL      string `json:"url"`
	Location string `json:"location"`
}

var (
	appKeyPattern    = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)
	moduleKeyPattern = regexp.MustCompile(`^[a-zA-Z0-9-]{1,100}$`)
	// uriTemplateVar matches a Connect URL context variable such as
	// {space.key}; the product fills in what it knows and "" otherwise.
	uriTemplateVar = regexp.MustCompile(`\{[^{}]*\}`)
)

// parseDescriptor decodes and checks a descriptor as far as installing and
// framing the app needs.
func parseDescriptor(raw []byte) (*descriptor, error) {
	var d descriptor
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("descriptor is not valid JSON: %w", err)
	}
	if !appKeyPattern.MatchString(d.Key) {
		return nil, fmt.Errorf("descriptor key %q is missing, longer than 64 characters or not [a-zA-Z0-9._-]", d.Key)
	}
	u, err := url.Parse(d.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("descriptor baseUrl %q is not an absolute http(s) URL without query", d.BaseURL)
	}
	if !strings.EqualFold(d.Authentication.Type, "jwt") {
		return nil, fmt.Errorf("descriptor authentication.type is %q; the simulator only installs jwt apps", d.Authentication.Type)
	}
	if d.Lifecycle.Installed == "" {
		return nil, fmt.Errorf("descriptor has no lifecycle.installed URL")
	}
	seen := map[string]bool{}
	for i, m := range d.Modules.GeneralPages {
		if !moduleKeyPattern.MatchString(m.Key) || seen[m.Key] {
			return nil, fmt.Errorf("generalPages[%d]: key %q is not unique or not [a-zA-Z0-9-]", i, m.Key)
		}
		seen[m.Key] = true
		if m.URL == "" {
			return nil, fmt.Errorf("generalPages[%d] (%s): url is empty", i, m.Key)
		}
	}
	return &d, nil
}

// signedInstall reports whether the app opted into RS256-signed
// installed/uninstalled callbacks.
func (d *descriptor) signedInstall() bool { return d.APIMigrations["signed-install"] == true }

// baseURL is the app's baseUrl without a trailing slash.
func (d *descriptor) baseURL() string { return strings.TrimSuffix(d.BaseURL, "/") }

// appURL resolves a descriptor URL (relative to baseUrl) to an absolute
// URL, filling URI-template variables with "".
func (d *descriptor) appURL(rel string) string {
	rel = uriTemplateVar.ReplaceAllString(rel, "")
	if !strings.HasPrefix(rel, "/") {
		rel = "/" + rel
	}
	return d.baseURL() + rel
}

func (d *descriptor) generalPage(key string) (pageModule, bool) {
	for _, m := range d.Modules.GeneralPages {
		if key == "" || m.Key == key {
			return m, true
		}
	}
	return pageModule{}, false
}

// scopes is the set of granted scopes with the implications of
// Confluence's scope hierarchy expanded (ADMIN ⊃ SPACE_ADMIN ⊃ DELETE ⊃
// WRITE ⊃ READ).
func (d *descriptor) scopes() map[string]bool {
	chain := []string{"ADMIN", "SPACE_ADMIN", "DELETE", "WRITE", "READ"}
	out := map[string]bool{}
	for _, s := range d.Scopes {
		s = strings.ToUpper(s)
		out[s] = true
		for i, c := range chain {
			if c == s {
				for _, implied := range chain[i:] {
					out[implied] = true
				}
			}
		}
	}
	return out
}

// fetchDescriptor downloads and parses the app descriptor.
func (s *Sim) fetchDescriptor(ctx context.Context) (*descriptor, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.AppDescriptorURL, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("confluencesim: descriptor request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("confluencesim: fetch descriptor %s: %w", s.cfg.AppDescriptorURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("confluencesim: fetch descriptor %s: status %d", s.cfg.AppDescriptorURL, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxDescriptorSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("confluencesim: read descriptor: %w", err)
	}
	if len(raw) > maxDescriptorSize {
		return nil, nil, fmt.Errorf("confluencesim: descriptor is larger than %d bytes", maxDescriptorSize)
	}
	d, err := parseDescriptor(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("confluencesim: %w", err)
	}
	return d, raw, nil
}
