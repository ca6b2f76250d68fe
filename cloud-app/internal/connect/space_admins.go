package connect

// This file was added for the Space Sync page (internal/web, ui_*.go): the
// Create New Sync dialog defaults its permissions to the space's admins.

import (
	"context"
	"sort"
	"strings"
)

// SpaceAdminHolders lists who holds the space permission administer/space
// on the space: users (ID is an account id) and groups (ID is a group id),
// users first, each sorted by id. Roles are left out: how they resolve to
// users is not known. It reads the same cached permissions as IsSpaceAdmin,
// so after a check it costs no call.
func (s *Site) SpaceAdminHolders(ctx context.Context, spaceID string) ([]Principal, error) {
	p, err := s.spacePermissions(ctx, spaceID)
	if err != nil {
		return nil, err
	}
	prefix := OpAdminister + "\x00"
	var out []Principal
	for k := range p.holders {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		typ, id, ok := strings.Cut(rest, "\x00")
		if !ok || id == "" || (typ != "user" && typ != "group") {
			continue
		}
		out = append(out, Principal{Type: typ, ID: id})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type == "user"
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
