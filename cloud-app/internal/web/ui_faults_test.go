package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/devstack/confluencesim"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/dbtest"
)

// uiSpacesCalls counts the simulator's answers to the space listing
// (/wiki/api/v2/spaces, not a space's own endpoints) by status.
func uiSpacesCalls(s *uiSite) map[int]int {
	out := map[int]int{}
	for _, r := range s.sim.Requests() {
		if r.Path == "/wiki/api/v2/spaces" {
			out[r.Status]++
		}
	}
	return out
}

// TestUISpaces_ConfluenceFaults lists a site of 600 spaces (three pages
// of Confluence's v2 listing) while Confluence answers 429 with
// Retry-After and 503 (issue 8): the listing either completes, having
// waited as asked, or fails with a clear message and a Retry-After; a
// failed listing is not kept half-loaded, so the next request lists every
// space.
func TestUISpaces_ConfluenceFaults(t *testing.T) {
	seed := confluencesim.GenerateSeed(600)
	laterPages := "/wiki/api/v2/spaces?cursor="

	t.Run("429 then 503 on a later page: completes", func(t *testing.T) {
		e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{Seed: seed})
		site := e.sites[0]
		site.sim.InjectFaults(laterPages,
			confluencesim.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"},
			confluencesim.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "1"})
		start := time.Now()
		got := e.spaces(t, site.token(t, site.user(t, uiAda)), "")
		took := time.Since(start)
		if got.Matched != 600 || len(got.Results) != uiPageSize {
			t.Fatalf("listing through the faults: matched %d, %d results; want all 600 spaces", got.Matched, len(got.Results))
		}
		calls := uiSpacesCalls(site)
		if calls[429] != 1 || calls[503] != 1 || calls[200] != 3 {
			t.Errorf("listing calls by status %v, want one 429, one 503 and the three pages", calls)
		}
		if took < 2*time.Second {
			t.Errorf("listed in %s; Confluence asked for two waits of 1s", took)
		}
	})

	t.Run("503 that persists: unavailable, then complete", func(t *testing.T) {
		e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{Seed: seed})
		site := e.sites[0]
		ada := site.user(t, uiAda)
		// The client tries a call four times in all (three retries).
		for range 4 {
			site.sim.InjectFaults(laterPages, confluencesim.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "1"})
		}
		r := e.as(site.token(t, ada), "GET", "/api/ui/spaces", nil)
		var b apperr.Body
		r.decode(t, &b)
		if r.Code != http.StatusServiceUnavailable || b.Error.Code != apperr.Unavailable ||
			!strings.Contains(b.Error.Message, "Confluence is not available") || r.Header.Get("Retry-After") == "" {
			t.Fatalf("listing while Confluence keeps answering 503: %s (Retry-After %q), want 503 unavailable naming Confluence", r, r.Header.Get("Retry-After"))
		}
		if calls := uiSpacesCalls(site); calls[503] != 4 || calls[200] != 1 {
			t.Errorf("listing calls by status %v, want the first page and four 503s on the second", calls)
		}
		// The twin: Confluence is back and the next listing is whole.
		if got := e.spaces(t, site.token(t, ada), ""); got.Matched != 600 {
			t.Fatalf("listing after the outage: matched %d, want 600", got.Matched)
		}
	})

	t.Run("429 with a long Retry-After: rate_limited at once, then complete", func(t *testing.T) {
		e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{Seed: seed})
		site := e.sites[0]
		ada := site.user(t, uiAda)
		site.sim.InjectFaults(laterPages, confluencesim.Fault{Status: http.StatusTooManyRequests, RetryAfter: "120"})
		start := time.Now()
		r := e.as(site.token(t, ada), "GET", "/api/ui/spaces", nil)
		var b apperr.Body
		r.decode(t, &b)
		if r.Code != http.StatusTooManyRequests || b.Error.Code != apperr.RateLimited ||
			!strings.Contains(b.Error.Message, "Confluence is asking Space Sync to slow down") || r.Header.Get("Retry-After") != "120" {
			t.Fatalf("listing after a 429 asking for 2 minutes: %s (Retry-After %q), want 429 rate_limited naming Confluence, Retry-After 120", r, r.Header.Get("Retry-After"))
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("refused after %s; a wait beyond the cap should fail at once", took)
		}
		if got := e.spaces(t, site.token(t, ada), ""); got.Matched != 600 {
			t.Fatalf("listing after the rate limit: matched %d, want 600", got.Matched)
		}
	})
}

// uiFastMail makes the app's mail worker poll and back off in
// milliseconds, with three attempts per email; Retry-After still wins.
func uiFastMail(w *mail.Worker) {
	w.PollInterval = 10 * time.Millisecond
	w.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	w.MaxAttempts = 3
}

// TestUISend_SendGridFaults follows Send Token emails as the page does
// (GET /api/ui/token-emails/{id}) while SendGrid, reached with the real
// sendgrid-go client, answers 429 with Retry-After or keeps answering 5xx
// (issue 8): the status ends sent after the wait SendGrid asked for, or
// failed after a bounded number of attempts with a reason in plain words;
// an email is "sent" only if SendGrid took it.
func TestUISend_SendGridFaults(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{MailWorker: uiFastMail})
	site := e.sites[0]
	ada := site.token(t, site.user(t, uiAda))
	s := e.createSync(t, ada, "DOCS", "Docs", nil)
	send := func(to string) string {
		t.Helper()
		r := e.as(ada, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", map[string]string{"to": to})
		var sent struct{ Email uiEmail }
		r.decode(t, &sent)
		if r.Code != http.StatusAccepted || sent.Email.Status != store.EmailQueued {
			t.Fatalf("send token: %s", r)
		}
		return sent.Email.ID
	}
	to := func(addr string) int {
		n := 0
		for _, m := range e.sg.Messages() {
			if len(m.Personalizations) > 0 && len(m.Personalizations[0].To) > 0 && m.Personalizations[0].To[0].Email == addr {
				n++
			}
		}
		return n
	}

	t.Run("429 with Retry-After: sent after the wait", func(t *testing.T) {
		if err := e.sg.FailNext(1, http.StatusTooManyRequests, time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		id := send("rate@example.org")
		// While it waits, the page can say why.
		sawWaiting := false
		deadline := time.Now().Add(5 * time.Second)
		for !sawWaiting && time.Now().Before(deadline) {
			var st uiEmail
			e.as(ada, "GET", "/api/ui/token-emails/"+id, nil).decode(t, &st)
			if st.Status != store.EmailQueued {
				break
			}
			sawWaiting = strings.Contains(st.Reason, "429") && strings.Contains(st.Reason, "trying again")
			time.Sleep(10 * time.Millisecond)
		}
		if !sawWaiting {
			t.Error("the status never said that SendGrid asked to wait and the email will be tried again")
		}
		st := e.waitEmail(t, ada, id)
		if st.Status != store.EmailSent || st.Reason != "" {
			t.Fatalf("email after a 429: %+v, want sent", st)
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("sent after %s; SendGrid asked for 1s", took)
		}
		if n := to("rate@example.org"); n != 1 {
			t.Errorf("SendGrid holds %d mails to the recipient, want 1", n)
		}
	})

	t.Run("5xx that persists: failed in plain words", func(t *testing.T) {
		if err := e.sg.FailNext(100, http.StatusBadGateway, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.sg.FailNext(0, 0, 0) })
		st := e.waitEmail(t, ada, send("down@example.org"))
		if st.Status != store.EmailFailed || !strings.Contains(st.Reason, "Gave up after 3 attempts") ||
			!strings.Contains(st.Reason, "SendGrid answered 502 Bad Gateway") || !strings.Contains(st.Reason, "The token was not sent") {
			t.Fatalf("email while SendGrid answers 502: %+v, want failed after 3 attempts, saying why and that it was not sent", st)
		}
		if n := to("down@example.org"); n != 0 {
			t.Errorf("SendGrid holds %d mails to the recipient, want 0", n)
		}
	})
}
