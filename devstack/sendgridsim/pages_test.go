package sendgridsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"spacesync.io/shared/apperr"
)

// hostileMail has HTML special characters in every field a page shows.
func hostileMail(t *testing.T) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{
		"personalizations": []any{map[string]any{
			"to":      []any{map[string]any{"email": "bob@example.com", "name": `Bob "<b>Bold</b>"`}},
			"cc":      []any{map[string]any{"email": "carol@example.org", "name": "Carol & Co"}},
			"headers": map[string]any{"X-Pers": `<i>p</i>`},
		}},
		"from":     map[string]any{"email": "noreply@spacesync.example", "name": "<Space> & 'Sync'"},
		"reply_to": map[string]any{"email": "help@spacesync.example", "name": "</dd><script>alert(3)</script>"},
		"subject":  `Token <script>alert("subject")</script> & more`,
		"content": []any{
			map[string]any{"type": "text/plain", "value": "Plain <script>alert('text')</script> & done"},
			map[string]any{"type": "text/html", "value": `<p onclick="alert(1)">Hi</p><script>alert("html")</script>"'`},
		},
		"attachments": []any{
			map[string]any{"content": base64.StdEncoding.EncodeToString([]byte("<html><script>alert(4)</script></html>")),
				"type": "text/html", "filename": `<img src=x onerror=alert(5)>.html`},
			map[string]any{"content": base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}),
				"type": "image/png", "filename": "Grüße \"quoted\".png", "disposition": "inline", "content_id": "logo"},
		},
		"headers":    map[string]any{"X-Note": `"><script>alert(6)</script>`},
		"categories": []any{"<cat>"},
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// get fetches path from h and checks the status.
func get(t *testing.T, h http.Handler, path string, wantStatus int) *httptest.ResponseRecorder {
	t.Helper()
	rec := serve(h, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != wantStatus {
		t.Fatalf("GET %s: status = %d, want %d; body %.300s", path, rec.Code, wantStatus, rec.Body)
	}
	return rec
}

// checkPage checks what every HTML page must have: the type, the CSP, and no
// script anywhere (so no mail content ever became markup).
func checkPage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'none'", csp)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("X-Content-Type-Options is not nosniff")
	}
	body := rec.Body.String()
	for _, raw := range []string{"<script", "<b>Bold", "<i>p</i>", "<img src=x", "<cat>", "<Space>"} {
		if strings.Contains(body, raw) {
			t.Errorf("page contains unescaped %q", raw)
		}
	}
	return body
}

func sendHostile(t *testing.T) (*Sim, string) {
	t.Helper()
	sim := New(Config{APIKey: testKey, Now: func() time.Time { return goldenNow }})
	rec := serve(sim.Handler(), newSendRequest(hostileMail(t)))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202; body %s", rec.Code, rec.Body)
	}
	return sim, rec.Header().Get("X-Message-Id")
}

func TestPages_List(t *testing.T) {
	t.Run("OKEmpty", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		body := checkPage(t, get(t, sim.Handler(), "/", http.StatusOK))
		if !strings.Contains(body, `id="empty"`) || strings.Contains(body, `id="mails"`) {
			t.Errorf("empty list page:\n%s", body)
		}
	})
	t.Run("OKEscaped", func(t *testing.T) {
		sim, id := sendHostile(t)
		serve(sim.Handler(), newSendRequest(validBody("Second mail")))
		body := checkPage(t, get(t, sim.Handler(), "/", http.StatusOK))
		for _, want := range []string{
			`id="mails"`,
			`<a class="subject" href="/messages/` + id + `">Token &lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt; &amp; more</a>`,
			`&lt;Space&gt; &amp; &#39;Sync&#39; &lt;noreply@spacesync.example&gt;`,
			`Bob &#34;&lt;b&gt;Bold&lt;/b&gt;&#34; &lt;bob@example.com&gt;`,
			`<time datetime="2026-12-03T12:00:00Z">2026-12-03 12:00:00 UTC</time>`,
			`<span class="lozenge">2</span>`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("list page lacks %s", want)
			}
		}
		if strings.Contains(body, `id="empty"`) {
			t.Error("list page with mail shows the empty state")
		}
		if i, j := strings.Index(body, "Second mail"), strings.Index(body, "Token &lt;script"); i < 0 || j < 0 || i > j {
			t.Errorf("newest mail is not first (positions %d, %d)", i, j)
		}
	})
	t.Run("OKShowsPlan", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		if err := sim.FailNext(2, http.StatusInternalServerError, 0); err != nil {
			t.Fatal(err)
		}
		sim.SetDelay(1500 * time.Millisecond)
		body := checkPage(t, get(t, sim.Handler(), "/", http.StatusOK))
		want := `<p class="flag flag-warning" id="plan">The next 2 sends answer 500 Internal Server Error. Sends are answered after 1.5s.</p>`
		if !strings.Contains(body, want) {
			t.Errorf("list page lacks %s", want)
		}
	})
}

func TestPages_Message(t *testing.T) {
	t.Run("OKEscaped", func(t *testing.T) {
		sim, id := sendHostile(t)
		body := checkPage(t, get(t, sim.Handler(), "/messages/"+id, http.StatusOK))
		for _, want := range []string{
			`<h1 id="subject">Token &lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt; &amp; more</h1>`,
			`<dd id="from">&lt;Space&gt; &amp; &#39;Sync&#39; &lt;noreply@spacesync.example&gt;</dd>`,
			`<dd id="reply-to">&lt;/dd&gt;&lt;script&gt;alert(3)&lt;/script&gt; &lt;help@spacesync.example&gt;</dd>`,
			`<code id="message-id">` + id + `</code>`,
			`<dd class="cc">Carol &amp; Co &lt;carol@example.org&gt;</dd>`,
			`<dt>X-Pers</dt><dd>&lt;i&gt;p&lt;/i&gt;</dd>`,
			`<pre class="body" id="text">Plain &lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt; &amp; done</pre>`,
			// The HTML body is attribute-escaped into a sandboxed srcdoc: the
			// browser shows it rendered, but it can run nothing.
			`<iframe class="body" id="html" title="HTML content, sandboxed" sandbox referrerpolicy="no-referrer" srcdoc="&lt;p onclick=&#34;alert(1)&#34;&gt;Hi&lt;/p&gt;&lt;script&gt;alert(&#34;html&#34;)&lt;/script&gt;&#34;&#39;"></iframe>`,
			`href="/messages/` + id + `/attachments/0" download="&lt;img src=x onerror=alert(5)&gt;.html">&lt;img src=x onerror=alert(5)&gt;.html</a>`,
			`<td><code>text/html</code></td>`,
			`<td>inline <code>cid:logo</code></td>`,
			`<td class="num">4 B</td>`,
			`<tr><th>X-Note</th><td>&#34;&gt;&lt;script&gt;alert(6)&lt;/script&gt;</td></tr>`,
			`<span class="lozenge">&lt;cat&gt;</span>`,
			`<a href="/messages/` + id + `/raw">Request JSON</a>`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("message page lacks %s", want)
			}
		}
	})
	t.Run("OKMinimal", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		rec := serve(sim.Handler(), newSendRequest(mailWith(t, map[string]any{
			"subject": nil, "content": nil, "template_id": "d-123",
		})))
		// A JSON null is not a string: the simulator refuses it like SendGrid.
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("null subject: status = %d, want 400", rec.Code)
		}
		body := mustJSON(t, map[string]any{
			"personalizations": []any{map[string]any{"to": []any{map[string]any{"email": "bob@example.com"}}}},
			"from":             map[string]any{"email": "noreply@spacesync.example"},
			"template_id":      "d-123",
		})
		rec = serve(sim.Handler(), newSendRequest(body))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("template mail: status = %d, want 202; body %s", rec.Code, rec.Body)
		}
		page := checkPage(t, get(t, sim.Handler(), "/messages/"+rec.Header().Get("X-Message-Id"), http.StatusOK))
		for _, want := range []string{`<h1 id="subject">(no subject)</h1>`, `id="no-attachments"`,
			"No text/plain content.", "No text/html content.", "No custom headers.", "<code>d-123</code>"} {
			if !strings.Contains(page, want) {
				t.Errorf("minimal message page lacks %s", want)
			}
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		sim, _ := sendHostile(t)
		body := checkPage(t, get(t, sim.Handler(), "/messages/nope", http.StatusNotFound))
		if !strings.Contains(body, `<p id="error">There is no mail with this ID.`) {
			t.Errorf("not-found page:\n%s", body)
		}
	})
}

func TestPages_Attachment(t *testing.T) {
	sim, id := sendHostile(t)
	h := sim.Handler()
	t.Run("OK", func(t *testing.T) {
		for _, tc := range []struct {
			n           string
			content     []byte
			disposition string
		}{
			{"0", []byte("<html><script>alert(4)</script></html>"), `attachment; filename="<img src=x onerror=alert(5)>.html"`},
			{"1", []byte{0, 1, 2, 255}, `attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe%20%22quoted%22.png`},
		} {
			rec := get(t, h, "/messages/"+id+"/attachments/"+tc.n, http.StatusOK)
			if !bytes.Equal(rec.Body.Bytes(), tc.content) {
				t.Errorf("attachment %s = %q, want %q", tc.n, rec.Body.Bytes(), tc.content)
			}
			// Served as an opaque download whatever type the mail declared, so
			// an HTML attachment cannot run on the simulator's origin.
			for k, v := range map[string]string{
				"Content-Type":            "application/octet-stream",
				"Content-Disposition":     tc.disposition,
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'; sandbox",
			} {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("attachment %s: %s = %q, want %q", tc.n, k, got, v)
				}
			}
		}
	})
	t.Run("ErrNoSuchAttachment", func(t *testing.T) {
		for _, path := range []string{
			"/messages/" + id + "/attachments/2",
			"/messages/" + id + "/attachments/-1",
			"/messages/" + id + "/attachments/x",
			"/messages/" + id + "/attachments/01x",
			"/messages/nope/attachments/0",
		} {
			checkPage(t, get(t, h, path, http.StatusNotFound))
		}
	})
}

func TestPages_Raw(t *testing.T) {
	sim, id := sendHostile(t)
	rec := get(t, sim.Handler(), "/messages/"+id+"/raw", http.StatusOK)
	if !bytes.Equal(rec.Body.Bytes(), hostileMail(t)) {
		t.Errorf("raw = %.200s, want the request body", rec.Body)
	}
	if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("raw headers = %v", rec.Header())
	}
	get(t, sim.Handler(), "/messages/nope/raw", http.StatusNotFound)
}

func TestPages_Static(t *testing.T) {
	sim := New(Config{APIKey: testKey})
	page := get(t, sim.Handler(), "/", http.StatusOK).Body.String()
	m := regexp.MustCompile(`<link rel="stylesheet" href="(/static/style\.[0-9a-f]{16}\.css)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page links no hashed stylesheet:\n%s", page)
	}
	rec := get(t, sim.Handler(), m[1], http.StatusOK)
	if rec.Header().Get("Content-Type") != "text/css; charset=utf-8" ||
		rec.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		!bytes.Equal(rec.Body.Bytes(), styleCSS) {
		t.Errorf("stylesheet: headers %v, %d bytes", rec.Header(), rec.Body.Len())
	}
	get(t, sim.Handler(), "/static/style.css", http.StatusNotFound)
	checkPage(t, get(t, sim.Handler(), "/no/such/page", http.StatusNotFound))
}

func TestAPI_Messages(t *testing.T) {
	sim, id := sendHostile(t)
	h := sim.Handler()

	var list messageList
	rec := get(t, h, "/api/messages", http.StatusOK)
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Messages) != 1 || list.Messages[0].ID != id || list.Messages[0].Raw != nil {
		t.Fatalf("list = %+v, want the one mail without its raw body", list.Messages)
	}
	if got := list.Messages[0].Attachments[1].Content; !bytes.Equal(got, []byte{0, 1, 2, 255}) {
		t.Errorf("attachment content over JSON = %v", got)
	}

	var one Message
	rec = get(t, h, "/api/messages/"+id, http.StatusOK)
	if err := json.Unmarshal(rec.Body.Bytes(), &one); err != nil {
		t.Fatal(err)
	}
	if one.ID != id || !bytes.Equal(one.Raw, hostileMail(t)) {
		t.Errorf("one = %s / raw %.80s", one.ID, one.Raw)
	}

	rec = get(t, h, "/api/messages/nope", http.StatusNotFound)
	var eb apperr.Body
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code != apperr.NotFound {
		t.Errorf("not found body = %s (%v)", rec.Body, err)
	}

	rec = serve(h, httptest.NewRequest(http.MethodDelete, "/api/messages", nil))
	if rec.Code != http.StatusNoContent || len(sim.Messages()) != 0 {
		t.Errorf("DELETE: status %d, %d kept; want 204 and none", rec.Code, len(sim.Messages()))
	}
}

func TestAPI_Control(t *testing.T) {
	call := func(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return serve(h, r)
	}
	t.Run("OKFailures", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		rec := call(sim.Handler(), http.MethodPost, "/api/failures", `{"count":1,"status":429,"retryAfterSeconds":3}`)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
		}
		rec = serve(sim.Handler(), newSendRequest(validBody("Token")))
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "3" {
			t.Errorf("send: status %d, Retry-After %q; want 429 and 3", rec.Code, rec.Header().Get("Retry-After"))
		}
		if rec := serve(sim.Handler(), newSendRequest(validBody("Token"))); rec.Code != http.StatusAccepted {
			t.Errorf("next send: status %d, want 202", rec.Code)
		}
	})
	t.Run("OKDelay", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		if rec := call(sim.Handler(), http.MethodPut, "/api/delay", `{"milliseconds":250}`); rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
		}
		if _, d, late := sim.status(); d != 250*time.Millisecond || late != 0 {
			t.Errorf("delay = %s, late answer %s; want 250ms and none", d, late)
		}
		if rec := call(sim.Handler(), http.MethodPut, "/api/delay", `{"milliseconds":300,"afterAccept":true}`); rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
		}
		if _, d, late := sim.status(); d != 250*time.Millisecond || late != 300*time.Millisecond {
			t.Errorf("delay = %s, late answer %s; want 250ms and 300ms", d, late)
		}
	})
	t.Run("ErrBadBodies", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		for _, tc := range []struct{ method, path, body string }{
			{http.MethodPost, "/api/failures", `{"count":1,"status":404}`},
			{http.MethodPost, "/api/failures", `{"count":-1,"status":500}`},
			{http.MethodPost, "/api/failures", `{"count":1,"status":500,"extra":true}`},
			{http.MethodPost, "/api/failures", `{"count":1,"status":500} {}`},
			{http.MethodPost, "/api/failures", `not json`},
			{http.MethodPut, "/api/delay", `{"milliseconds":-5}`},
			{http.MethodPut, "/api/delay", `{"milliseconds":"5"}`},
			{http.MethodPut, "/api/delay", `{"milliseconds":` + strings.Repeat("9", 5000) + `}`},
		} {
			rec := call(sim.Handler(), tc.method, tc.path, tc.body)
			var eb apperr.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); rec.Code != http.StatusUnprocessableEntity || err != nil ||
				eb.Error.Code != apperr.ValidationFailed {
				t.Errorf("%s %s %.40s: status %d, body %.200s", tc.method, tc.path, tc.body, rec.Code, rec.Body)
			}
		}
		// A simple cross-origin form post cannot set application/json.
		r := httptest.NewRequest(http.MethodPost, "/api/failures", strings.NewReader(`{"count":1,"status":500}`))
		r.Header.Set("Content-Type", "text/plain")
		if rec := serve(sim.Handler(), r); rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("text/plain control call: status %d, want 422", rec.Code)
		}
		plan, delay, late := sim.status()
		if plan.remaining != 0 || delay != 0 || late != 0 {
			t.Errorf("refused control calls changed the plan: %+v, %s", plan, delay)
		}
	})
}

// TestPages_TemplatesParse executes every page template with its view.
func TestPages_TemplatesParse(t *testing.T) {
	p := newPages()
	base := pageBase{Title: "T", CSS: "/static/x.css"}
	for name, tc := range map[string]struct {
		tmpl interface {
			ExecuteTemplate(io.Writer, string, any) error
		}
		view any
	}{
		"list":    {p.list, listPage{pageBase: base, Rows: []listRow{{ID: "a", Subject: "s"}}}},
		"message": {p.message, messagePage{pageBase: base, Envelopes: []envelopeView{{To: "x"}}}},
		"error":   {p.errPage, errorPage{pageBase: base, Heading: "h", Text: "t"}},
	} {
		var buf bytes.Buffer
		if err := tc.tmpl.ExecuteTemplate(&buf, "layout", tc.view); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !strings.Contains(buf.String(), "</html>") {
			t.Errorf("%s: incomplete page", name)
		}
	}
}
