package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/devstack/confluencesim"
	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/token"
)

// Seed users of the Confluence simulator.
const (
	uiAda = "Ada Admin"       // site admin; administers every space via confluence-admins
	uiSam = "Sam Space-Admin" // administers ENG and DOCS directly
	uiPat = "Pat Plain"       // reads every non-personal space
	uiNia = "Nia Newcomer"    // sees nothing
)

type uiSpacesResp struct {
	Results []uiSpaceJSON `json:"results"`
	Next    string        `json:"next"`
	Matched int           `json:"matched"`
}

func (e *uiEnv) spaces(tb testing.TB, tok, query string) uiSpacesResp {
	tb.Helper()
	r := e.as(tok, "GET", "/api/ui/spaces?query="+urlQuery(query), nil)
	if r.Code != 200 {
		tb.Fatalf("GET spaces %q: %s", query, r)
	}
	var out uiSpacesResp
	r.decode(tb, &out)
	return out
}

// allSpaces walks every page of the list with the given page size.
func (e *uiEnv) allSpaces(tb testing.TB, tok, query string, limit int) (keys []string, admin map[string]bool, pages int) {
	tb.Helper()
	admin = map[string]bool{}
	cursor := ""
	for {
		r := e.as(tok, "GET", "/api/ui/spaces?query="+urlQuery(query)+"&limit="+itoa(limit)+"&cursor="+cursor, nil)
		if r.Code != 200 {
			tb.Fatalf("GET spaces page %d: %s", pages, r)
		}
		var p uiSpacesResp
		r.decode(tb, &p)
		pages++
		if len(p.Results) > limit {
			tb.Fatalf("page of %d results, limit %d", len(p.Results), limit)
		}
		for _, s := range p.Results {
			keys = append(keys, s.Key)
			if s.CanAdmin {
				admin[s.Key] = true
			}
		}
		if p.Next == "" {
			return keys, admin, pages
		}
		if p.Next == cursor || pages > 1000 {
			tb.Fatalf("the cursor does not advance: %q", p.Next)
		}
		cursor = p.Next
	}
}

func urlQuery(s string) string { return url.QueryEscape(s) }

func itoa(n int) string { return strconv.Itoa(n) }

// uiExpectedOrder is the list the page should show a user of the seed: the
// spaces they may read (or administer), sorted by lower-cased name, then
// key; and those they administer. Computed from the seed, independently of
// the app.
func uiExpectedOrder(seed *confluencesim.Seed, accountID string, query string) (keys []string, admin map[string]bool) {
	groups := map[string]bool{}
	for _, g := range seed.Groups {
		if slices.Contains(g.Members, accountID) {
			groups[g.ID] = true
		}
	}
	type item struct{ name, key string }
	var items []item
	admin = map[string]bool{}
	words := strings.Fields(strings.ToLower(query))
	for _, sp := range seed.Spaces {
		var read, adm bool
		for _, p := range sp.Permissions {
			if (p.Principal.Type == "user" && p.Principal.ID == accountID) || (p.Principal.Type == "group" && groups[p.Principal.ID]) {
				read = read || slices.Contains(p.Operations, "read/space")
				adm = adm || slices.Contains(p.Operations, "administer/space")
			}
		}
		if !read && !adm {
			continue
		}
		hay := strings.ToLower(sp.Name) + "\x00" + strings.ToLower(sp.Key)
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(hay, w)
		}
		if !ok {
			continue
		}
		items = append(items, item{strings.ToLower(sp.Name), sp.Key})
		if adm {
			admin[sp.Key] = true
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].name != items[j].name {
			return items[i].name < items[j].name
		}
		return items[i].key < items[j].key
	})
	for _, it := range items {
		keys = append(keys, it.key)
	}
	return keys, admin
}

func TestUISpaces_List(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
	site := e.sites[0]
	seed := site.sim.Seed()
	users := map[string]string{}
	for _, n := range []string{uiAda, uiSam, uiPat, uiNia} {
		users[n] = site.user(t, n)
	}
	tests := []struct {
		name, user, query string
		// wantKeys, when set, is checked against the seed's computation
		// too, so a wrong expectation cannot hide.
		wantKeys []string
	}{
		{"ada sees every space", uiAda, "", []string{seed.Spaces[8].Key, "DOCS", "ENG", "KB", "HR", "MKT", "OLD", "SALES", "PROD"}},
		{"pat sees the non-personal spaces", uiPat, "", []string{"DOCS", "ENG", "KB", "HR", "MKT", "OLD", "SALES", "PROD"}},
		{"sam sees them too", uiSam, "", []string{"DOCS", "ENG", "KB", "HR", "MKT", "OLD", "SALES", "PROD"}},
		{"nia sees nothing", uiNia, "", nil},
		{"search by name", uiAda, "engin", []string{"ENG"}},
		{"search by key in any case", uiPat, "docs", []string{"DOCS"}},
		{"search non-ASCII", uiPat, "ÉQUIPE", []string{"PROD"}},
		{"every word must match", uiAda, "old archive", []string{"OLD"}},
		{"words in any order", uiAda, "archive projects", []string{"OLD"}},
		{"no match", uiAda, "zzz", nil},
		{"pat does not find ada's personal space", uiPat, "ada", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := users[tt.user]
			wantKeys, wantAdmin := uiExpectedOrder(seed, acc, tt.query)
			if diff := cmp.Diff(tt.wantKeys, wantKeys); diff != "" {
				t.Fatalf("the test's expectation disagrees with the seed (-test +seed):\n%s", diff)
			}
			got := e.spaces(t, site.token(t, acc), tt.query)
			var keys []string
			gotAdmin := map[string]bool{}
			for _, s := range got.Results {
				keys = append(keys, s.Key)
				if s.CanAdmin {
					gotAdmin[s.Key] = true
				}
				if s.Syncs == nil || s.Syncs.Total != 0 {
					t.Errorf("%s: syncs %+v, want 0", s.Key, s.Syncs)
				}
			}
			if diff := cmp.Diff(wantKeys, keys); diff != "" {
				t.Errorf("spaces (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantAdmin, gotAdmin); diff != "" {
				t.Errorf("canAdmin (-want +got):\n%s", diff)
			}
			if got.Next != "" {
				t.Errorf("next = %q on a short list", got.Next)
			}
		})
	}

	t.Run("paging in small pages gives the same list", func(t *testing.T) {
		for _, name := range []string{uiAda, uiPat} {
			want, _ := uiExpectedOrder(seed, users[name], "")
			for _, limit := range []int{1, 2, 4} {
				keys, _, pages := e.allSpaces(t, site.token(t, users[name]), "", limit)
				if diff := cmp.Diff(want, keys); diff != "" {
					t.Errorf("%s limit %d (-want +got):\n%s", name, limit, diff)
				}
				if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
					t.Errorf("%s limit %d: %d pages, want %d", name, limit, pages, wantPages)
				}
			}
		}
	})

	t.Run("sync counts", func(t *testing.T) {
		ada := site.token(t, users[uiAda])
		e.createSync(t, ada, "ENG", "One", nil)
		e.createSync(t, ada, "ENG", "Two", nil)
		got := e.spaces(t, site.token(t, users[uiPat]), "engineering")
		if len(got.Results) != 1 || got.Results[0].Syncs == nil || *got.Results[0].Syncs != (uiSyncCounts{Total: 2}) {
			t.Fatalf("ENG: %+v", got.Results)
		}
	})

	t.Run("ErrBadParameters", func(t *testing.T) {
		ada := site.token(t, users[uiAda])
		for _, q := range []string{"cursor=abc", "cursor=-1", "cursor=01", "cursor=999", "limit=0", "limit=51", "limit=x", "query=" + strings.Repeat("a", 201)} {
			r := e.as(ada, "GET", "/api/ui/spaces?"+q, nil)
			if r.Code != 422 || r.ErrCode() != apperr.ValidationFailed {
				t.Errorf("%s: %s, want 422 validation_failed", q, r)
			}
		}
		// The twin: a valid cursor and limit.
		if r := e.as(ada, "GET", "/api/ui/spaces?cursor=3&limit=2", nil); r.Code != 200 {
			t.Errorf("valid cursor: %s", r)
		}
	})
}

// TestUISpaces_FiveThousand pages through a site of 5,000 spaces.
func TestUISpaces_FiveThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 spaces")
	}
	seed := confluencesim.GenerateSeed(5000)
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{Seed: seed})
	site := e.sites[0]
	sam, nia, ada := site.user(t, uiSam), site.user(t, uiNia), site.user(t, uiAda)

	t.Run("the first page, cold", func(t *testing.T) {
		start := time.Now()
		got := e.spaces(t, site.token(t, ada), "")
		if len(got.Results) != uiPageSize || got.Next != itoa(uiPageSize) || got.Matched != 5000 {
			t.Fatalf("first page: %d results, next %q, matched %d", len(got.Results), got.Next, got.Matched)
		}
		t.Logf("first page with the index and permission caches cold: %s", time.Since(start))
	})

	t.Run("every space, once, in order, with its admin flag", func(t *testing.T) {
		start := time.Now()
		want, wantAdmin := uiExpectedOrder(seed, sam, "")
		keys, admin, pages := e.allSpaces(t, site.token(t, sam), "", 50)
		if len(want) != 4999 {
			t.Fatalf("the seed gives sam %d spaces, want 4999", len(want))
		}
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("spaces (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantAdmin, admin); diff != "" {
			t.Errorf("canAdmin (-want +got):\n%s", diff)
		}
		t.Logf("walked %d spaces in %d pages (cold permission caches) in %s", len(keys), pages, time.Since(start))
	})

	t.Run("search", func(t *testing.T) {
		for _, q := range []string{"S04999", "aurora borealis", "juniper 0", "s0012"} {
			want, _ := uiExpectedOrder(seed, ada, q)
			if len(want) == 0 {
				t.Fatalf("%q: the seed has no match; pick another query", q)
			}
			keys, _, _ := e.allSpaces(t, site.token(t, ada), q, 25)
			if diff := cmp.Diff(want, keys); diff != "" {
				t.Errorf("%q (-want +got):\n%s", q, diff)
			}
			if got := e.spaces(t, site.token(t, ada), q); got.Matched != len(want) {
				t.Errorf("%q: matched %d, want %d", q, got.Matched, len(want))
			}
		}
	})

	t.Run("a user who sees nothing gets bounded empty pages", func(t *testing.T) {
		got := e.spaces(t, site.token(t, nia), "")
		if len(got.Results) != 0 || got.Next != itoa(uiMaxScan) || got.Matched != 5000 {
			t.Fatalf("nia: %d results, next %q, matched %d", len(got.Results), got.Next, got.Matched)
		}
	})
}

// BenchmarkUISpaces_Warm measures a warm page request over a site of 5,000
// spaces: the space index loaded and the permission caches filled.
func BenchmarkUISpaces_Warm(b *testing.B) {
	seed := confluencesim.GenerateSeed(5000)
	e := newUIEnv(b, dbtest.SQLite(b, migrations.FS), uiOptions{Seed: seed})
	site := e.sites[0]
	tok := site.token(b, site.user(b, uiSam))
	for _, bc := range []struct{ name, target string }{
		{"first page", "/api/ui/spaces"},
		{"page 100", "/api/ui/spaces?cursor=2500"},
		{"search", "/api/ui/spaces?query=aurora%20borealis"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if r := e.as(tok, "GET", bc.target, nil); r.Code != 200 { // warm up
				b.Fatal(r)
			}
			b.ReportAllocs()
			for b.Loop() {
				if r := e.as(tok, "GET", bc.target, nil); r.Code != 200 {
					b.Fatal(r)
				}
			}
		})
	}
}

// uiDetails is GET /api/ui/syncs/{id} as the test reads it.
type uiDetails struct {
	Sync     uiSyncJSON     `json:"sync"`
	CanAdmin bool           `json:"canAdmin"`
	Link     *uiLink        `json:"link"`
	Tokens   []uiToken      `json:"tokens"`
	Audit    []uiAuditEvent `json:"audit"`
	Raw      map[string]any `json:"-"`
}

func (e *uiEnv) details(tb testing.TB, tok, id string) uiDetails {
	tb.Helper()
	r := e.as(tok, "GET", "/api/ui/syncs/"+id, nil)
	if r.Code != 200 {
		tb.Fatalf("details: %s", r)
	}
	var d uiDetails
	r.decode(tb, &d)
	_ = json.Unmarshal(r.Body, &d.Raw)
	return d
}

// waitEmail polls the email's status until it leaves queued.
func (e *uiEnv) waitEmail(tb testing.TB, tok, id string) uiEmail {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.as(tok, "GET", "/api/ui/token-emails/"+id, nil)
		if r.Code != 200 {
			tb.Fatalf("email status: %s", r)
		}
		var st uiEmail
		r.decode(tb, &st)
		if st.Status != store.EmailQueued {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("email %s still queued: %+v", id, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tokenHeader decodes a compact JWE's protected header.
func tokenHeader(tb testing.TB, tok string) map[string]any {
	tb.Helper()
	segs := strings.Split(strings.TrimSpace(tok), ".")
	if len(segs) != 5 {
		tb.Fatalf("token has %d segments, want 5", len(segs))
	}
	raw, err := base64.RawURLEncoding.DecodeString(segs[0])
	if err != nil {
		tb.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		tb.Fatal(err)
	}
	return h
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestUISync_Actions drives every action of the page as a space admin,
// on both databases: create, list, details, download, send (to the
// SendGrid simulator, followed to sent), revoke, link, delete.
func TestUISync_Actions(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newUIEnv(t, d, uiOptions{})
		site := e.sites[0]
		ada, sam, pat := site.user(t, uiAda), site.user(t, uiSam), site.user(t, uiPat)
		adaTok, samTok, patTok := site.token(t, ada), site.token(t, sam), site.token(t, pat)
		adminsGroup := site.sim.Seed().Groups[0]

		// Default permissions: the space's admins that can be named.
		r := e.as(adaTok, "GET", "/api/ui/spaces/ENG/default-permissions", nil)
		var defaults struct{ Results []uiPrincipal }
		r.decode(t, &defaults)
		wantDefaults := []uiPrincipal{{"group", adminsGroup.ID, "confluence-admins"}, {"user", sam, uiSam}}
		if r.Code != 200 || !cmp.Equal(wantDefaults, defaults.Results) {
			t.Fatalf("ada's defaults for ENG: %s", r)
		}
		r = e.as(samTok, "GET", "/api/ui/spaces/ENG/default-permissions", nil)
		defaults.Results = nil
		r.decode(t, &defaults)
		if r.Code != 200 || !cmp.Equal([]uiPrincipal{{"user", sam, uiSam}}, defaults.Results) {
			t.Fatalf("sam's defaults for ENG: %s", r)
		}

		// The picker finds users and groups.
		r = e.as(adaTok, "GET", "/api/ui/principals?query=sam", nil)
		var found struct{ Results []uiPrincipal }
		r.decode(t, &found)
		if r.Code != 200 || !slices.Contains(found.Results, uiPrincipal{"user", sam, uiSam}) {
			t.Fatalf("principals sam: %s", r)
		}
		r = e.as(adaTok, "GET", "/api/ui/principals?query=admins", nil)
		found.Results = nil
		r.decode(t, &found)
		if r.Code != 200 || !slices.Contains(found.Results, uiPrincipal{"group", adminsGroup.ID, "confluence-admins"}) {
			t.Fatalf("principals admins: %s", r)
		}

		// Create: the space comes from Confluence, the names too (the
		// client's are ignored).
		s := e.createSync(t, adaTok, "ENG", "  Engineering to DC  ", []uiPrincipal{
			{"group", adminsGroup.ID, "whatever the client says"}, {"user", sam, "Mallory"},
		})
		wantPerms := []uiPrincipal{{"group", adminsGroup.ID, "confluence-admins"}, {"user", sam, uiSam}}
		if s.Name != "Engineering to DC" || s.SpaceID != "65537" || s.SpaceKey != "ENG" || s.SpaceName != "Engineering" ||
			s.Status != store.SyncNotSyncedYet || !s.SyncComments || s.SyncLabels || !cmp.Equal(wantPerms, s.Permissions) {
			t.Fatalf("created: %+v", s)
		}

		// A plain user sees the list and the settings, read-only.
		r = e.as(patTok, "GET", "/api/ui/spaces/ENG/syncs", nil)
		var list uiSpaceSyncs
		r.decode(t, &list)
		if r.Code != 200 || list.CanAdmin || len(list.Results) != 1 || list.Results[0].ID != s.ID || list.Space.ID != "65537" {
			t.Fatalf("pat's list: %s", r)
		}
		pd := e.details(t, patTok, s.ID)
		if pd.CanAdmin || pd.Sync.ID != s.ID {
			t.Fatalf("pat's details: %+v", pd)
		}
		for _, k := range []string{"tokens", "audit", "link", "links", "createdBy"} {
			if _, ok := pd.Raw[k]; ok {
				t.Errorf("pat's details show %s", k)
			}
		}

		// Download: a token file for this sync with the message.
		r = e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-downloads", map[string]string{"message": "Hello DC team,\r\nplease import."})
		if r.Code != 200 {
			t.Fatalf("download: %s", r)
		}
		if cd, params, _ := mime.ParseMediaType(r.Header.Get("Content-Disposition")); cd != "attachment" || params["filename"] != "ENG-space-sync.token" {
			t.Errorf("Content-Disposition %q", r.Header.Get("Content-Disposition"))
		}
		if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("headers %v", r.Header)
		}
		downloaded := string(r.Body)
		e.checkNoSecrets(t, downloaded)
		opener := &token.Opener{Keys: e.keys, Issuer: e.appURL}
		c, err := opener.Open([]byte(downloaded))
		if err != nil {
			t.Fatalf("open the downloaded token: %v", err)
		}
		if c.Sync.ID != s.ID || c.Sync.Name != s.Name || !c.Sync.Comments || c.Sync.Labels || len(c.Sync.Permissions) != 2 ||
			c.Sync.Permissions[1].Name != uiSam || c.Space != (token.Space{ID: "65537", Key: "ENG", Name: "Engineering"}) ||
			c.Message != "Hello DC team,\nplease import." || c.Site.ClientKey != site.sim.ClientKey() || c.Site.BaseURL != site.sim.BaseURL() {
			t.Fatalf("downloaded claims: %+v", c)
		}

		// Send: 202, then the worker sends it through SendGrid.
		r = e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", map[string]string{
			"to": "dc-admin@example.org", "subject": "Your token", "message": "Import this, please.",
		})
		if r.Code != http.StatusAccepted {
			t.Fatalf("send: %s", r)
		}
		var sent struct{ Email uiEmail }
		r.decode(t, &sent)
		if sent.Email.Status != "queued" || sent.Email.ID == "" || sent.Email.To != "dc-admin@example.org" {
			t.Fatalf("send answer: %s", r)
		}
		st := e.waitEmail(t, adaTok, sent.Email.ID)
		if st.Status != store.EmailSent || st.To != "dc-admin@example.org" {
			t.Fatalf("email: %+v", st)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		msg, err := e.sg.WaitForMessage(ctx, func(m sendgridsim.Message) bool {
			return len(m.To) == 1 && m.To[0].Email == "dc-admin@example.org"
		})
		cancel()
		if err != nil {
			t.Fatalf("no mail at the SendGrid simulator: %v", err)
		}
		if len(msg.Attachments) != 1 || msg.Attachments[0].Filename != "ENG-space-sync.token" {
			t.Fatalf("attachments: %+v", msg.Attachments)
		}
		if !strings.HasPrefix(msg.Subject, "[Space Sync from "+strings.TrimPrefix(site.URL, "http://")+"] Your token") {
			t.Errorf("subject %q", msg.Subject)
		}
		emailed := string(msg.Attachments[0].Content)
		ec, err := opener.Open([]byte(emailed))
		if err != nil {
			t.Fatalf("open the emailed token: %v", err)
		}
		state, err := e.app.store.EmailStatus(context.Background(), e.tenantID(t, site), sent.Email.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ec.ID != state.TokenJTI || ec.ID == c.ID || ec.Sync.ID != s.ID || ec.Message != "Import this, please." {
			t.Fatalf("emailed token jti %s, recorded %s (download %s)", ec.ID, state.TokenJTI, c.ID)
		}
		// Identical in form: five segments, the same header fields, the same
		// file shape (one line).
		if dh, eh := tokenHeader(t, downloaded), tokenHeader(t, emailed); !cmp.Equal(sortedKeys(dh), sortedKeys(eh)) || dh["kid"] != eh["kid"] || dh["typ"] != eh["typ"] {
			t.Errorf("headers differ: %v vs %v", dh, eh)
		}
		if strings.Count(downloaded, "\n") != 1 || strings.Count(emailed, "\n") != 1 {
			t.Errorf("token files are not one line each")
		}
		// cloud-app recognises the emailed token as the one it recorded.
		pr := e.call("POST", protocol.PathPreviews, "", protocol.PreviewRequest{Token: emailed})
		var preview protocol.Preview
		pr.decode(t, &preview)
		if pr.Code != 200 || preview.State != "usable" || preview.TokenID != state.TokenJTI {
			t.Fatalf("preview of the emailed token: %s", pr)
		}
		e.checkNoSecrets(t, emailed)

		// Following the email: its sender and the space's admins; not a
		// plain user.
		if r := e.as(samTok, "GET", "/api/ui/token-emails/"+sent.Email.ID, nil); r.Code != 200 {
			t.Errorf("sam (admin of ENG) follows the email: %s", r)
		}
		if r := e.as(patTok, "GET", "/api/ui/token-emails/"+sent.Email.ID, nil); r.Code != 403 || r.ErrCode() != apperr.Forbidden {
			t.Errorf("pat follows the email: %s", r)
		}

		// Details: two tokens (tokens of the same second come in any
		// order), the emailed one with its recipient; the trail.
		dd := e.details(t, adaTok, s.ID)
		byChannel := map[string]uiToken{}
		for _, tk := range dd.Tokens {
			byChannel[tk.Channel] = tk
		}
		if !dd.CanAdmin || len(dd.Tokens) != 2 || byChannel["email"].Recipient != "dc-admin@example.org" ||
			byChannel["download"].Recipient != "" || byChannel["email"].IssuedBy.Name != uiAda ||
			byChannel["email"].State != "usable" || dd.Link != nil || dd.Tokens[0].IssuedAt.Before(dd.Tokens[1].IssuedAt) {
			t.Fatalf("ada's details: %+v", dd)
		}
		var actions []string
		for _, ev := range dd.Audit {
			actions = append(actions, ev.Action)
			if ev.Summary == "" || ev.Actor.Name == "" {
				t.Errorf("audit event without words: %+v", ev)
			}
		}
		for _, want := range []string{"sync.created", "token.issued", store.AuditEmailSent} {
			if !slices.Contains(actions, want) {
				t.Errorf("audit lacks %s: %v", want, actions)
			}
		}

		// Revoke: every unused token stops working.
		if r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/revocations", nil); r.Code != 204 {
			t.Fatalf("revoke: %s", r)
		}
		for _, tk := range e.details(t, adaTok, s.ID).Tokens {
			if tk.State != "revoked" || tk.RevokeReason != store.RevokeRevoked {
				t.Errorf("token after revoke: %+v", tk)
			}
		}
		if pr := e.call("POST", protocol.PathPreviews, "", protocol.PreviewRequest{Token: emailed}); !strings.Contains(string(pr.Body), "revoked") {
			t.Errorf("preview after revoke: %s", pr)
		}

		// Link: a fresh token redeemed by dc-app turns the row SYNCED and
		// shows the instance; no new token can be issued then.
		r = e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-downloads", map[string]string{"message": ""})
		if r.Code != 200 {
			t.Fatalf("second download: %s", r)
		}
		fresh := string(r.Body)
		rr := e.call("POST", protocol.PathRedemptions, "", protocol.RedemptionRequest{
			Token:      fresh,
			Instance:   protocol.Instance{ID: "inst-1", Name: "DC Production", BaseURL: "https://confluence.dc.example"},
			Name:       "Engineering (DC)",
			LinkSecret: token.NewRedemptionSecret(),
			Expect:     protocol.Expect{SiteBaseURL: site.sim.BaseURL(), SpaceID: "65537", SyncID: s.ID},
		})
		if rr.Code != 201 {
			t.Fatalf("redeem: %s", rr)
		}
		r = e.as(patTok, "GET", "/api/ui/spaces/ENG/syncs", nil)
		list = uiSpaceSyncs{}
		r.decode(t, &list)
		if len(list.Results) != 1 || list.Results[0].Status != store.SyncSynced {
			t.Fatalf("after redemption: %s", r)
		}
		dd = e.details(t, adaTok, s.ID)
		if dd.Link == nil || dd.Link.InstanceName != "DC Production" || dd.Link.Name != "Engineering (DC)" || dd.Link.InstanceBaseURL != "https://confluence.dc.example" {
			t.Fatalf("link in details: %+v", dd.Link)
		}
		if got := e.spaces(t, patTok, "engineering"); got.Results[0].Syncs == nil || *got.Results[0].Syncs != (uiSyncCounts{Total: 1, Synced: 1}) {
			t.Errorf("space counts after link: %+v", got.Results[0].Syncs)
		}
		for _, path := range []string{"token-downloads", "token-emails"} {
			r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/"+path, map[string]string{"message": "x", "to": "a@example.org"})
			if r.Code != 422 || r.Fields()["sync"] == "" {
				t.Errorf("%s on a linked sync: %s", path, r)
			}
		}

		// Delete: gone for everyone.
		if r := e.as(adaTok, "DELETE", "/api/ui/syncs/"+s.ID, nil); r.Code != 204 {
			t.Fatalf("delete: %s", r)
		}
		if r := e.as(adaTok, "GET", "/api/ui/syncs/"+s.ID, nil); r.Code != 404 || r.ErrCode() != apperr.NotFound {
			t.Errorf("details after delete: %s", r)
		}
		if r := e.as(adaTok, "DELETE", "/api/ui/syncs/"+s.ID, nil); r.Code != 404 {
			t.Errorf("second delete: %s", r)
		}
		r = e.as(adaTok, "GET", "/api/ui/spaces/ENG/syncs", nil)
		list = uiSpaceSyncs{}
		r.decode(t, &list)
		if len(list.Results) != 0 {
			t.Errorf("list after delete: %s", r)
		}
	})
}

// tenantID returns the stored tenant id of a simulated site.
func (e *uiEnv) tenantID(tb testing.TB, s *uiSite) string {
	tb.Helper()
	t, err := e.app.store.TenantByClientKey(context.Background(), s.sim.ClientKey())
	if err != nil {
		tb.Fatal(err)
	}
	return t.ID
}

// TestUISync_Refusals tries every state change and read as callers who may
// not make it: each is refused, nothing changes, and each refusal has a
// passing twin.
func TestUISync_Refusals(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newUIEnv(t, d, uiOptions{Sites: 2})
		site, other := e.sites[0], e.sites[1]
		adaTok := site.token(t, site.user(t, uiAda))
		samTok := site.token(t, site.user(t, uiSam))
		patTok := site.token(t, site.user(t, uiPat))
		niaTok := site.token(t, site.user(t, uiNia))
		anonTok := site.token(t, "")
		otherAdaTok := other.token(t, other.user(t, uiAda))

		eng := e.createSync(t, adaTok, "ENG", "ENG sync", nil)
		mkt := e.createSync(t, adaTok, "MKT", "MKT sync", nil)
		r := e.as(adaTok, "POST", "/api/ui/syncs/"+eng.ID+"/token-emails", map[string]string{"to": "x@example.org"})
		if r.Code != 202 {
			t.Fatalf("send: %s", r)
		}
		var sent struct{ Email uiEmail }
		r.decode(t, &sent)
		emailID := sent.Email.ID

		type action struct {
			name   string
			method string
			path   func(s uiSyncJSON) string
			body   any
		}
		changes := []action{
			{"create", "POST", func(s uiSyncJSON) string { return "/api/ui/spaces/" + s.SpaceKey + "/syncs" }, map[string]any{"name": "Mine", "permissions": []any{}}},
			{"download", "POST", func(s uiSyncJSON) string { return "/api/ui/syncs/" + s.ID + "/token-downloads" }, map[string]string{"message": "m"}},
			{"send", "POST", func(s uiSyncJSON) string { return "/api/ui/syncs/" + s.ID + "/token-emails" }, map[string]string{"to": "mallory@example.org"}},
			{"revoke", "POST", func(s uiSyncJSON) string { return "/api/ui/syncs/" + s.ID + "/revocations" }, nil},
			{"delete", "DELETE", func(s uiSyncJSON) string { return "/api/ui/syncs/" + s.ID }, nil},
		}
		reads := []action{
			{"list", "GET", func(s uiSyncJSON) string { return "/api/ui/spaces/" + s.SpaceKey + "/syncs" }, nil},
			{"details", "GET", func(s uiSyncJSON) string { return "/api/ui/syncs/" + s.ID }, nil},
			{"defaults", "GET", func(s uiSyncJSON) string { return "/api/ui/spaces/" + s.SpaceKey + "/default-permissions" }, nil},
			{"email status", "GET", func(uiSyncJSON) string { return "/api/ui/token-emails/" + emailID }, nil},
		}
		all := append(append([]action{}, changes...), reads...)
		all = append(all, action{"spaces", "GET", func(uiSyncJSON) string { return "/api/ui/spaces" }, nil},
			action{"principals", "GET", func(uiSyncJSON) string { return "/api/ui/principals?query=sam" }, nil})

		type refusal struct {
			who     string
			auth    string
			actions []action
			sync    uiSyncJSON
			status  int
			code    apperr.Code
		}
		refusals := []refusal{
			{"plain user changes ENG", "JWT " + patTok, changes, eng, 403, apperr.Forbidden},
			{"admin of ENG changes MKT", "JWT " + samTok, changes, mkt, 403, apperr.Forbidden},
			{"plain user reads admin-only", "JWT " + patTok, reads[2:], eng, 403, apperr.Forbidden},
			{"user without access reads ENG", "JWT " + niaTok, reads, eng, 403, apperr.Forbidden},
			{"another tenant's admin uses ENG's sync id", "JWT " + otherAdaTok, append(append([]action{}, changes[1:]...), reads[1], reads[3]), eng, 404, apperr.NotFound},
			{"anonymous", "JWT " + anonTok, all, eng, 401, apperr.Unauthorized},
			{"no token", "", all, eng, 401, apperr.Unauthorized},
			{"Bearer instead of JWT", "Bearer " + adaTok, all, eng, 401, apperr.Unauthorized},
			{"a tampered token", "JWT " + adaTok[:len(adaTok)-2] + "xx", all, eng, 401, apperr.Unauthorized},
		}
		for _, rf := range refusals {
			for _, a := range rf.actions {
				t.Run(rf.who+"/"+a.name, func(t *testing.T) {
					r := e.call(a.method, a.path(rf.sync), rf.auth, a.body)
					if r.Code != rf.status || r.ErrCode() != rf.code {
						t.Errorf("%s %s: %s, want %d %s", a.method, a.path(rf.sync), r, rf.status, rf.code)
					}
					if r.Header.Get("Cache-Control") != "no-store" {
						t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
					}
				})
			}
		}

		// Nothing changed: both syncs are there with only Ada's one token.
		for _, s := range []uiSyncJSON{eng, mkt} {
			d := e.details(t, adaTok, s.ID)
			want := 0
			if s.ID == eng.ID {
				want = 1
			}
			if len(d.Tokens) != want || d.Tokens != nil && d.Tokens[0].IssuedBy.Name != uiAda {
				t.Errorf("%s tokens after the refusals: %+v", s.SpaceKey, d.Tokens)
			}
		}
		var engList uiSpaceSyncs
		e.as(adaTok, "GET", "/api/ui/spaces/ENG/syncs", nil).decode(t, &engList)
		if len(engList.Results) != 1 {
			t.Errorf("ENG has %d syncs after the refusals, want 1", len(engList.Results))
		}

		// The twins: each refused caller can do what they are allowed to.
		t.Run("twins", func(t *testing.T) {
			if r := e.as(patTok, "GET", "/api/ui/spaces/ENG/syncs", nil); r.Code != 200 {
				t.Errorf("pat lists ENG: %s", r)
			}
			if r := e.as(patTok, "GET", "/api/ui/syncs/"+eng.ID, nil); r.Code != 200 {
				t.Errorf("pat reads ENG's sync: %s", r)
			}
			// Sam administers ENG: every change there works.
			mine := e.createSync(t, samTok, "ENG", "Sam's", nil)
			for _, a := range changes[1:] {
				r := e.call(a.method, a.path(mine), "JWT "+samTok, a.body)
				if r.Code >= 300 {
					t.Errorf("sam %s on ENG: %s", a.name, r)
				}
			}
			// The other tenant's admin administers ENG of their own site.
			theirs := e.createSync(t, otherAdaTok, "ENG", "Theirs", nil)
			if r := e.as(otherAdaTok, "POST", "/api/ui/syncs/"+theirs.ID+"/token-downloads", map[string]string{}); r.Code != 200 {
				t.Errorf("other tenant downloads its own: %s", r)
			}
			// And Ada cannot reach theirs either.
			if r := e.as(adaTok, "GET", "/api/ui/syncs/"+theirs.ID, nil); r.Code != 404 {
				t.Errorf("ada reads the other tenant's sync: %s", r)
			}
			if r := e.as(adaTok, "GET", "/api/ui/spaces", nil); r.Code != 200 {
				t.Errorf("ada lists spaces: %s", r)
			}
		})
	})
}

// TestUIAuth_TokenKinds checks that each route accepts exactly one kind of
// Connect token: page routes the page JWT, API routes the context token.
func TestUIAuth_TokenKinds(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
	site := e.sites[0]
	ada := site.user(t, uiAda)
	pageURL := func(acc string) string {
		u, err := site.sim.PageURL("space-sync", acc)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u, e.appURL)
	}
	pagePath := pageURL(ada)
	pageJWT := pagePath[strings.LastIndex(pagePath, "jwt=")+4:]
	ctxTok := site.token(t, ada)

	tests := []struct {
		name   string
		method string
		target string
		auth   string
		want   int
	}{
		{"page with its page token", "GET", pagePath, "", 200},
		{"page with a context token in ?jwt=", "GET", "/pages/space-sync?jwt=" + ctxTok, "", 401},
		{"page with a context token in the header", "GET", "/pages/space-sync", "JWT " + ctxTok, 401},
		{"page anonymous", "GET", pageURL(""), "", 401},
		{"page without a token", "GET", "/pages/space-sync", "", 401},
		{"page with another query than signed", "GET", pagePath + "&extra=1", "", 401},
		{"API with a context token", "GET", "/api/ui/spaces", "JWT " + ctxTok, 200},
		{"API with the page token", "GET", "/api/ui/spaces", "JWT " + pageJWT, 401},
		{"API with a context token in ?jwt=", "GET", "/api/ui/spaces?jwt=" + ctxTok, "", 401},
		{"API with both", "GET", "/api/ui/spaces?jwt=" + ctxTok, "JWT " + ctxTok, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call(tt.method, tt.target, tt.auth, nil)
			if r.Code != tt.want {
				t.Errorf("%s: %s, want %d", tt.target, r, tt.want)
			}
		})
	}
	e.checkNoSecrets(t, ctxTok, pageJWT)
}

// TestUISend_ValidationAndLimits checks the Send Token and Download Token
// inputs and the per-user and per-tenant send limits.
func TestUISend_ValidationAndLimits(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{Sites: 2})
	site, other := e.sites[0], e.sites[1]
	adaTok := site.token(t, site.user(t, uiAda))
	samTok := site.token(t, site.user(t, uiSam))
	otherTok := other.token(t, other.user(t, uiAda))
	s := e.createSync(t, adaTok, "ENG", "ENG", nil)
	so := e.createSync(t, otherTok, "ENG", "ENG there", nil)
	send := func(tok, id string, body any) uiResp {
		return e.as(tok, "POST", "/api/ui/syncs/"+id+"/token-emails", body)
	}

	t.Run("ErrValidation", func(t *testing.T) {
		long := strings.Repeat("é", token.MaxMessageLength+1)
		tests := []struct {
			path  string
			body  any
			field string
		}{
			{"token-emails", map[string]string{"to": ""}, "to"},
			{"token-emails", map[string]string{"to": "not an address"}, "to"},
			{"token-emails", map[string]string{"to": "a@example.org, b@example.org"}, "to"},
			{"token-emails", map[string]string{"to": "Eve <eve@example.org>"}, "to"},
			{"token-emails", map[string]string{"to": "a@example.org", "subject": "x\r\nBcc: eve@example.org"}, "subject"},
			{"token-emails", map[string]string{"to": "a@example.org", "message": long}, "message"},
			{"token-downloads", map[string]string{"message": long}, "message"},
			{"token-downloads", map[string]string{"message": "bell\a"}, "message"},
		}
		for _, tt := range tests {
			r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/"+tt.path, tt.body)
			if r.Code != 422 || r.Fields()[tt.field] == "" {
				t.Errorf("%s %v: %s, want a %s field error", tt.path, tt.body, r, tt.field)
			}
		}
		for _, body := range []string{"", "{", "[]", `{"to": 5}`} {
			if r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", body); r.Code != 422 {
				t.Errorf("body %q: %s", body, r)
			}
		}
		// Create: a name is needed, at most 50 principals, real ones.
		for _, body := range []any{
			map[string]any{"name": "  "},
			map[string]any{"name": "x", "permissions": []uiPrincipal{{"user", "557058:nobody", "Ghost"}}},
			map[string]any{"name": "x", "permissions": []uiPrincipal{{"group", "no-such-group", "confluence-admins"}}},
			map[string]any{"name": "x", "permissions": []uiPrincipal{{"role", "r", "R"}}},
			map[string]any{"name": "x", "permissions": slices.Repeat([]uiPrincipal{{"user", "u", "U"}}, 51)},
		} {
			if r := e.as(adaTok, "POST", "/api/ui/spaces/ENG/syncs", body); r.Code != 422 {
				t.Errorf("create %v: %s", body, r)
			}
		}
		if r := e.as(adaTok, "POST", "/api/ui/spaces/NOPE/syncs", map[string]any{"name": "x"}); r.Code != 404 {
			t.Errorf("create on an unknown space: %s", r)
		}
		// The twins.
		if r := send(adaTok, s.ID, map[string]string{"to": "a@example.org", "message": strings.Repeat("é", token.MaxMessageLength)}); r.Code != 202 {
			t.Errorf("longest message: %s", r)
		}
		if r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-downloads", map[string]string{"message": "tab\tand\nlines"}); r.Code != 200 {
			t.Errorf("download with tabs and lines: %s", r)
		}
	})

	t.Run("ErrRateLimited", func(t *testing.T) {
		e.app.mailLimits = mail.Limits{PerUser: 3, PerTenant: 4, Window: time.Hour}
		// Ada sent one above already.
		for i := range 2 {
			if r := send(adaTok, s.ID, map[string]string{"to": "a@example.org"}); r.Code != 202 {
				t.Fatalf("ada's send %d: %s", i+2, r)
			}
		}
		r := send(adaTok, s.ID, map[string]string{"to": "a@example.org"})
		if r.Code != 429 || r.ErrCode() != apperr.RateLimited || r.Header.Get("Retry-After") == "" {
			t.Fatalf("ada over her limit: %s %v", r, r.Header)
		}
		// Another user of the tenant may send until the tenant's limit.
		if r := send(samTok, s.ID, map[string]string{"to": "a@example.org"}); r.Code != 202 {
			t.Fatalf("sam's first send: %s", r)
		}
		if r := send(samTok, s.ID, map[string]string{"to": "a@example.org"}); r.Code != 429 || !strings.Contains(string(r.Body), "site") {
			t.Fatalf("sam over the tenant's limit: %s", r)
		}
		// Another tenant is counted on its own; downloads are not limited.
		if r := send(otherTok, so.ID, map[string]string{"to": "a@example.org"}); r.Code != 202 {
			t.Fatalf("the other tenant: %s", r)
		}
		if r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-downloads", map[string]string{}); r.Code != 200 {
			t.Fatalf("download while limited: %s", r)
		}
	})
}

// TestUISend_Outcomes follows emails to their other ends: refused by
// SendGrid, and saved to the outbox.
func TestUISend_Outcomes(t *testing.T) {
	t.Run("failed", func(t *testing.T) {
		e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
		site := e.sites[0]
		ada := site.token(t, site.user(t, uiAda))
		s := e.createSync(t, ada, "DOCS", "Docs", nil)
		if err := e.sg.FailNext(1, http.StatusForbidden, 0); err != nil {
			t.Fatal(err)
		}
		r := e.as(ada, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", map[string]string{"to": "a@example.org"})
		var sent struct{ Email uiEmail }
		r.decode(t, &sent)
		st := e.waitEmail(t, ada, sent.Email.ID)
		if st.Status != store.EmailFailed || st.Reason == "" || strings.Contains(st.Reason, uiSendGridKey) {
			t.Fatalf("refused email: %+v", st)
		}
		// The twin: the next one is sent.
		r = e.as(ada, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", map[string]string{"to": "a@example.org"})
		r.decode(t, &sent)
		if st := e.waitEmail(t, ada, sent.Email.ID); st.Status != store.EmailSent {
			t.Fatalf("second email: %+v", st)
		}
	})
	t.Run("outbox", func(t *testing.T) {
		e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{MailMode: config.MailOutbox})
		site := e.sites[0]
		ada := site.token(t, site.user(t, uiAda))
		s := e.createSync(t, ada, "DOCS", "Docs", nil)
		r := e.as(ada, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", map[string]string{"to": "a@example.org"})
		var sent struct{ Email uiEmail }
		r.decode(t, &sent)
		st := e.waitEmail(t, ada, sent.Email.ID)
		if st.Status != store.EmailOutbox {
			t.Fatalf("outbox email: %+v", st)
		}
		files, _ := filepath.Glob(filepath.Join(e.app.deps.Config.DataDir, "outbox", "*.eml"))
		if len(files) != 1 {
			t.Fatalf("outbox files: %v", files)
		}
		if b, err := os.ReadFile(files[0]); err != nil || !strings.Contains(string(b), "DOCS-space-sync.token") {
			t.Errorf("the .eml lacks the attachment: %v", err)
		}
		if len(e.sg.Messages()) != 0 {
			t.Errorf("outbox mode sent mail to SendGrid")
		}
	})
}
