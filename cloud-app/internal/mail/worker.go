package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
)

// Worker defaults; each can be changed on the Worker before Run.
const (
	DefaultPollInterval  = 250 * time.Millisecond
	DefaultLease         = 2 * time.Minute
	DefaultMaxAttempts   = 5
	DefaultBatch         = 4
	DefaultWorkerTimeout = 60 * time.Second
	DefaultMaxRetryAfter = time.Hour
)

// Worker drains the token_emails queue: it claims due emails, sends each
// with the Mailer and records the outcome (sent or outbox, failed with a
// reason, or rescheduled with backoff). Several workers, in one process or
// in several replicas, may run against one database: a claim holds an
// email for the lease, so no two workers send the same email at once.
//
// Delivery is at least once: if a worker dies after SendGrid accepted an
// email but before recording it, the email is sent again once the lease
// runs out (the same token; it still works only once).
type Worker struct {
	// PollInterval is how often the queue is checked when nothing wakes
	// the worker.
	PollInterval time.Duration
	// Lease is how long a claim holds an email. It must be longer than
	// SendTimeout plus the time to record the outcome.
	Lease time.Duration
	// MaxAttempts bounds the attempts at one email; after the last
	// temporary failure it is failed.
	MaxAttempts int
	// Batch is how many emails one claim takes; they are sent concurrently.
	Batch int
	// SendTimeout bounds one Send (the SendGrid mailer has its own, shorter
	// deadline per call).
	SendTimeout time.Duration
	// Backoff is the wait after the n-th failed attempt (n from 1). A longer
	// Retry-After from the provider wins, up to MaxRetryAfter.
	Backoff       func(attempt int) time.Duration
	MaxRetryAfter time.Duration

	store  *store.Store
	mailer Mailer
	log    *slog.Logger
	now    func() time.Time
	wake   chan struct{}
}

// NewWorker returns a worker that sends the queue of s with m. now is the
// clock (nil means time.Now); log receives one line per outcome, never a
// token, subject or message.
func NewWorker(s *store.Store, m Mailer, log *slog.Logger, now func() time.Time) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Worker{
		PollInterval:  DefaultPollInterval,
		Lease:         DefaultLease,
		MaxAttempts:   DefaultMaxAttempts,
		Batch:         DefaultBatch,
		SendTimeout:   DefaultWorkerTimeout,
		Backoff:       DefaultBackoff,
		MaxRetryAfter: DefaultMaxRetryAfter,
		store:         s,
		mailer:        m,
		log:           log,
		now:           now,
		wake:          make(chan struct{}, 1),
	}
}

// DefaultBackoff waits 30 seconds after the first failed attempt and
// doubles each time, up to 10 minutes.
func DefaultBackoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// Wake makes the worker look at the queue now (call it after queuing an
// email). It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run drains the queue until ctx is done, then returns nil once the sends
// in flight have finished and been recorded (they are not cut short).
// Database errors are logged and retried with a growing pause.
func (w *Worker) Run(ctx context.Context) error {
	pause := w.PollInterval
	for ctx.Err() == nil {
		n, err := w.RunOnce(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			// Shutting down mid-claim: anything the cut-short claim took is
			// claimed again once its lease runs out.
			return nil
		case err != nil:
			w.log.Error("mail worker: cannot claim token emails", "err", err)
			pause = min(pause*2, 10*time.Second)
		case n > 0:
			pause = w.PollInterval
			continue // more may be due
		default:
			pause = w.PollInterval
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// RunOnce claims one batch of due emails, sends them concurrently and
// records each outcome. It returns how many it claimed. Sends and their
// records are not cut short by ctx: a claimed email is always settled or
// rescheduled.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	claimed, err := w.store.ClaimDueEmails(ctx, w.Batch, w.Lease)
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	detached := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for _, q := range claimed {
		wg.Go(func() { w.handle(detached, q) })
	}
	wg.Wait()
	return len(claimed), nil
}

// handle sends one claimed email and records the outcome.
func (w *Worker) handle(ctx context.Context, q store.QueuedEmail) {
	log := w.log.With("email_id", q.ID, "tenant_id", q.TenantID, "sync_id", q.SyncID,
		"attempt", q.Attempt, "to_domain", domainOf(q.To))
	if reason := w.obsolete(q); reason != "" {
		w.fail(ctx, log, q, reason)
		return
	}
	sendCtx, cancel := context.WithTimeout(ctx, w.SendTimeout)
	res, err := w.mailer.Send(sendCtx, tokenEmail(q))
	cancel()
	if err == nil {
		if res.Status == StatusOutbox {
			w.record(log, func() error { return w.store.MarkEmailOutbox(ctx, q.EmailClaim, res.MessageID) })
			log.Info("token email saved to the outbox (not sent)", "file", res.Path)
			return
		}
		w.record(log, func() error { return w.store.MarkEmailSent(ctx, q.EmailClaim, res.MessageID) })
		log.Info("token email sent", "provider_message_id", res.MessageID)
		return
	}
	if t, ok := IsTemporary(err); ok {
		if q.Attempt >= w.MaxAttempts {
			q.Unconfirmed = q.Unconfirmed || t.Unconfirmed
			w.fail(ctx, log.With("err", err), q, fmt.Sprintf("Gave up after %d attempts; the last one: %s. %s", q.Attempt, t.Reason, notSent(q)))
			return
		}
		delay := max(w.Backoff(q.Attempt), min(t.RetryAfter, w.MaxRetryAfter))
		reason := fmt.Sprintf("%s; trying again (attempt %d of %d).", t.Reason, q.Attempt, w.MaxAttempts)
		w.record(log, func() error { return w.store.RescheduleEmail(ctx, q.EmailClaim, delay, reason, t.Unconfirmed) })
		log.Warn("token email not sent; will retry", "reason", t.Reason, "retry_in", delay.String(), "err", err)
		return
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		w.fail(ctx, log.With("err", err), q, ae.Message)
		return
	}
	w.fail(ctx, log.With("err", err), q, "The email could not be prepared. The token was not sent.")
}

// fail records a final failure.
func (w *Worker) fail(ctx context.Context, log *slog.Logger, q store.QueuedEmail, reason string) {
	w.record(log, func() error { return w.store.MarkEmailFailed(ctx, q.EmailClaim, reason) })
	log.Warn("token email failed", "reason", reason)
}

// record stores an outcome, retrying a failing database a few times: the
// email may already be with SendGrid, and an unrecorded send would be sent
// again after the lease. ErrEmailNotClaimed (another attempt holds the
// email now) is logged and dropped.
func (w *Worker) record(log *slog.Logger, fn func() error) {
	var err error
	for i := range 6 {
		if err = fn(); err == nil {
			return
		}
		if errors.Is(err, store.ErrEmailNotClaimed) {
			log.Warn("token email outcome dropped: the claim ran out and another attempt holds the email")
			return
		}
		time.Sleep(time.Duration(100<<i) * time.Millisecond)
	}
	log.Error("token email outcome not recorded", "err", err)
}

// obsolete says why a claimed email must not be sent at all, or "".
func (w *Worker) obsolete(q store.QueuedEmail) string {
	// After an attempt SendGrid never answered, "not sent" may be untrue.
	notSentNow := "The token was not sent."
	if q.Unconfirmed {
		notSentNow = "It was not sent again; an earlier attempt was never confirmed by SendGrid, so that email may still arrive."
	}
	switch {
	case q.TokenUnreadable:
		return "The queued token could not be read (the app's secret key changed since it was queued). " + notSentNow + " Send a new one."
	case q.TenantUninstalled:
		return "Space Sync was uninstalled from the Cloud site before the email was sent. " + notSentNow
	case q.SyncDeleted:
		return "The sync was deleted before the email was sent. " + notSentNow
	case q.TokenUsed:
		return "The token was used before the email was sent. " + notSentNow
	case q.TokenRevoked:
		return "The token was revoked before the email was sent. " + notSentNow
	case !w.now().Before(q.ExpiresAt):
		return "The token expired before the email could be sent. " + notSentNow + " Send a new one."
	case q.Attempt > w.MaxAttempts:
		return fmt.Sprintf("Gave up after %d attempts. %s", w.MaxAttempts, notSent(q))
	}
	return ""
}

// notSent ends the reason of an email given up after temporary failures.
// If any attempt went unanswered after sending, SendGrid may have
// delivered it, and the sender is told so rather than "not sent".
func notSent(q store.QueuedEmail) string {
	if q.Unconfirmed {
		return "SendGrid never confirmed an attempt, so the email may still arrive: ask the recipient to check Inbox and Spam/Junk before sending the token again, or download the token instead."
	}
	return "The token was not sent; try again later, or download the token instead."
}

// tokenEmail builds the email of a claimed queue row; the site comes from
// the tenant's verified base URL.
func tokenEmail(q store.QueuedEmail) TokenEmail {
	site := ""
	if u, err := url.Parse(q.SiteBaseURL); err == nil {
		site = strings.ToLower(u.Host)
	}
	return TokenEmail{
		ID:        q.ID,
		To:        q.To,
		Subject:   q.Subject,
		Message:   q.Message,
		SiteName:  site,
		SiteURL:   q.SiteBaseURL,
		SpaceKey:  q.SpaceKey,
		SpaceName: q.SpaceName,
		SyncName:  q.SyncName,
		ExpiresAt: q.ExpiresAt,
		Token:     q.Token,
	}
}
