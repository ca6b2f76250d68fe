package web

// The Space Sync page's iframe API (DESIGN sections 6, 8 and 11). Every
// call carries a fresh context token (Authorization: JWT, qsh
// "context-qsh"); the tenant is the verified token's, never anything the
// client sends. Authorisation is checked here, against Confluence, on every
// call: reading a space's syncs needs view permission on the space; history,
// recipients and every state change need administer permission on the
// sync's STORED space; a sync id of another tenant is not_found.
//
// This file: the shared helpers, the space list, a space's syncs, creating
// a sync and the permissions picker. ui_tokens.go: downloads, emails,
// revocations and deletion. ui_details.go: the details view.

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/spaces"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
)

// Limits of the iframe API.
const (
	// uiBodyLimit caps request bodies (the largest is a sync with 50
	// principals).
	uiBodyLimit = "64K"
	// uiPageSize is the default number of spaces a page of the list shows,
	// uiMaxPageSize the most a client may ask for.
	uiPageSize    = 25
	uiMaxPageSize = 50
	// uiMaxScan bounds how many spaces one list request checks with
	// Confluence. For a user who may see few of a site's spaces a page can
	// come back short, with a next cursor to go on from.
	uiMaxScan = 250
	// uiConcurrency bounds the Confluence calls one request makes at once.
	uiConcurrency = 8
	// uiPrincipalResults is how many users and how many groups the
	// permissions picker offers for a search.
	uiPrincipalResults = 10
	// uiMaxQuery bounds a search text, in bytes.
	uiMaxQuery = spaces.MaxQueryLength
)

// uiNoStore marks every iframe API response uncacheable: some carry
// tokens, recipients and history.
func uiNoStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		return next(c)
	}
}

// uiCaller is the verified caller of an iframe API request and the
// Confluence client bound to their tenant.
type uiCaller struct {
	tenant  *store.Tenant
	account string
	site    *connect.Site
}

func (a *App) uiCaller(c echo.Context) (uiCaller, error) {
	id, err := connect.IdentityFrom(c)
	if err != nil {
		return uiCaller{}, err
	}
	return uiCaller{tenant: id.Tenant, account: id.AccountID, site: a.confluence.Site(id.Tenant)}, nil
}

// spaceAccess is what the caller may do in one space.
type spaceAccess struct {
	View  bool
	Admin bool
}

// access asks Confluence (through the client's short cache) whether the
// caller may view and administer the space. Administering implies seeing.
func (u uiCaller) access(ctx context.Context, spaceID string) (spaceAccess, error) {
	admin, err := u.site.IsSpaceAdmin(ctx, u.account, spaceID)
	if err != nil {
		return spaceAccess{}, err
	}
	if admin {
		return spaceAccess{View: true, Admin: true}, nil
	}
	view, err := u.site.CanViewSpace(ctx, u.account, spaceID)
	if err != nil {
		return spaceAccess{}, err
	}
	return spaceAccess{View: view}, nil
}

func errNoView(spaceKey string) error {
	return apperr.Newf(apperr.Forbidden, "You do not have permission to view the space %s in Confluence.", spaceKey)
}

func errNotAdmin(spaceKey string) error {
	return apperr.Newf(apperr.Forbidden, "Only an admin of the space %s can do this. Ask one of its space admins.", spaceKey)
}

// requireAdmin refuses a caller who does not administer the space.
func (u uiCaller) requireAdmin(ctx context.Context, spaceID, spaceKey string) error {
	acc, err := u.access(ctx, spaceID)
	if err != nil {
		return err
	}
	if !acc.Admin {
		return errNotAdmin(spaceKey)
	}
	return nil
}

// sync loads a live sync of the caller's tenant by id; another tenant's
// sync, a deleted one or a malformed id is not_found.
func (a *App) uiSync(ctx context.Context, u uiCaller, id string) (store.Sync, error) {
	s, err := a.store.GetSync(ctx, u.tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Sync{}, apperr.New(apperr.NotFound, "There is no such sync on this site. It may have been deleted; reload the page.")
	}
	return s, err
}

// adminSync loads a sync (uiSync) and refuses a caller who does not
// administer its stored space: the check every state change makes.
func (a *App) adminSync(c echo.Context) (uiCaller, store.Sync, error) {
	u, err := a.uiCaller(c)
	if err != nil {
		return uiCaller{}, store.Sync{}, err
	}
	ctx := c.Request().Context()
	s, err := a.uiSync(ctx, u, c.Param("id"))
	if err != nil {
		return uiCaller{}, store.Sync{}, err
	}
	if err := u.requireAdmin(ctx, s.SpaceID, s.SpaceKey); err != nil {
		return uiCaller{}, store.Sync{}, err
	}
	return u, s, nil
}

// forEach runs fn for 0..n-1 with at most uiConcurrency at once and returns
// the first error.
func forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, uiConcurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// uiSpaceJSON is a space of the list.
type uiSpaceJSON struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Status string `json:"status"`
	// CanAdmin says whether the caller administers the space (the page
	// shows its actions; the server checks again on every change).
	CanAdmin bool          `json:"canAdmin"`
	Syncs    *uiSyncCounts `json:"syncs,omitempty"`
}

// uiSyncCounts is how many syncs a space has and how many are linked.
type uiSyncCounts struct {
	Total  int `json:"total"`
	Synced int `json:"synced"`
}

// uiSpacesPage is GET /api/ui/spaces: one page of the spaces the caller may
// see, and the cursor of the next ("" on the last).
type uiSpacesPage struct {
	Results []uiSpaceJSON `json:"results"`
	Next    string        `json:"next"`
	// Matched is how many of the site's spaces match the search, before
	// the caller's permissions are checked.
	Matched int `json:"matched"`
}

func spaceJSON(sp connect.Space, admin bool) uiSpaceJSON {
	return uiSpaceJSON{ID: sp.ID, Key: sp.Key, Name: sp.Name, Type: sp.Type, Status: sp.Status, CanAdmin: admin}
}

// parseCursor reads a cursor of the space list: the position to go on
// from, in the search's results.
func parseCursor(s string, max int) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max || strconv.Itoa(n) != s {
		return 0, apperr.Validation(map[string]string{"cursor": "This page of the list is no longer valid. Start from the first page."})
	}
	return n, nil
}

// handleUISpaces is GET /api/ui/spaces?query=&cursor=&limit=: the spaces
// the caller can see, sorted by name, searched and paged from the tenant's
// space index; only the spaces of the page are checked with Confluence.
func (a *App) handleUISpaces(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	query := c.QueryParam("query")
	if len(query) > uiMaxQuery || !utf8.ValidString(query) {
		return apperr.Validation(map[string]string{"query": "Search with fewer words."})
	}
	limit := uiPageSize
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > uiMaxPageSize {
			return apperr.Validation(map[string]string{"limit": "Ask for 1 to 50 spaces a page."})
		}
		limit = n
	}
	snap, err := a.ui.spaces.Get(ctx, u.tenant)
	if err != nil {
		return err
	}
	m := snap.Search(query)
	pos, err := parseCursor(c.QueryParam("cursor"), m.Len())
	if err != nil {
		return err
	}
	results, next, err := visibleSpaces(ctx, u, m, pos, limit)
	if err != nil {
		return err
	}
	keys := make([]string, len(results))
	for i, r := range results {
		keys[i] = r.Key
	}
	counts, err := a.store.CountSyncsBySpace(ctx, u.tenant.ID, keys)
	if err != nil {
		return err
	}
	for i := range results {
		cnt := counts[results[i].Key]
		results[i].Syncs = &uiSyncCounts{Total: cnt.Total, Synced: cnt.Synced}
	}
	page := uiSpacesPage{Results: results, Matched: m.Len()}
	if next >= 0 {
		page.Next = strconv.Itoa(next)
	}
	return c.JSON(http.StatusOK, page)
}

// visibleSpaces walks the search's results from pos and returns up to limit
// spaces the caller can see, checking them with Confluence in batches of
// at least uiConcurrency, at most uiMaxScan in all. next is where the
// following page starts, or -1 after the last space.
func visibleSpaces(ctx context.Context, u uiCaller, m spaces.Match, pos, limit int) ([]uiSpaceJSON, int, error) {
	total := m.Len()
	out := make([]uiSpaceJSON, 0, limit)
	scanned := 0
	for pos < total && scanned < uiMaxScan {
		need := limit - len(out)
		n := min(max(need, uiConcurrency*2), total-pos, uiMaxScan-scanned)
		acc := make([]spaceAccess, n)
		err := forEach(ctx, n, func(ctx context.Context, i int) error {
			var err error
			acc[i], err = u.access(ctx, m.At(pos+i).ID)
			return err
		})
		if err != nil {
			return nil, 0, err
		}
		for i := range n {
			if !acc[i].View {
				continue
			}
			out = append(out, spaceJSON(m.At(pos+i), acc[i].Admin))
			if len(out) == limit {
				next := pos + i + 1
				if next >= total {
					next = -1
				}
				return out, next, nil
			}
		}
		pos += n
		scanned += n
	}
	if pos >= total {
		return out, -1, nil
	}
	return out, pos, nil
}

// uiPrincipal is a user or group of a sync's permissions.
type uiPrincipal struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// uiSyncJSON is a sync as the list shows it.
type uiSyncJSON struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	SpaceID      string        `json:"spaceId"`
	SpaceKey     string        `json:"spaceKey"`
	SpaceName    string        `json:"spaceName"`
	Permissions  []uiPrincipal `json:"permissions"`
	SyncComments bool          `json:"syncComments"`
	SyncLabels   bool          `json:"syncLabels"`
	// Status is NOT_SYNCED_YET or SYNCED.
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	// LinkedTo names the Data Center instance a SYNCED sync is linked to
	// (in the list only).
	LinkedTo *uiInstance `json:"linkedTo,omitempty"`
}

// uiInstance is a Data Center instance as the list names it.
type uiInstance struct {
	Name    string `json:"name"`
	BaseURL string `json:"baseUrl,omitempty"`
}

func syncJSON(s store.Sync) uiSyncJSON {
	perms := make([]uiPrincipal, len(s.Permissions))
	for i, p := range s.Permissions {
		perms[i] = uiPrincipal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	out := uiSyncJSON{
		ID: s.ID, Name: s.Name, SpaceID: s.SpaceID, SpaceKey: s.SpaceKey, SpaceName: s.SpaceName,
		Permissions: perms, SyncComments: s.SyncComments, SyncLabels: s.SyncLabels,
		Status: s.Status, CreatedAt: s.CreatedAt,
	}
	if s.LinkedTo != nil {
		out.LinkedTo = &uiInstance{Name: s.LinkedTo.Name, BaseURL: s.LinkedTo.BaseURL}
	}
	return out
}

// uiSpaceSyncs is GET /api/ui/spaces/{spaceKey}/syncs.
type uiSpaceSyncs struct {
	Space    uiSpaceJSON  `json:"space"`
	CanAdmin bool         `json:"canAdmin"`
	Results  []uiSyncJSON `json:"results"`
}

// lookupSpace finds a space by key: in the index when it is there (ids are
// stable), else from Confluence. not_found when Confluence has none.
func (a *App) lookupSpace(ctx context.Context, u uiCaller, key string) (connect.Space, error) {
	if snap, err := a.ui.spaces.Get(ctx, u.tenant); err == nil {
		if sp, ok := snap.ByKey(key); ok {
			return sp, nil
		}
	}
	return a.confluenceSpace(ctx, u, key)
}

// confluenceSpace asks Confluence for the space with the key.
func (a *App) confluenceSpace(ctx context.Context, u uiCaller, key string) (connect.Space, error) {
	sp, err := u.site.Space(ctx, key)
	if apperr.CodeOf(err) == apperr.NotFound {
		return connect.Space{}, apperr.Newf(apperr.NotFound, "There is no space with the key %q on this site, or Space Sync cannot see it.", clip(key, 64))
	}
	if err != nil {
		return connect.Space{}, err
	}
	return *sp, nil
}

// handleUISpaceSyncs is GET /api/ui/spaces/{spaceKey}/syncs: the space's
// syncs, for anyone who can view the space (read-only unless they
// administer it).
func (a *App) handleUISpaceSyncs(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sp, err := a.lookupSpace(ctx, u, c.Param("spaceKey"))
	if err != nil {
		return err
	}
	acc, err := u.access(ctx, sp.ID)
	if err != nil {
		return err
	}
	if !acc.View {
		return errNoView(sp.Key)
	}
	list, err := a.store.ListSyncs(ctx, u.tenant.ID, sp.Key)
	if err != nil {
		return err
	}
	out := uiSpaceSyncs{Space: spaceJSON(sp, acc.Admin), CanAdmin: acc.Admin, Results: []uiSyncJSON{}}
	for _, s := range list {
		// A sync belongs to the space it was created for: after a space
		// is deleted and its key reused, the old syncs are not this
		// space's.
		if s.SpaceID == sp.ID {
			js := syncJSON(s)
			if !acc.Admin {
				// Who a sync is linked to is for the space's admins, as
				// in the details view.
				js.LinkedTo = nil
			}
			out.Results = append(out.Results, js)
		}
	}
	return c.JSON(http.StatusOK, out)
}

// uiNewSync is the body of POST /api/ui/spaces/{spaceKey}/syncs.
type uiNewSync struct {
	Name         string        `json:"name"`
	Permissions  []uiPrincipal `json:"permissions"`
	SyncComments bool          `json:"syncComments"`
	SyncLabels   bool          `json:"syncLabels"`
}

// handleUICreateSync is POST /api/ui/spaces/{spaceKey}/syncs: only an admin
// of the space, resolved from Confluence by key, may create a sync; the
// stored space id, key and name are Confluence's, and each permission is
// checked against the site's users and groups (names from Confluence).
func (a *App) handleUICreateSync(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sp, err := a.confluenceSpace(ctx, u, c.Param("spaceKey"))
	if err != nil {
		return err
	}
	if err := u.requireAdmin(ctx, sp.ID, sp.Key); err != nil {
		return err
	}
	var in uiNewSync
	if err := decodeAPIJSON(c, &in); err != nil {
		return err
	}
	if len(in.Permissions) > store.MaxSyncPermissions {
		return apperr.Validation(map[string]string{"permissions": "Choose at most 50 users and groups."})
	}
	perms, err := a.verifyPrincipals(ctx, u, in.Permissions)
	if err != nil {
		return err
	}
	s, err := a.store.CreateSync(ctx, store.NewSync{
		TenantID: u.tenant.ID, SpaceID: sp.ID, SpaceKey: sp.Key, SpaceName: sp.Name,
		Name: in.Name, Permissions: perms, SyncComments: in.SyncComments, SyncLabels: in.SyncLabels,
		CreatedBy: u.account,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]uiSyncJSON{"sync": syncJSON(s)})
}

// errPrincipal is the field error of a chosen user or group that Confluence
// does not confirm.
func errPrincipal(name string) error {
	return apperr.Validation(map[string]string{
		"permissions": "“" + clip(name, 80) + "” is not a user or group of this site any more. Remove it and pick again.",
	})
}

// verifyPrincipals checks each chosen user and group with Confluence and
// returns them with Confluence's names. Users are looked up by account id;
// groups among the caller's own groups, else by a group search for the
// name the picker showed, matched by id.
func (a *App) verifyPrincipals(ctx context.Context, u uiCaller, in []uiPrincipal) ([]store.Principal, error) {
	out := make([]store.Principal, len(in))
	var myGroups map[string]string
	for _, p := range in {
		if p.Type == store.PrincipalGroup && myGroups == nil {
			gs, err := u.site.UserGroups(ctx, u.account)
			if err != nil {
				return nil, err
			}
			myGroups = make(map[string]string, len(gs))
			for _, g := range gs {
				myGroups[g.ID] = g.Name
			}
		}
	}
	bad := make([]bool, len(in))
	err := forEach(ctx, len(in), func(ctx context.Context, i int) error {
		p := in[i]
		switch p.Type {
		case store.PrincipalUser:
			usr, err := u.site.User(ctx, p.ID)
			if apperr.CodeOf(err) == apperr.NotFound {
				bad[i] = true
				return nil
			}
			if err != nil {
				return err
			}
			out[i] = store.Principal{Type: store.PrincipalUser, ID: usr.AccountID, Name: userName(usr)}
		case store.PrincipalGroup:
			if name, ok := myGroups[p.ID]; ok {
				out[i] = store.Principal{Type: store.PrincipalGroup, ID: p.ID, Name: name}
				return nil
			}
			gs, err := u.site.SearchGroups(ctx, p.Name, 50)
			if err != nil {
				return err
			}
			for _, g := range gs {
				if g.ID == p.ID {
					out[i] = store.Principal{Type: store.PrincipalGroup, ID: g.ID, Name: g.Name}
					return nil
				}
			}
			bad[i] = true
		default:
			return apperr.Validation(map[string]string{"permissions": "Each permission must be a user or a group."})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, b := range bad {
		if b {
			return nil, errPrincipal(cmp.Or(in[i].Name, in[i].ID))
		}
	}
	return out, nil
}

// userName is how a user is shown: the display name, else the public name.
func userName(usr *connect.User) string {
	if usr.DisplayName != "" {
		return usr.DisplayName
	}
	if usr.PublicName != "" {
		return usr.PublicName
	}
	return usr.AccountID
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// handleUIDefaultPermissions is GET /api/ui/spaces/{spaceKey}/default-
// permissions: the permissions the Create New Sync dialog starts with, the
// space's admins (its users, and its groups the caller belongs to, since
// Confluence names a group only to its members here), or at least the
// caller. Only for admins of the space.
func (a *App) handleUIDefaultPermissions(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sp, err := a.lookupSpace(ctx, u, c.Param("spaceKey"))
	if err != nil {
		return err
	}
	if err := u.requireAdmin(ctx, sp.ID, sp.Key); err != nil {
		return err
	}
	holders, err := u.site.SpaceAdminHolders(ctx, sp.ID)
	if err != nil {
		return err
	}
	groups, err := u.site.UserGroups(ctx, u.account)
	if err != nil {
		return err
	}
	groupNames := make(map[string]string, len(groups))
	for _, g := range groups {
		groupNames[g.ID] = g.Name
	}
	var users []string
	var out []uiPrincipal
	for _, h := range holders {
		switch h.Type {
		case store.PrincipalGroup:
			if name, ok := groupNames[h.ID]; ok {
				out = append(out, uiPrincipal{Type: store.PrincipalGroup, ID: h.ID, Name: name})
			}
		case store.PrincipalUser:
			users = append(users, h.ID)
		}
	}
	if len(users) == 0 && len(out) == 0 {
		users = append(users, u.account)
	}
	out = out[:min(len(out), store.MaxSyncPermissions)]
	users = users[:min(len(users), store.MaxSyncPermissions-len(out))]
	named := make([]*connect.User, len(users))
	err = forEach(ctx, len(users), func(ctx context.Context, i int) error {
		usr, err := u.site.User(ctx, users[i])
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil // a deleted account: leave it out
		}
		named[i] = usr
		return err
	})
	if err != nil {
		return err
	}
	for _, usr := range named {
		if usr != nil {
			out = append(out, uiPrincipal{Type: store.PrincipalUser, ID: usr.AccountID, Name: userName(usr)})
		}
	}
	if out == nil {
		out = []uiPrincipal{}
	}
	return c.JSON(http.StatusOK, map[string][]uiPrincipal{"results": out})
}

// handleUIPrincipals is GET /api/ui/principals?query=: users and groups of
// the site whose names match, for the permissions picker. Any signed-in
// user may search (Confluence's own pickers show the same).
func (a *App) handleUIPrincipals(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	q := strings.TrimSpace(c.QueryParam("query"))
	if len(q) > uiMaxQuery || !utf8.ValidString(q) {
		return apperr.Validation(map[string]string{"query": "Search with fewer words."})
	}
	out := []uiPrincipal{}
	if q == "" {
		return c.JSON(http.StatusOK, map[string][]uiPrincipal{"results": out})
	}
	var users []connect.User
	var groups []connect.Group
	err = forEach(ctx, 2, func(ctx context.Context, i int) error {
		var err error
		if i == 0 {
			users, err = u.site.SearchUsers(ctx, q, uiPrincipalResults)
		} else {
			groups, err = u.site.SearchGroups(ctx, q, uiPrincipalResults)
		}
		return err
	})
	if err != nil {
		return err
	}
	for i := range users {
		out = append(out, uiPrincipal{Type: store.PrincipalUser, ID: users[i].AccountID, Name: userName(&users[i])})
	}
	sort.SliceStable(groups, func(i, j int) bool { return strings.ToLower(groups[i].Name) < strings.ToLower(groups[j].Name) })
	for _, g := range groups {
		out = append(out, uiPrincipal{Type: store.PrincipalGroup, ID: g.ID, Name: g.Name})
	}
	return c.JSON(http.StatusOK, map[string][]uiPrincipal{"results": out})
}
