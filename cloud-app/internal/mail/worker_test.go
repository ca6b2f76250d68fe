package mail

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// queueEnv is a database with a tenant and a sync, a store over it, and
// the tokens of the emails queued so far.
type queueEnv struct {
	t      *testing.T
	db     *db.DB
	key    secret.Key
	store  *store.Store
	tenant string
	sync   string
	ctx    context.Context

	mu     sync.Mutex
	tokens map[string]string // email id → token
}

func newQueueEnv(t *testing.T, d *db.DB) *queueEnv {
	t.Helper()
	e := &queueEnv{t: t, db: d, key: secret.NewKey(), ctx: context.Background(), tokens: map[string]string{}}
	e.store = store.New(d, time.Now, e.key)
	now := time.Now().UTC()
	e.tenant, e.sync = uuid.NewString(), uuid.NewString()
	e.exec(`INSERT INTO tenants (id, client_key, base_url, display_url, product_type, shared_secret_sealed, state, event_seq, installed_at, updated_at)
		VALUES (?, ?, 'https://example.atlassian.net/wiki', '', 'confluence', 'sealed', 'installed', 1, ?, ?)`, e.tenant, "ck-"+e.tenant, now, now)
	e.exec(`INSERT INTO syncs (id, tenant_id, space_id, space_key, space_name, name, permissions, sync_comments, sync_labels, status, created_by, created_at, updated_at)
		VALUES (?, ?, 'sp-1', 'ENG', 'Engineering', 'Engineering to DC', '[]', TRUE, TRUE, 'NOT_SYNCED_YET', 'acc-admin', ?, ?)`, e.sync, e.tenant, now, now)
	return e
}

func (e *queueEnv) exec(q string, args ...any) {
	e.t.Helper()
	if err := e.db.Exec(q, args...).Error; err != nil {
		e.t.Fatalf("%v", err)
	}
}

// queue stores a token row and queues its email; it returns the email id.
func (e *queueEnv) queue(to string) string {
	e.t.Helper()
	jti, id, now := uuid.NewString(), uuid.NewString(), time.Now().UTC()
	e.exec(`INSERT INTO tokens (jti, tenant_id, sync_id, kid, rs_hash, channel, recipient, issued_by, issued_at, expires_at)
		VALUES (?, ?, ?, 'k1', ?, 'email', ?, 'acc-admin', ?, ?)`,
		jti, e.tenant, e.sync, strings.Repeat("cd", 32), to, now, now.Add(7*24*time.Hour))
	tok := testToken + strings.ReplaceAll(id, "-", "")
	err := e.store.QueueEmail(e.ctx, store.EmailRecord{
		ID: id, TenantID: e.tenant, SyncID: e.sync, TokenJTI: jti, To: to,
		Subject: "Your token", Message: "Hi,\nhere it is.", Token: tok, CreatedBy: "acc-admin",
	})
	if err != nil {
		e.t.Fatalf("QueueEmail: %v", err)
	}
	e.mu.Lock()
	e.tokens[id] = tok
	e.mu.Unlock()
	return id
}

// wait polls until the email leaves the queue and returns its state.
func (e *queueEnv) wait(id string) store.EmailState {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := e.store.EmailStatus(e.ctx, e.tenant, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.Status != store.EmailQueued {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("email %s still queued after 20s (attempts %d, reason %q)", id, st.Attempts, st.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkConsistent asserts that the database and the simulator agree: every
// email recorded as sent is in the simulator exactly once, under its
// provider message id, with an attachment that decodes to its token; and
// no other mail is in the simulator.
func (e *queueEnv) checkConsistent(sim *sendgridsim.Sim) {
	e.t.Helper()
	var rows []struct {
		ID                string
		Status            string
		ProviderMessageID string
		TokenSealed       string
	}
	if err := e.db.Raw(`SELECT id, status, provider_message_id, token_sealed FROM token_emails`).Scan(&rows).Error; err != nil {
		e.t.Fatal(err)
	}
	byID := map[string]sendgridsim.Message{}
	for _, m := range sim.Messages() {
		byID[m.ID] = m
	}
	sent := 0
	for _, r := range rows {
		if r.Status != store.EmailQueued && r.TokenSealed != "" {
			e.t.Errorf("email %s is %s but still holds its sealed token", r.ID, r.Status)
		}
		if r.Status != store.EmailSent {
			continue
		}
		sent++
		m, ok := byID[r.ProviderMessageID]
		if !ok {
			e.t.Errorf("email %s recorded as sent (message %q) but SendGrid has no such mail", r.ID, r.ProviderMessageID)
			continue
		}
		e.mu.Lock()
		tok := e.tokens[r.ID]
		e.mu.Unlock()
		if len(m.Attachments) != 1 || string(m.Attachments[0].Content) != tok {
			e.t.Errorf("email %s: the mail's attachment is not its token", r.ID)
		}
	}
	if len(byID) != sent {
		e.t.Errorf("SendGrid holds %d mails; the database records %d as sent", len(byID), sent)
	}
	for _, l := range errorLog.take() {
		if !strings.Contains(l, "context canceled") {
			e.t.Errorf("the worker logged an error: %s", l)
		}
	}
}

// errorLog collects the error lines every test worker logs.
var errorLog collectingHandler

type collectingHandler struct {
	mu    sync.Mutex
	lines []string
}

func (h *collectingHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelError
}
func (h *collectingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	return nil
}
func (h *collectingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *collectingHandler) WithGroup(string) slog.Handler      { return h }
func (h *collectingHandler) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.lines
	h.lines = nil
	return l
}

// fastWorker is a worker tuned for tests: quick polls and retries.
func fastWorker(s *store.Store, m Mailer) *Worker {
	w := NewWorker(s, m, slog.New(&errorLog), nil)
	w.PollInterval = 10 * time.Millisecond
	w.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	w.MaxAttempts = 3
	w.Lease = 30 * time.Second
	w.SendTimeout = 10 * time.Second
	return w
}

// runWorker runs w until the test ends.
func runWorker(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func startSimServer(t *testing.T) (*sendgridsim.Sim, *httptest.Server) {
	t.Helper()
	sim := sendgridsim.New(sendgridsim.Config{APIKey: testAPIKey})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv
}

func TestWorker_SendGrid(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newQueueEnv(t, d)
		sim, srv := startSimServer(t)
		good := newTestSendGrid(t, srv.URL, testAPIKey, "Space Sync <no-reply@spacesync.example>", 500*time.Millisecond)

		t.Run("OK", func(t *testing.T) {
			w := fastWorker(e.store, good)
			runWorker(t, w)
			id := e.queue("bob@example.com")
			w.Wake()
			st := e.wait(id)
			if st.Status != store.EmailSent || st.Reason != "" || st.Attempts != 1 {
				t.Fatalf("state %+v: want sent at the first attempt", st)
			}
			m, err := sim.WaitForMessage(e.ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Attachments[0].Content) != e.tokens[id] || m.To[0].Email != "bob@example.com" ||
				!strings.HasPrefix(m.Subject, "[Space Sync from example.atlassian.net] ") {
				t.Errorf("mail %+v", m)
			}
			e.checkConsistent(sim)
		})

		t.Run("400", func(t *testing.T) {
			bad := newTestSendGrid(t, srv.URL, testAPIKey, "Space Sync <no-reply@localhost>", time.Second)
			runWorker(t, fastWorker(e.store, bad))
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailFailed || st.Attempts != 1 ||
				!strings.Contains(st.Reason, "The from email does not contain a valid address") || !strings.Contains(st.Reason, "not sent") {
				t.Errorf("state %+v: want failed at once with SendGrid's reason", st)
			}
			e.checkConsistent(sim)
		})

		t.Run("401", func(t *testing.T) {
			const wrongKey = "SG.wrong.d3Jvbmcta2V5LXZhbHVl"
			bad := newTestSendGrid(t, srv.URL, wrongKey, "no-reply@spacesync.example", time.Second)
			runWorker(t, fastWorker(e.store, bad))
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailFailed || !strings.Contains(st.Reason, "API key") || strings.Contains(st.Reason, wrongKey) {
				t.Errorf("state %+v: want failed saying the API key is refused, without the key", st)
			}
			e.checkConsistent(sim)
		})

		t.Run("413", func(t *testing.T) {
			mustFailNext(t, sim, 1, http.StatusRequestEntityTooLarge, 0)
			runWorker(t, fastWorker(e.store, good))
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailFailed || !strings.Contains(st.Reason, "too large") {
				t.Errorf("state %+v: want failed as too large", st)
			}
			e.checkConsistent(sim)
		})

		t.Run("429RetryAfter", func(t *testing.T) {
			mustFailNext(t, sim, 1, http.StatusTooManyRequests, time.Second)
			runWorker(t, fastWorker(e.store, good))
			start := time.Now()
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailSent || st.Attempts != 2 {
				t.Errorf("state %+v: want sent at the second attempt", st)
			}
			// The backoff is 20ms; only Retry-After makes it wait a second.
			if d := time.Since(start); d < time.Second {
				t.Errorf("sent again after %s; SendGrid asked for 1s", d)
			}
			e.checkConsistent(sim)
		})

		t.Run("500Bounded", func(t *testing.T) {
			mustFailNext(t, sim, 100, http.StatusInternalServerError, 0)
			t.Cleanup(func() { mustFailNext(t, sim, 0, 0, 0) })
			runWorker(t, fastWorker(e.store, good))
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailFailed || st.Attempts != 3 ||
				!strings.Contains(st.Reason, "Gave up after 3 attempts") || !strings.Contains(st.Reason, "500 Internal Server Error") {
				t.Errorf("state %+v: want failed after 3 attempts naming the 500", st)
			}
			e.checkConsistent(sim)
		})

		t.Run("SlowThenFast", func(t *testing.T) {
			sim.SetDelay(3 * time.Second)
			t.Cleanup(func() { sim.SetDelay(0) })
			w := fastWorker(e.store, good) // SendGrid deadline 500ms
			w.Backoff = func(int) time.Duration { return 300 * time.Millisecond }
			runWorker(t, w)
			id := e.queue("bob@example.com")
			// Wait for the first attempt to time out, then let SendGrid answer.
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, _ := e.store.EmailStatus(e.ctx, e.tenant, id)
				if strings.Contains(st.Reason, "did not answer") {
					break
				}
				if time.Now().After(deadline) || st.Status != store.EmailQueued {
					t.Fatalf("no timeout recorded: %+v", st)
				}
				time.Sleep(5 * time.Millisecond)
			}
			sim.SetDelay(0)
			st := e.wait(id)
			if st.Status != store.EmailSent || st.Attempts != 2 {
				t.Errorf("state %+v: want sent at the second attempt", st)
			}
			e.checkConsistent(sim)
		})

		t.Run("ObsoleteNotSent", func(t *testing.T) {
			before := len(sim.Messages())
			// The token is revoked after its email was queued, before any
			// worker runs.
			id := e.queue("bob@example.com")
			e.exec(`UPDATE tokens SET revoked_at = ?, revoke_reason = 'revoked' WHERE jti = (SELECT token_jti FROM token_emails WHERE id = ?)`, time.Now().UTC(), id)
			runWorker(t, fastWorker(e.store, good))
			st := e.wait(id)
			if st.Status != store.EmailFailed || !strings.Contains(st.Reason, "revoked") {
				t.Errorf("state %+v: want failed because the token was revoked", st)
			}
			if len(sim.Messages()) != before {
				t.Error("a revoked token was sent")
			}
			e.checkConsistent(sim)
		})

		t.Run("503RetryAfter", func(t *testing.T) {
			mustFailNext(t, sim, 1, http.StatusServiceUnavailable, time.Second)
			runWorker(t, fastWorker(e.store, good))
			start := time.Now()
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailSent || st.Attempts != 2 {
				t.Errorf("state %+v: want sent at the second attempt", st)
			}
			if d := time.Since(start); d < time.Second {
				t.Errorf("sent again after %s; SendGrid asked for 1s", d)
			}
			e.checkConsistent(sim)
		})

		t.Run("TimeoutBounded", func(t *testing.T) {
			// SendGrid never answers within the 500ms deadline; it keeps
			// nothing from an abandoned send.
			sim.SetDelay(3 * time.Second)
			t.Cleanup(func() { sim.SetDelay(0) })
			before := len(sim.Messages())
			runWorker(t, fastWorker(e.store, good))
			st := e.wait(e.queue("bob@example.com"))
			if st.Status != store.EmailFailed || st.Attempts != 3 ||
				!strings.Contains(st.Reason, "Gave up after 3 attempts") || !strings.Contains(st.Reason, "did not answer within 500ms") ||
				!strings.Contains(st.Reason, "may still arrive") || strings.Contains(st.Reason, "was not sent") {
				t.Errorf("state %+v: want failed after 3 attempts, saying SendGrid never answered and the email may still arrive", st)
			}
			if n := len(sim.Messages()); n != before {
				t.Errorf("SendGrid kept %d new mails from abandoned sends", n-before)
			}
			e.checkConsistent(sim)
		})

		// Last, since it leaves mail in the simulator that is (rightly) not
		// recorded as sent.
		t.Run("AnswerLost", func(t *testing.T) {
			// SendGrid takes every attempt but its answer comes after the
			// deadline: the mail goes out, and the app cannot know it.
			sim.SetLateAnswer(3 * time.Second)
			t.Cleanup(func() { sim.SetLateAnswer(0) })
			before := len(sim.Messages())
			runWorker(t, fastWorker(e.store, good))
			id := e.queue("bob@example.com")
			st := e.wait(id)
			if st.Status != store.EmailFailed || st.Attempts != 3 || !strings.Contains(st.Reason, "may still arrive") ||
				strings.Contains(st.Reason, "was not sent") {
				t.Errorf("state %+v: want failed after 3 attempts, saying the email may still arrive", st)
			}
			got := sim.Messages()[before:]
			if len(got) != 3 {
				t.Fatalf("SendGrid took %d mails, want one per attempt (3)", len(got))
			}
			for _, m := range got {
				if string(m.Attachments[0].Content) != e.tokens[id] {
					t.Errorf("a mail SendGrid took does not carry this email's token")
				}
			}
			var pid string
			if err := e.db.Raw(`SELECT provider_message_id FROM token_emails WHERE id = ?`, id).Scan(&pid).Error; err != nil || pid != "" {
				t.Errorf("provider message id %q, %v: want none (no answer was ever read)", pid, err)
			}
			// The twin: the same late answer within the deadline is "sent".
			sim.SetLateAnswer(100 * time.Millisecond)
			if st := e.wait(e.queue("bob@example.com")); st.Status != store.EmailSent || st.Attempts != 1 {
				t.Errorf("state %+v: want sent at the first attempt", st)
			}
		})
	})
}

func TestWorker_Outbox(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newQueueEnv(t, d)
		dir := t.TempDir()
		o, err := NewOutbox(OutboxConfig{Dir: dir, From: "no-reply@spacesync.example"})
		if err != nil {
			t.Fatal(err)
		}
		runWorker(t, fastWorker(e.store, o))
		id := e.queue("bob@example.com")
		st := e.wait(id)
		if st.Status != store.EmailOutbox || st.Reason != "" {
			t.Fatalf("state %+v: want outbox (never sent)", st)
		}
		if fi, err := os.Stat(dir + "/" + id + ".eml"); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("outbox file: %v, %v", fi, err)
		}
	})
}

// TestWorker_TwoWorkersExactlyOnce runs two workers, each with its own
// connection pool to one Postgres database (two replicas), over a queue
// they drain together: SendGrid receives each email exactly once.
func TestWorker_TwoWorkersExactlyOnce(t *testing.T) {
	url := dbtest.PostgresURL(t, migrations.FS)
	open := func() *db.DB {
		d, err := db.Open(context.Background(), db.Options{URL: url, Migrations: migrations.FS})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	e := newQueueEnv(t, open())
	sim, srv := startSimServer(t)
	sim.SetDelay(5 * time.Millisecond) // keep sends in flight while the other claims
	const emails = 60
	ids := make([]string, emails)
	for i := range ids {
		ids[i] = e.queue(fmt.Sprintf("user%d@example.com", i))
	}
	// Each replica's first send waits (up to 10s) until the other replica
	// is sending too, so both hold claims at the same moment.
	in := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var counters []*countingMailer
	for i, s := range []*store.Store{e.store, store.New(open(), time.Now, e.key)} {
		m := &countingMailer{
			Mailer: newTestSendGrid(t, srv.URL, testAPIKey, "no-reply@spacesync.example", 5*time.Second),
			mine:   in[i], other: in[1-i],
		}
		counters = append(counters, m)
		w := fastWorker(s, m)
		w.Batch = 3
		runWorker(t, w)
	}
	for _, id := range ids {
		if st := e.wait(id); st.Status != store.EmailSent || st.Attempts != 1 {
			t.Errorf("email %s: %+v, want sent at the first attempt", id, st)
		}
	}
	msgs := sim.Messages()
	if len(msgs) != emails {
		t.Errorf("SendGrid received %d mails for %d emails", len(msgs), emails)
	}
	perToken := map[string]int{}
	for _, m := range msgs {
		perToken[string(m.Attachments[0].Content)]++
	}
	for id, tok := range e.tokens {
		if perToken[tok] != 1 {
			t.Errorf("email %s was sent %d times", id, perToken[tok])
		}
	}
	e.checkConsistent(sim)
	// Both replicas did part of the work (otherwise the test proves little).
	a, b := counters[0].n.Load(), counters[1].n.Load()
	t.Logf("sends by replica: %d and %d; errors logged: %q", a, b, errorLog.take())
	if a == 0 || b == 0 || a+b != emails {
		t.Errorf("sends by replica: %d and %d; want both busy and %d in all", a, b, emails)
	}
	var n0 int64
	if err := e.db.Raw(`SELECT COUNT(*) FROM audit_events WHERE action = ?`, store.AuditEmailSent).Scan(&n0).Error; err != nil || n0 != emails {
		t.Errorf("%d email.sent audit events, %v; want %d", n0, err, emails)
	}
}

// countingMailer counts the sends it passes on. Its first send closes
// mine and waits for other to be closed (or 10 seconds).
type countingMailer struct {
	Mailer
	n           atomic.Int64
	once        sync.Once
	mine, other chan struct{}
}

func (c *countingMailer) Send(ctx context.Context, e TokenEmail) (Result, error) {
	c.n.Add(1)
	c.once.Do(func() {
		close(c.mine)
		select {
		case <-c.other:
		case <-time.After(10 * time.Second):
		}
	})
	return c.Mailer.Send(ctx, e)
}

// TestWorker_ShutdownFinishesInFlight cancels Run while a send is in
// flight: Run returns only after the send is done and recorded.
func TestWorker_ShutdownFinishesInFlight(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newQueueEnv(t, d)
		sim, srv := startSimServer(t)
		sim.SetDelay(400 * time.Millisecond)
		w := fastWorker(e.store, newTestSendGrid(t, srv.URL, testAPIKey, "no-reply@spacesync.example", 5*time.Second))
		id := e.queue("bob@example.com")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		// Wait until the email is claimed (the send is then in flight).
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _ := e.store.EmailStatus(e.ctx, e.tenant, id)
			if st.Attempts == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the email was never claimed")
			}
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		st, _ := e.store.EmailStatus(e.ctx, e.tenant, id)
		if st.Status != store.EmailSent {
			t.Errorf("after shutdown: %+v, want the in-flight send finished and recorded", st)
		}
		e.checkConsistent(sim)
	})
}

// TestWorker_Wake shows that a queued email goes out at once when the
// worker is woken, even with a long poll interval, and not before.
func TestWorker_Wake(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newQueueEnv(t, d)
		sim, srv := startSimServer(t)
		w := fastWorker(e.store, newTestSendGrid(t, srv.URL, testAPIKey, "no-reply@spacesync.example", 5*time.Second))
		w.PollInterval = time.Hour
		runWorker(t, w)
		time.Sleep(50 * time.Millisecond) // the worker's first look finds nothing
		id := e.queue("bob@example.com")
		time.Sleep(200 * time.Millisecond)
		if st, _ := e.store.EmailStatus(e.ctx, e.tenant, id); st.Status != store.EmailQueued {
			t.Fatalf("sent without a wake-up: %+v", st)
		}
		w.Wake()
		start := time.Now()
		if st := e.wait(id); st.Status != store.EmailSent {
			t.Fatalf("after Wake: %+v", st)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("sent %s after Wake", d)
		}
		e.checkConsistent(sim)
	})
}
