package connect

import (
	"net/url"
	"strings"
)

// Descriptor is the Atlassian Connect app descriptor served at
// /atlassian-connect.json (DESIGN section 6).
type Descriptor struct {
	Key            string               `json:"key"`
	Name           string               `json:"name"`
	Description    string               `json:"description"`
	Vendor         DescriptorVendor     `json:"vendor"`
	BaseURL        string               `json:"baseUrl"`
	APIVersion     int                  `json:"apiVersion"`
	Authentication DescriptorAuth       `json:"authentication"`
	Lifecycle      DescriptorLifecycle  `json:"lifecycle"`
	APIMigrations  DescriptorMigrations `json:"apiMigrations"`
	Scopes         []string             `json:"scopes"`
	Modules        DescriptorModules    `json:"modules"`
}

// DescriptorVendor names who makes the app.
type DescriptorVendor struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

// DescriptorAuth is the authentication block.
type DescriptorAuth struct {
	Type string `json:"type"`
}

// DescriptorLifecycle holds the lifecycle callback paths, relative to the
// base URL.
type DescriptorLifecycle struct {
	Installed   string `json:"installed"`
	Uninstalled string `json:"uninstalled"`
	Enabled     string `json:"enabled"`
	Disabled    string `json:"disabled"`
}

// DescriptorMigrations opts into signed installs (RS256 installed and
// uninstalled callbacks) and context-qsh (context tokens carry the literal
// qsh "context-qsh").
type DescriptorMigrations struct {
	SignedInstall bool `json:"signed-install"`
	ContextQSH    bool `json:"context-qsh"`
}

// DescriptorModules holds the app's modules.
type DescriptorModules struct {
	GeneralPages []DescriptorPage `json:"generalPages"`
}

// DescriptorPage is a page module.
type DescriptorPage struct {
	Key        string                `json:"key"`
	Name       DescriptorI18n        `json:"name"`
	URL        string                `json:"url"`
	Location   string                `json:"location,omitempty"`
	Conditions []DescriptorCondition `json:"conditions,omitempty"`
}

// DescriptorI18n is an internationalised string.
type DescriptorI18n struct {
	Value string `json:"value"`
}

// DescriptorCondition is a display condition. Conditions only hide UI; the
// server checks every request regardless.
type DescriptorCondition struct {
	Condition string `json:"condition"`
}

// The paths the descriptor declares; routes.go registers the same ones.
const (
	PathDescriptor       = "/atlassian-connect.json"
	PathLifecycle        = "/lifecycle/"
	PathSpaceSyncPage    = "/pages/space-sync"
	SpaceSyncPageKey     = "space-sync"
	lifecycleInstalled   = PathLifecycle + "installed"
	lifecycleUninstalled = PathLifecycle + "uninstalled"
	lifecycleEnabled     = PathLifecycle + "enabled"
	lifecycleDisabled    = PathLifecycle + "disabled"
)

// NewDescriptor returns the descriptor for the app key (CLOUD_APP_KEY) at
// baseURL (CLOUD_APP_BASE_URL).
func NewDescriptor(appKey string, baseURL *url.URL) Descriptor {
	return Descriptor{
		Key:            appKey,
		Name:           "Space Sync",
		Description:    "Pair Confluence Cloud spaces with Confluence Data Center spaces: space admins create a sync and send its one-time token to the Data Center admin.",
		Vendor:         DescriptorVendor{Name: "Space Sync"},
		BaseURL:        strings.TrimSuffix(baseURL.String(), "/"),
		APIVersion:     1,
		Authentication: DescriptorAuth{Type: "jwt"},
		Lifecycle: DescriptorLifecycle{
			Installed:   lifecycleInstalled,
			Uninstalled: lifecycleUninstalled,
			Enabled:     lifecycleEnabled,
			Disabled:    lifecycleDisabled,
		},
		APIMigrations: DescriptorMigrations{SignedInstall: true, ContextQSH: true},
		// READ is the least scope the features need: every call the app
		// makes is a read — v2 GET /api/v2/spaces and /spaces/{id},
		// v2 GET /api/v2/spaces/{id}/permissions, v1 GET
		// /rest/api/user/memberof, /rest/api/user, /rest/api/search/user and
		// /rest/api/group/picker all require READ and nothing more. The app
		// writes nothing to Confluence and never acts as a user
		// (no WRITE, ADMIN or ACT_AS_USER).
		Scopes: []string{"READ"},
		Modules: DescriptorModules{
			GeneralPages: []DescriptorPage{{
				Key:      SpaceSyncPageKey,
				Name:     DescriptorI18n{Value: "Space Sync"},
				URL:      PathSpaceSyncPage,
				Location: "system.header/left",
				// Hide the entry from anonymous visitors; the page refuses
				// a token without sub anyway.
				Conditions: []DescriptorCondition{{Condition: "user_is_logged_in"}},
			}},
		},
	}
}
