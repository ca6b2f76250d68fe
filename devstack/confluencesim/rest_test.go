package confluencesim_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"spacesync.io/devstack/confluencesim"
)

type spacesPage struct {
	Results []struct {
		ID, Key, Name, Type, Status string
		AuthorID                    string `json:"authorId"`
		Links                       struct {
			WebUI string `json:"webui"`
		} `json:"_links"`
	} `json:"results"`
	Links struct {
		Next string `json:"next"`
		Base string `json:"base"`
	} `json:"_links"`
}

// TestREST_Verification checks the simulator's verifier with tokens made
// by npm atlassian-jwt: a correct token is accepted, and each single defect
// is refused with 401 and Atlassian's {"code", "message"} body.
func TestREST_Verification(t *testing.T) {
	h := newHarness(t, harnessOpts{secret: "sharedsecret"}) // short: no minimum length is promised
	const path = "/wiki/api/v2/spaces?keys=ENG,DOCS&limit=5&sort=-key"
	url := h.srv.URL + path
	now := time.Now().Unix()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "space-sync-test", "iat": now, "exp": now + 180}
		if mod != nil {
			mod(c)
		}
		return c
	}
	qsh := oracle(t,
		ajwtOp{Op: "qsh", Method: "GET", URL: url, BaseURL: h.sim.BaseURL()},
		ajwtOp{Op: "qsh", Method: "GET", URL: h.srv.URL + "/wiki/api/v2/spaces?keys=ENG&limit=5&sort=-key", BaseURL: h.sim.BaseURL()},
		ajwtOp{Op: "qsh", Method: "GET", URL: url, BaseURL: h.srv.URL}, // forgot to strip /wiki
	)
	if qsh[0].Canonical != "GET&/api/v2/spaces&keys=ENG%2CDOCS&limit=5&sort=-key" {
		t.Fatalf("oracle canonical = %q", qsh[0].Canonical)
	}
	good := qsh[0].QSH
	cases := []struct {
		name    string
		payload map[string]any
		secret  string
		scheme  string
		want    int
		message string
	}{
		{"OK", claims(func(c map[string]any) { c["qsh"] = good }), "sharedsecret", "JWT", 200, ""},
		{"OK with aud and sub", claims(func(c map[string]any) { c["qsh"] = good; c["aud"] = []string{"x"}; c["sub"] = "y" }), "sharedsecret", "JWT", 200, ""},
		{"ErrWrongSecret", claims(func(c map[string]any) { c["qsh"] = good }), "sharedsecreT", "JWT", 401, "signature"},
		{"ErrIssIsClientKey", claims(func(c map[string]any) { c["qsh"] = good; c["iss"] = h.sim.ClientKey() }), "sharedsecret", "JWT", 401, "clientKey"},
		{"ErrWrongIss", claims(func(c map[string]any) { c["qsh"] = good; c["iss"] = "other-app" }), "sharedsecret", "JWT", 401, "iss"},
		{"ErrQshOfOtherRequest", claims(func(c map[string]any) { c["qsh"] = qsh[1].QSH }), "sharedsecret", "JWT", 401, "qsh"},
		{"ErrQshWithWiki", claims(func(c map[string]any) { c["qsh"] = qsh[2].QSH }), "sharedsecret", "JWT", 401, "GET&/api/v2/spaces&keys=ENG%2CDOCS"},
		{"ErrContextQsh", claims(func(c map[string]any) { c["qsh"] = "context-qsh" }), "sharedsecret", "JWT", 401, "context"},
		{"ErrNoQsh", claims(nil), "sharedsecret", "JWT", 401, "qsh"},
		{"ErrExpired", claims(func(c map[string]any) { c["qsh"] = good; c["iat"] = now - 600; c["exp"] = now - 120 }), "sharedsecret", "JWT", 401, "expired"},
		{"OK just expired within leeway", claims(func(c map[string]any) { c["qsh"] = good; c["iat"] = now - 600; c["exp"] = now - 5 }), "sharedsecret", "JWT", 200, ""},
		{"ErrNoExp", claims(func(c map[string]any) { c["qsh"] = good; delete(c, "exp") }), "sharedsecret", "JWT", 401, "exp"},
		{"ErrBearer", claims(func(c map[string]any) { c["qsh"] = good }), "sharedsecret", "Bearer", 401, "Bearer"},
	}
	ops := make([]ajwtOp, len(cases))
	for i, c := range cases {
		ops[i] = ajwtOp{Op: "encodeSymmetric", Payload: c.payload, Secret: c.secret}
	}
	toks := oracle(t, ops...)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if toks[i].Error != "" {
				t.Fatal(toks[i].Error)
			}
			resp, body := h.do(t, "GET", path, c.scheme+" "+toks[i].Token)
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.want, body)
			}
			if c.want == 401 {
				var e struct {
					Code    int
					Message string
				}
				mustJSON(t, body, &e)
				if e.Code != 401 || !strings.Contains(e.Message, c.message) {
					t.Errorf("body = %s, want code 401 and a message mentioning %q", body, c.message)
				}
				if strings.Contains(string(body), toks[i].Token) || strings.Contains(string(body), "sharedsecret") {
					t.Error("the 401 body echoes the token or the secret")
				}
			}
		})
	}

	// alg none and a missing header, each with the OK case above as twin.
	parts := strings.Split(toks[0].Token, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	for name, auth := range map[string]string{"ErrAlgNone": "JWT " + none, "ErrNoHeader": "", "ErrGarbage": "JWT a.b"} {
		t.Run(name, func(t *testing.T) {
			if resp, body := h.do(t, "GET", path, auth); resp.StatusCode != 401 {
				t.Errorf("status %d, want 401: %s", resp.StatusCode, body)
			}
		})
	}

	// The request log records both outcomes without the token.
	var ok, refused int
	for _, r := range h.sim.Requests() {
		if r.Verified {
			ok++
		} else {
			refused++
		}
		if strings.Contains(r.Query, "eyJ") {
			t.Errorf("recorded query holds a token: %q", r.Query)
		}
	}
	if ok != 3 || refused != len(cases)-3+3 {
		t.Errorf("recorded %d verified and %d refused calls, want 3 and %d", ok, refused, len(cases))
	}
}

func TestREST_NotInstalled(t *testing.T) {
	h := newHarness(t, harnessOpts{noInstall: true})
	resp, body := h.do(t, "GET", "/wiki/api/v2/spaces", "JWT "+signAs(t, "space-sync-test", h.sim.SharedSecret(), "GET", "/wiki/api/v2/spaces"))
	if resp.StatusCode != 401 || !strings.Contains(string(body), "No app is installed") {
		t.Errorf("status %d body %s, want 401 no app", resp.StatusCode, body)
	}
}

// TestREST_SpacesPagination walks all 5,000 spaces of a generated site by
// following _links.next, each link exactly once.
func TestREST_SpacesPagination(t *testing.T) {
	h := newHarness(t, harnessOpts{seed: confluencesim.GenerateSeed(5000)})
	for _, tc := range []struct {
		first     string
		wantCalls int
		sorted    func(a, b string) bool
		field     func(id, key, name string) string
	}{
		{"/wiki/api/v2/spaces", 200, nil, nil},
		{"/wiki/api/v2/spaces?limit=250", 20, nil, nil},
		{"/wiki/api/v2/spaces?limit=1000&sort=-name", 20, func(a, b string) bool { return a >= b }, func(_, _, n string) string { return n }},
		{"/wiki/api/v2/spaces?sort=key&limit=97", 52, func(a, b string) bool { return a < b }, func(_, k, _ string) string { return k }},
	} {
		t.Run(tc.first, func(t *testing.T) {
			h.sim.ResetRequests()
			seen := map[string]bool{}
			followed := map[string]bool{}
			var prev string
			next, calls := tc.first, 0
			for next != "" {
				if followed[next] {
					t.Fatalf("next link %s came back twice", next)
				}
				followed[next] = true
				resp, body := h.get(t, next)
				calls++
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %d %s", next, resp.StatusCode, body)
				}
				var p spacesPage
				mustJSON(t, body, &p)
				for _, r := range p.Results {
					if seen[r.ID] {
						t.Fatalf("space %s returned twice", r.ID)
					}
					seen[r.ID] = true
					if tc.sorted != nil {
						v := tc.field(r.ID, r.Key, r.Name)
						if prev != "" && !tc.sorted(prev, v) {
							t.Fatalf("order broken: %q then %q", prev, v)
						}
						prev = v
					}
				}
				if p.Links.Base != h.sim.BaseURL() {
					t.Errorf("_links.base = %q", p.Links.Base)
				}
				link := resp.Header.Get("Link")
				if p.Links.Next != "" {
					if !strings.HasPrefix(p.Links.Next, "/wiki/api/v2/spaces?cursor=") || !strings.Contains(p.Links.Next, "==&") {
						t.Fatalf("_links.next = %q, want /wiki/api/v2/spaces?cursor=<padded base64>&...", p.Links.Next)
					}
					if want := "<" + p.Links.Next + `>; rel="next", <` + h.sim.BaseURL() + `>; rel="base"`; link != want {
						t.Fatalf("Link = %q, want %q", link, want)
					}
				} else if link != "" {
					t.Fatalf("last page has a Link header %q", link)
				}
				next = p.Links.Next
			}
			if len(seen) != 5000 || calls != tc.wantCalls {
				t.Errorf("saw %d spaces in %d calls, want 5000 in %d", len(seen), calls, tc.wantCalls)
			}
			for _, r := range h.sim.Requests() {
				if !r.Verified || r.Status != 200 {
					t.Fatalf("recorded %+v", r)
				}
			}
		})
	}
}

func TestREST_SpacesFilters(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	keysOf := func(t *testing.T, q string) []string {
		t.Helper()
		resp, body := h.get(t, "/wiki/api/v2/spaces"+q)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
		var p spacesPage
		mustJSON(t, body, &p)
		var keys []string
		for _, r := range p.Results {
			keys = append(keys, r.Key)
		}
		return keys
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"?keys=ENG,DOCS", []string{"ENG", "DOCS"}},
		{"?keys=DOCS&keys=ENG&keys=NOPE", []string{"ENG", "DOCS"}},
		{"?keys=ENG%2CMKT", []string{"ENG", "MKT"}},
		{"?ids=65539&ids=65537", []string{"ENG", "MKT"}},
		{"?type=personal", []string{"~5570580b8f5a4e6f5f4b7e9c1a3d2e1f0a9b01"}},
		{"?status=archived", []string{"OLD"}},
		{"?sort=-key&limit=3", []string{"~5570580b8f5a4e6f5f4b7e9c1a3d2e1f0a9b01", "SALES", "PROD"}},
		{"?sort=name&limit=2", []string{"~5570580b8f5a4e6f5f4b7e9c1a3d2e1f0a9b01", "DOCS"}},
		{"?keys=~5570580b8f5a4e6f5f4b7e9c1a3d2e1f0a9b01", []string{"~5570580b8f5a4e6f5f4b7e9c1a3d2e1f0a9b01"}},
	}
	for _, tt := range tests {
		if got := keysOf(t, tt.query); !slices.Equal(got, tt.want) {
			t.Errorf("%s: keys %v, want %v", tt.query, got, tt.want)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?sort=size", "?type=blog", "?status=gone", "?ids=abc", "?cursor=bm9wZQ==", "?cursor=%%%", "?description-format=wiki"} {
		resp, body := h.get(t, "/wiki/api/v2/spaces"+strings.Replace(q, "%%%", "%25%25", 1))
		var e struct {
			Errors []struct {
				Status int
				Code   string
				Title  string
			}
		}
		mustJSON(t, body, &e)
		if resp.StatusCode != 400 || len(e.Errors) != 1 || e.Errors[0].Status != 400 || e.Errors[0].Title == "" {
			t.Errorf("%s: %d %s, want a v2 400 error", q, resp.StatusCode, body)
		}
	}
	// A cursor from one sort order is not valid in another.
	_, body := h.get(t, "/wiki/api/v2/spaces?limit=1")
	var p spacesPage
	mustJSON(t, body, &p)
	cur := strings.TrimPrefix(strings.Split(p.Links.Next, "&")[0], "/wiki/api/v2/spaces?cursor=")
	if resp, _ := h.get(t, "/wiki/api/v2/spaces?limit=1&sort=key&cursor="+cur); resp.StatusCode != 400 {
		t.Errorf("cursor reused with another sort: %d, want 400", resp.StatusCode)
	}
	if resp, _ := h.get(t, "/wiki/api/v2/spaces?limit=1&cursor="+cur); resp.StatusCode != 200 {
		t.Errorf("cursor reused with the same sort: %d, want 200", resp.StatusCode)
	}
}

func TestREST_Space(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp, body := h.get(t, "/wiki/api/v2/spaces/65542?description-format=plain")
	var sp struct {
		ID, Key, Name string
		Description   struct {
			Plain struct{ Value, Representation string }
		}
	}
	mustJSON(t, body, &sp)
	if resp.StatusCode != 200 || sp.ID != "65542" || sp.Key != "PROD" || sp.Name != "Équipe Produit" || sp.Description.Plain.Representation != "plain" {
		t.Errorf("GET space: %d %s", resp.StatusCode, body)
	}
	for path, want := range map[string]int{"/wiki/api/v2/spaces/1": 404, "/wiki/api/v2/spaces/ENG": 400} {
		if resp, body := h.get(t, path); resp.StatusCode != want || !strings.Contains(string(body), `"errors"`) {
			t.Errorf("%s: %d %s, want %d with a v2 error body", path, resp.StatusCode, body, want)
		}
	}
}

type permItem struct {
	ID        string
	Principal struct{ Type, ID string }
	Operation struct {
		Key        string
		TargetType string `json:"targetType"`
	}
}

func TestREST_SpacePermissions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	seed := h.sim.Seed()
	sam := seed.Users[1].AccountID
	var all []permItem
	next, calls := "/wiki/api/v2/spaces/65537/permissions?limit=4", 0
	for next != "" {
		resp, body := h.get(t, next)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", next, resp.StatusCode, body)
		}
		var p struct {
			Results []permItem
			Links   struct{ Next string } `json:"_links"`
		}
		mustJSON(t, body, &p)
		all = append(all, p.Results...)
		if p.Links.Next != "" && resp.Header.Get("Link") == "" {
			t.Error("no Link header with a next link")
		}
		next = p.Links.Next
		calls++
	}
	// ENG: admins 6 ops, users 3, eng-team 4, Sam 4 = 17 items.
	if len(all) != 17 || calls != 5 {
		t.Errorf("got %d items in %d calls, want 17 in 5", len(all), calls)
	}
	ids := map[string]bool{}
	samAdmin, groupAdmin := false, false
	for _, it := range all {
		if ids[it.ID] {
			t.Errorf("permission %s listed twice", it.ID)
		}
		ids[it.ID] = true
		if it.Operation.Key == "administer" && it.Operation.TargetType == "space" {
			switch {
			case it.Principal.Type == "user" && it.Principal.ID == sam:
				samAdmin = true
			case it.Principal.Type == "group" && it.Principal.ID == seed.Groups[0].ID:
				groupAdmin = true
			}
		}
	}
	if !samAdmin || !groupAdmin {
		t.Errorf("ENG permissions lack Sam's or confluence-admins' administer/space: %+v", all)
	}
	// Sam administers MKT neither directly nor through a group.
	_, body := h.get(t, "/wiki/api/v2/spaces/65539/permissions?limit=250")
	if strings.Contains(string(body), sam) {
		t.Errorf("MKT permissions mention Sam: %s", body)
	}
	if resp, _ := h.get(t, "/wiki/api/v2/spaces/424242/permissions"); resp.StatusCode != 404 {
		t.Errorf("permissions of an unknown space: %d, want 404", resp.StatusCode)
	}
}

func TestREST_MemberOf(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	sam := h.sim.Seed().Users[1].AccountID
	type page struct {
		Results []struct{ Type, Name, ID string }
		Start   int
		Limit   int
		Size    int
		Links   struct{ Next, Base, Context string } `json:"_links"`
	}
	resp, body := h.get(t, "/wiki/rest/api/user/memberof?accountId="+sam)
	var p page
	mustJSON(t, body, &p)
	if resp.StatusCode != 200 || p.Size != 2 || p.Results[0].Name != "confluence-users" || p.Results[1].Name != "eng-team" || p.Results[0].Type != "group" || p.Results[0].ID == "" {
		t.Fatalf("memberof Sam: %d %s", resp.StatusCode, body)
	}
	_, body = h.get(t, "/wiki/rest/api/user/memberof?accountId="+sam+"&limit=1")
	mustJSON(t, body, &p)
	if p.Size != 1 || !strings.HasPrefix(p.Links.Next, "/rest/api/user/memberof?") || p.Links.Context != "/wiki" {
		t.Fatalf("paged memberof: %s (a v1 next link is relative to base, without /wiki)", body)
	}
	resp, body = h.get(t, "/wiki"+p.Links.Next)
	var p2 page
	mustJSON(t, body, &p2)
	if resp.StatusCode != 200 || p2.Start != 1 || p2.Results[0].Name != "eng-team" || p2.Links.Next != "" {
		t.Errorf("second page: %d %s", resp.StatusCode, body)
	}
	// Ada's account id has a colon: it must survive encoding.
	ada := h.sim.Seed().Users[0].AccountID
	resp, body = h.get(t, "/wiki/rest/api/user/memberof?accountId="+strings.ReplaceAll(ada, ":", "%3A"))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "confluence-admins") {
		t.Errorf("memberof Ada: %d %s", resp.StatusCode, body)
	}
	for q, want := range map[string]int{"": 400, "?accountId=nobody": 404, "?accountId=" + sam + "&start=-1": 400} {
		if resp, body := h.get(t, "/wiki/rest/api/user/memberof"+q); resp.StatusCode != want || !strings.Contains(string(body), `"statusCode"`) {
			t.Errorf("memberof%s: %d %s, want %d with a v1 error body", q, resp.StatusCode, body, want)
		}
	}
}

func TestREST_UserAndEmailScope(t *testing.T) {
	for _, withScope := range []bool{false, true} {
		t.Run(fmt.Sprint("ACCESS_EMAIL_ADDRESSES=", withScope), func(t *testing.T) {
			h := newHarness(t, harnessOpts{noInstall: true})
			if withScope {
				h.app.setDescriptor("scopes", []string{"read", "ACCESS_EMAIL_ADDRESSES"})
			}
			if err := h.sim.Install(t.Context()); err != nil {
				t.Fatal(err)
			}
			pat := h.sim.Seed().Users[2]
			resp, body := h.get(t, "/wiki/rest/api/user?accountId="+strings.ReplaceAll(pat.AccountID, ":", "%3A"))
			var u struct{ AccountID, AccountType, DisplayName, PublicName, Email string }
			mustJSON(t, body, &u)
			if resp.StatusCode != 200 || u.AccountID != pat.AccountID || u.AccountType != "atlassian" || u.DisplayName != "Pat Plain" || u.PublicName == "" {
				t.Fatalf("user: %d %s", resp.StatusCode, body)
			}
			if (u.Email != "") != withScope {
				t.Errorf("email %q with scope %v", u.Email, withScope)
			}
			if resp, _ := h.get(t, "/wiki/rest/api/user?accountId=ghost"); resp.StatusCode != 404 {
				t.Errorf("unknown user: %d", resp.StatusCode)
			}
		})
	}
}

func TestREST_Scopes(t *testing.T) {
	h := newHarness(t, harnessOpts{noInstall: true})
	h.app.setDescriptor("scopes", []string{"ACT_AS_USER"})
	if err := h.sim.Install(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, body := h.get(t, "/wiki/api/v2/spaces"); resp.StatusCode != 403 || !strings.Contains(string(body), "scope") {
		t.Errorf("without READ: %d %s, want 403", resp.StatusCode, body)
	}
	h.app.setDescriptor("scopes", []string{"space_admin"}) // implies READ
	if err := h.sim.Install(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, body := h.get(t, "/wiki/api/v2/spaces"); resp.StatusCode != 200 {
		t.Errorf("with SPACE_ADMIN: %d %s, want 200", resp.StatusCode, body)
	}
}

func TestREST_SearchAndPicker(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	type searchPage struct {
		Results []struct {
			User       struct{ AccountID, DisplayName string }
			EntityType string
		}
		TotalSize int
	}
	tests := []struct {
		cql  string
		want []string
	}{
		{`user.fullname~"sam"`, []string{"Sam Space-Admin"}},
		{`user.fullname ~ "ADMIN"`, []string{"Ada Admin", "Sam Space-Admin"}},
		{`type=user AND user.fullname~"pat pl"`, []string{"Pat Plain"}},
		{`user.fullname~'zz'`, nil},
	}
	for _, tt := range tests {
		q := "/wiki/rest/api/search/user?cql=" + encodeQuery(tt.cql) + "&limit=10"
		resp, body := h.get(t, q)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tt.cql, resp.StatusCode, body)
		}
		var p searchPage
		mustJSON(t, body, &p)
		var got []string
		for _, r := range p.Results {
			got = append(got, r.User.DisplayName)
			if r.EntityType != "user" || r.User.AccountID == "" {
				t.Errorf("result %+v", r)
			}
		}
		if !slices.Equal(got, tt.want) || p.TotalSize != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.cql, got, tt.want)
		}
	}
	for _, cql := range []string{`space=ENG`, ``} {
		if resp, body := h.get(t, "/wiki/rest/api/search/user?cql="+encodeQuery(cql)); resp.StatusCode != 400 {
			t.Errorf("cql %q: %d %s, want 400", cql, resp.StatusCode, body)
		}
	}
	resp, body := h.get(t, "/wiki/rest/api/group/picker?query=ENG&limit=5")
	var g struct {
		Results []struct{ Type, Name, ID string }
	}
	mustJSON(t, body, &g)
	if resp.StatusCode != 200 || len(g.Results) != 1 || g.Results[0].Name != "eng-team" || g.Results[0].Type != "group" {
		t.Errorf("group picker: %d %s", resp.StatusCode, body)
	}
	_, body = h.get(t, "/wiki/rest/api/group/picker?query=confluence")
	mustJSON(t, body, &g)
	if len(g.Results) != 2 {
		t.Errorf("picker 'confluence': %s", body)
	}
	if resp, _ := h.get(t, "/wiki/rest/api/group/picker"); resp.StatusCode != 400 {
		t.Errorf("picker without query: %d, want 400", resp.StatusCode)
	}
}

func encodeQuery(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestREST_UnknownEndpoints(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		method, path string
		want         int
		shape        string
	}{
		{"GET", "/wiki/api/v2/pages", 404, `"errors"`},
		{"GET", "/wiki/rest/api/space", 404, `"statusCode"`},
		{"POST", "/wiki/api/v2/spaces", 405, `"errors"`},
		{"DELETE", "/wiki/rest/api/user/memberof", 405, `"statusCode"`},
		{"GET", "/nothing/here", 404, `"statusCode"`},
	}
	for _, tt := range tests {
		resp, body := h.do(t, tt.method, tt.path, "JWT "+h.appToken(t, tt.method, tt.path))
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.shape) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %s, want %d with %s", tt.method, tt.path, resp.StatusCode, body, tt.want, tt.shape)
		}
	}
	// Unknown REST endpoints still verify first.
	if resp, _ := h.do(t, "GET", "/wiki/api/v2/pages", "JWT x.y.z"); resp.StatusCode != 401 {
		t.Errorf("unknown endpoint with a bad JWT: %d, want 401", resp.StatusCode)
	}
}

func TestSim_InjectFaults(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.sim.InjectFaults("/wiki/api/v2/spaces", append(confluencesim.RateLimited(2, 7), confluencesim.Fault{Status: 503, RetryAfter: "1"})...)
	// A refused call does not use up a fault.
	if resp, _ := h.do(t, "GET", "/wiki/api/v2/spaces", "JWT bad.token.here"); resp.StatusCode != 401 {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
	// Other prefixes are unaffected.
	if resp, _ := h.get(t, "/wiki/rest/api/group/picker?query=x"); resp.StatusCode != 200 {
		t.Errorf("picker during faults: %d", resp.StatusCode)
	}
	for i, want := range []struct {
		status int
		retry  string
	}{{429, "7"}, {429, "7"}, {503, "1"}, {200, ""}} {
		resp, body := h.get(t, "/wiki/api/v2/spaces/65537/permissions")
		if resp.StatusCode != want.status || resp.Header.Get("Retry-After") != want.retry {
			t.Errorf("call %d: %d Retry-After %q, want %d %q (%s)", i, resp.StatusCode, resp.Header.Get("Retry-After"), want.status, want.retry, body)
		}
	}
	// A prefix with a query matches the query too: later pages only.
	h.sim.InjectFaults("/wiki/api/v2/spaces?cursor=", confluencesim.Fault{Status: 503})
	if resp, _ := h.get(t, "/wiki/api/v2/spaces?limit=1"); resp.StatusCode != 200 {
		t.Errorf("first page with a cursor-only fault: %d, want 200", resp.StatusCode)
	}
	if resp, _ := h.get(t, "/wiki/api/v2/spaces?cursor=abc&limit=1"); resp.StatusCode != 503 {
		t.Errorf("later page with a cursor-only fault: %d, want 503", resp.StatusCode)
	}
	h.sim.InjectFaults("/wiki/", confluencesim.Fault{Status: 500, Body: `{"oops":true}`})
	h.sim.ClearFaults()
	if resp, _ := h.get(t, "/wiki/api/v2/spaces"); resp.StatusCode != 200 {
		t.Errorf("after ClearFaults: %d", resp.StatusCode)
	}
}
