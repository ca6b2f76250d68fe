package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
)

// Fixtures for the token email tests. Names start with em so they do not
// collide with other resources' test helpers. Tenants, syncs and tokens are
// inserted with SQL so these tests depend only on the schema.

type emClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *emClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *emClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type emEnv struct {
	t     *testing.T
	db    *db.DB
	store *Store
	clock *emClock
	ctx   context.Context
}

func emEach(t *testing.T, fn func(t *testing.T, e *emEnv)) {
	t.Helper()
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		clock := &emClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
		fn(t, &emEnv{t: t, db: d, store: New(d, clock.Now, secret.NewKey()), clock: clock, ctx: context.Background()})
	})
}

// emDiff returns "" when want and got are deeply equal, and both otherwise.
func emDiff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("want %+v\n got %+v", want, got)
}

func (e *emEnv) exec(q string, args ...any) {
	e.t.Helper()
	if err := e.db.Exec(q, args...).Error; err != nil {
		e.t.Fatalf("%s: %v", strings.Fields(q)[0:3], err)
	}
}

// emTenant inserts an installed tenant and returns its id.
func (e *emEnv) emTenant(baseURL string) string {
	e.t.Helper()
	id, now := uuid.NewString(), e.clock.Now()
	e.exec(`INSERT INTO tenants (id, client_key, base_url, display_url, product_type, shared_secret_sealed, state, event_seq, installed_at, updated_at)
		VALUES (?, ?, ?, '', 'confluence', 'sealed', 'installed', 1, ?, ?)`, id, "ck-"+id, baseURL, now, now)
	return id
}

// emSync inserts a sync of the tenant and returns its id.
func (e *emEnv) emSync(tenantID, spaceKey string) string {
	e.t.Helper()
	id, now := uuid.NewString(), e.clock.Now()
	e.exec(`INSERT INTO syncs (id, tenant_id, space_id, space_key, space_name, name, permissions, sync_comments, sync_labels, status, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, '[]', TRUE, FALSE, 'NOT_SYNCED_YET', 'acc-admin', ?, ?)`,
		id, tenantID, "sp-"+spaceKey, spaceKey, spaceKey+" space", spaceKey+" sync", now, now)
	return id
}

// emToken inserts an emailed token of the sync and returns its jti.
func (e *emEnv) emToken(tenantID, syncID, to string) string {
	e.t.Helper()
	jti, now := uuid.NewString(), e.clock.Now()
	e.exec(`INSERT INTO tokens (jti, tenant_id, sync_id, kid, rs_hash, channel, recipient, issued_by, issued_at, expires_at)
		VALUES (?, ?, ?, 'k1', ?, 'email', ?, 'acc-admin', ?, ?)`,
		jti, tenantID, syncID, strings.Repeat("ab", 32), to, now, now.Add(7*24*time.Hour))
	return jti
}

// emQueue queues an email for a new token of the sync and returns the
// record.
func (e *emEnv) emQueue(tenantID, syncID, sender, to string) EmailRecord {
	e.t.Helper()
	rec := EmailRecord{
		ID: uuid.NewString(), TenantID: tenantID, SyncID: syncID, TokenJTI: e.emToken(tenantID, syncID, to),
		To: to, Subject: "Your token", Message: "Hi,\nhere it is.", Token: "eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIn0." + uuid.NewString(),
		CreatedBy: sender,
	}
	if err := e.store.QueueEmail(e.ctx, rec); err != nil {
		e.t.Fatalf("QueueEmail: %v", err)
	}
	return rec
}

func (e *emEnv) emColumn(col, id string) string {
	e.t.Helper()
	var v string
	if err := e.db.Raw(`SELECT `+col+` FROM token_emails WHERE id = ?`, id).Scan(&v).Error; err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *emEnv) emAudit(action, emailID string) int {
	e.t.Helper()
	var n int64
	if err := e.db.Raw(`SELECT COUNT(*) FROM audit_events WHERE action = ? AND detail LIKE ?`, action, "%"+emailID+"%").Scan(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return int(n)
}

func TestStore_QueueEmail(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		tenant := e.emTenant("https://example.atlassian.net/wiki")
		syncID := e.emSync(tenant, "ENG")

		t.Run("OK", func(t *testing.T) {
			rec := e.emQueue(tenant, syncID, "acc-1", "bob@example.com")
			sealed := e.emColumn("token_sealed", rec.ID)
			if sealed == "" || strings.Contains(sealed, rec.Token) || strings.Contains(sealed, rec.Token[len(rec.Token)-36:]) {
				t.Errorf("token_sealed = %q: want the token sealed, not in the clear", sealed)
			}
			st, err := e.store.EmailStatus(e.ctx, tenant, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := EmailState{ID: rec.ID, SyncID: syncID, TokenJTI: rec.TokenJTI, To: rec.To, Status: EmailQueued,
				CreatedBy: "acc-1", CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}
			if d := emDiff(want, st); d != "" {
				t.Error(d)
			}
		})

		t.Run("ErrIncomplete", func(t *testing.T) {
			good := EmailRecord{ID: uuid.NewString(), TenantID: tenant, SyncID: syncID, TokenJTI: e.emToken(tenant, syncID, "a@example.com"),
				To: "a@example.com", Token: "a.b.c.d.e", CreatedBy: "acc-1"}
			for name, mutate := range map[string]func(r *EmailRecord){
				"no id":         func(r *EmailRecord) { r.ID = "" },
				"id not a uuid": func(r *EmailRecord) { r.ID = "1" },
				"no recipient":  func(r *EmailRecord) { r.To = "" },
				"crlf in to":    func(r *EmailRecord) { r.To = "a@example.com\r\nBcc: c@example.com" },
				"no token":      func(r *EmailRecord) { r.Token = "" },
				"no sender":     func(r *EmailRecord) { r.CreatedBy = "" },
				"huge message":  func(r *EmailRecord) { r.Message = strings.Repeat("x", 5000) },
			} {
				r := good
				mutate(&r)
				if err := e.store.QueueEmail(e.ctx, r); err == nil {
					t.Errorf("%s: QueueEmail = nil, want an error", name)
				}
			}
			if n := e.emCount(`SELECT COUNT(*) FROM token_emails WHERE token_jti = ?`, good.TokenJTI); n != 0 {
				t.Fatalf("refused records stored %d rows", n)
			}
			if err := e.store.QueueEmail(e.ctx, good); err != nil {
				t.Fatalf("the complete twin: %v", err)
			}
		})

		t.Run("ErrUnknownToken", func(t *testing.T) {
			rec := EmailRecord{ID: uuid.NewString(), TenantID: tenant, SyncID: syncID, TokenJTI: "no-such-jti",
				To: "a@example.com", Token: "a.b.c.d.e", CreatedBy: "acc-1"}
			if err := e.store.QueueEmail(e.ctx, rec); err == nil {
				t.Fatal("QueueEmail for a token that is not stored = nil, want a foreign key error")
			}
		})
	})
}

// emCount counts rows with a raw query.
func (e *emEnv) emCount(query string, args ...any) int {
	e.t.Helper()
	var n int64
	if err := e.db.Raw(query, args...).Scan(&n).Error; err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return int(n)
}

func TestStore_ClaimDueEmails(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		tenant := e.emTenant("https://example.atlassian.net/wiki")
		syncID := e.emSync(tenant, "ENG")
		rec := e.emQueue(tenant, syncID, "acc-1", "bob@example.com")

		got, err := e.store.ClaimDueEmails(e.ctx, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("claimed %d emails, want 1", len(got))
		}
		q := got[0]
		want := QueuedEmail{
			EmailClaim: EmailClaim{ID: rec.ID, Attempt: 1},
			TenantID:   tenant, SyncID: syncID, TokenJTI: rec.TokenJTI, To: rec.To, Subject: rec.Subject,
			Message: rec.Message, Token: rec.Token, CreatedBy: "acc-1", CreatedAt: e.clock.Now(),
			SiteBaseURL: "https://example.atlassian.net/wiki", SpaceKey: "ENG", SpaceName: "ENG space",
			SyncName: "ENG sync", ExpiresAt: e.clock.Now().Add(7 * 24 * time.Hour),
		}
		if d := emDiff(want, q); d != "" {
			t.Errorf("claimed email:\n%s", d)
		}

		// Held for the lease: not claimed again, even by another store.
		other := New(e.db, e.clock.Now, secret.NewKey())
		if again, err := other.ClaimDueEmails(e.ctx, 10, time.Minute); err != nil || len(again) != 0 {
			t.Fatalf("claim during the lease: %d emails, %v; want none", len(again), err)
		}
		// After the lease, a worker claims it again as attempt 2; a store
		// with another key cannot open the token and says so.
		e.clock.Add(time.Minute)
		again, err := other.ClaimDueEmails(e.ctx, 10, time.Minute)
		if err != nil || len(again) != 1 {
			t.Fatalf("claim after the lease: %d emails, %v; want 1", len(again), err)
		}
		if again[0].Attempt != 2 || !again[0].TokenUnreadable || again[0].Token != "" {
			t.Errorf("re-claim: attempt %d, unreadable %v, token %q; want 2, true, empty", again[0].Attempt, again[0].TokenUnreadable, again[0].Token)
		}
		// The first attempt's outcome no longer counts.
		if err := e.store.MarkEmailSent(e.ctx, q.EmailClaim, "sg-1"); !errors.Is(err, ErrEmailNotClaimed) {
			t.Errorf("MarkEmailSent by the expired attempt = %v, want ErrEmailNotClaimed", err)
		}
		if err := e.store.MarkEmailSent(e.ctx, again[0].EmailClaim, "sg-2"); err != nil {
			t.Errorf("MarkEmailSent by the current attempt: %v", err)
		}
		if got := e.emColumn("provider_message_id", rec.ID); got != "sg-2" {
			t.Errorf("provider_message_id = %q, want sg-2", got)
		}
	})
}

func TestStore_ClaimDueEmails_States(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		tenant := e.emTenant("https://example.atlassian.net/wiki")
		syncA, syncB := e.emSync(tenant, "A"), e.emSync(tenant, "B")
		live := e.emQueue(tenant, syncA, "acc-1", "a@example.com")
		revoked := e.emQueue(tenant, syncA, "acc-1", "b@example.com")
		deleted := e.emQueue(tenant, syncB, "acc-1", "c@example.com")
		e.exec(`UPDATE tokens SET revoked_at = ?, revoke_reason = 'revoked' WHERE jti = ?`, e.clock.Now(), revoked.TokenJTI)
		e.exec(`UPDATE syncs SET deleted_at = ? WHERE id = ?`, e.clock.Now(), syncB)

		got, err := e.store.ClaimDueEmails(e.ctx, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]QueuedEmail{}
		for _, q := range got {
			byID[q.ID] = q
		}
		if len(byID) != 3 {
			t.Fatalf("claimed %d emails, want 3", len(byID))
		}
		if q := byID[live.ID]; q.TokenRevoked || q.SyncDeleted || q.TenantUninstalled || q.TokenUsed {
			t.Errorf("live email flagged: %+v", q)
		}
		if !byID[revoked.ID].TokenRevoked {
			t.Error("revoked token not reported")
		}
		if !byID[deleted.ID].SyncDeleted {
			t.Error("deleted sync not reported")
		}

		// An uninstalled tenant shows on the next claim.
		other := e.emTenant("https://other.atlassian.net/wiki")
		gone := e.emQueue(other, e.emSync(other, "C"), "acc-2", "d@example.com")
		e.exec(`UPDATE tenants SET state = 'uninstalled' WHERE id = ?`, other)
		got, err = e.store.ClaimDueEmails(e.ctx, 10, time.Minute)
		if err != nil || len(got) != 1 || got[0].ID != gone.ID || !got[0].TenantUninstalled {
			t.Fatalf("claim for an uninstalled tenant: %+v, %v", got, err)
		}
	})
}

func TestStore_ClaimDueEmails_ErrArguments(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		for _, c := range []struct {
			limit int
			lease time.Duration
		}{{0, time.Minute}, {101, time.Minute}, {1, 0}} {
			if _, err := e.store.ClaimDueEmails(e.ctx, c.limit, c.lease); err == nil {
				t.Errorf("ClaimDueEmails(%d, %s) = nil error, want one", c.limit, c.lease)
			}
		}
		if got, err := e.store.ClaimDueEmails(e.ctx, 100, time.Second); err != nil || len(got) != 0 {
			t.Errorf("ClaimDueEmails on an empty queue = %v, %v; want none, nil", got, err)
		}
	})
}

func TestStore_SettleEmail(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		tenant := e.emTenant("https://example.atlassian.net/wiki")
		syncID := e.emSync(tenant, "ENG")
		claimOne := func(t *testing.T) QueuedEmail {
			t.Helper()
			got, err := e.store.ClaimDueEmails(e.ctx, 1, time.Minute)
			if err != nil || len(got) != 1 {
				t.Fatalf("claim: %d emails, %v", len(got), err)
			}
			return got[0]
		}
		for _, c := range []struct {
			name, status, action, reason, provider string
			mark                                   func(EmailClaim) error
		}{
			{"Sent", EmailSent, AuditEmailSent, "", "sg-42", func(c EmailClaim) error { return e.store.MarkEmailSent(e.ctx, c, "sg-42") }},
			{"Outbox", EmailOutbox, AuditEmailOutbox, "", "x@y", func(c EmailClaim) error { return e.store.MarkEmailOutbox(e.ctx, c, "x@y") }},
			{"Failed", EmailFailed, AuditEmailFailed, "SendGrid refused the email.", "", func(c EmailClaim) error {
				return e.store.MarkEmailFailed(e.ctx, c, "SendGrid refused the email.")
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				rec := e.emQueue(tenant, syncID, "acc-1", "bob@example.com")
				q := claimOne(t)
				if err := c.mark(q.EmailClaim); err != nil {
					t.Fatal(err)
				}
				st, err := e.store.EmailStatus(e.ctx, tenant, rec.ID)
				if err != nil {
					t.Fatal(err)
				}
				if st.Status != c.status || st.Reason != c.reason || st.Attempts != 1 {
					t.Errorf("status %q reason %q attempts %d; want %q %q 1", st.Status, st.Reason, st.Attempts, c.status, c.reason)
				}
				if got := e.emColumn("token_sealed", rec.ID); got != "" {
					t.Errorf("token_sealed = %q after %s, want it erased", got, c.status)
				}
				if got := e.emColumn("provider_message_id", rec.ID); got != c.provider {
					t.Errorf("provider_message_id = %q, want %q", got, c.provider)
				}
				if n := e.emAudit(c.action, rec.ID); n != 1 {
					t.Errorf("%d %s audit events, want 1", n, c.action)
				}
				// Settled: a second outcome is refused, and it is never claimed again.
				if err := e.store.MarkEmailSent(e.ctx, q.EmailClaim, "again"); !errors.Is(err, ErrEmailNotClaimed) {
					t.Errorf("second outcome = %v, want ErrEmailNotClaimed", err)
				}
				e.clock.Add(time.Hour)
				if got, err := e.store.ClaimDueEmails(e.ctx, 10, time.Minute); err != nil || len(got) != 0 {
					t.Errorf("settled email claimed again: %+v, %v", got, err)
				}
			})
		}

		t.Run("Reschedule", func(t *testing.T) {
			rec := e.emQueue(tenant, syncID, "acc-1", "bob@example.com")
			q := claimOne(t)
			if err := e.store.RescheduleEmail(e.ctx, q.EmailClaim, 30*time.Second, "SendGrid answered 503; trying again.", false); err != nil {
				t.Fatal(err)
			}
			st, _ := e.store.EmailStatus(e.ctx, tenant, rec.ID)
			if st.Status != EmailQueued || !strings.Contains(st.Reason, "503") {
				t.Errorf("after reschedule: %q %q, want queued with the reason", st.Status, st.Reason)
			}
			if e.emColumn("token_sealed", rec.ID) == "" {
				t.Error("reschedule erased the token")
			}
			e.clock.Add(29 * time.Second)
			if got, _ := e.store.ClaimDueEmails(e.ctx, 10, time.Minute); len(got) != 0 {
				t.Fatalf("claimed %d emails before they were due", len(got))
			}
			e.clock.Add(time.Second)
			got, err := e.store.ClaimDueEmails(e.ctx, 10, time.Minute)
			if err != nil || len(got) != 1 || got[0].Attempt != 2 || got[0].Token != rec.Token {
				t.Fatalf("claim when due: %+v, %v; want attempt 2 with the token", got, err)
			}
			if err := e.store.RescheduleEmail(e.ctx, q.EmailClaim, 0, "stale", false); !errors.Is(err, ErrEmailNotClaimed) {
				t.Errorf("reschedule by a stale attempt = %v, want ErrEmailNotClaimed", err)
			}
			if got[0].Unconfirmed {
				t.Error("an email whose attempts were all answered is marked unconfirmed")
			}
			// An attempt without an answer marks the email unconfirmed, and
			// a later answered attempt does not clear it.
			if err := e.store.RescheduleEmail(e.ctx, got[0].EmailClaim, 0, "SendGrid did not answer; trying again.", true); err != nil {
				t.Fatal(err)
			}
			again, err := e.store.ClaimDueEmails(e.ctx, 10, time.Minute)
			if err != nil || len(again) != 1 || !again[0].Unconfirmed {
				t.Fatalf("claim after an unconfirmed attempt: %+v, %v; want it marked unconfirmed", again, err)
			}
			if err := e.store.RescheduleEmail(e.ctx, again[0].EmailClaim, 0, "SendGrid answered 503; trying again.", false); err != nil {
				t.Fatal(err)
			}
			again, err = e.store.ClaimDueEmails(e.ctx, 10, time.Minute)
			if err != nil || len(again) != 1 || !again[0].Unconfirmed {
				t.Fatalf("claim after a later answered attempt: %+v, %v; want it still unconfirmed", again, err)
			}
			if err := e.store.MarkEmailFailed(e.ctx, again[0].EmailClaim, "done"); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestStore_EmailStatus(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		mine := e.emTenant("https://mine.atlassian.net/wiki")
		theirs := e.emTenant("https://theirs.atlassian.net/wiki")
		rec := e.emQueue(mine, e.emSync(mine, "A"), "acc-1", "bob@example.com")
		if _, err := e.store.EmailStatus(e.ctx, mine, rec.ID); err != nil {
			t.Fatalf("own email: %v", err)
		}
		if _, err := e.store.EmailStatus(e.ctx, theirs, rec.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("another tenant's email: %v, want ErrNotFound", err)
		}
		if _, err := e.store.EmailStatus(e.ctx, mine, uuid.NewString()); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown email: %v, want ErrNotFound", err)
		}
	})
}

func TestStore_CountRecentEmails(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		tenant := e.emTenant("https://example.atlassian.net/wiki")
		other := e.emTenant("https://other.atlassian.net/wiki")
		syncID := e.emSync(tenant, "A")
		e.emQueue(tenant, syncID, "acc-1", "a@example.com") // outside the window below
		e.clock.Add(30 * time.Minute)
		since := e.clock.Now()
		for range 3 {
			e.emQueue(tenant, syncID, "acc-1", "a@example.com")
		}
		e.emQueue(tenant, syncID, "acc-2", "a@example.com")
		e.emQueue(other, e.emSync(other, "B"), "acc-1", "a@example.com")

		perUser, perTenant, err := e.store.CountRecentEmails(e.ctx, tenant, "acc-1", since)
		if err != nil {
			t.Fatal(err)
		}
		if perUser != 3 || perTenant != 4 {
			t.Errorf("since the window start: perUser %d perTenant %d, want 3 and 4", perUser, perTenant)
		}
		perUser, perTenant, err = e.store.CountRecentEmails(e.ctx, tenant, "acc-1", since.Add(-time.Hour))
		if err != nil || perUser != 4 || perTenant != 5 {
			t.Errorf("a wider window: %d %d %v, want 4 5", perUser, perTenant, err)
		}
		perUser, perTenant, err = e.store.CountRecentEmails(e.ctx, tenant, "acc-9", since.Add(time.Minute))
		if err != nil || perUser != 0 || perTenant != 0 {
			t.Errorf("an empty window: %d %d %v, want 0 0", perUser, perTenant, err)
		}
	})
}

// TestStore_ClaimDueEmails_Concurrent claims from many goroutines at once
// (separate stores over one database, as replicas would): every email is
// claimed exactly once.
func TestStore_ClaimDueEmails_Concurrent(t *testing.T) {
	emEach(t, func(t *testing.T, e *emEnv) {
		tenant := e.emTenant("https://example.atlassian.net/wiki")
		syncID := e.emSync(tenant, "A")
		const emails, claimers = 60, 8
		for i := range emails {
			e.emQueue(tenant, syncID, "acc-1", fmt.Sprintf("u%d@example.com", i))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, claimers)
		for range claimers {
			s := New(e.db, e.clock.Now, secret.NewKey())
			wg.Go(func() {
				for {
					got, err := s.ClaimDueEmails(e.ctx, 3, time.Hour)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, q := range got {
						seen[q.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("claim: %v", err)
		}
		if len(seen) != emails {
			t.Errorf("%d distinct emails claimed, want %d", len(seen), emails)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("email %s claimed %d times", id, n)
			}
		}
	})
}
