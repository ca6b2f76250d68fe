package confluencesim

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"spacesync.io/devstack/confluencesim/internal/connectjwt"
)

type userJSON struct {
	Type                   string         `json:"type"`
	AccountID              string         `json:"accountId"`
	AccountType            string         `json:"accountType"`
	Email                  string         `json:"email,omitempty"`
	PublicName             string         `json:"publicName"`
	DisplayName            string         `json:"displayName"`
	ProfilePicture         map[string]any `json:"profilePicture"`
	IsExternalCollaborator bool           `json:"isExternalCollaborator"`
	Links                  v1Links        `json:"_links"`
}

type groupJSON struct {
	Type  string  `json:"type"`
	Name  string  `json:"name"`
	ID    string  `json:"id"`
	Links v1Links `json:"_links"`
}

// v1Links are the _links of v1 responses. Unlike v2, a v1 next link is
// relative to base, so it does not include /wiki.
type v1Links struct {
	Self    string `json:"self,omitempty"`
	Next    string `json:"next,omitempty"`
	Base    string `json:"base,omitempty"`
	Context string `json:"context,omitempty"`
}

func (s *Sim) userJSON(u *User, c *call) userJSON {
	j := userJSON{
		Type: "known", AccountID: u.AccountID, AccountType: "atlassian",
		PublicName: u.DisplayName, DisplayName: u.DisplayName,
		ProfilePicture: map[string]any{"path": "/wiki/aa-avatar/" + u.AccountID, "width": 48, "height": 48, "isDefault": true},
		Links:          v1Links{Self: s.baseURL + "/rest/api/user?accountId=" + connectjwt.Encode(u.AccountID)},
	}
	// Confluence returns email addresses only to apps with this scope.
	if c.app.scopes()["ACCESS_EMAIL_ADDRESSES"] {
		j.Email = u.Email
	}
	return j
}

func (s *Sim) groupJSON(g *Group) groupJSON {
	return groupJSON{Type: "group", Name: g.Name, ID: g.ID,
		Links: v1Links{Self: s.baseURL + "/rest/api/group/by-id?id=" + connectjwt.Encode(g.ID)}}
}

// getUser is GET /wiki/rest/api/user?accountId=.
func (s *Sim) getUser(w http.ResponseWriter, r *http.Request, c *call) error {
	id := c.first("accountId")
	if id == "" {
		return badRequest("accountId is required")
	}
	u := s.site.userByID[id]
	if u == nil {
		return notFound("No user with accountId %s", truncate(id, 80))
	}
	j := s.userJSON(u, c)
	j.Links.Base, j.Links.Context = s.baseURL, contextPath
	writeJSON(w, http.StatusOK, j)
	return nil
}

// memberOf is GET /wiki/rest/api/user/memberof?accountId=&start=&limit=.
func (s *Sim) memberOf(w http.ResponseWriter, r *http.Request, c *call) error {
	id := c.first("accountId")
	if id == "" {
		return badRequest("accountId is required")
	}
	if s.site.userByID[id] == nil {
		return notFound("No user with accountId %s", truncate(id, 80))
	}
	start, limit, err := parseStartLimit(c, 200, 200)
	if err != nil {
		return err
	}
	groups := s.site.groupsOf[id]
	results := []groupJSON{}
	for i := start; i < len(groups) && i < start+limit; i++ {
		results = append(results, s.groupJSON(groups[i]))
	}
	self := "/rest/api/user/memberof?accountId=" + connectjwt.Encode(id)
	links := v1Links{Self: s.baseURL + self, Base: s.baseURL, Context: contextPath}
	if start+limit < len(groups) {
		links.Next = self + "&limit=" + strconv.Itoa(limit) + "&start=" + strconv.Itoa(start+limit)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "start": start, "limit": limit, "size": len(results), "_links": links})
	return nil
}

// cqlFullname matches the CQL the permissions picker needs:
// user.fullname~"text", optionally after type=user AND.
var cqlFullname = regexp.MustCompile(`(?i)^\s*(?:type\s*=\s*"?user"?\s+and\s+)?user\.fullname\s*~\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*$`)

// searchUsers is GET /wiki/rest/api/search/user?cql=&start=&limit=.
func (s *Sim) searchUsers(w http.ResponseWriter, r *http.Request, c *call) error {
	cql := c.first("cql")
	if cql == "" {
		return badRequest("cql is required")
	}
	m := cqlFullname.FindStringSubmatch(cql)
	if m == nil {
		return badRequest("Could not parse cql : %s (the simulator supports user.fullname~\"text\")", truncate(cql, 200))
	}
	text := m[1] + m[2]
	text = strings.NewReplacer(`\"`, `"`, `\'`, `'`, `\\`, `\`).Replace(text)
	start, limit, err := parseStartLimit(c, 25, 1000)
	if err != nil {
		return err
	}
	var matches []*User
	for i := range s.site.users {
		if nameMatches(s.site.users[i].DisplayName, text) {
			matches = append(matches, &s.site.users[i])
		}
	}
	type result struct {
		User       userJSON `json:"user"`
		Title      string   `json:"title"`
		Excerpt    string   `json:"excerpt"`
		URL        string   `json:"url"`
		EntityType string   `json:"entityType"`
		Score      float64  `json:"score"`
	}
	results := []result{}
	for i := start; i < len(matches) && i < start+limit; i++ {
		u := matches[i]
		results = append(results, result{User: s.userJSON(u, c), Title: u.DisplayName, URL: "/people/" + u.AccountID, EntityType: "user"})
	}
	links := v1Links{Base: s.baseURL, Context: contextPath}
	if start+limit < len(matches) {
		links.Next = "/rest/api/search/user?cql=" + connectjwt.Encode(cql) + "&limit=" + strconv.Itoa(limit) + "&start=" + strconv.Itoa(start+limit)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"results": results, "start": start, "limit": limit, "size": len(results), "totalSize": len(matches),
		"cqlQuery": cql, "searchDuration": 3, "_links": links,
	})
	return nil
}

// nameMatches is CQL's "~" on a name, simplified: every word of text must
// start a word of name, ignoring case.
func nameMatches(name, text string) bool {
	words := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == ' ' || r == '-' })
	for t := range strings.FieldsSeq(strings.ToLower(text)) {
		t = strings.Trim(t, "*")
		found := false
		for _, w := range words {
			if strings.HasPrefix(w, t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// groupPicker is GET /wiki/rest/api/group/picker?query=&start=&limit=.
func (s *Sim) groupPicker(w http.ResponseWriter, r *http.Request, c *call) error {
	q, ok := c.query["query"]
	if !ok {
		return badRequest("query is required")
	}
	start, limit, err := parseStartLimit(c, 200, 1000)
	if err != nil {
		return err
	}
	needle := strings.ToLower(strings.TrimSpace(q[0]))
	var matches []*Group
	for _, g := range s.site.groups {
		if strings.Contains(strings.ToLower(g.Name), needle) {
			matches = append(matches, g)
		}
	}
	results := []groupJSON{}
	for i := start; i < len(matches) && i < start+limit; i++ {
		results = append(results, s.groupJSON(matches[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"results": results, "start": start, "limit": limit, "size": len(results), "totalSize": len(matches),
		"_links": v1Links{Base: s.baseURL, Context: contextPath},
	})
	return nil
}

func parseStartLimit(c *call, def, maxLimit int) (start, limit int, err error) {
	if v := c.first("start"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<30 {
			return 0, 0, badRequest("start must be a non-negative integer")
		}
		start = n
	}
	limit, err = parseLimit(c, def, maxLimit)
	return start, limit, err
}
