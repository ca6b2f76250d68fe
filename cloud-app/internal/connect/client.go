package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
)

// Errors of the outbound client that mean Confluence answered something we
// refuse to act on. They are wrapped in an *apperr.Error (internal).
var (
	// ErrForeignHost: a URL (a pagination link) points away from the
	// tenant's own base URL host. No request is made.
	ErrForeignHost = errors.New("connect: refusing a request to a host other than the tenant's base URL")
	// ErrPaginationLoop: a pagination link was already followed, or there
	// were too many pages.
	ErrPaginationLoop = errors.New("connect: pagination does not end")
)

// Space is a Confluence space (v2 shape; ids are strings).
type Space struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Status     string `json:"status"`
	HomepageID string `json:"homepageId,omitempty"`
	// WebUI is the space's link relative to the tenant's base URL.
	WebUI string `json:"webui,omitempty"`
}

// Principal is the subject of a space permission: a user (ID is an account
// id), a group (ID is a group id) or a role.
type Principal struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// User is a Confluence user.
type User struct {
	AccountID   string `json:"accountId"`
	AccountType string `json:"accountType,omitempty"`
	DisplayName string `json:"displayName"`
	PublicName  string `json:"publicName,omitempty"`
	// Email is empty unless the user shares it.
	Email string `json:"email,omitempty"`
	// ProfilePicture is the picture's path relative to the site.
	ProfilePicture string `json:"profilePicture,omitempty"`
}

// Group is a Confluence group.
type Group struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Space permission operations (v2 operation.key with targetType "space").
const (
	OpAdminister = "administer"
	OpRead       = "read"
)

// ClientConfig configures NewClient.
type ClientConfig struct {
	// AppKey is the descriptor key: the iss of every outbound JWT.
	AppKey string
	// HTTPClient sends the requests; redirects are never followed (nil:
	// NewHTTPClient()).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Timeout bounds each attempt of each call (default 10 s).
	Timeout time.Duration
	// MaxRetries bounds the retries of a 429 or 503 (default 3).
	MaxRetries int
	// MaxRetryWait is the longest wait honoured (default 10 s): a longer
	// Retry-After fails the call at once with rate_limited or unavailable.
	MaxRetryWait time.Duration
	// CacheTTL and CacheSize bound the caches of space permissions and
	// group memberships behind IsSpaceAdmin and CanViewSpace (defaults
	// 60 s and 10,000 entries each).
	CacheTTL  time.Duration
	CacheSize int
}

// Client calls the Confluence Cloud REST API of any tenant as the app
// (scopes from the descriptor). It is safe for concurrent use; Site binds
// it to one tenant.
type Client struct {
	http       *http.Client
	appKey     string
	now        func() time.Time
	timeout    time.Duration
	maxRetries int
	maxWait    time.Duration
	perms      *ttlCache[spacePerms]
	groups     *ttlCache[[]string]
}

// NewClient returns a Client.
func NewClient(c ClientConfig) *Client {
	cl := &Client{
		http: withoutRedirects(c.HTTPClient), appKey: c.AppKey, now: c.Now,
		timeout: c.Timeout, maxRetries: c.MaxRetries, maxWait: c.MaxRetryWait,
	}
	if cl.now == nil {
		cl.now = time.Now
	}
	if cl.timeout <= 0 {
		cl.timeout = 10 * time.Second
	}
	if cl.maxRetries <= 0 {
		cl.maxRetries = 3
	}
	if cl.maxWait <= 0 {
		cl.maxWait = 10 * time.Second
	}
	ttl, size := c.CacheTTL, c.CacheSize
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	if size <= 0 {
		size = 10000
	}
	cl.perms = newTTLCache[spacePerms](ttl, size, cl.now)
	cl.groups = newTTLCache[[]string](ttl, size, cl.now)
	return cl
}

// outboundTTL is the lifetime of the JWTs we send (atlassian-jwt and ACE
// use 3 minutes).
const outboundTTL = 3 * time.Minute

// Site is the client bound to one tenant. Every request goes to the
// tenant's base URL host only.
type Site struct {
	c        *Client
	tenant   *store.Tenant
	base     *url.URL
	basePath string
	err      error
}

// Site returns the client for tenant t. A base URL that does not parse
// makes every call fail.
func (c *Client) Site(t *store.Tenant) *Site {
	s := &Site{c: c, tenant: t}
	u, err := url.Parse(t.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		s.err = apperr.Wrap(fmt.Errorf("connect: tenant %s has an unusable base URL", t.ID), apperr.Internal, "Space Sync cannot reach this Confluence site.")
		return s
	}
	s.base = u
	s.basePath = strings.TrimSuffix(u.EscapedPath(), "/")
	return s
}

// query builds a raw query with the canonical request's encoding, so it
// hashes exactly as it is sent.
type query []string

func (q query) add(name, value string) query {
	return append(q, EncodeQueryComponent(name)+"="+EncodeQueryComponent(value))
}

func (q query) String() string { return strings.Join(q, "&") }

// apiURL is the tenant's base URL plus a path relative to it (e.g.
// "/api/v2/spaces") and a raw query.
func (s *Site) apiURL(rel string, q query) (*url.URL, error) {
	if s.err != nil {
		return nil, s.err
	}
	u, err := url.Parse(s.base.Scheme + "://" + s.base.Host + s.basePath + rel)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "Space Sync could not build a Confluence request.")
	}
	u.RawQuery = q.String()
	return u, nil
}

// nextURL resolves a pagination link: absolute or relative to the host;
// it already contains the base path ("/wiki"), which is added if missing.
// A link to another scheme or host is ErrForeignHost.
func (s *Site) nextURL(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, apperr.Wrap(fmt.Errorf("%w: unparsable next link", ErrForeignHost), apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
	}
	if u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		if !strings.EqualFold(u.Scheme, s.base.Scheme) || !strings.EqualFold(u.Host, s.base.Host) || u.User != nil || u.Opaque != "" {
			return nil, apperr.Wrap(ErrForeignHost, apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
		}
		u.Scheme, u.Host = s.base.Scheme, s.base.Host
		return u, nil
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		return nil, apperr.Wrap(fmt.Errorf("%w: next link %q is not rooted", ErrForeignHost, p), apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
	}
	if s.basePath != "" && p != s.basePath && !strings.HasPrefix(p, s.basePath+"/") {
		p = s.basePath + p
	}
	out, err := url.Parse(s.base.Scheme + "://" + s.base.Host + p)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
	}
	out.RawQuery = u.RawQuery
	return out, nil
}

// maxBody caps a Confluence response.
const maxBody = 8 << 20

// getJSON sends GET u (retrying 429 and 503) and decodes a 200 into out.
func (s *Site) getJSON(ctx context.Context, u *url.URL, out any) error {
	if s.err != nil {
		return s.err
	}
	if !strings.EqualFold(u.Scheme, s.base.Scheme) || !strings.EqualFold(u.Host, s.base.Host) {
		return apperr.Wrap(ErrForeignHost, apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
	}
	qsh, err := RequestQSH(http.MethodGet, u.EscapedPath(), u.RawQuery, s.basePath)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "Space Sync could not build a Confluence request.")
	}
	what := "GET " + u.EscapedPath()
	for attempt := 0; ; attempt++ {
		status, retryAfter, body, err := s.once(ctx, u, qsh)
		if err != nil {
			if ctx.Err() != nil {
				return apperr.Wrap(fmt.Errorf("%s: %w", what, ctx.Err()), apperr.Unavailable, "Confluence did not answer in time. Try again.")
			}
			return apperr.Wrap(fmt.Errorf("%s: %w", what, err), apperr.Unavailable, "Confluence did not answer. Try again in a minute.")
		}
		switch {
		case status == http.StatusOK:
			if err := json.Unmarshal(body, out); err != nil {
				return apperr.Wrap(fmt.Errorf("%s: decode: %w", what, err), apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
			}
			return nil
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			wait, ok := s.c.retryWait(attempt, retryAfter)
			if ok && attempt < s.c.maxRetries {
				if err := sleepCtx(ctx, wait); err != nil {
					return apperr.Wrap(fmt.Errorf("%s: %d, then %w", what, status, err), apperr.Unavailable, "Confluence did not answer in time. Try again.")
				}
				continue
			}
			secs := int((retryAfter + time.Second - 1) / time.Second)
			cause := fmt.Errorf("%s: %d after %d attempts", what, status, attempt+1)
			if status == http.StatusTooManyRequests {
				return &apperr.Error{Code: apperr.RateLimited, Message: "Confluence is asking Space Sync to slow down. Try again in a minute.", RetryAfter: max(secs, 1), Cause: cause}
			}
			return &apperr.Error{Code: apperr.Unavailable, Message: "Confluence is not available right now. Try again in a minute.", RetryAfter: secs, Cause: cause}
		case status == http.StatusNotFound:
			return apperr.Wrap(fmt.Errorf("%s: 404", what), apperr.NotFound, "Confluence does not know this item, or Space Sync may not see it.")
		case status >= 500:
			return apperr.Wrap(fmt.Errorf("%s: %d", what, status), apperr.Unavailable, "Confluence is not available right now. Try again in a minute.")
		default:
			return apperr.Wrap(fmt.Errorf("%s: %d", what, status), apperr.Internal, "Confluence refused a request from Space Sync.")
		}
	}
}

// once sends one attempt with a fresh JWT and its own timeout.
func (s *Site) once(ctx context.Context, u *url.URL, qsh string) (status int, retryAfter time.Duration, body []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.c.timeout)
	defer cancel()
	now := s.c.now()
	tok, err := SignHS256(Claims{
		Issuer: s.c.appKey, IssuedAt: now.Unix(), ExpiresAt: now.Add(outboundTTL).Unix(), QSH: qsh,
	}, s.tenant.SharedSecret)
	if err != nil {
		return 0, 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := s.c.http.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, retryAfter, nil, nil
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, 0, nil, err
	}
	if len(body) > maxBody {
		return 0, 0, nil, fmt.Errorf("response larger than %d bytes", maxBody)
	}
	return resp.StatusCode, retryAfter, body, nil
}

// retryWait is how long to wait before retry number attempt+1: the
// Retry-After when given (refused when longer than MaxRetryWait), else an
// exponential backoff from 500 ms; plus up to a fifth (at least 100 ms) of
// random jitter so that replicas do not retry in step.
func (c *Client) retryWait(attempt int, retryAfter time.Duration) (time.Duration, bool) {
	wait := retryAfter
	if wait <= 0 {
		wait = min(500*time.Millisecond<<attempt, c.maxWait)
	}
	if wait > c.maxWait {
		return 0, false
	}
	spread := max(wait/5, 100*time.Millisecond)
	return wait + rand.N(spread), true
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 when absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// flexString reads a JSON string or number as a string (ids are strings in
// v2 and numbers in some v1 answers).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

type wireLinks struct {
	Next string `json:"next"`
}

type wireSpace struct {
	ID         flexString `json:"id"`
	Key        string     `json:"key"`
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	HomepageID flexString `json:"homepageId"`
	Links      struct {
		WebUI string `json:"webui"`
	} `json:"_links"`
}

func (w wireSpace) space() Space {
	return Space{ID: string(w.ID), Key: w.Key, Name: w.Name, Type: w.Type, Status: w.Status, HomepageID: string(w.HomepageID), WebUI: w.Links.WebUI}
}

type wireSpacesPage struct {
	Results []wireSpace `json:"results"`
	Links   wireLinks   `json:"_links"`
}

// maxPages bounds any pagination (250 spaces a page: 500,000 spaces).
const maxPages = 2000

// spacesPageSize is the v2 page size we ask for.
const spacesPageSize = 250

// AllSpaces lists every space the app can see (v2 GET /api/v2/spaces),
// following _links.next until there is none. A link followed twice is
// ErrPaginationLoop and a link to another host ErrForeignHost.
func (s *Site) AllSpaces(ctx context.Context) ([]Space, error) {
	u, err := s.apiURL("/api/v2/spaces", query{}.add("limit", strconv.Itoa(spacesPageSize)))
	if err != nil {
		return nil, err
	}
	var out []Space
	err = s.paginate(ctx, u, func() any { return &wireSpacesPage{} }, func(page any) string {
		p := page.(*wireSpacesPage)
		for _, w := range p.Results {
			out = append(out, w.space())
		}
		return p.Links.Next
	})
	return out, err
}

// SpacesPage returns one page of spaces (up to limit, at most 250) and the
// cursor of the next page ("" on the last). cursor is "" for the first
// page, else a value SpacesPage returned.
func (s *Site) SpacesPage(ctx context.Context, cursor string, limit int) ([]Space, string, error) {
	if limit <= 0 || limit > spacesPageSize {
		limit = spacesPageSize
	}
	q := query{}
	if cursor != "" {
		q = q.add("cursor", cursor)
	}
	u, err := s.apiURL("/api/v2/spaces", q.add("limit", strconv.Itoa(limit)))
	if err != nil {
		return nil, "", err
	}
	var p wireSpacesPage
	if err := s.getJSON(ctx, u, &p); err != nil {
		return nil, "", err
	}
	out := make([]Space, len(p.Results))
	for i, w := range p.Results {
		out[i] = w.space()
	}
	next := ""
	if p.Links.Next != "" {
		nu, err := s.nextURL(p.Links.Next)
		if err != nil {
			return nil, "", err
		}
		next = nu.Query().Get("cursor")
	}
	return out, next, nil
}

// paginate GETs first and then each next link, refusing a repeated link
// and stopping after maxPages.
func (s *Site) paginate(ctx context.Context, first *url.URL, newPage func() any, take func(page any) (next string)) error {
	seen := map[string]bool{first.String(): true}
	u := first
	for pages := 1; ; pages++ {
		page := newPage()
		if err := s.getJSON(ctx, u, page); err != nil {
			return err
		}
		next := take(page)
		if next == "" {
			return nil
		}
		nu, err := s.nextURL(next)
		if err != nil {
			return err
		}
		if seen[nu.String()] || pages >= maxPages {
			return apperr.Wrap(fmt.Errorf("%w: %s", ErrPaginationLoop, nu.EscapedPath()), apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
		}
		seen[nu.String()] = true
		u = nu
	}
}

var (
	spaceKeyPattern = regexp.MustCompile(`^~?[A-Za-z0-9_:\-]{1,255}$`)
	idPattern       = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)
	accountPattern  = regexp.MustCompile(`^[A-Za-z0-9_:\-]{1,128}$`)
)

func notFound(what string) error {
	return apperr.New(apperr.NotFound, "There is no such "+what+" on this Confluence site, or Space Sync may not see it.")
}

// Space returns the space with the key (v2 GET /api/v2/spaces?keys=KEY).
// The error is not_found when there is none the app can see.
func (s *Site) Space(ctx context.Context, key string) (*Space, error) {
	if !spaceKeyPattern.MatchString(key) {
		return nil, notFound("space")
	}
	u, err := s.apiURL("/api/v2/spaces", query{}.add("keys", key).add("limit", "1"))
	if err != nil {
		return nil, err
	}
	var p wireSpacesPage
	if err := s.getJSON(ctx, u, &p); err != nil {
		return nil, err
	}
	for _, w := range p.Results {
		if w.Key == key {
			sp := w.space()
			return &sp, nil
		}
	}
	return nil, notFound("space")
}

// SpaceByID returns the space with the id (v2 GET /api/v2/spaces/{id}).
func (s *Site) SpaceByID(ctx context.Context, id string) (*Space, error) {
	if !idPattern.MatchString(id) {
		return nil, notFound("space")
	}
	u, err := s.apiURL("/api/v2/spaces/"+id, nil)
	if err != nil {
		return nil, err
	}
	var w wireSpace
	if err := s.getJSON(ctx, u, &w); err != nil {
		return nil, err
	}
	sp := w.space()
	return &sp, nil
}

// spacePerms is the compact form of a space's permissions that the checks
// need: who holds administer and read on the space.
type spacePerms struct {
	holders map[string]bool // op \x00 principal type \x00 id
	groupOp map[string]bool // op held by at least one group
}

func (p spacePerms) has(op, typ, id string) bool { return p.holders[op+"\x00"+typ+"\x00"+id] }

type wirePermsPage struct {
	Results []struct {
		Principal struct {
			Type string     `json:"type"`
			ID   flexString `json:"id"`
		} `json:"principal"`
		Operation struct {
			Key        string `json:"key"`
			TargetType string `json:"targetType"`
		} `json:"operation"`
	} `json:"results"`
	Links wireLinks `json:"_links"`
}

// spacePermissions loads (or recalls) who holds administer and read on the
// space (v2 GET /api/v2/spaces/{id}/permissions, all pages).
func (s *Site) spacePermissions(ctx context.Context, spaceID string) (spacePerms, error) {
	if !idPattern.MatchString(spaceID) {
		return spacePerms{}, notFound("space")
	}
	if s.err != nil {
		return spacePerms{}, s.err
	}
	key := s.tenant.ClientKey + "\x00" + spaceID
	if p, ok := s.c.perms.get(key); ok {
		return p, nil
	}
	u, err := s.apiURL("/api/v2/spaces/"+spaceID+"/permissions", query{}.add("limit", "250"))
	if err != nil {
		return spacePerms{}, err
	}
	p := spacePerms{holders: map[string]bool{}, groupOp: map[string]bool{}}
	err = s.paginate(ctx, u, func() any { return &wirePermsPage{} }, func(page any) string {
		pp := page.(*wirePermsPage)
		for _, r := range pp.Results {
			if r.Operation.TargetType != "space" || (r.Operation.Key != OpAdminister && r.Operation.Key != OpRead) {
				continue
			}
			p.holders[r.Operation.Key+"\x00"+r.Principal.Type+"\x00"+string(r.Principal.ID)] = true
			if r.Principal.Type == "group" {
				p.groupOp[r.Operation.Key] = true
			}
		}
		return pp.Links.Next
	})
	if err != nil {
		return spacePerms{}, err
	}
	s.c.perms.put(key, p)
	return p, nil
}

// IsSpaceAdmin reports whether the user holds the space permission
// administer/space, directly or through one of their groups (v2 space
// permissions, v1 group memberships). Answers are built from data cached
// for CacheTTL, so repeated checks cost no calls.
func (s *Site) IsSpaceAdmin(ctx context.Context, accountID, spaceID string) (bool, error) {
	return s.holds(ctx, OpAdminister, accountID, spaceID)
}

// CanViewSpace reports whether the user holds read/space, directly or
// through a group; cached like IsSpaceAdmin.
func (s *Site) CanViewSpace(ctx context.Context, accountID, spaceID string) (bool, error) {
	return s.holds(ctx, OpRead, accountID, spaceID)
}

func (s *Site) holds(ctx context.Context, op, accountID, spaceID string) (bool, error) {
	if !accountPattern.MatchString(accountID) {
		return false, nil
	}
	p, err := s.spacePermissions(ctx, spaceID)
	if err != nil {
		return false, err
	}
	if p.has(op, "user", accountID) {
		return true, nil
	}
	if !p.groupOp[op] {
		return false, nil
	}
	groups, err := s.groupIDs(ctx, accountID)
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		if p.has(op, "group", g) {
			return true, nil
		}
	}
	return false, nil
}

func (s *Site) groupIDs(ctx context.Context, accountID string) ([]string, error) {
	key := s.tenant.ClientKey + "\x00" + accountID
	if ids, ok := s.c.groups.get(key); ok {
		return ids, nil
	}
	groups, err := s.UserGroups(ctx, accountID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
	}
	s.c.groups.put(key, ids)
	return ids, nil
}

type wireGroupsPage struct {
	Results []struct {
		Type string     `json:"type"`
		Name string     `json:"name"`
		ID   flexString `json:"id"`
	} `json:"results"`
	Size  int       `json:"size"`
	Links wireLinks `json:"_links"`
}

func (p *wireGroupsPage) groups() []Group {
	out := make([]Group, 0, len(p.Results))
	for _, r := range p.Results {
		out = append(out, Group{ID: string(r.ID), Name: r.Name})
	}
	return out
}

// groupsPageSize is the page size of v1 group lists.
const groupsPageSize = 200

// UserGroups lists the groups of a user (v1 GET
// /rest/api/user/memberof?accountId=, all pages by start and limit).
func (s *Site) UserGroups(ctx context.Context, accountID string) ([]Group, error) {
	if !accountPattern.MatchString(accountID) {
		return nil, notFound("user")
	}
	var out []Group
	for start, pages := 0, 0; ; pages++ {
		if pages >= maxPages {
			return nil, apperr.Wrap(ErrPaginationLoop, apperr.Internal, "Confluence answered in a way Space Sync does not understand.")
		}
		u, err := s.apiURL("/rest/api/user/memberof", query{}.add("accountId", accountID).
			add("start", strconv.Itoa(start)).add("limit", strconv.Itoa(groupsPageSize)))
		if err != nil {
			return nil, err
		}
		var p wireGroupsPage
		if err := s.getJSON(ctx, u, &p); err != nil {
			return nil, err
		}
		out = append(out, p.groups()...)
		// Stop on an empty page, or a short one without a next link.
		if len(p.Results) == 0 || (p.Links.Next == "" && len(p.Results) < groupsPageSize) {
			return out, nil
		}
		start += len(p.Results)
	}
}

type wireUser struct {
	AccountID      string `json:"accountId"`
	AccountType    string `json:"accountType"`
	DisplayName    string `json:"displayName"`
	PublicName     string `json:"publicName"`
	Email          string `json:"email"`
	ProfilePicture struct {
		Path string `json:"path"`
	} `json:"profilePicture"`
}

func (w wireUser) user() User {
	return User{AccountID: w.AccountID, AccountType: w.AccountType, DisplayName: w.DisplayName,
		PublicName: w.PublicName, Email: w.Email, ProfilePicture: w.ProfilePicture.Path}
}

// User returns a user by account id (v1 GET /rest/api/user?accountId=).
func (s *Site) User(ctx context.Context, accountID string) (*User, error) {
	if !accountPattern.MatchString(accountID) {
		return nil, notFound("user")
	}
	u, err := s.apiURL("/rest/api/user", query{}.add("accountId", accountID))
	if err != nil {
		return nil, err
	}
	var w wireUser
	if err := s.getJSON(ctx, u, &w); err != nil {
		return nil, err
	}
	us := w.user()
	return &us, nil
}

// maxSearch bounds a search query and its results.
const (
	maxSearchQuery = 100
	maxSearchLimit = 50
)

func searchArgs(q string, limit int) (string, int, bool) {
	q = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, q))
	if q == "" {
		return "", 0, false
	}
	if r := []rune(q); len(r) > maxSearchQuery {
		q = string(r[:maxSearchQuery])
	}
	if limit <= 0 || limit > maxSearchLimit {
		limit = maxSearchLimit
	}
	return q, limit, true
}

// CQLString quotes s as a CQL string literal: backslash and double quote
// are escaped, so the text cannot end the literal or add clauses.
func CQLString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// SearchUsers finds users whose full name matches text (v1 GET
// /rest/api/search/user?cql=user.fullname~"text"). Empty text finds none.
func (s *Site) SearchUsers(ctx context.Context, text string, limit int) ([]User, error) {
	text, limit, ok := searchArgs(text, limit)
	if !ok {
		return nil, nil
	}
	u, err := s.apiURL("/rest/api/search/user", query{}.add("cql", "user.fullname~"+CQLString(text)).add("limit", strconv.Itoa(limit)))
	if err != nil {
		return nil, err
	}
	var p struct {
		Results []struct {
			User wireUser `json:"user"`
		} `json:"results"`
	}
	if err := s.getJSON(ctx, u, &p); err != nil {
		return nil, err
	}
	out := make([]User, 0, len(p.Results))
	for _, r := range p.Results {
		if r.User.AccountID != "" {
			out = append(out, r.User.user())
		}
	}
	return out, nil
}

// SearchGroups finds groups whose name matches text (v1 GET
// /rest/api/group/picker?query=). Empty text finds none.
func (s *Site) SearchGroups(ctx context.Context, text string, limit int) ([]Group, error) {
	text, limit, ok := searchArgs(text, limit)
	if !ok {
		return nil, nil
	}
	u, err := s.apiURL("/rest/api/group/picker", query{}.add("query", text).add("limit", strconv.Itoa(limit)))
	if err != nil {
		return nil, err
	}
	var p wireGroupsPage
	if err := s.getJSON(ctx, u, &p); err != nil {
		return nil, err
	}
	return p.groups(), nil
}

// ttlCache is a small map with expiry and a size bound; safe to lose.
type ttlCache[V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[V any](ttl time.Duration, max int, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, max: max, now: now, m: map[string]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}
