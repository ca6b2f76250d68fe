package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"gorm.io/gorm"

	"spacesync.io/shared/apperr"
)

// Token channels: how a token left cloud-app.
const (
	ChannelDownload = "download"
	ChannelEmail    = "email"
)

// Why a token was revoked.
const (
	// RevokeRevoked: a space admin revoked the sync's tokens.
	RevokeRevoked = "revoked"
	// RevokeSuperseded: another token of the sync was redeemed.
	RevokeSuperseded = "superseded"
	// RevokeSyncDeleted: the sync was deleted.
	RevokeSyncDeleted = "sync_deleted"
)

// SecretHash is how the store keeps a bearer secret it never needs back (a
// redemption secret, a link secret): the SHA-256 of its text, in hex.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenRecord is what IssueToken stores about a newly minted token. It
// holds the hash of the redemption secret, never the secret or the token.
type TokenRecord struct {
	JTI      string
	TenantID string
	SyncID   string
	// KeyID is the kid of the token key that minted it.
	KeyID string
	// RSHash is SecretHash of the token's redemption secret.
	RSHash string
	// Channel is ChannelDownload or ChannelEmail.
	Channel string
	// Recipient is the email address for ChannelEmail, empty otherwise.
	Recipient string
	// IssuedBy is the Atlassian account id of the admin who issued it.
	IssuedBy  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Token is an issued token as the details view shows it.
type Token struct {
	JTI       string
	SyncID    string
	Channel   string
	Recipient string
	IssuedBy  string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// UsedAt is when it was redeemed, if it was.
	UsedAt *time.Time
	// RevokedAt and RevokeReason (RevokeRevoked, RevokeSuperseded,
	// RevokeSyncDeleted) say whether and why it stopped working.
	RevokedAt    *time.Time
	RevokeReason string
}

// Token states, as State reports them.
const (
	TokenStateUsable  = "usable"
	TokenStateUsed    = "used"
	TokenStateRevoked = "revoked"
	TokenStateExpired = "expired"
)

// State says what became of the token at now: used, revoked, expired or
// still usable.
func (t Token) State(now time.Time) string {
	switch {
	case t.UsedAt != nil:
		return TokenStateUsed
	case t.RevokedAt != nil:
		return TokenStateRevoked
	case !now.Before(t.ExpiresAt):
		return TokenStateExpired
	}
	return TokenStateUsable
}

// tokenRow is the GORM shape of a tokens row.
type tokenRow struct {
	JTI          string `gorm:"column:jti;primaryKey"`
	TenantID     string
	SyncID       string
	Kid          string
	RsHash       string
	Channel      string
	Recipient    string
	IssuedBy     string
	IssuedAt     time.Time
	ExpiresAt    time.Time
	UsedAt       *time.Time
	RevokedAt    *time.Time
	RevokeReason string
}

func (tokenRow) TableName() string { return "tokens" }

func (r tokenRow) domain() Token {
	return Token{
		JTI: r.JTI, SyncID: r.SyncID, Channel: r.Channel, Recipient: r.Recipient, IssuedBy: r.IssuedBy,
		IssuedAt: r.IssuedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), UsedAt: utcPtr(r.UsedAt),
		RevokedAt: utcPtr(r.RevokedAt), RevokeReason: r.RevokeReason,
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// IssueToken stores a newly minted token and, when email is not nil, queues
// its email in the same transaction (insertEmail, emails.go), then audits
// the issue.
// The sync must be a live sync of rec.TenantID (ErrNotFound otherwise) that
// is not linked: a token for a linked sync could never be redeemed, so that
// is validation_failed ("sync"). A duplicate jti is an error (jtis are
// random; it means a caller stored the same token twice).
func (s *Store) IssueToken(ctx context.Context, rec TokenRecord, email *EmailRecord) error {
	if rec.JTI == "" || rec.TenantID == "" || rec.SyncID == "" || rec.KeyID == "" || len(rec.RSHash) != sha256.Size*2 ||
		rec.IssuedBy == "" || rec.IssuedAt.IsZero() || !rec.ExpiresAt.After(rec.IssuedAt) {
		return errors.New("store: IssueToken: incomplete token record")
	}
	switch rec.Channel {
	case ChannelDownload:
		if email != nil || rec.Recipient != "" {
			return errors.New("store: IssueToken: a downloaded token has no email or recipient")
		}
	case ChannelEmail:
		if email == nil || rec.Recipient == "" {
			return errors.New("store: IssueToken: an emailed token needs its email and recipient")
		}
		if email.TokenJTI != rec.JTI || email.SyncID != rec.SyncID || email.TenantID != rec.TenantID {
			return errors.New("store: IssueToken: the email is not for this token")
		}
	default:
		return errors.New("store: IssueToken: unknown channel " + rec.Channel)
	}
	return s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		sync, err := liveSync(tx, rec.TenantID, rec.SyncID)
		if err != nil {
			return err
		}
		if sync.Status != SyncNotSyncedYet {
			return apperr.Validation(map[string]string{
				"sync": "This sync is already linked to a Data Center instance. A new token is needed only after it is unlinked there.",
			})
		}
		row := tokenRow{
			JTI: rec.JTI, TenantID: rec.TenantID, SyncID: rec.SyncID, Kid: rec.KeyID, RsHash: rec.RSHash,
			Channel: rec.Channel, Recipient: rec.Recipient, IssuedBy: rec.IssuedBy,
			IssuedAt: rec.IssuedAt.UTC(), ExpiresAt: rec.ExpiresAt.UTC(),
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if email != nil {
			if err := s.insertEmail(tx, *email, now); err != nil {
				return err
			}
		}
		detail := map[string]any{"jti": rec.JTI, "channel": rec.Channel, "expiresAt": rec.ExpiresAt.UTC()}
		if rec.Recipient != "" {
			detail["recipient"] = rec.Recipient
		}
		return audit(tx, rec.TenantID, rec.SyncID, rec.IssuedBy, "token.issued", detail)
	})
}

// revokeOutstanding revokes the sync's tokens that are neither used nor
// revoked, except the one with jti except (if not empty), with reason. It
// returns how many it revoked.
func revokeOutstanding(tx *gorm.DB, syncID, except, reason string, now time.Time) (int, error) {
	res := tx.Exec(`UPDATE tokens SET revoked_at = ?, revoke_reason = ?
		WHERE sync_id = ? AND jti <> ? AND used_at IS NULL AND revoked_at IS NULL`, now, reason, syncID, except)
	return int(res.RowsAffected), res.Error
}

// SyncDetails is what the details view of a sync shows.
type SyncDetails struct {
	Sync Sync
	// Tokens are the sync's tokens, newest first.
	Tokens []Token
	// ActiveLink is the sync's active link, if it is linked.
	ActiveLink *Link
	// Links are every link the sync has had, newest first.
	Links []Link
}

// SyncDetails returns a live sync of the tenant with its token history and
// links, read in one transaction. ErrNotFound if there is no such live
// sync (including another tenant's).
func (s *Store) SyncDetails(ctx context.Context, tenantID, syncID string) (SyncDetails, error) {
	var out SyncDetails
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		row, err := liveSync(tx, tenantID, syncID)
		if err != nil {
			return err
		}
		if out.Sync, err = row.domain(); err != nil {
			return err
		}
		var toks []tokenRow
		if err := tx.Where("sync_id = ?", syncID).Order("issued_at DESC, jti").Find(&toks).Error; err != nil {
			return err
		}
		out.Tokens = make([]Token, len(toks))
		for i, t := range toks {
			out.Tokens[i] = t.domain()
		}
		var links []linkRow
		if err := tx.Where("sync_id = ?", syncID).Order("created_at DESC, id").Find(&links).Error; err != nil {
			return err
		}
		site, _, err := tenantSite(tx, tenantID)
		if err != nil {
			return err
		}
		out.Links = make([]Link, len(links))
		for i, l := range links {
			out.Links[i] = l.domain(out.Sync, site)
			if l.Status == LinkActive {
				al := out.Links[i]
				out.ActiveLink = &al
			}
		}
		return nil
	})
	return out, err
}
