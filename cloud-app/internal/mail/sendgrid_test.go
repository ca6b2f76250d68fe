package mail

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sendgrid/rest"

	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/apperr"
)

const testAPIKey = "SG.test-key.c2VjcmV0LWtleS1ub3QtdG8tYmUtbG9nZ2Vk"

// startSim serves a SendGrid simulator that accepts testAPIKey.
func startSim(t *testing.T) (*sendgridsim.Sim, string) {
	t.Helper()
	sim := sendgridsim.New(sendgridsim.Config{APIKey: testAPIKey})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func newTestSendGrid(t *testing.T, apiURL, key, from string, timeout time.Duration) *SendGrid {
	t.Helper()
	sg, err := NewSendGrid(SendGridConfig{APIKey: key, APIURL: apiURL, From: from, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func TestSendGrid_Send(t *testing.T) {
	sim, url := startSim(t)
	sg := newTestSendGrid(t, url, testAPIKey, "Space Sync <no-reply@spacesync.example>", 5*time.Second)
	e := testEmail()
	e.Subject = "Jeton « Ingénierie »"
	res, err := sg.Send(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	msgs := sim.Messages()
	if len(msgs) != 1 {
		t.Fatalf("the simulator holds %d mails, want 1", len(msgs))
	}
	m := msgs[0]
	if res.Status != StatusSent || res.MessageID == "" || res.MessageID != m.ID {
		t.Errorf("result %+v: want sent with the simulator's X-Message-Id %q", res, m.ID)
	}
	if len(m.To) != 1 || m.To[0].Email != "bob@example.com" || m.To[0].Name != "" {
		t.Errorf("to = %+v, want bob@example.com alone", m.To)
	}
	if m.From.Email != "no-reply@spacesync.example" || m.From.Name != "Space Sync" {
		t.Errorf("from = %+v", m.From)
	}
	if want := "[Space Sync from example.atlassian.net] Jeton « Ingénierie »"; m.Subject != want {
		t.Errorf("subject = %q, want %q", m.Subject, want)
	}
	if !strings.Contains(m.Text, "Import Token") || !strings.Contains(m.HTML, "Import Token") {
		t.Error("text or HTML body missing")
	}
	if len(m.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1", len(m.Attachments))
	}
	a := m.Attachments[0]
	if string(a.Content) != testToken {
		t.Errorf("the attachment decodes to %q, want exactly the token %q", a.Content, testToken)
	}
	if a.Filename != "ENG-space-sync.token" || a.Type != AttachmentType || a.Disposition != "attachment" {
		t.Errorf("attachment %q %q %q", a.Filename, a.Type, a.Disposition)
	}
	// The request as sent: one-line base64 and no tracking.
	var raw struct {
		Attachments []struct {
			Content string `json:"content"`
		} `json:"attachments"`
		TrackingSettings struct {
			ClickTracking struct {
				Enable     *bool `json:"enable"`
				EnableText *bool `json:"enable_text"`
			} `json:"click_tracking"`
			OpenTracking struct {
				Enable *bool `json:"enable"`
			} `json:"open_tracking"`
		} `json:"tracking_settings"`
	}
	if err := json.Unmarshal(m.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	if c := raw.Attachments[0].Content; strings.ContainsAny(c, "\r\n") || strings.ContainsAny(c, "-_") {
		t.Errorf("attachment content %q: want standard base64 without line breaks", c)
	}
	ct := raw.TrackingSettings.ClickTracking
	if ct.Enable == nil || *ct.Enable || ct.EnableText == nil || *ct.EnableText ||
		raw.TrackingSettings.OpenTracking.Enable == nil || *raw.TrackingSettings.OpenTracking.Enable {
		t.Errorf("tracking settings %+v: want click and open tracking off", raw.TrackingSettings)
	}
}

func TestSendGrid_Send_Refusals(t *testing.T) {
	sim, url := startSim(t)
	ctx := context.Background()
	good := newTestSendGrid(t, url, testAPIKey, "Space Sync <no-reply@spacesync.example>", 5*time.Second)

	t.Run("400", func(t *testing.T) {
		// SendGrid checks the sender's address more strictly than MAIL_FROM
		// parsing does: a one-label domain is refused with a reason.
		sg := newTestSendGrid(t, url, testAPIKey, "Space Sync <no-reply@localhost>", 5*time.Second)
		_, err := sg.Send(ctx, testEmail())
		ae := mustAppErr(t, err, apperr.MailRejected)
		if !strings.Contains(ae.Message, "400") || !strings.Contains(ae.Message, "The from email does not contain a valid address") ||
			!strings.Contains(ae.Message, "from.email") {
			t.Errorf("message %q: want SendGrid's reason and field", ae.Message)
		}
	})
	t.Run("401", func(t *testing.T) {
		const wrongKey = "SG.wrong-key.bm90LXRoZS1yaWdodC1rZXk"
		sg := newTestSendGrid(t, url, wrongKey, "Space Sync <no-reply@spacesync.example>", 5*time.Second)
		_, err := sg.Send(ctx, testEmail())
		ae := mustAppErr(t, err, apperr.MailRejected)
		if !strings.Contains(ae.Message, "API key") || !strings.Contains(ae.Message, "401") {
			t.Errorf("message %q: want it to say the API key is refused", ae.Message)
		}
		if strings.Contains(err.Error(), wrongKey) || strings.Contains(ae.Message, wrongKey) {
			t.Errorf("the error carries the API key: %v", err)
		}
	})
	t.Run("413", func(t *testing.T) {
		mustFailNext(t, sim, 1, http.StatusRequestEntityTooLarge, 0)
		_, err := good.Send(ctx, testEmail())
		ae := mustAppErr(t, err, apperr.MailRejected)
		if !strings.Contains(ae.Message, "too large") {
			t.Errorf("message %q", ae.Message)
		}
	})
	t.Run("403", func(t *testing.T) {
		mustFailNext(t, sim, 1, http.StatusForbidden, 0)
		_, err := good.Send(ctx, testEmail())
		ae := mustAppErr(t, err, apperr.MailRejected)
		if !strings.Contains(ae.Message, "access forbidden") || !strings.Contains(ae.Message, "MAIL_FROM") {
			t.Errorf("message %q", ae.Message)
		}
	})
	for _, c := range []struct {
		status     int
		retryAfter time.Duration
	}{
		{http.StatusTooManyRequests, 3 * time.Second},
		{http.StatusTooManyRequests, 0},
		{http.StatusInternalServerError, 0},
		{http.StatusBadGateway, 0},
		{http.StatusServiceUnavailable, 7 * time.Second},
	} {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			mustFailNext(t, sim, 1, c.status, c.retryAfter)
			_, err := good.Send(ctx, testEmail())
			tmp, ok := IsTemporary(err)
			if !ok {
				t.Fatalf("error %v: want a temporary failure", err)
			}
			if !strings.Contains(tmp.Reason, http.StatusText(c.status)) {
				t.Errorf("reason %q", tmp.Reason)
			}
			switch {
			case c.retryAfter > 0 && tmp.RetryAfter != c.retryAfter:
				t.Errorf("RetryAfter = %s, want %s", tmp.RetryAfter, c.retryAfter)
			case c.retryAfter == 0 && c.status == http.StatusTooManyRequests && (tmp.RetryAfter < 0 || tmp.RetryAfter > time.Second):
				// No Retry-After: X-RateLimit-Reset (the next whole second
				// but one) is used; TestRetryAfter pins it exactly.
				t.Errorf("RetryAfter = %s from X-RateLimit-Reset, want at most 1s", tmp.RetryAfter)
			case c.retryAfter == 0 && c.status != http.StatusTooManyRequests && tmp.RetryAfter != 0:
				t.Errorf("RetryAfter = %s, want 0", tmp.RetryAfter)
			}
		})
	}
	if n := len(sim.Messages()); n != 0 {
		t.Errorf("the simulator kept %d mails from refused sends", n)
	}
	// The twin: the same mailer sends once the simulator accepts again.
	if res, err := good.Send(ctx, testEmail()); err != nil || res.Status != StatusSent {
		t.Fatalf("after the refusals: %+v, %v", res, err)
	}
}

func TestSendGrid_Send_Transport(t *testing.T) {
	ctx := context.Background()
	t.Run("Timeout", func(t *testing.T) {
		sim, url := startSim(t)
		sim.SetDelay(2 * time.Second)
		sg := newTestSendGrid(t, url, testAPIKey, "no-reply@spacesync.example", 100*time.Millisecond)
		start := time.Now()
		_, err := sg.Send(ctx, testEmail())
		tmp, ok := IsTemporary(err)
		if !ok || !strings.Contains(tmp.Reason, "did not answer within 100ms") {
			t.Fatalf("error %v: want a temporary timeout", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the send took %s; the deadline is 100ms", d)
		}
		sim.SetDelay(0)
		if n := len(sim.Messages()); n != 0 {
			t.Errorf("the simulator kept %d mails from an abandoned send", n)
		}
	})
	t.Run("ConnectionRefused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		sg := newTestSendGrid(t, "http://"+addr, testAPIKey, "no-reply@spacesync.example", time.Second)
		_, err = sg.Send(ctx, testEmail())
		if tmp, ok := IsTemporary(err); !ok || tmp.Reason != "SendGrid could not be reached" {
			t.Fatalf("error %v: want a temporary 'could not be reached'", err)
		}
		if strings.Contains(err.Error(), testAPIKey) {
			t.Errorf("the error carries the API key: %v", err)
		}
	})
	t.Run("NoRedirects", func(t *testing.T) {
		var followed bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				followed = true
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		sg := newTestSendGrid(t, srv.URL, testAPIKey, "no-reply@spacesync.example", time.Second)
		_, err := sg.Send(ctx, testEmail())
		ae := mustAppErr(t, err, apperr.MailRejected)
		if followed || !strings.Contains(ae.Message, "SENDGRID_API_URL") {
			t.Errorf("redirect followed %v; message %q", followed, ae.Message)
		}
	})
}

func TestSendGrid_Send_RefusesInjection(t *testing.T) {
	sim, url := startSim(t)
	sg := newTestSendGrid(t, url, testAPIKey, "no-reply@spacesync.example", time.Second)
	for name, mutate := range map[string]func(*TokenEmail){
		"subject": func(e *TokenEmail) { e.Subject = "Hi\r\nBcc: eve@example.com" },
		"to":      func(e *TokenEmail) { e.To = "bob@example.com\r\nBcc: eve@example.com" },
		"to list": func(e *TokenEmail) { e.To = "bob@example.com, eve@example.com" },
	} {
		e := testEmail()
		mutate(&e)
		if _, err := sg.Send(context.Background(), e); apperr.CodeOf(err) != apperr.ValidationFailed {
			t.Errorf("%s: %v, want validation_failed", name, err)
		}
	}
	if n := len(sim.Messages()); n != 0 {
		t.Errorf("%d mails reached SendGrid", n)
	}
}

func TestNewSendGrid_Config(t *testing.T) {
	for _, c := range []SendGridConfig{
		{APIKey: "", From: "a@example.com"},
		{APIKey: "k e y", From: "a@example.com"},
		{APIKey: "k", APIURL: "ftp://api.sendgrid.com", From: "a@example.com"},
		{APIKey: "k", APIURL: "https://user:pw@api.sendgrid.com", From: "a@example.com"},
		{APIKey: "k", APIURL: "https://api.sendgrid.com?x=1", From: "a@example.com"},
		{APIKey: "k", From: "not an address"},
		{APIKey: "k", From: "a@example.com, b@example.com"},
		{APIKey: "k", From: "a@example.com\r\nBcc: b@example.com"},
	} {
		_, err := NewSendGrid(c)
		if err == nil {
			t.Errorf("NewSendGrid(%+v) = nil error", c)
		} else if c.APIKey != "" && strings.Contains(err.Error(), c.APIKey+"\"") {
			t.Errorf("error %v carries the key", err)
		}
	}
	if _, err := NewSendGrid(SendGridConfig{APIKey: "k", From: "Space Sync <no-reply@spacesync.example>"}); err != nil {
		t.Errorf("a good config: %v", err)
	}
}

func mustAppErr(t *testing.T, err error, code apperr.Code) *apperr.Error {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("error %v: want %s", err, code)
	}
	if _, temp := IsTemporary(err); temp {
		t.Fatalf("error %v is temporary; want a final refusal", err)
	}
	return ae
}

func mustFailNext(t *testing.T, sim *sendgridsim.Sim, n, status int, retryAfter time.Duration) {
	t.Helper()
	if err := sim.FailNext(n, status, retryAfter); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		status  int
		headers map[string][]string
		want    time.Duration
	}{
		{429, map[string][]string{"Retry-After": {"7"}}, 7 * time.Second},
		{503, map[string][]string{"Retry-After": {"Thu, 03 Dec 2026 10:00:30 GMT"}}, 30 * time.Second},
		{503, map[string][]string{"Retry-After": {"Thu, 03 Dec 2026 09:00:00 GMT"}}, 0},
		{429, map[string][]string{"X-Ratelimit-Reset": {"1796292045"}}, 45 * time.Second},
		{503, map[string][]string{"X-Ratelimit-Reset": {"1796292045"}}, 0}, // only 429 has it
		{429, map[string][]string{"Retry-After": {"soon"}}, 0},
		{429, map[string][]string{"Retry-After": {"-5"}}, 0},
		{429, map[string][]string{"Retry-After": {"999999999"}}, 24 * time.Hour},
		{500, nil, 0},
	} {
		got := retryAfter(&rest.Response{StatusCode: c.status, Headers: c.headers}, now)
		if got != c.want {
			t.Errorf("retryAfter(%d, %v) = %s, want %s", c.status, c.headers, got, c.want)
		}
	}
}
