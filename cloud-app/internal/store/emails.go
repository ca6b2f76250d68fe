package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"spacesync.io/shared/db"
)

// Token email statuses: the status column of token_emails (DESIGN section
// 11, GET /api/ui/token-emails/{id}).
const (
	// EmailQueued: waiting for the mail worker, or waiting to be retried.
	EmailQueued = "queued"
	// EmailSent: SendGrid accepted the mail (answered 2xx).
	EmailSent = "sent"
	// EmailFailed: the mail was not sent and will not be; Reason says why.
	EmailFailed = "failed"
	// EmailOutbox: MAIL_MODE=outbox wrote the mail to a file; it was not
	// sent.
	EmailOutbox = "outbox"
)

// Audit actions written when the mail worker settles an email.
const (
	AuditEmailSent   = "email.sent"
	AuditEmailFailed = "email.failed"
	AuditEmailOutbox = "email.outbox"
)

// Limits on what a queued email holds. The mail package validates what a
// sender typed far more strictly before anything is queued; these bounds
// only keep a caller's mistake out of the database.
const (
	maxEmailAddress = 254
	maxEmailSubject = 1000
	maxEmailMessage = 4000
	maxEmailToken   = 16 << 10
	// maxEmailReason bounds a stored failure reason, in bytes.
	maxEmailReason = 1000
	// maxEmailClaim bounds how many emails one claim takes.
	maxEmailClaim = 100
)

// ErrEmailNotClaimed means a worker tried to record the outcome of an email
// it no longer holds: the email is no longer queued, or its lease ran out
// and another worker claimed it (a later attempt). The outcome is dropped.
var ErrEmailNotClaimed = errors.New("store: the email is no longer claimed by this attempt")

// EmailRecord is a token email to queue. Token is the plain token; it is
// stored sealed with the service's secret key, bound to the email id, and
// erased once the email is sent or has failed.
type EmailRecord struct {
	// ID is a new random UUID chosen by the caller (it answers the 202).
	ID       string
	TenantID string
	SyncID   string
	TokenJTI string
	// To, Subject and Message are what the sender typed, already validated
	// by the mail package (mail.CheckInput). Subject is without the fixed
	// prefix the mailer adds.
	To      string
	Subject string
	Message string
	Token   string
	// CreatedBy is the Atlassian account id of the sender.
	CreatedBy string
}

// insertEmail queues rec inside tx (IssueToken's transaction, so the token
// row and its email are stored together or not at all), due at now. The
// tenant, sync and token must exist. Its errors are the caller's mistakes
// (an incomplete record) or database errors.
func (s *Store) insertEmail(tx *gorm.DB, rec EmailRecord, now time.Time) error {
	if err := checkEmailRecord(rec); err != nil {
		return err
	}
	sealed := s.tokens.Seal([]byte(rec.Token), []byte(rec.ID))
	return tx.Exec(`INSERT INTO token_emails
		(id, tenant_id, sync_id, token_jti, to_addr, subject, message, token_sealed,
		 status, reason, attempts, next_attempt_at, provider_message_id, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0, ?, '', ?, ?, ?)`,
		rec.ID, rec.TenantID, rec.SyncID, rec.TokenJTI, rec.To, rec.Subject, rec.Message, sealed,
		EmailQueued, now, rec.CreatedBy, now, now).Error
}

// checkEmailRecord refuses an incomplete or oversized record.
func checkEmailRecord(rec EmailRecord) error {
	if _, err := uuid.Parse(rec.ID); err != nil || len(rec.ID) != 36 {
		return errors.New("store: token email: the id must be a new UUID")
	}
	if rec.TenantID == "" || rec.SyncID == "" || rec.TokenJTI == "" || rec.CreatedBy == "" {
		return errors.New("store: token email: tenant, sync, token jti and sender are required")
	}
	if rec.To == "" || len(rec.To) > maxEmailAddress || strings.ContainsAny(rec.To, "\r\n") {
		return errors.New("store: token email: the recipient is missing or not a single address")
	}
	if rec.Token == "" || len(rec.Token) > maxEmailToken {
		return errors.New("store: token email: the token is missing or too large")
	}
	if len(rec.Subject) > maxEmailSubject || len(rec.Message) > maxEmailMessage ||
		!utf8.ValidString(rec.Subject) || !utf8.ValidString(rec.Message) {
		return errors.New("store: token email: the subject or message is too long or not UTF-8")
	}
	return nil
}

// QueueEmail queues rec on its own, for a token that is already stored (the
// token row must exist). Sending a token issues it, so the Send Token flow
// uses IssueToken, which queues the email in the token's transaction; this
// is for tools and tests that queue an email for an existing token.
func (s *Store) QueueEmail(ctx context.Context, rec EmailRecord) error {
	return s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		return s.insertEmail(tx, rec, now)
	})
}

// EmailClaim identifies one claimed attempt at sending an email. The
// outcome of an attempt is recorded only while the attempt still holds the
// email, so a worker whose lease ran out cannot overwrite a later attempt.
type EmailClaim struct {
	ID string
	// Attempt counts the attempts so far, this one included (1 for the
	// first).
	Attempt int
}

// QueuedEmail is a claimed email with everything needed to send it. The
// site, space and token facts come from the stored, verified records, never
// from the sender.
type QueuedEmail struct {
	EmailClaim
	TenantID string
	SyncID   string
	TokenJTI string
	To       string
	Subject  string
	Message  string
	// Token is the plain token. It is empty when TokenUnreadable.
	Token string
	// TokenUnreadable means the sealed token could not be opened (the
	// secret key changed since it was queued).
	TokenUnreadable bool
	CreatedBy       string
	CreatedAt       time.Time

	// SiteBaseURL and SiteDisplayURL are the tenant's verified site.
	SiteBaseURL    string
	SiteDisplayURL string
	SpaceKey       string
	SpaceName      string
	SyncName       string
	// ExpiresAt is when the token stops working.
	ExpiresAt time.Time

	// What happened since the email was queued; the worker does not send
	// a token that no longer works.
	TokenUsed         bool
	TokenRevoked      bool
	SyncDeleted       bool
	TenantUninstalled bool
	// Unconfirmed means an earlier attempt got no answer after it was sent
	// (a timeout, a reset): SendGrid may have delivered the email then.
	Unconfirmed bool
}

// claimedEmailRow is the joined row ClaimDueEmails reads.
type claimedEmailRow struct {
	ID          string
	TenantID    string
	SyncID      string
	TokenJTI    string
	ToAddr      string
	Subject     string
	Message     string
	TokenSealed string
	Attempts    int
	CreatedBy   string
	CreatedAt   time.Time
	BaseURL     string
	DisplayURL  string
	TenantState string
	SpaceKey    string
	SpaceName   string
	SyncName    string
	SyncDeleted *time.Time
	ExpiresAt   time.Time
	UsedAt      *time.Time
	RevokedAt   *time.Time
	Unconfirmed bool
}

// ClaimDueEmails claims up to limit queued emails that are due and not
// held by another worker, oldest due first, for lease: until the lease runs
// out no other worker claims them. Each claim counts as an attempt. On
// Postgres the candidates are locked with FOR UPDATE SKIP LOCKED, so
// replicas claiming at the same moment take different emails; on both
// databases the claim itself is a conditional update checked by rows
// affected. It returns an empty slice when nothing is due.
func (s *Store) ClaimDueEmails(ctx context.Context, limit int, lease time.Duration) ([]QueuedEmail, error) {
	if limit <= 0 || limit > maxEmailClaim {
		return nil, fmt.Errorf("store: ClaimDueEmails: limit %d outside 1..%d", limit, maxEmailClaim)
	}
	if lease <= 0 {
		return nil, errors.New("store: ClaimDueEmails: the lease must be positive")
	}
	var out []QueuedEmail
	err := s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		out = nil
		q := `SELECT id FROM token_emails
			WHERE status = ? AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until <= ?)
			ORDER BY next_attempt_at, id LIMIT ?`
		if s.db.Dialect == db.Postgres {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		var due []struct{ ID string }
		if err := tx.Raw(q, EmailQueued, now, now, limit).Scan(&due).Error; err != nil {
			return err
		}
		until := now.Add(lease)
		var claimed []string
		for _, d := range due {
			res := tx.Exec(`UPDATE token_emails SET attempts = attempts + 1, locked_until = ?, updated_at = ?
				WHERE id = ? AND status = ? AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until <= ?)`,
				until, now, d.ID, EmailQueued, now, now)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 1 {
				claimed = append(claimed, d.ID)
			}
		}
		if len(claimed) == 0 {
			return nil
		}
		var rows []claimedEmailRow
		if err := tx.Raw(`SELECT e.id, e.tenant_id, e.sync_id, e.token_jti, e.to_addr, e.subject, e.message,
				e.token_sealed, e.attempts, e.created_by, e.created_at, e.unconfirmed,
				t.base_url, t.display_url, t.state AS tenant_state,
				s.space_key, s.space_name, s.name AS sync_name, s.deleted_at AS sync_deleted,
				k.expires_at, k.used_at, k.revoked_at
			FROM token_emails e
			JOIN tenants t ON t.id = e.tenant_id
			JOIN syncs s ON s.id = e.sync_id
			JOIN tokens k ON k.jti = e.token_jti
			WHERE e.id IN ?
			ORDER BY e.next_attempt_at, e.id`, claimed).Scan(&rows).Error; err != nil {
			return err
		}
		out = make([]QueuedEmail, 0, len(rows))
		for _, r := range rows {
			out = append(out, s.queuedEmail(r))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queuedEmail turns a claimed row into a QueuedEmail, opening the token.
func (s *Store) queuedEmail(r claimedEmailRow) QueuedEmail {
	q := QueuedEmail{
		EmailClaim: EmailClaim{ID: r.ID, Attempt: r.Attempts},
		TenantID:   r.TenantID, SyncID: r.SyncID, TokenJTI: r.TokenJTI,
		To: r.ToAddr, Subject: r.Subject, Message: r.Message,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(),
		SiteBaseURL: r.BaseURL, SiteDisplayURL: r.DisplayURL,
		SpaceKey: r.SpaceKey, SpaceName: r.SpaceName, SyncName: r.SyncName,
		ExpiresAt:         r.ExpiresAt.UTC(),
		TokenUsed:         r.UsedAt != nil,
		TokenRevoked:      r.RevokedAt != nil,
		SyncDeleted:       r.SyncDeleted != nil,
		TenantUninstalled: r.TenantState == "uninstalled",
		Unconfirmed:       r.Unconfirmed,
	}
	plain, err := s.tokens.Open(r.TokenSealed, []byte(r.ID))
	if err != nil {
		q.TokenUnreadable = true
	} else {
		q.Token = string(plain)
	}
	return q
}

// MarkEmailSent records that SendGrid accepted the email: status sent, the
// provider's message id kept, the sealed token erased, and an audit record.
// It returns ErrEmailNotClaimed when the attempt no longer holds the email.
func (s *Store) MarkEmailSent(ctx context.Context, c EmailClaim, providerMessageID string) error {
	return s.settleEmail(ctx, c, EmailSent, "", providerMessageID, AuditEmailSent)
}

// MarkEmailOutbox records that the email was written to the outbox (it was
// not sent): status outbox, ref (the outbox message id) kept, the sealed
// token erased, and an audit record. It returns ErrEmailNotClaimed when the
// attempt no longer holds the email.
func (s *Store) MarkEmailOutbox(ctx context.Context, c EmailClaim, ref string) error {
	return s.settleEmail(ctx, c, EmailOutbox, "", ref, AuditEmailOutbox)
}

// MarkEmailFailed records that the email was not sent and will not be:
// status failed with reason (plain words shown to the sender), the sealed
// token erased, and an audit record. It returns ErrEmailNotClaimed when the
// attempt no longer holds the email.
func (s *Store) MarkEmailFailed(ctx context.Context, c EmailClaim, reason string) error {
	return s.settleEmail(ctx, c, EmailFailed, reason, "", AuditEmailFailed)
}

// settleEmail moves a claimed email to a final status.
func (s *Store) settleEmail(ctx context.Context, c EmailClaim, status, reason, providerID, action string) error {
	reason = clipReason(reason)
	providerID = clipReason(providerID)
	return s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		var row struct {
			TenantID  string
			SyncID    string
			TokenJTI  string
			ToAddr    string
			CreatedBy string
		}
		res := tx.Raw(`SELECT tenant_id, sync_id, token_jti, to_addr, created_by FROM token_emails
			WHERE id = ? AND status = ? AND attempts = ?`, c.ID, EmailQueued, c.Attempt).Scan(&row)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrEmailNotClaimed
		}
		upd := tx.Exec(`UPDATE token_emails SET status = ?, reason = ?, provider_message_id = ?,
				token_sealed = '', locked_until = NULL, updated_at = ?
			WHERE id = ? AND status = ? AND attempts = ?`,
			status, reason, providerID, now, c.ID, EmailQueued, c.Attempt)
		if upd.Error != nil {
			return upd.Error
		}
		if upd.RowsAffected != 1 {
			return ErrEmailNotClaimed
		}
		detail := map[string]any{"emailId": c.ID, "jti": row.TokenJTI, "recipient": row.ToAddr,
			"attempts": c.Attempt, "sender": row.CreatedBy}
		if reason != "" {
			detail["reason"] = reason
		}
		if providerID != "" {
			detail["providerMessageId"] = providerID
		}
		return audit(tx, row.TenantID, row.SyncID, ActorSystem, action, detail)
	})
}

// RescheduleEmail puts a claimed email back in the queue, due after delay
// (measured from the store's clock), with reason saying why the attempt did
// not send it (shown while the email waits). unconfirmed says the attempt
// got no answer after sending, so SendGrid may have delivered it; the email
// stays marked so (QueuedEmail.Unconfirmed). It returns ErrEmailNotClaimed
// when the attempt no longer holds the email.
func (s *Store) RescheduleEmail(ctx context.Context, c EmailClaim, delay time.Duration, reason string, unconfirmed bool) error {
	if delay < 0 {
		delay = 0
	}
	reason = clipReason(reason)
	return s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		res := tx.Exec(`UPDATE token_emails SET next_attempt_at = ?, locked_until = NULL, reason = ?, updated_at = ?,
				unconfirmed = (unconfirmed OR ?)
			WHERE id = ? AND status = ? AND attempts = ?`,
			now.Add(delay), reason, now, unconfirmed, c.ID, EmailQueued, c.Attempt)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrEmailNotClaimed
		}
		return nil
	})
}

// clipReason bounds a stored reason to maxEmailReason bytes, on a rune
// boundary.
func clipReason(s string) string {
	if len(s) <= maxEmailReason {
		return s
	}
	s = s[:maxEmailReason]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// EmailState is a token email as its sender follows it.
type EmailState struct {
	ID       string
	SyncID   string
	TokenJTI string
	To       string
	// Status is EmailQueued, EmailSent, EmailFailed or EmailOutbox.
	Status string
	// Reason says in plain words why the email failed, or why a queued
	// email is waiting for another attempt.
	Reason string
	// Attempts counts the attempts at sending so far.
	Attempts  int
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// EmailStatus returns a token email of the tenant. An email of another
// tenant, or an unknown id, is ErrNotFound. The caller authorises the
// viewer against the email's sync (SyncID) before showing it.
func (s *Store) EmailStatus(ctx context.Context, tenantID, emailID string) (EmailState, error) {
	var out EmailState
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		var row struct {
			ID        string
			SyncID    string
			TokenJTI  string
			ToAddr    string
			Status    string
			Reason    string
			Attempts  int
			CreatedBy string
			CreatedAt time.Time
			UpdatedAt time.Time
		}
		res := tx.Raw(`SELECT id, sync_id, token_jti, to_addr, status, reason, attempts, created_by, created_at, updated_at
			FROM token_emails WHERE id = ? AND tenant_id = ?`, emailID, tenantID).Scan(&row)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		out = EmailState{
			ID: row.ID, SyncID: row.SyncID, TokenJTI: row.TokenJTI, To: row.ToAddr, Status: row.Status,
			Reason: row.Reason, Attempts: row.Attempts, CreatedBy: row.CreatedBy,
			CreatedAt: row.CreatedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC(),
		}
		return nil
	})
	return out, err
}

// CountRecentEmails counts the token emails queued since since, whatever
// became of them: perUser by createdBy within the tenant, perTenant by
// anyone in the tenant. The endpoint compares them with its send limits
// (mail.Limits). The counts are read in one query; two requests racing at
// the limit may both pass, which the limits tolerate.
func (s *Store) CountRecentEmails(ctx context.Context, tenantID, createdBy string, since time.Time) (perUser, perTenant int, err error) {
	err = s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		var row struct {
			PerUser   int
			PerTenant int
		}
		if err := tx.Raw(`SELECT COALESCE(SUM(CASE WHEN created_by = ? THEN 1 ELSE 0 END), 0) AS per_user,
				COUNT(*) AS per_tenant
			FROM token_emails WHERE tenant_id = ? AND created_at >= ?`,
			createdBy, tenantID, since.UTC()).Scan(&row).Error; err != nil {
			return err
		}
		perUser, perTenant = row.PerUser, row.PerTenant
		return nil
	})
	return perUser, perTenant, err
}
