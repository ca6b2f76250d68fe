package sendgridsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"
)

// These tests drive the simulator with the real sendgrid-go client, the way
// cloud-app's mailer calls SendGrid, and pin the client behaviour the app
// relies on: a non-2xx answer is (resp, nil), never an error.

// startSim serves a simulator on a loopback httptest server.
func startSim(t *testing.T, cfg Config) (*Sim, *httptest.Server) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	sim := New(cfg)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv
}

// newClient returns a sendgrid-go client aimed at the simulator, built as
// toolchain-notes §5 shows (GetRequest leaves Method empty).
func newClient(key, baseURL string) *sendgrid.Client {
	req := sendgrid.GetRequest(key, "/v3/mail/send", baseURL)
	req.Method = rest.Post
	return &sendgrid.Client{Request: req}
}

func send(t *testing.T, c *sendgrid.Client, m *mail.SGMailV3) *rest.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.SendWithContext(ctx, m)
	if err != nil {
		t.Fatalf("SendWithContext: err = %v; sendgrid-go reports only transport failures as errors", err)
	}
	return resp
}

// tokenMail is the mail cloud-app sends: plain and HTML text and the token
// file attached, base64-encoded by the caller.
func tokenMail(token []byte) *mail.SGMailV3 {
	m := mail.NewSingleEmail(
		mail.NewEmail("Space Sync", "noreply@spacesync.example"),
		"[acme.atlassian.net] Your space token for DOCS",
		mail.NewEmail("Bob <Builder>", "bob@example.com"),
		"Hello Bob,\nthe token is attached.",
		"<p>Hello Bob,</p><p>the token is attached.</p>",
	)
	a := mail.NewAttachment().
		SetContent(base64.StdEncoding.EncodeToString(token)).
		SetType("application/octet-stream").
		SetFilename("DOCS-space-sync.token").
		SetDisposition("attachment")
	m.AddAttachment(a)
	return m
}

var testToken = []byte("eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiazEifQ.abc.def.ghi.jkl\r\n\x00\xff")

func TestClient_Send(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		sim, srv := startSim(t, Config{})
		resp := send(t, newClient(testKey, srv.URL), tokenMail(testToken))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status = %d, want 202; body %s", resp.StatusCode, resp.Body)
		}
		if resp.Body != "" {
			t.Errorf("body = %q, want empty", resp.Body)
		}
		ids := resp.Headers["X-Message-Id"]
		if len(ids) != 1 || len(ids[0]) != 22 {
			t.Fatalf("X-Message-Id = %q, want one 22-character ID", ids)
		}
		m, ok := sim.Message(ids[0])
		if !ok {
			t.Fatalf("mail %s not kept; kept %d", ids[0], len(sim.Messages()))
		}
		want := Message{
			From:    Address{Email: "noreply@spacesync.example", Name: "Space Sync"},
			To:      []Address{{Email: "bob@example.com", Name: "Bob <Builder>"}},
			Subject: "[acme.atlassian.net] Your space token for DOCS",
			Text:    "Hello Bob,\nthe token is attached.",
			HTML:    "<p>Hello Bob,</p><p>the token is attached.</p>",
			Personalizations: []Personalization{{
				To: []Address{{Email: "bob@example.com", Name: "Bob <Builder>"}},
			}},
			Attachments: []Attachment{{
				Filename: "DOCS-space-sync.token", Type: "application/octet-stream",
				Disposition: "attachment", Content: testToken,
			}},
		}
		got := m
		got.ID, got.ReceivedAt, got.Raw = "", time.Time{}, nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("kept mail (-want +got):\n%s", diff)
		}
		if !json.Valid(m.Raw) || !bytes.Contains(m.Raw, []byte(`"filename":"DOCS-space-sync.token"`)) {
			t.Errorf("Raw = %s, want the request body", m.Raw)
		}
	})

	t.Run("OKFullV3Mail", func(t *testing.T) {
		sim, srv := startSim(t, Config{})
		m := mail.NewV3Mail()
		m.SetFrom(mail.NewEmail("Space Sync", "noreply@spacesync.example"))
		m.SetReplyTo(mail.NewEmail("Help", "help@spacesync.example"))
		m.Subject = "Token"
		p := mail.NewPersonalization()
		p.AddTos(mail.NewEmail("Bob", "bob@example.com"), mail.NewEmail("", "carol@example.org"))
		p.AddCCs(mail.NewEmail("", "dave@example.net"))
		p.AddBCCs(mail.NewEmail("", "audit@spacesync.example"))
		p.SetHeader("X-Sync-Id", "sync-42")
		m.AddPersonalizations(p)
		m.AddContent(mail.NewContent("text/plain", "plain"), mail.NewContent("text/html", `<img src="cid:logo">`))
		m.AddAttachment(mail.NewAttachment().SetContent(base64.StdEncoding.EncodeToString([]byte("png"))).
			SetType("image/png").SetFilename("logo.png").SetDisposition("inline").SetContentID("logo"))
		m.SetHeader("X-Entity-Ref-ID", "email-7")
		m.AddCategories("token")
		m.SetTrackingSettings(mail.NewTrackingSettings().SetClickTracking(mail.NewClickTrackingSetting().SetEnable(false)))

		resp := send(t, newClient(testKey, srv.URL), m)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status = %d, want 202; body %s", resp.StatusCode, resp.Body)
		}
		got, _ := sim.Message(http.Header(resp.Headers).Get("X-Message-Id"))
		env := got.Personalizations[0]
		if len(env.To) != 2 || len(env.CC) != 1 || len(env.BCC) != 1 || env.Headers["X-Sync-Id"] != "sync-42" {
			t.Errorf("envelope = %+v", env)
		}
		if got.ReplyTo == nil || got.ReplyTo.Email != "help@spacesync.example" || got.Headers["X-Entity-Ref-ID"] != "email-7" {
			t.Errorf("reply-to %v, headers %v", got.ReplyTo, got.Headers)
		}
		if a := got.Attachments[0]; a.Disposition != "inline" || a.ContentID != "logo" || string(a.Content) != "png" {
			t.Errorf("attachment = %+v", a)
		}
	})

	t.Run("OKGzip", func(t *testing.T) {
		sim, srv := startSim(t, Config{})
		c := newClient(testKey, srv.URL)
		c.Headers["Content-Encoding"] = "gzip"
		resp := send(t, c, tokenMail(testToken))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status = %d, want 202; body %s", resp.StatusCode, resp.Body)
		}
		m, _ := sim.Message(http.Header(resp.Headers).Get("X-Message-Id"))
		if !json.Valid(m.Raw) || !bytes.Equal(m.Attachments[0].Content, testToken) {
			t.Errorf("gzip body not decoded: raw %.60q", m.Raw)
		}
	})

	t.Run("ErrInvalidRecipient", func(t *testing.T) {
		sim, srv := startSim(t, Config{})
		m := tokenMail(testToken)
		m.Personalizations[0].To[0].Address = "bob@"
		resp := send(t, newClient(testKey, srv.URL), m)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400", resp.StatusCode)
		}
		want := `{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email","help":"http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}]}`
		if resp.Body != want {
			t.Errorf("body = %s\nwant   %s", resp.Body, want)
		}
		if n := len(sim.Messages()); n != 0 {
			t.Errorf("kept %d mails, want 0", n)
		}
	})

	t.Run("ErrWrongKey", func(t *testing.T) {
		sim, srv := startSim(t, Config{})
		resp := send(t, newClient("SG.wrong", srv.URL), tokenMail(testToken))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", resp.StatusCode)
		}
		assertJSONEqual(t, resp.Body,
			`{"errors":[{"field":null,"message":"The provided authorization grant is invalid, expired, or revoked","help":null}]}`)
		if n := len(sim.Messages()); n != 0 {
			t.Errorf("kept %d mails, want 0", n)
		}
	})

	t.Run("ErrTooLarge", func(t *testing.T) {
		// The positive twin: the same limit lets a small attachment through.
		sim, srv := startSim(t, Config{MaxBody: 8 << 10})
		c := newClient(testKey, srv.URL)
		if resp := send(t, c, tokenMail(make([]byte, 1<<10))); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("small mail: status = %d, want 202; body %s", resp.StatusCode, resp.Body)
		}
		resp := send(t, c, tokenMail(make([]byte, 16<<10)))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("large mail: status = %d, want 413", resp.StatusCode)
		}
		if !strings.Contains(resp.Body, "413 Request Entity Too Large") {
			t.Errorf("body = %q, want nginx's 413 page", resp.Body)
		}
		if n := len(sim.Messages()); n != 1 {
			t.Errorf("kept %d mails, want 1", n)
		}
	})
}

// TestClient_FailNext checks each induced failure as sendgrid-go sees it:
// err == nil and the status in resp, then normal service again.
func TestClient_FailNext(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter time.Duration
		wantBody   string // a fragment
		wantHeader map[string]string
	}{
		{http.StatusUnauthorized, 0, "The provided authorization grant is invalid, expired, or revoked", nil},
		{http.StatusForbidden, 0, `"message":"access forbidden"`, nil},
		{http.StatusRequestEntityTooLarge, 0, "<center><h1>413 Request Entity Too Large</h1></center>", nil},
		{http.StatusTooManyRequests, 1500 * time.Millisecond, `"message":"too many requests"`,
			map[string]string{"Retry-After": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "600",
				"X-RateLimit-Reset": "1796299202"}},
		{http.StatusInternalServerError, 0, `"message":"internal error"`, nil},
		{http.StatusBadGateway, 0, "502 Bad Gateway", nil},
		{http.StatusServiceUnavailable, 30 * time.Second, `"message":"service unavailable"`, map[string]string{"Retry-After": "30"}},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			sim, srv := startSim(t, Config{Now: func() time.Time { return goldenNow }})
			c := newClient(testKey, srv.URL)
			if err := sim.FailNext(2, tc.status, tc.retryAfter); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				resp := send(t, c, tokenMail(testToken))
				if resp.StatusCode != tc.status {
					t.Fatalf("send %d: status = %d, want %d", i, resp.StatusCode, tc.status)
				}
				if !strings.Contains(resp.Body, tc.wantBody) {
					t.Errorf("body = %q, want it to contain %q", resp.Body, tc.wantBody)
				}
				for k, v := range tc.wantHeader {
					if got := http.Header(resp.Headers).Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				if tc.retryAfter == 0 && http.Header(resp.Headers).Get("Retry-After") != "" {
					t.Errorf("Retry-After = %q, want none", http.Header(resp.Headers).Get("Retry-After"))
				}
			}
			resp := send(t, c, tokenMail(testToken))
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("after the planned failures: status = %d, want 202", resp.StatusCode)
			}
			if n := len(sim.Messages()); n != 1 {
				t.Errorf("kept %d mails, want 1 (failed sends are not kept)", n)
			}
		})
	}
}

// TestClient_SetDelay shows why the app needs a deadline: sendgrid-go's
// default client has no timeout, so only the context ends a slow send.
func TestClient_SetDelay(t *testing.T) {
	sim, srv := startSim(t, Config{})
	c := newClient(testKey, srv.URL)
	sim.SetDelay(5 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := c.SendWithContext(ctx, tokenMail(testToken))
	if !errors.Is(err, context.DeadlineExceeded) || resp != nil {
		t.Fatalf("slow send: resp %v, err %v; want nil and context.DeadlineExceeded", resp, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %s, want about 100ms", d)
	}

	sim.SetDelay(50 * time.Millisecond)
	start = time.Now()
	if resp := send(t, c, tokenMail(testToken)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", resp.StatusCode)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %s, want at least the 50ms delay", d)
	}
	srv.Close() // waits for the abandoned handler
	if n := len(sim.Messages()); n != 1 {
		t.Errorf("kept %d mails, want 1 (the abandoned send is not kept)", n)
	}
}

// TestClient_SetLateAnswer: the mail is taken at once but the answer
// comes too late for the client, which cannot tell it was delivered.
func TestClient_SetLateAnswer(t *testing.T) {
	sim, srv := startSim(t, Config{})
	c := newClient(testKey, srv.URL)
	sim.SetLateAnswer(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	resp, err := c.SendWithContext(ctx, tokenMail(testToken))
	if !errors.Is(err, context.DeadlineExceeded) || resp != nil {
		t.Fatalf("late answer: resp %v, err %v; want nil and context.DeadlineExceeded", resp, err)
	}
	if n := len(sim.Messages()); n != 1 {
		t.Errorf("kept %d mails, want 1 (accepted before the answer was lost)", n)
	}
	// The twin: answered in time, the client learns the message id.
	sim.SetLateAnswer(20 * time.Millisecond)
	start := time.Now()
	resp = send(t, c, tokenMail(testToken))
	if resp.StatusCode != http.StatusAccepted || http.Header(resp.Headers).Get("X-Message-Id") == "" {
		t.Fatalf("status = %d, headers %v; want 202 with a message id", resp.StatusCode, resp.Headers)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("answered after %s, want at least 20ms", d)
	}
	if n := len(sim.Messages()); n != 2 {
		t.Errorf("kept %d mails, want 2", n)
	}
}

func assertJSONEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}
