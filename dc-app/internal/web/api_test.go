package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/dc-app/internal/importer"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/dc-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

type importAnswer struct {
	SyncedSpace syncedSpaceJSON   `json:"syncedSpace"`
	Error       *apperr.BodyError `json:"error"`
}

// importFile imports a token file through the API with HTTP Basic.
func (h *harness) importFile(name, fileName, fileType string, file []byte) *http.Response {
	h.t.Helper()
	ct, body := multipartBody(h.t, fileName, fileType, file, map[string]string{"name": name})
	return h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/synced-spaces", ct, body)
}

func TestImport_OK(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	msg := `Hi! Please import <b>this</b> — it's for the "handbook".`
	tok := h.fake.Mint(t, cloudtest.MintOptions{Message: msg, Comments: true})
	instanceID, err := h.app.Store.InstanceID(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	resp := h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/token-previews", "text/plain", strings.NewReader(tok+"\r\n"))
	var p previewJSON
	decodeJSON(t, resp, &p)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview = %d", resp.StatusCode)
	}
	if p.State != protocol.StateUsable || p.Site.BaseURL != cloudtest.DefaultSite.BaseURL || p.Space.Key != "ACME" ||
		p.Message != msg || !p.Settings.Comments || p.Settings.Labels || p.SuggestedName != "Acme Handbook" || p.CloudURL != h.fake.URL {
		t.Errorf("preview = %+v", p)
	}
	if len(p.Settings.Permissions) != 2 || time.Until(p.ExpiresAt) < 6*24*time.Hour {
		t.Errorf("preview permissions %v, expiry %v", p.Settings.Permissions, p.ExpiresAt)
	}
	if h.fake.Calls(protocol.PathRedemptions) != 0 || h.rows() != 0 {
		t.Fatal("a preview redeemed or stored something")
	}

	resp = h.importFile("Handbook (DC)", "ACME-space-sync.token", "application/octet-stream", []byte(tok))
	var got importAnswer
	decodeJSON(t, resp, &got)
	if resp.StatusCode != http.StatusCreated || got.Error != nil {
		t.Fatalf("import = %d %+v", resp.StatusCode, got.Error)
	}
	sp := got.SyncedSpace
	if sp.Status != store.StatusLinked || sp.Name != "Handbook (DC)" || sp.LinkID == "" || sp.ImportedBy != adminUser || sp.LinkedAt == nil {
		t.Errorf("synced space = %+v", sp)
	}
	links := h.fake.ActiveLinks()
	if len(links) != 1 || links[0].InstanceID != instanceID || links[0].ID != sp.LinkID || links[0].Name != "Handbook (DC)" {
		t.Fatalf("Cloud links = %+v", links)
	}
	if s := h.fake.SyncOf(t, tok); s.Status != cloudtest.Synced {
		t.Errorf("Cloud sync status = %s", s.Status)
	}

	// Secrets at rest: the token is cleared once linked; the link secret
	// is sealed, and it is the one Cloud holds.
	var row struct{ TokenSealed, LinkSecretSealed string }
	h.app.Store.DB().Raw("SELECT token_sealed, link_secret_sealed FROM synced_spaces WHERE id = ?", sp.ID).Scan(&row)
	if row.TokenSealed != "" || !strings.HasPrefix(row.LinkSecretSealed, "v1.") {
		t.Errorf("stored secrets: token %q, link secret %q", row.TokenSealed, row.LinkSecretSealed)
	}
	secretVal, err := h.app.Store.LinkSecret(context.Background(), sp.ID)
	if err != nil || strings.Contains(row.LinkSecretSealed, secretVal) {
		t.Fatalf("link secret: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, h.fake.URL+protocol.PathLinkSelf, nil)
	req.Header.Set("Authorization", "Bearer "+secretVal)
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != http.StatusOK {
		t.Errorf("Cloud does not know the stored link secret: %d", r.StatusCode)
	}
	if strings.Contains(h.logs.String(), tok[:40]) || strings.Contains(h.logs.String(), secretVal) {
		t.Error("a token or link secret reached the log")
	}

	resp = h.basic(adminUser, adminPass, http.MethodGet, "/api/v1/synced-spaces", "", nil)
	var list struct{ Results []syncedSpaceJSON }
	decodeJSON(t, resp, &list)
	if len(list.Results) != 1 || list.Results[0].ID != sp.ID || list.Results[0].Site.DisplayURL != cloudtest.DefaultSite.DisplayURL {
		t.Errorf("list = %+v", list.Results)
	}
}

func TestImport_JSONAndFormShapes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	t.Run("JSONWithPermissions", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		body, _ := json.Marshal(map[string]any{"token": tok, "name": "From JSON",
			"permissions": []map[string]string{{"type": "group", "name": "confluence-administrators"}, {"type": "user", "name": "jsmith"}}})
		resp := c.api(http.MethodPost, "/api/v1/synced-spaces", "application/json", bytes.NewReader(body))
		var got importAnswer
		decodeJSON(t, resp, &got)
		if resp.StatusCode != http.StatusCreated || len(got.SyncedSpace.LocalPermissions) != 2 {
			t.Fatalf("JSON import = %d %+v", resp.StatusCode, got)
		}
	})
	t.Run("ErrNameMissing", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		ct, body := multipartBody(t, "x.token", "", []byte(tok), map[string]string{"name": "   "})
		resp := c.api(http.MethodPost, "/api/v1/synced-spaces", ct, body)
		e := apiError(t, resp)
		if resp.StatusCode != http.StatusUnprocessableEntity || e.Code != apperr.ValidationFailed || e.Fields["name"] == "" {
			t.Errorf("no name = %d %+v", resp.StatusCode, e)
		}
		if h.fake.Calls(protocol.PathRedemptions) != 1 {
			t.Error("an invalid import reached the redemption")
		}
	})
	t.Run("ErrBadPermission", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		ct, body := multipartBody(t, "x.token", "", []byte(tok), map[string]string{"name": "n", "permissions": "robot:r2d2"})
		resp := c.api(http.MethodPost, "/api/v1/synced-spaces", ct, body)
		if e := apiError(t, resp); e.Fields["permissions"] == "" {
			t.Errorf("bad permission = %d %+v", resp.StatusCode, e)
		}
	})
	t.Run("ErrNoFile", func(t *testing.T) {
		ct, body := multipartBody(t, "", "", nil, map[string]string{"name": "n"})
		resp := c.api(http.MethodPost, "/api/v1/synced-spaces", ct, body)
		if e := apiError(t, resp); resp.StatusCode != http.StatusUnprocessableEntity || e.Fields["file"] == "" {
			t.Errorf("no file = %d %+v", resp.StatusCode, e)
		}
	})
	t.Run("ErrExpectMismatch", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		before := h.fake.Calls(protocol.PathRedemptions)
		ct, body := multipartBody(t, "x.token", "", []byte(tok), map[string]string{"name": "n",
			"expectSiteBaseUrl": "https://other.atlassian.net/wiki", "expectSpaceId": "space-ACME", "expectSyncId": "sync-x"})
		resp := c.api(http.MethodPost, "/api/v1/synced-spaces", ct, body)
		if e := apiError(t, resp); resp.StatusCode != http.StatusConflict || e.Code != apperr.TokenMismatch {
			t.Errorf("expect mismatch = %d %s", resp.StatusCode, e.Code)
		}
		if h.fake.Calls(protocol.PathRedemptions) != before {
			t.Error("a mismatched import was redeemed")
		}
	})
	t.Run("ExpectMatch", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		s := h.fake.SyncOf(t, tok)
		ct, body := multipartBody(t, "x.token", "", []byte(tok), map[string]string{"name": "n",
			"expectSiteBaseUrl": s.Site.BaseURL, "expectSpaceId": s.Space.ID, "expectSyncId": s.ID})
		if resp := c.api(http.MethodPost, "/api/v1/synced-spaces", ct, body); resp.StatusCode != http.StatusCreated {
			t.Errorf("matching expect = %d %s", resp.StatusCode, readBody(resp))
		}
	})
}

// TestImport_AnyNameAndType: content decides, not the file name or the
// declared MIME type (Windows sends odd or empty ones); Notepad's BOM and
// CRLF and line wrapping still read.
func TestImport_AnyNameAndType(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for i, tc := range []struct{ name, typ, wrap string }{
		{"ACME-space-sync.token", "", ""},
		{"token.txt", "text/plain", "bom-crlf"},
		{"", "application/octet-stream", ""},
		{"ünïcødé ✓.bin", "image/png", "wrapped"},
		{"C:\\Users\\me\\Downloads\\ACME.token", "application/x-msdownload", ""},
		{"a.token", "text/plain; charset=utf-16", "crlf"},
	} {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		file := []byte(tok)
		switch tc.wrap {
		case "bom-crlf":
			file = append([]byte("\xEF\xBB\xBF"), []byte(tok+"\r\n")...)
		case "wrapped":
			var b strings.Builder
			for j := 0; j < len(tok); j += 76 {
				b.WriteString(tok[j:min(j+76, len(tok))] + "\r\n")
			}
			file = []byte(b.String())
		case "crlf":
			file = []byte(tok + "\r\n\r\n")
		}
		resp := h.importFile(fmt.Sprintf("space %d", i), tc.name, tc.typ, file)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("%q as %q (%s) = %d %s", tc.name, tc.typ, tc.wrap, resp.StatusCode, readBody(resp))
		} else {
			readBody(resp)
		}
	}
}

// corpusCheck sends every bad file and checks the answer: a 4xx with the
// code and a message, no row, no redemption, and no network call at all
// for what dc-app can refuse by itself.
func corpusCheck(t *testing.T, h *harness, send func(b cloudtest.BadToken) *http.Response) {
	for _, b := range cloudtest.BadTokens(t, h.fake) {
		t.Run(b.Name, func(t *testing.T) {
			calls := h.fake.TotalCalls()
			redemptions := h.fake.Calls(protocol.PathRedemptions)
			resp := send(b)
			e := apiError(t, resp)
			if resp.StatusCode >= 500 || resp.StatusCode < 400 {
				t.Fatalf("HTTP %d (%s: %s)", resp.StatusCode, e.Code, e.Message)
			}
			if resp.StatusCode != b.Code.Status() || e.Code != b.Code {
				t.Errorf("HTTP %d %s (%s), want %d %s", resp.StatusCode, e.Code, e.Message, b.Code.Status(), b.Code)
			}
			if len(e.Message) < 20 {
				t.Errorf("message %q is not an explanation", e.Message)
			}
			if !b.NeedsCloud && h.fake.TotalCalls() != calls {
				t.Errorf("refusing %s made %d call(s) to cloud-app", b.Name, h.fake.TotalCalls()-calls)
			}
			if h.fake.Calls(protocol.PathRedemptions) != redemptions {
				t.Error("a bad token was redeemed")
			}
			if n := h.rows(); n != 0 {
				t.Errorf("%d row(s) stored", n)
			}
		})
	}
}

func TestCorpus_API(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	t.Run("PreviewRawBody", func(t *testing.T) {
		corpusCheck(t, h, func(b cloudtest.BadToken) *http.Response {
			return h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/token-previews", "application/octet-stream", bytes.NewReader(b.Body))
		})
	})
	t.Run("ImportMultipart", func(t *testing.T) {
		corpusCheck(t, h, func(b cloudtest.BadToken) *http.Response {
			return h.importFile("Corpus", b.Name+".token", "text/plain", b.Body)
		})
	})
	t.Run("ImportJSON", func(t *testing.T) {
		corpusCheck(t, h, func(b cloudtest.BadToken) *http.Response {
			body, _ := json.Marshal(map[string]string{"token": string(b.Body), "name": "Corpus"})
			return h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/synced-spaces", "application/json", bytes.NewReader(body))
		})
	})
	if n := h.rows(); n != 0 {
		t.Errorf("%d rows after the corpus", n)
	}
}

// TestCorpus_Form sends the corpus the way the page does: the browser
// session, the CSRF header, multipart with the dropped file's name and
// type.
func TestCorpus_Form(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	t.Run("Preview", func(t *testing.T) {
		corpusCheck(t, h, func(b cloudtest.BadToken) *http.Response {
			ct, body := multipartBody(t, b.Name+".token", "", b.Body, nil)
			return c.api(http.MethodPost, "/api/v1/token-previews", ct, body)
		})
	})
	t.Run("Import", func(t *testing.T) {
		corpusCheck(t, h, func(b cloudtest.BadToken) *http.Response {
			ct, body := multipartBody(t, b.Name+".token", "application/octet-stream", b.Body, map[string]string{"name": "Corpus"})
			return c.api(http.MethodPost, "/api/v1/synced-spaces", ct, body)
		})
	})
	t.Run("PastedText", func(t *testing.T) {
		corpusCheck(t, h, func(b cloudtest.BadToken) *http.Response {
			return c.api(http.MethodPost, "/api/v1/token-previews", "text/plain; charset=utf-8", bytes.NewReader(b.Body))
		})
	})
}

// TestImport_Concurrent imports one token file 50 times at once, on both
// databases: exactly one synced space and one link; every other answer a
// refusal with a code.
func TestImport_Concurrent(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		h := newHarness(t, harnessOptions{db: d})
		tok := []byte(h.fake.Mint(t, cloudtest.MintOptions{}))
		const n = 50
		type answer struct {
			status int
			code   apperr.Code
		}
		answers := make([]answer, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ct, body := multipartBody(t, "ACME-space-sync.token", "", tok, map[string]string{"name": "Concurrent"})
				req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/synced-spaces", body)
				req.Header.Set("Content-Type", ct)
				req.SetBasicAuth(adminUser, adminPass)
				<-start
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var a importAnswer
				b := readBody(resp)
				_ = json.Unmarshal([]byte(b), &a)
				answers[i] = answer{status: resp.StatusCode}
				if a.Error != nil {
					answers[i].code = a.Error.Code
				}
			}()
		}
		close(start)
		wg.Wait()
		created, refused := 0, map[apperr.Code]int{}
		for _, a := range answers {
			switch {
			case a.status == http.StatusCreated:
				created++
			case a.status == http.StatusConflict && (a.code == apperr.AlreadyImported || a.code == apperr.TokenUsed):
				refused[a.code]++
			default:
				t.Errorf("answer %d %s", a.status, a.code)
			}
		}
		t.Logf("created %d, refused %v", created, refused)
		if created != 1 {
			t.Errorf("%d imports succeeded, want exactly 1", created)
		}
		if rows := h.rows(); rows != 1 {
			t.Errorf("%d synced spaces, want 1", rows)
		}
		if l := h.fake.ActiveLinks(); len(l) != 1 || h.fake.Redeemed() != 1 {
			t.Errorf("Cloud has %d active links after %d redemptions, want 1 and 1", len(l), h.fake.Redeemed())
		}
	})
}

func TestImport_SameTokenTwice(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := []byte(h.fake.Mint(t, cloudtest.MintOptions{}))
	if resp := h.importFile("First", "a.token", "", tok); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first import = %d", resp.StatusCode)
	}
	resp := h.importFile("Second", "a.token", "", tok)
	if e := apiError(t, resp); resp.StatusCode != http.StatusConflict || e.Code != apperr.AlreadyImported {
		t.Errorf("second import = %d %s", resp.StatusCode, e.Code)
	}
	// After the synced space is removed (and unlinked on Cloud), the used
	// token still cannot pair again.
	id := h.list()[0].ID
	if r := h.basic(adminUser, adminPass, http.MethodDelete, "/api/v1/synced-spaces/"+id, "", nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("remove = %d %s", r.StatusCode, readBody(r))
	}
	resp = h.importFile("Third", "a.token", "", tok)
	if e := apiError(t, resp); resp.StatusCode != http.StatusConflict || e.Code != apperr.TokenUsed {
		t.Errorf("import after removal = %d %s", resp.StatusCode, e.Code)
	}
	if h.rows() != 0 {
		t.Error("a refused import left a row")
	}
}

func (h *harness) list() []store.SyncedSpace {
	h.t.Helper()
	l, err := h.app.Store.List(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func TestImport_CloudRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	t.Run("ErrRevoked", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		h.fake.Revoke(t, tok)
		resp := h.importFile("n", "a.token", "", []byte(tok))
		if e := apiError(t, resp); resp.StatusCode != http.StatusGone || e.Code != apperr.TokenRevoked {
			t.Errorf("revoked = %d %s", resp.StatusCode, e.Code)
		}
	})
	t.Run("ErrSupersededBySiblingToken", func(t *testing.T) {
		first := h.fake.Mint(t, cloudtest.MintOptions{SpaceKey: "SIB"})
		second := h.fake.Mint(t, cloudtest.MintOptions{SyncID: h.fake.SyncOf(t, first).ID})
		if resp := h.importFile("n", "a.token", "", []byte(first)); resp.StatusCode != http.StatusCreated {
			t.Fatalf("first = %d", resp.StatusCode)
		}
		resp := h.importFile("n", "a.token", "", []byte(second))
		if e := apiError(t, resp); resp.StatusCode != http.StatusGone || e.Code != apperr.TokenRevoked {
			t.Errorf("sibling token = %d %s", resp.StatusCode, e.Code)
		}
	})
	if n := len(h.list()); n != 1 {
		t.Errorf("%d rows, want the one successful import", n)
	}
}

// TestImport_LostAnswer: Cloud commits the redemption but the answer never
// reaches dc-app. The row stays PENDING ("waiting for Cloud confirmation");
// the retry — here the start-up retry of a restarted dc-app — repeats the
// same redemption, Cloud recognises the replay, and there is exactly one
// link on each side.
func TestImport_LostAnswer(t *testing.T) {
	d := dbtest.SQLite(t, migrations.FS)
	key := secret.NewKey()
	h := newHarness(t, harnessOptions{db: d, key: &key, retry: importer.RetryPolicy{Base: time.Millisecond}})
	tok := []byte(h.fake.Mint(t, cloudtest.MintOptions{}))
	h.fake.DropRedemptionAnswers(1)

	resp := h.importFile("Lost", "a.token", "", tok)
	var got importAnswer
	decodeJSON(t, resp, &got)
	if resp.StatusCode != http.StatusAccepted || got.Error == nil || got.Error.Code != apperr.Pending || got.SyncedSpace.Status != store.StatusPending {
		t.Fatalf("import with a lost answer = %d %+v", resp.StatusCode, got)
	}
	if h.fake.Redeemed() != 1 || len(h.fake.ActiveLinks()) != 1 {
		t.Fatalf("Cloud: %d redemptions, %d links", h.fake.Redeemed(), len(h.fake.ActiveLinks()))
	}
	c := h.signedIn()
	doc := c.page("/space-sync")
	if s := doc.Find(`tr[data-status="PENDING"] .status-lozenge`).Text(); s != "Waiting for Cloud confirmation" {
		t.Errorf("pending row shows %q", s)
	}
	resp = h.importFile("Again", "a.token", "", tok)
	if e := apiError(t, resp); e.Code != apperr.AlreadyImported {
		t.Errorf("re-import while pending = %s", e.Code)
	}

	// "Restart": a new App on the same database retries at start-up.
	h2 := newHarness(t, harnessOptions{db: d, key: &key, extraTrusted: []string{h.fake.URL}, retry: importer.RetryPolicy{Base: time.Millisecond}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := h.list()
		if len(l) == 1 && l[0].Status == store.StatusLinked {
			if l[0].LinkID != h.fake.ActiveLinks()[0].ID {
				t.Errorf("linked to %s, Cloud has %s", l[0].LinkID, h.fake.ActiveLinks()[0].ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not linked after the retry: %+v\n%s", l, h2.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h.fake.Redeemed() != 1 || len(h.fake.Links()) != 1 || h.fake.Calls(protocol.PathRedemptions) != 2 {
		t.Errorf("Cloud: %d created, %d links, %d redemption calls; want 1, 1, 2",
			h.fake.Redeemed(), len(h.fake.Links()), h.fake.Calls(protocol.PathRedemptions))
	}
	if n, err := h.app.Importer.RetryDue(context.Background()); err != nil || n != 0 {
		t.Errorf("another retry pass attempted %d (%v)", n, err)
	}
}

// TestImport_RefusedConnection: cloud-app answers the preview, then refuses
// every connection; the redemption was never sent, so nothing is stored.
func TestImport_RefusedConnection(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := []byte(h.fake.Mint(t, cloudtest.MintOptions{}))
	h.fake.RefuseConnectionsAfterPreview()
	resp := h.importFile("Refused", "a.token", "", tok)
	e := apiError(t, resp)
	if resp.StatusCode != http.StatusBadGateway || e.Code != apperr.CloudUnreachable {
		t.Fatalf("import = %d %s %s", resp.StatusCode, e.Code, e.Message)
	}
	if h.rows() != 0 || h.fake.Calls(protocol.PathRedemptions) != 0 {
		t.Errorf("%d rows stored, %d redemptions reached Cloud", h.rows(), h.fake.Calls(protocol.PathRedemptions))
	}
	ev, _ := h.app.Store.AuditEvents(context.Background())
	if len(ev) != 2 || ev[1].Action != "synced_space.import_refused" || ev[1].Detail["reason"] != string(apperr.CloudUnreachable) {
		t.Errorf("audit = %+v", ev)
	}
	// The twin: cloud-app down from the start, so even the preview fails.
	resp = h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/token-previews", "", bytes.NewReader(tok))
	if e := apiError(t, resp); e.Code != apperr.CloudUnreachable {
		t.Errorf("preview = %s", e.Code)
	}
}

func TestImport_UntrustedIssuer(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	other := cloudtest.New(t) // a cloud-app dc-app does not trust
	tok := []byte(other.Mint(t, cloudtest.MintOptions{}))
	for _, send := range []func() *http.Response{
		func() *http.Response {
			return h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/token-previews", "", bytes.NewReader(tok))
		},
		func() *http.Response { return h.importFile("n", "a.token", "", tok) },
	} {
		resp := send()
		if e := apiError(t, resp); resp.StatusCode != http.StatusBadRequest || e.Code != apperr.UntrustedIssuer || !strings.Contains(e.Message, other.URL) {
			t.Errorf("untrusted issuer = %d %s %q", resp.StatusCode, e.Code, e.Message)
		}
	}
	if other.TotalCalls() != 0 || h.fake.TotalCalls() != 0 {
		t.Errorf("network calls made: %d to the issuer, %d to the trusted cloud-app", other.TotalCalls(), h.fake.TotalCalls())
	}
	if h.rows() != 0 {
		t.Error("row stored")
	}
	// The twin: the same kind of token from the trusted cloud-app works.
	if resp := h.importFile("n", "a.token", "", []byte(h.fake.Mint(t, cloudtest.MintOptions{}))); resp.StatusCode != http.StatusCreated {
		t.Errorf("trusted issuer = %d", resp.StatusCode)
	}
}

func TestImport_UntrustedSite(t *testing.T) {
	trusted := token.Site{ClientKey: "client-trusted", BaseURL: "https://trusted.atlassian.net/wiki"}
	h := newHarness(t, harnessOptions{trustedSites: trusted.BaseURL})
	tok := []byte(h.fake.Mint(t, cloudtest.MintOptions{})) // from acme.atlassian.net
	for _, send := range []func() *http.Response{
		func() *http.Response {
			return h.basic(adminUser, adminPass, http.MethodPost, "/api/v1/token-previews", "", bytes.NewReader(tok))
		},
		func() *http.Response { return h.importFile("n", "a.token", "", tok) },
	} {
		resp := send()
		if e := apiError(t, resp); resp.StatusCode != http.StatusForbidden || e.Code != apperr.UntrustedSite || !strings.Contains(e.Message, "acme.atlassian.net") {
			t.Errorf("untrusted site = %d %s %q", resp.StatusCode, e.Code, e.Message)
		}
	}
	if h.fake.Calls(protocol.PathRedemptions) != 0 || h.rows() != 0 {
		t.Error("a token from an untrusted site was redeemed or stored")
	}
	if resp := h.importFile("n", "a.token", "", []byte(h.fake.Mint(t, cloudtest.MintOptions{Site: &trusted}))); resp.StatusCode != http.StatusCreated {
		t.Errorf("trusted site = %d %s", resp.StatusCode, readBody(resp))
	}
}

func TestRemove(t *testing.T) {
	h := newHarness(t, harnessOptions{retry: importer.RetryPolicy{Base: time.Millisecond}})
	c := h.signedIn()
	t.Run("Linked", func(t *testing.T) {
		tok := h.fake.Mint(t, cloudtest.MintOptions{})
		var got importAnswer
		decodeJSON(t, h.importFile("n", "a.token", "", []byte(tok)), &got)
		resp := c.api(http.MethodDelete, "/api/v1/synced-spaces/"+got.SyncedSpace.ID, "", nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("remove = %d %s", resp.StatusCode, readBody(resp))
		}
		if len(h.fake.ActiveLinks()) != 0 || h.fake.SyncOf(t, tok).Status != cloudtest.NotSyncedYet {
			t.Error("not unlinked on Cloud")
		}
		if h.rows() != 0 {
			t.Error("row kept")
		}
		// The Cloud sync can be paired again with a new token.
		again := h.fake.Mint(t, cloudtest.MintOptions{SyncID: h.fake.SyncOf(t, tok).ID})
		if resp := h.importFile("again", "a.token", "", []byte(again)); resp.StatusCode != http.StatusCreated {
			t.Errorf("re-pair with a new token = %d", resp.StatusCode)
		}
		l := h.list()
		if r := c.api(http.MethodDelete, "/api/v1/synced-spaces/"+l[0].ID, "", nil); r.StatusCode != http.StatusNoContent {
			t.Fatal(r.StatusCode)
		}
	})
	t.Run("PendingSettledThenUnlinked", func(t *testing.T) {
		h.fake.DropRedemptionAnswers(1)
		var got importAnswer
		decodeJSON(t, h.importFile("n", "a.token", "", []byte(h.fake.Mint(t, cloudtest.MintOptions{}))), &got)
		if got.SyncedSpace.Status != store.StatusPending || len(h.fake.ActiveLinks()) != 1 {
			t.Fatalf("setup: %+v, %d links", got.SyncedSpace, len(h.fake.ActiveLinks()))
		}
		resp := c.api(http.MethodDelete, "/api/v1/synced-spaces/"+got.SyncedSpace.ID, "", nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("remove pending = %d %s", resp.StatusCode, readBody(resp))
		}
		if len(h.fake.ActiveLinks()) != 0 || h.rows() != 0 {
			t.Errorf("after removing a pending import: %d links, %d rows", len(h.fake.ActiveLinks()), h.rows())
		}
	})
	t.Run("ErrCloudDown", func(t *testing.T) {
		var got importAnswer
		decodeJSON(t, h.importFile("n", "a.token", "", []byte(h.fake.Mint(t, cloudtest.MintOptions{}))), &got)
		h.fake.Close()
		resp := c.api(http.MethodDelete, "/api/v1/synced-spaces/"+got.SyncedSpace.ID, "", nil)
		if e := apiError(t, resp); resp.StatusCode != http.StatusBadGateway || e.Code != apperr.CloudUnreachable {
			t.Errorf("remove with Cloud down = %d %s", resp.StatusCode, e.Code)
		}
		if h.rows() != 1 {
			t.Error("the row was removed without unlinking")
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []string{"00000000-0000-4000-8000-000000000000", "not-an-id", "..%2f"} {
			resp := c.api(http.MethodDelete, "/api/v1/synced-spaces/"+id, "", nil)
			if e := apiError(t, resp); resp.StatusCode != http.StatusNotFound || e.Code != apperr.NotFound {
				t.Errorf("remove %q = %d %s", id, resp.StatusCode, e.Code)
			}
		}
	})
}

// The API never sends a Basic challenge (DESIGN section 8): a browser would
// prompt for the password and cache it. Clients send credentials at once.
func TestAPI_NoBasicChallenge(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp, err := http.Get(h.URL + "/api/v1/synced-spaces")
	if err != nil {
		t.Fatal(err)
	}
	readBody(resp)
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != "" {
		t.Errorf("anonymous: %d, WWW-Authenticate %q", resp.StatusCode, got)
	}
	resp = h.basic("admin", "wrong password!", http.MethodGet, "/api/v1/synced-spaces", "", nil)
	readBody(resp)
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != "" {
		t.Errorf("wrong password: %d, WWW-Authenticate %q", resp.StatusCode, got)
	}
}

// Valid JSON with a field of the wrong type is told so, naming the field.
func TestAPI_JSONWrongType(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for body, field := range map[string]string{
		`{"token": 1, "name": "x"}`:                  "token",
		`{"token": "a.b.c.d.e", "name": ["x"]}`:      "name",
		`{"token": "a.b.c.d.e", "permissions": "x"}`: "permissions",
	} {
		resp := h.basic("admin", adminPass, http.MethodPost, "/api/v1/synced-spaces", "application/json", strings.NewReader(body))
		got := readBody(resp)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(got, `The field \"`+field) || strings.Contains(got, "not valid JSON") {
			t.Errorf("%s: %d %s; want 422 naming %q", body, resp.StatusCode, got, field)
		}
	}
	resp := h.basic("admin", adminPass, http.MethodPost, "/api/v1/synced-spaces", "application/json", strings.NewReader(`{"token": `))
	if got := readBody(resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(got, "not valid JSON") {
		t.Errorf("truncated JSON: %d %s", resp.StatusCode, got)
	}
}
