package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
)

const fakeAppKey = "space-sync-test"

// fakeConfluence is a Confluence Cloud stand-in under /wiki that verifies
// every request as Atlassian does (JWT scheme, HS256 with the tenant
// secret, iss = app key, a short expiry, the qsh of the request without
// /wiki) and answers 401 otherwise.
type fakeConfluence struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	calls    map[string]int
	failures []string
	// override, when set for a path, answers instead of the defaults.
	override map[string]http.HandlerFunc

	spaces []Space
	perms  map[string][][3]string // space id -> [op, principal type, principal id]
	groups map[string][]Group     // account id -> groups
	users  map[string]User
}

func newFakeConfluence(t *testing.T) *fakeConfluence {
	f := &fakeConfluence{t: t, secret: "sharedsecret", calls: map[string]int{}, override: map[string]http.HandlerFunc{},
		perms: map[string][][3]string{}, groups: map[string][]Group{}, users: map[string]User{}}
	for i := 1; i <= 600; i++ {
		f.spaces = append(f.spaces, Space{ID: strconv.Itoa(1000 + i), Key: fmt.Sprintf("K%03d", i), Name: fmt.Sprintf("Space %d", i), Type: "global", Status: "current"})
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		for _, m := range f.failures {
			t.Errorf("fake Confluence refused a request: %s", m)
		}
	})
	return f
}

func (f *fakeConfluence) tenant() *store.Tenant {
	return &store.Tenant{ID: "t-1", ClientKey: "ck-1", BaseURL: f.srv.URL + "/wiki", SharedSecret: store.SharedSecret(f.secret), State: store.TenantEnabled}
}

func (f *fakeConfluence) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

func (f *fakeConfluence) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *fakeConfluence) refuse(w http.ResponseWriter, why string) {
	f.mu.Lock()
	f.failures = append(f.failures, why)
	f.mu.Unlock()
	http.Error(w, why, http.StatusUnauthorized)
}

func (f *fakeConfluence) serve(w http.ResponseWriter, r *http.Request) {
	path, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	f.mu.Lock()
	f.calls[path]++
	h := f.override[path]
	f.mu.Unlock()

	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "JWT" {
		f.refuse(w, "no JWT authorization on "+path)
		return
	}
	tok, err := ParseToken(raw)
	if err != nil || tok.VerifyHS256([]byte(f.secret)) != nil {
		f.refuse(w, "bad token on "+path)
		return
	}
	c := tok.Claims
	now := time.Now().Unix()
	if c.Issuer != fakeAppKey || c.ExpiresAt < now || c.ExpiresAt-c.IssuedAt > 300 || c.Subject != "" {
		f.refuse(w, fmt.Sprintf("bad claims on %s: %+v", path, c))
		return
	}
	want, err := RequestQSH(r.Method, path, rawQuery, "/wiki")
	if err != nil || c.QSH != want {
		f.refuse(w, "qsh mismatch on "+r.RequestURI)
		return
	}
	if h != nil {
		h(w, r)
		return
	}
	q := r.URL.Query()
	switch {
	case path == "/wiki/api/v2/spaces":
		f.serveSpaces(w, q.Get("keys"), q.Get("cursor"), q.Get("limit"))
	case strings.HasPrefix(path, "/wiki/api/v2/spaces/") && strings.HasSuffix(path, "/permissions"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/wiki/api/v2/spaces/"), "/permissions")
		var results []map[string]any
		for _, p := range f.perms[id] {
			results = append(results, map[string]any{"id": "p", "principal": map[string]any{"type": p[1], "id": p[2]},
				"operation": map[string]any{"key": p[0], "targetType": "space"}})
		}
		writeJSON(w, map[string]any{"results": results, "_links": map[string]any{}})
	case path == "/wiki/rest/api/user/memberof":
		var results []map[string]any
		for _, g := range f.groups[q.Get("accountId")] {
			results = append(results, map[string]any{"type": "group", "name": g.Name, "id": g.ID})
		}
		writeJSON(w, map[string]any{"results": results, "start": 0, "limit": 200, "size": len(results), "_links": map[string]any{}})
	case path == "/wiki/rest/api/user":
		u, ok := f.users[q.Get("accountId")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, map[string]any{"accountId": u.AccountID, "displayName": u.DisplayName, "accountType": "atlassian"})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeConfluence) serveSpaces(w http.ResponseWriter, keys, cursor, limitS string) {
	limit, _ := strconv.Atoi(limitS)
	if limit <= 0 {
		limit = 25
	}
	var all []Space
	if keys != "" {
		for _, s := range f.spaces {
			for _, k := range strings.Split(keys, ",") {
				if s.Key == k {
					all = append(all, s)
				}
			}
		}
	} else {
		all = f.spaces
	}
	start, _ := strconv.Atoi(cursor)
	end := min(start+limit, len(all))
	var results []map[string]any
	for _, s := range all[start:end] {
		results = append(results, map[string]any{"id": s.ID, "key": s.Key, "name": s.Name, "type": s.Type, "status": s.Status,
			"_links": map[string]any{"webui": "/spaces/" + s.Key}})
	}
	links := map[string]any{"base": f.srv.URL + "/wiki"}
	if end < len(all) {
		links["next"] = fmt.Sprintf("/wiki/api/v2/spaces?cursor=%d&limit=%d", end, limit)
	}
	writeJSON(w, map[string]any{"results": results, "_links": links})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func newTestClient(c ClientConfig) *Client {
	c.AppKey = fakeAppKey
	return NewClient(c)
}

func TestSite_AllSpaces(t *testing.T) {
	f := newFakeConfluence(t)
	site := newTestClient(ClientConfig{}).Site(f.tenant())
	got, err := site.AllSpaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 600 || got[0].Key != "K001" || got[599].Key != "K600" || got[0].ID != "1001" || got[0].WebUI != "/spaces/K001" {
		t.Fatalf("got %d spaces (%+v ... ), want 600 in order", len(got), got[0])
	}
	if n := f.count("/wiki/api/v2/spaces"); n != 3 {
		t.Errorf("pages fetched: %d, want 3", n)
	}
}

func TestSite_SpacesPage(t *testing.T) {
	f := newFakeConfluence(t)
	site := newTestClient(ClientConfig{}).Site(f.tenant())
	var keys []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("no end")
		}
		got, next, err := site.SpacesPage(context.Background(), cursor, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			keys = append(keys, s.Key)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(keys) != 600 || keys[200] != "K201" {
		t.Fatalf("got %d keys", len(keys))
	}
}

func TestSite_AllSpaces_ErrPaginationLoop(t *testing.T) {
	f := newFakeConfluence(t)
	f.override["/wiki/api/v2/spaces"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"results": []any{map[string]any{"id": "1", "key": "A"}},
			"_links": map[string]any{"next": "/wiki/api/v2/spaces?cursor=same&limit=250"}})
	}
	_, err := newTestClient(ClientConfig{}).Site(f.tenant()).AllSpaces(context.Background())
	if !errors.Is(err, ErrPaginationLoop) {
		t.Fatalf("got %v, want ErrPaginationLoop", err)
	}
	if n := f.count("/wiki/api/v2/spaces"); n != 2 {
		t.Errorf("requests: %d, want 2 (the first page and the repeated link once)", n)
	}
}

func TestSite_AllSpaces_ErrForeignHost(t *testing.T) {
	f := newFakeConfluence(t)
	var evilCalls int
	var evilMu sync.Mutex
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilMu.Lock()
		evilCalls++
		evilMu.Unlock()
		writeJSON(w, map[string]any{"results": []any{}})
	}))
	defer evil.Close()
	for _, next := range []string{evil.URL + "/wiki/api/v2/spaces?cursor=1", "//" + strings.TrimPrefix(evil.URL, "http://") + "/wiki/api/v2/spaces?cursor=1", "https://" + strings.TrimPrefix(f.srv.URL, "http://") + "/wiki/api/v2/spaces?cursor=1"} {
		t.Run(next, func(t *testing.T) {
			f.override["/wiki/api/v2/spaces"] = func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, map[string]any{"results": []any{}, "_links": map[string]any{"next": next}})
			}
			_, err := newTestClient(ClientConfig{}).Site(f.tenant()).AllSpaces(context.Background())
			if !errors.Is(err, ErrForeignHost) {
				t.Fatalf("got %v, want ErrForeignHost", err)
			}
		})
	}
	// The twin: an absolute link to the tenant's own host is followed.
	f.override["/wiki/api/v2/spaces"] = func(w http.ResponseWriter, r *http.Request) {
		links := map[string]any{}
		if r.URL.Query().Get("cursor") == "" {
			links["next"] = f.srv.URL + "/wiki/api/v2/spaces?cursor=1&limit=250"
		}
		writeJSON(w, map[string]any{"results": []any{map[string]any{"id": 1, "key": "A"}}, "_links": links})
	}
	got, err := newTestClient(ClientConfig{}).Site(f.tenant()).AllSpaces(context.Background())
	if err != nil || len(got) != 2 || got[1].ID != "1" {
		t.Fatalf("own host: got %v, %v; want two spaces", got, err)
	}
	if evilCalls != 0 {
		t.Fatalf("the foreign host was called %d times", evilCalls)
	}
}

func TestSite_RetryAfter(t *testing.T) {
	f := newFakeConfluence(t)
	var n int
	f.override["/wiki/rest/api/user"] = func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		writeJSON(w, map[string]any{"accountId": "acc-1", "displayName": "Ada"})
	}
	start := time.Now()
	u, err := newTestClient(ClientConfig{}).Site(f.tenant()).User(context.Background(), "acc-1")
	if err != nil || u.DisplayName != "Ada" {
		t.Fatalf("got %v, %v", u, err)
	}
	if el := time.Since(start); el < time.Second || el > 3*time.Second {
		t.Errorf("took %v, want the Retry-After second plus jitter", el)
	}
	if n != 2 {
		t.Errorf("attempts: %d, want 2", n)
	}
}

func TestSite_Retry_Errors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		cfg        ClientConfig
		ctxTimeout time.Duration
		wantCode   apperr.Code
		wantCalls  int
	}{
		{"503 exhausting retries", 503, "0", ClientConfig{MaxRetries: 2}, 0, apperr.Unavailable, 3},
		{"429 exhausting retries", 429, "0", ClientConfig{MaxRetries: 1}, 0, apperr.RateLimited, 2},
		{"Retry-After beyond the cap fails at once", 429, "60", ClientConfig{MaxRetryWait: 10 * time.Second}, 0, apperr.RateLimited, 1},
		{"Retry-After beyond the context deadline", 503, "2", ClientConfig{}, 500 * time.Millisecond, apperr.Unavailable, 1},
		{"500 is not retried", 500, "", ClientConfig{}, 0, apperr.Unavailable, 1},
		{"403 is not retried", 403, "", ClientConfig{}, 0, apperr.Internal, 1},
		{"404", 404, "", ClientConfig{}, 0, apperr.NotFound, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeConfluence(t)
			f.override["/wiki/rest/api/user"] = func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
			}
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			_, err := newTestClient(tt.cfg).Site(f.tenant()).User(ctx, "acc-1")
			if c := apperr.CodeOf(err); c != tt.wantCode {
				t.Fatalf("got %v (code %s), want %s", err, c, tt.wantCode)
			}
			if n := f.count("/wiki/rest/api/user"); n != tt.wantCalls {
				t.Errorf("calls: %d, want %d", n, tt.wantCalls)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %v", el)
			}
			if ae := apperr.As(err); tt.retryAfter == "60" && ae.RetryAfter != 60 {
				t.Errorf("RetryAfter %d, want 60", ae.RetryAfter)
			}
		})
	}
}

func TestSite_Timeout(t *testing.T) {
	f := newFakeConfluence(t)
	release := make(chan struct{})
	defer close(release)
	f.override["/wiki/rest/api/user"] = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}
	start := time.Now()
	_, err := newTestClient(ClientConfig{Timeout: 200 * time.Millisecond}).Site(f.tenant()).User(context.Background(), "acc-1")
	if c := apperr.CodeOf(err); c != apperr.Unavailable {
		t.Fatalf("got %v, want unavailable", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v, want about the 200 ms timeout", el)
	}
}

func TestSite_IsSpaceAdmin(t *testing.T) {
	f := newFakeConfluence(t)
	f.perms["1001"] = [][3]string{
		{"administer", "user", "acc-direct"},
		{"administer", "group", "g-admins"},
		{"read", "group", "g-readers"},
		{"read", "user", "acc-direct"},
		{"delete", "user", "acc-deleter"},
		{"administer", "role", "r-1"},
	}
	f.perms["1002"] = [][3]string{{"read", "user", "acc-direct"}}
	f.groups["acc-member"] = []Group{{ID: "g-other", Name: "other"}, {ID: "g-admins", Name: "space-admins"}}
	f.groups["acc-reader"] = []Group{{ID: "g-readers", Name: "readers"}}
	client := newTestClient(ClientConfig{})
	site := client.Site(f.tenant())
	ctx := context.Background()
	tests := []struct {
		op, account, space string
		want               bool
	}{
		{OpAdminister, "acc-direct", "1001", true},
		{OpAdminister, "acc-member", "1001", true},
		{OpAdminister, "acc-reader", "1001", false},
		{OpAdminister, "acc-deleter", "1001", false},
		{OpAdminister, "acc-direct", "1002", false},
		{OpRead, "acc-reader", "1001", true},
		{OpRead, "acc-member", "1001", false},
		{OpRead, "acc-direct", "1002", true},
		{OpAdminister, "r-1", "1001", false},
	}
	for _, tt := range tests {
		t.Run(tt.op+"/"+tt.account+"/"+tt.space, func(t *testing.T) {
			var got bool
			var err error
			if tt.op == OpAdminister {
				got, err = site.IsSpaceAdmin(ctx, tt.account, tt.space)
			} else {
				got, err = site.CanViewSpace(ctx, tt.account, tt.space)
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	// Everything above is now cached: asking again costs no call.
	before := f.total()
	for _, tt := range tests {
		if tt.op == OpAdminister {
			site.IsSpaceAdmin(ctx, tt.account, tt.space)
		}
	}
	if n := f.total() - before; n != 0 {
		t.Errorf("cached checks made %d calls, want 0", n)
	}
	// The permission list of 1001 was fetched once; acc-direct's groups never.
	if n := f.count("/wiki/api/v2/spaces/1001/permissions"); n != 1 {
		t.Errorf("permission fetches of 1001: %d, want 1", n)
	}
	// Another tenant with the same space id does not share the cache.
	other := f.tenant()
	other.ClientKey = "ck-2"
	if _, err := client.Site(other).IsSpaceAdmin(ctx, "acc-direct", "1001"); err != nil {
		t.Fatal(err)
	}
	if n := f.count("/wiki/api/v2/spaces/1001/permissions"); n != 2 {
		t.Errorf("permission fetches after another tenant asked: %d, want 2", n)
	}
	// Bad ids never reach Confluence.
	if _, err := site.IsSpaceAdmin(ctx, "acc-direct", "../1001"); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("bad space id: %v", err)
	}
}

func TestSite_IsSpaceAdmin_CacheExpires(t *testing.T) {
	f := newFakeConfluence(t)
	f.perms["1001"] = [][3]string{{"administer", "user", "acc-1"}}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	site := newTestClient(ClientConfig{Now: clock, CacheTTL: time.Minute}).Site(f.tenant())
	for range 2 {
		if ok, err := site.IsSpaceAdmin(context.Background(), "acc-1", "1001"); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	f.perms["1001"] = nil // revoked in Confluence
	if ok, err := site.IsSpaceAdmin(context.Background(), "acc-1", "1001"); ok || err != nil {
		t.Fatalf("after the TTL: got %v, %v; want false", ok, err)
	}
	if n := f.count("/wiki/api/v2/spaces/1001/permissions"); n != 2 {
		t.Errorf("permission fetches: %d, want 2", n)
	}
}

func TestSite_Space(t *testing.T) {
	f := newFakeConfluence(t)
	site := newTestClient(ClientConfig{}).Site(f.tenant())
	sp, err := site.Space(context.Background(), "K042")
	if err != nil || sp.ID != "1042" || sp.Name != "Space 42" {
		t.Fatalf("got %+v, %v", sp, err)
	}
	for _, key := range []string{"NOPE", "K0,K1", ""} {
		if _, err := site.Space(context.Background(), key); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("Space(%q): got %v, want not_found", key, err)
		}
	}
}

func TestSite_Search(t *testing.T) {
	f := newFakeConfluence(t)
	var gotCQL, gotQuery string
	f.override["/wiki/rest/api/search/user"] = func(w http.ResponseWriter, r *http.Request) {
		gotCQL = r.URL.Query().Get("cql")
		writeJSON(w, map[string]any{"results": []any{
			map[string]any{"user": map[string]any{"accountId": "acc-1", "displayName": "Ada \"The\" Lovelace", "accountType": "atlassian"}},
			map[string]any{"user": map[string]any{}},
		}})
	}
	f.override["/wiki/rest/api/group/picker"] = func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.Query().Get("query")
		writeJSON(w, map[string]any{"results": []any{map[string]any{"type": "group", "name": "space-admins", "id": "g-1"}}, "size": 1})
	}
	site := newTestClient(ClientConfig{}).Site(f.tenant())
	users, err := site.SearchUsers(context.Background(), ` Ada "The" \Love+lace~ `, 10)
	if err != nil || len(users) != 1 || users[0].AccountID != "acc-1" {
		t.Fatalf("SearchUsers: %+v, %v", users, err)
	}
	if want := `user.fullname~"Ada \"The\" \\Love+lace~"`; gotCQL != want {
		t.Errorf("cql: got %s, want %s", gotCQL, want)
	}
	groups, err := site.SearchGroups(context.Background(), "space adm", 0)
	if err != nil || len(groups) != 1 || groups[0] != (Group{ID: "g-1", Name: "space-admins"}) {
		t.Fatalf("SearchGroups: %+v, %v", groups, err)
	}
	if gotQuery != "space adm" {
		t.Errorf("group query: %q", gotQuery)
	}
	before := f.total()
	if u, err := site.SearchUsers(context.Background(), "  \n", 10); u != nil || err != nil {
		t.Errorf("blank search: %v, %v", u, err)
	}
	if f.total() != before {
		t.Error("a blank search called Confluence")
	}
}

func TestSite_UserGroups_Pages(t *testing.T) {
	f := newFakeConfluence(t)
	f.override["/wiki/rest/api/user/memberof"] = func(w http.ResponseWriter, r *http.Request) {
		start, _ := strconv.Atoi(r.URL.Query().Get("start"))
		var results []map[string]any
		for i := start; i < min(start+groupsPageSize, 450); i++ {
			results = append(results, map[string]any{"type": "group", "name": fmt.Sprintf("g%d", i), "id": fmt.Sprintf("id-%d", i)})
		}
		links := map[string]any{}
		if start+groupsPageSize < 450 {
			links["next"] = fmt.Sprintf("/rest/api/user/memberof?accountId=x&start=%d&limit=200", start+groupsPageSize)
		}
		writeJSON(w, map[string]any{"results": results, "_links": links})
	}
	groups, err := newTestClient(ClientConfig{}).Site(f.tenant()).UserGroups(context.Background(), "acc-1")
	if err != nil || len(groups) != 450 || groups[449].ID != "id-449" {
		t.Fatalf("got %d groups, %v", len(groups), err)
	}
}
