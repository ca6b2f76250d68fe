package confluencesim

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

//go:embed seed.json
var defaultSeedJSON []byte

// Seed is the content of the simulated site: its users, groups, spaces and
// space permissions. It is plain data; New validates it and copies what it
// needs, so a Seed may be reused.
type Seed struct {
	Users  []User  `json:"users"`
	Groups []Group `json:"groups"`
	Spaces []Space `json:"spaces"`
}

// User is a site user. Role is a label for the simulator's user switcher
// only; SiteAdmin lets the user use the simulator's app administration page.
type User struct {
	AccountID   string `json:"accountId"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email,omitempty"`
	Role        string `json:"role,omitempty"`
	SiteAdmin   bool   `json:"siteAdmin,omitempty"`
	TimeZone    string `json:"timeZone,omitempty"`
}

// Group is a site group; Members are account ids.
type Group struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// Space is a Confluence space. ID is a decimal string, as in the v2 API.
type Space struct {
	ID          string       `json:"id"`
	Key         string       `json:"key"`
	Name        string       `json:"name"`
	Type        string       `json:"type"`
	Status      string       `json:"status"`
	AuthorID    string       `json:"authorId,omitempty"`
	CreatedAt   string       `json:"createdAt,omitempty"`
	HomepageID  string       `json:"homepageId,omitempty"`
	Description string       `json:"description,omitempty"`
	Permissions []Permission `json:"permissions"`
}

// Permission grants operations in a space to one principal. Each operation
// is "key/targetType", for example "read/space" or "administer/space"; the
// v2 API lists one item per operation.
type Permission struct {
	Principal  Principal `json:"principal"`
	Operations []string  `json:"operations"`
}

// Principal is a user (by accountId) or a group (by id).
type Principal struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Space types and statuses the v2 API knows.
var (
	spaceTypes    = []string{"global", "collaboration", "knowledge_base", "personal", "system", "onboarding", "xflow_sample_space"}
	spaceStatuses = []string{"current", "archived"}
)

// DefaultSeed returns a fresh copy of the embedded default seed: Ada Admin
// (site admin, in confluence-admins, which administers every space), Sam
// Space-Admin (administers ENG and DOCS directly), Pat Plain (reads every
// non-personal space, administers nothing), Nia Newcomer (in no group, sees
// nothing) and nine spaces.
func DefaultSeed() *Seed {
	s, err := ParseSeed(defaultSeedJSON)
	if err != nil {
		// The embedded file is checked by the package tests; reaching this
		// is a build defect, not bad input.
		panic("confluencesim: embedded seed.json is invalid: " + err.Error())
	}
	return s
}

// ParseSeed decodes and validates a seed file.
func ParseSeed(data []byte) (*Seed, error) {
	var s Seed
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("confluencesim: seed: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// GenerateSeed returns the default users and groups with exactly nSpaces
// spaces: the default spaces first, then generated ones (keys S00001...,
// ids from 1000001) whose permissions follow a fixed pattern:
// confluence-admins administers all of them, confluence-users reads them,
// Sam Space-Admin administers every tenth directly, eng-team reads every
// third, and every fiftieth is archived. The result is deterministic.
func GenerateSeed(nSpaces int) *Seed {
	s := DefaultSeed()
	nSpaces = max(nSpaces, 0)
	if nSpaces <= len(s.Spaces) {
		s.Spaces = s.Spaces[:nSpaces]
		return s
	}
	admins, users, eng := s.Groups[0].ID, s.Groups[1].ID, s.Groups[2].ID
	sam := s.Users[1].AccountID
	words := []string{"Aurora", "Borealis", "Cascade", "Delta", "Ember", "Falcon", "Glacier", "Harbor", "Iris", "Juniper"}
	for i := len(s.Spaces) + 1; i <= nSpaces; i++ {
		id := 1000000 + i
		sp := Space{
			ID:         strconv.Itoa(id),
			Key:        fmt.Sprintf("S%05d", i),
			Name:       fmt.Sprintf("%s %s %05d", words[i%len(words)], words[(i/10)%len(words)], i),
			Type:       "global",
			Status:     "current",
			AuthorID:   s.Users[0].AccountID,
			CreatedAt:  fmt.Sprintf("2025-%02d-%02dT12:00:00.000Z", i%12+1, i%28+1),
			HomepageID: strconv.Itoa(id*10 + 1),
			Permissions: []Permission{
				{Principal{"group", admins}, []string{"read/space", "administer/space", "create/page", "delete/space"}},
				{Principal{"group", users}, []string{"read/space", "create/page"}},
			},
		}
		if i%50 == 0 {
			sp.Status = "archived"
		}
		if i%7 == 0 {
			sp.Type = "collaboration"
		}
		if i%10 == 0 {
			sp.Permissions = append(sp.Permissions, Permission{Principal{"user", sam}, []string{"read/space", "administer/space"}})
		}
		if i%3 == 0 {
			sp.Permissions = append(sp.Permissions, Permission{Principal{"group", eng}, []string{"read/space"}})
		}
		s.Spaces = append(s.Spaces, sp)
	}
	return s
}

// Validate checks that ids and keys are unique and well formed, that every
// principal exists and that types, statuses and operations are known.
func (s *Seed) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("confluencesim: seed: "+format, args...))
	}
	users := map[string]bool{}
	for i, u := range s.Users {
		switch {
		case u.AccountID == "" || strings.ContainsAny(u.AccountID, " \t\r\n") || len(u.AccountID) > 128:
			bad("users[%d]: accountId %q is empty, too long or contains whitespace", i, u.AccountID)
		case users[u.AccountID]:
			bad("users[%d]: duplicate accountId %q", i, u.AccountID)
		case strings.TrimSpace(u.DisplayName) == "":
			bad("users[%d]: displayName is empty", i)
		}
		users[u.AccountID] = true
	}
	groups, groupNames := map[string]bool{}, map[string]bool{}
	for i, g := range s.Groups {
		switch {
		case g.ID == "" || groups[g.ID]:
			bad("groups[%d]: id %q is empty or duplicate", i, g.ID)
		case g.Name == "" || groupNames[g.Name]:
			bad("groups[%d]: name %q is empty or duplicate", i, g.Name)
		}
		groups[g.ID], groupNames[g.Name] = true, true
		for _, m := range g.Members {
			if !users[m] {
				bad("groups[%d] (%s): member %q is not a user", i, g.Name, m)
			}
		}
	}
	ids, keys := map[string]bool{}, map[string]bool{}
	for i, sp := range s.Spaces {
		if n, err := strconv.ParseInt(sp.ID, 10, 64); err != nil || n <= 0 || ids[sp.ID] {
			bad("spaces[%d]: id %q is not a unique positive integer", i, sp.ID)
		}
		if sp.Key == "" || keys[sp.Key] || strings.ContainsAny(sp.Key, " ,/?&#%") {
			bad("spaces[%d]: key %q is empty, duplicate or has a reserved character", i, sp.Key)
		}
		if sp.Name == "" {
			bad("spaces[%d] (%s): name is empty", i, sp.Key)
		}
		if !slices.Contains(spaceTypes, sp.Type) {
			bad("spaces[%d] (%s): type %q is not one of %v", i, sp.Key, sp.Type, spaceTypes)
		}
		if !slices.Contains(spaceStatuses, sp.Status) {
			bad("spaces[%d] (%s): status %q is not one of %v", i, sp.Key, sp.Status, spaceStatuses)
		}
		ids[sp.ID], keys[sp.Key] = true, true
		for j, p := range sp.Permissions {
			switch p.Principal.Type {
			case "user":
				if !users[p.Principal.ID] {
					bad("spaces[%d] (%s).permissions[%d]: unknown user %q", i, sp.Key, j, p.Principal.ID)
				}
			case "group":
				if !groups[p.Principal.ID] {
					bad("spaces[%d] (%s).permissions[%d]: unknown group %q", i, sp.Key, j, p.Principal.ID)
				}
			default:
				bad("spaces[%d] (%s).permissions[%d]: principal type %q is not user or group", i, sp.Key, j, p.Principal.Type)
			}
			for _, op := range p.Operations {
				k, t, ok := strings.Cut(op, "/")
				if !ok || k == "" || t == "" || strings.Contains(t, "/") {
					bad("spaces[%d] (%s).permissions[%d]: operation %q is not key/targetType", i, sp.Key, j, op)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// clone returns a deep copy of the seed.
func (s *Seed) clone() *Seed {
	out := &Seed{Users: slices.Clone(s.Users)}
	for _, g := range s.Groups {
		out.Groups = append(out.Groups, Group{ID: g.ID, Name: g.Name, Members: slices.Clone(g.Members)})
	}
	for _, sp := range s.Spaces {
		c := sp
		c.Permissions = nil
		for _, p := range sp.Permissions {
			c.Permissions = append(c.Permissions, Permission{Principal: p.Principal, Operations: slices.Clone(p.Operations)})
		}
		out.Spaces = append(out.Spaces, c)
	}
	return out
}
