package mail

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"spacesync.io/cloud-app/internal/config"
)

// Mailer sends one token email. Two implement it: SendGrid (MAIL_MODE
// sendgrid) and Outbox (MAIL_MODE outbox).
//
// Send reports the outcome three ways:
//   - nil error: the Result says what happened (sent, or saved to the
//     outbox; never "sent" for the outbox);
//   - a *TemporaryError: not sent this time; trying again later may work
//     (rate limits, 5xx, timeouts, connection errors);
//   - any other error: not sent and never will be. Refusals carry an
//     *apperr.Error (mail_rejected with SendGrid's reason, or
//     validation_failed) whose message is safe to show the sender.
type Mailer interface {
	Send(ctx context.Context, e TokenEmail) (Result, error)
}

// Result is what a successful Send did.
type Result struct {
	// Status is StatusSent (SendGrid accepted it) or StatusOutbox (written
	// to a file, not sent).
	Status string
	// MessageID is SendGrid's X-Message-Id, or the outbox message's
	// Message-ID.
	MessageID string
	// Path is the outbox file, for StatusOutbox.
	Path string
}

// TemporaryError means the email was not sent this time and trying again
// later may work. Reason is in plain words and safe to show; Cause is for
// the log only.
type TemporaryError struct {
	Reason string
	// RetryAfter is how long the provider asked us to wait; zero when it
	// did not say.
	RetryAfter time.Duration
	// Unconfirmed means the request may have reached the provider but no
	// answer came (a timeout, a reset connection): the email may have been
	// delivered even though it is not recorded as sent.
	Unconfirmed bool
	Cause       error
}

func (e *TemporaryError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("mail: temporary failure: %s: %v", e.Reason, e.Cause)
	}
	return "mail: temporary failure: " + e.Reason
}

func (e *TemporaryError) Unwrap() error { return e.Cause }

// IsTemporary returns the *TemporaryError in err's chain, if any.
func IsTemporary(err error) (*TemporaryError, bool) {
	var t *TemporaryError
	ok := errors.As(err, &t)
	return t, ok
}

// FromConfig returns the mailer MAIL_MODE asks for: SendGrid at
// SENDGRID_API_URL with SENDGRID_API_KEY, or the outbox in
// <CLOUD_APP_DATA_DIR>/outbox. From is MAIL_FROM in both cases.
func FromConfig(cfg *config.Config, now func() time.Time) (Mailer, error) {
	switch cfg.MailMode {
	case config.MailSendGrid:
		return NewSendGrid(SendGridConfig{
			APIKey: cfg.SendGridAPIKey,
			APIURL: cfg.SendGridAPIURL.String(),
			From:   cfg.MailFrom,
		})
	case config.MailOutbox:
		return NewOutbox(OutboxConfig{
			Dir:  filepath.Join(cfg.DataDir, "outbox"),
			From: cfg.MailFrom,
			Now:  now,
		})
	}
	return nil, fmt.Errorf("mail: unknown MAIL_MODE %q", cfg.MailMode)
}
