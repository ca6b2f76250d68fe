package confluencesim

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// site is the read-only, indexed form of a Seed that the REST handlers
// serve from.
type site struct {
	users      []User
	userByID   map[string]*User
	groups     []*Group // sorted by name
	groupByID  map[string]*Group
	groupsOf   map[string][]*Group // accountId → groups, sorted by name
	spaces     []*spaceRec         // sorted by numeric id
	spaceByID  map[string]*spaceRec
	spaceByKey map[string]*spaceRec
}

type spaceRec struct {
	Space
	num   int64
	perms []permItem // sorted by numeric id
}

// permItem is one v2 space-permission item: one operation for one principal.
type permItem struct {
	ID         string
	num        int64
	Principal  Principal
	Key        string
	TargetType string
}

// firstPermissionID makes permission ids look like Confluence's (large,
// numeric, unrelated to space ids).
const firstPermissionID = 3000001

func newSite(seed *Seed) (*site, error) {
	if err := seed.Validate(); err != nil {
		return nil, err
	}
	s := &site{
		users:      slices.Clone(seed.Users),
		userByID:   map[string]*User{},
		groupByID:  map[string]*Group{},
		groupsOf:   map[string][]*Group{},
		spaceByID:  map[string]*spaceRec{},
		spaceByKey: map[string]*spaceRec{},
	}
	for i := range s.users {
		s.userByID[s.users[i].AccountID] = &s.users[i]
	}
	for _, g := range seed.Groups {
		g := &Group{ID: g.ID, Name: g.Name, Members: slices.Clone(g.Members)}
		s.groups = append(s.groups, g)
		s.groupByID[g.ID] = g
	}
	slices.SortFunc(s.groups, func(a, b *Group) int { return cmp.Compare(a.Name, b.Name) })
	for _, g := range s.groups {
		for _, m := range g.Members {
			if !slices.Contains(s.groupsOf[m], g) {
				s.groupsOf[m] = append(s.groupsOf[m], g)
			}
		}
	}
	next := int64(firstPermissionID)
	for _, sp := range seed.Spaces {
		num, _ := strconv.ParseInt(sp.ID, 10, 64) // Validate checked it.
		r := &spaceRec{Space: sp, num: num}
		r.Permissions = nil
		for _, p := range sp.Permissions {
			for _, op := range p.Operations {
				k, t, _ := strings.Cut(op, "/")
				r.perms = append(r.perms, permItem{ID: strconv.FormatInt(next, 10), num: next, Principal: p.Principal, Key: k, TargetType: t})
				next++
			}
		}
		s.spaces = append(s.spaces, r)
		s.spaceByID[sp.ID] = r
		s.spaceByKey[sp.Key] = r
	}
	slices.SortFunc(s.spaces, func(a, b *spaceRec) int { return cmp.Compare(a.num, b.num) })
	return s, nil
}

// canAdminister reports whether accountID administers the space, directly
// or through a group: the rule cloud-app is expected to apply.
func (s *site) canAdminister(sp *spaceRec, accountID string) bool {
	return s.hasOperation(sp, accountID, "administer", "space")
}

func (s *site) hasOperation(sp *spaceRec, accountID, key, target string) bool {
	for _, p := range sp.perms {
		if p.Key != key || p.TargetType != target {
			continue
		}
		switch p.Principal.Type {
		case "user":
			if p.Principal.ID == accountID {
				return true
			}
		case "group":
			if g := s.groupByID[p.Principal.ID]; g != nil && slices.Contains(g.Members, accountID) {
				return true
			}
		}
	}
	return false
}
