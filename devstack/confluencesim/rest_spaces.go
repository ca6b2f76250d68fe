package confluencesim

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"spacesync.io/devstack/confluencesim/internal/connectjwt"
)

// v2 paging limits: the documented default is 25. Atlassian's maximum is
// unconfirmed; the simulator clamps to 250 rather than refusing.
const (
	v2DefaultLimit = 25
	v2MaxLimit     = 250
)

var spaceSorts = map[string]func(a, b *spaceRec) int{
	"id":    func(a, b *spaceRec) int { return cmp.Compare(a.num, b.num) },
	"-id":   func(a, b *spaceRec) int { return cmp.Compare(b.num, a.num) },
	"key":   func(a, b *spaceRec) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.num, b.num)) },
	"-key":  func(a, b *spaceRec) int { return cmp.Or(cmp.Compare(b.Key, a.Key), cmp.Compare(b.num, a.num)) },
	"name":  func(a, b *spaceRec) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.num, b.num)) },
	"-name": func(a, b *spaceRec) int { return cmp.Or(cmp.Compare(b.Name, a.Name), cmp.Compare(b.num, a.num)) },
}

type spaceJSON struct {
	ID          string           `json:"id"`
	Key         string           `json:"key"`
	Name        string           `json:"name"`
	Type        string           `json:"type"`
	Status      string           `json:"status"`
	AuthorID    string           `json:"authorId"`
	CreatedAt   string           `json:"createdAt"`
	HomepageID  string           `json:"homepageId"`
	Description *descriptionJSON `json:"description,omitempty"`
	Icon        *iconJSON        `json:"icon,omitempty"`
	Links       struct {
		WebUI string `json:"webui"`
	} `json:"_links"`
}

type descriptionJSON struct {
	Plain *bodyJSON `json:"plain,omitempty"`
	View  *bodyJSON `json:"view,omitempty"`
}

type bodyJSON struct {
	Value          string `json:"value"`
	Representation string `json:"representation"`
}

type iconJSON struct {
	Path            string `json:"path"`
	APIDownloadLink string `json:"apiDownloadLink"`
}

type pageLinks struct {
	Next string `json:"next,omitempty"`
	Base string `json:"base"`
}

func (s *Sim) spaceJSON(sp *spaceRec, descFormat string, icon bool) spaceJSON {
	j := spaceJSON{ID: sp.ID, Key: sp.Key, Name: sp.Name, Type: sp.Type, Status: sp.Status,
		AuthorID: sp.AuthorID, CreatedAt: sp.CreatedAt, HomepageID: sp.HomepageID}
	j.Links.WebUI = "/spaces/" + sp.Key
	switch descFormat {
	case "plain":
		j.Description = &descriptionJSON{Plain: &bodyJSON{sp.Description, "plain"}}
	case "view":
		j.Description = &descriptionJSON{View: &bodyJSON{"<p>" + htmlEscape(sp.Description) + "</p>", "view"}}
	}
	if icon {
		j.Icon = &iconJSON{Path: "/images/logo/default-space-logo.svg", APIDownloadLink: "/download/attachments/" + sp.HomepageID + "/space-logo.svg"}
	}
	return j
}

// listSpaces is GET /wiki/api/v2/spaces.
func (s *Sim) listSpaces(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, err := parseLimit(c, v2DefaultLimit, v2MaxLimit)
	if err != nil {
		return err
	}
	sortName := cmp.Or(c.first("sort"), "id")
	less, ok := spaceSorts[sortName]
	if !ok {
		return badRequest("sort must be one of id, -id, key, -key, name, -name")
	}
	keys := splitMulti(c.query["keys"])
	ids := splitMulti(c.query["ids"])
	for _, id := range ids {
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return badRequest("ids must be integers")
		}
	}
	typ, status := c.first("type"), c.first("status")
	if typ != "" && !slices.Contains(spaceTypes, typ) {
		return badRequest("type must be one of %s", strings.Join(spaceTypes, ", "))
	}
	if status != "" && !slices.Contains(spaceStatuses, status) {
		return badRequest("status must be one of current, archived")
	}
	descFormat := c.first("description-format")
	if descFormat != "" && descFormat != "plain" && descFormat != "view" {
		return badRequest("description-format must be plain or view")
	}
	var list []*spaceRec
	for _, sp := range s.site.spaces {
		if (len(keys) == 0 || slices.Contains(keys, sp.Key)) && (len(ids) == 0 || slices.Contains(ids, sp.ID)) &&
			(typ == "" || sp.Type == typ) && (status == "" || sp.Status == status) {
			list = append(list, sp)
		}
	}
	if sortName != "id" {
		slices.SortStableFunc(list, less)
	}
	start := 0
	if cur := c.first("cursor"); cur != "" {
		var pos struct {
			ID   string `json:"id"`
			Sort string `json:"sort"`
		}
		if err := decodeCursor(cur, &pos); err != nil || pos.Sort != sortName {
			return badRequest("cursor is not valid for this request")
		}
		after := s.site.spaceByID[pos.ID]
		if after == nil {
			return badRequest("cursor is not valid for this request")
		}
		start = sort.Search(len(list), func(i int) bool { return less(after, list[i]) < 0 })
	}
	end := min(start+limit, len(list))
	results := make([]spaceJSON, 0, end-start)
	for _, sp := range list[start:end] {
		results = append(results, s.spaceJSON(sp, descFormat, c.first("include-icon") == "true"))
	}
	links := pageLinks{Base: s.baseURL}
	if end < len(list) {
		cur := encodeCursor(map[string]string{"id": list[end-1].ID, "sort": sortName})
		links.Next = nextLink(contextPath+"/api/v2/spaces", cur, limit, c.query)
		setLinkHeader(w, links)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "_links": links})
	return nil
}

// getSpace is GET /wiki/api/v2/spaces/{id}.
func (s *Sim) getSpace(w http.ResponseWriter, r *http.Request, c *call) error {
	sp, err := s.spaceFromPath(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.spaceJSON(sp, c.first("description-format"), c.first("include-icon") == "true"))
	return nil
}

// listSpacePermissions is GET /wiki/api/v2/spaces/{id}/permissions.
func (s *Sim) listSpacePermissions(w http.ResponseWriter, r *http.Request, c *call) error {
	sp, err := s.spaceFromPath(r)
	if err != nil {
		return err
	}
	limit, err := parseLimit(c, v2DefaultLimit, v2MaxLimit)
	if err != nil {
		return err
	}
	start := 0
	if cur := c.first("cursor"); cur != "" {
		var pos struct {
			ID string `json:"id"`
		}
		if err := decodeCursor(cur, &pos); err != nil {
			return badRequest("cursor is not valid for this request")
		}
		n, err := strconv.ParseInt(pos.ID, 10, 64)
		if err != nil {
			return badRequest("cursor is not valid for this request")
		}
		start = sort.Search(len(sp.perms), func(i int) bool { return sp.perms[i].num > n })
	}
	end := min(start+limit, len(sp.perms))
	type principal struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	type operation struct {
		Key        string `json:"key"`
		TargetType string `json:"targetType"`
	}
	type item struct {
		ID        string    `json:"id"`
		Principal principal `json:"principal"`
		Operation operation `json:"operation"`
	}
	results := make([]item, 0, end-start)
	for _, p := range sp.perms[start:end] {
		results = append(results, item{p.ID, principal{p.Principal.Type, p.Principal.ID}, operation{p.Key, p.TargetType}})
	}
	links := pageLinks{Base: s.baseURL}
	if end < len(sp.perms) {
		cur := encodeCursor(map[string]string{"id": sp.perms[end-1].ID})
		links.Next = nextLink(contextPath+"/api/v2/spaces/"+sp.ID+"/permissions", cur, limit, c.query)
		setLinkHeader(w, links)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "_links": links})
	return nil
}

func (s *Sim) spaceFromPath(r *http.Request) (*spaceRec, error) {
	id := r.PathValue("id")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return nil, badRequest("id must be an integer")
	}
	sp := s.site.spaceByID[id]
	if sp == nil {
		return nil, notFound("No space with id %s", id)
	}
	return sp, nil
}

// parseLimit reads limit: an integer of at least 1, clamped to max.
func parseLimit(c *call, def, maxLimit int) (int, error) {
	v := c.first("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest("limit must be a positive integer")
	}
	return min(n, maxLimit), nil
}

// splitMulti accepts a list parameter given comma-separated, repeated or
// both.
func splitMulti(values []string) []string {
	var out []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// encodeCursor makes an opaque cursor: padded base64url of a JSON object.
// The JSON is padded with spaces so the cursor always ends in "==", which
// catches apps that hash the raw query instead of the canonical one.
func encodeCursor(v map[string]string) string {
	b, _ := json.Marshal(v)
	for len(b)%3 != 1 {
		b = append(b[:len(b)-1], ' ', '}')
	}
	return base64.URLEncoding.EncodeToString(b)
}

func decodeCursor(cur string, v any) error {
	b, err := base64.URLEncoding.DecodeString(cur)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// nextLink builds a v2 next link: the path (which includes /wiki), the
// cursor as is (its '=' padding unencoded, as Confluence sends it), the
// limit, and the request's other parameters re-encoded.
func nextLink(path, cursor string, limit int, query map[string][]string) string {
	var b strings.Builder
	b.WriteString(path)
	b.WriteString("?cursor=")
	b.WriteString(cursor)
	b.WriteString("&limit=")
	b.WriteString(strconv.Itoa(limit))
	names := make([]string, 0, len(query))
	for n := range query {
		if n != "cursor" && n != "limit" && n != "jwt" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		for _, v := range query[n] {
			b.WriteString("&")
			b.WriteString(connectjwt.Encode(n))
			b.WriteString("=")
			b.WriteString(strings.ReplaceAll(connectjwt.Encode(v), "%2C", ","))
		}
	}
	return b.String()
}

func setLinkHeader(w http.ResponseWriter, l pageLinks) {
	w.Header().Set("Link", "<"+l.Next+`>; rel="next", <`+l.Base+`>; rel="base"`)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}
