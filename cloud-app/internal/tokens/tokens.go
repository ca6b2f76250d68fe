// Package tokens mints space tokens for syncs (DESIGN section 4). Every
// call mints a new token — a new jti, a new redemption secret, new random
// encryption values — and returns, beside it, the record the store keeps:
// the hash of the redemption secret, never the secret. The download and
// email endpoints call Mint, then store.IssueToken with the record.
package tokens

import (
	"errors"
	"fmt"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/token"
)

// Minter mints tokens with cloud-app's token keys. It is safe for
// concurrent use.
type Minter struct {
	keys   *token.KeySet
	issuer string
	now    func() time.Time
}

// NewMinter returns a Minter that mints with the first key of keys, names
// issuer (cloud-app's public base URL, cfg.BaseURL.String()) as `iss`, and
// reads the time from now (nil means time.Now). The issuer must be the
// same string the preview and redemption endpoints' token.Opener checks.
func NewMinter(keys *token.KeySet, issuer string, now func() time.Time) *Minter {
	if now == nil {
		now = time.Now
	}
	return &Minter{keys: keys, issuer: issuer, now: now}
}

// Request is what a token is minted from.
type Request struct {
	// Tenant is the sync's tenant, as stored (its clientKey and URLs go
	// into the token).
	Tenant *store.Tenant
	// Sync is the sync, as stored: its verified space and its settings.
	Sync store.Sync
	// Message is the sender's message for the importer (at most
	// token.MaxMessageLength characters).
	Message string
	// Channel is store.ChannelDownload or store.ChannelEmail.
	Channel string
	// Recipient is the email address for store.ChannelEmail; empty for a
	// download.
	Recipient string
	// IssuedBy is the Atlassian account id of the admin issuing it.
	IssuedBy string
}

// Minted is a new token and what to store about it.
type Minted struct {
	// Token is the compact JWE, the whole content of the token file. It is
	// a bearer secret: never log it.
	Token string
	// Record is for store.IssueToken.
	Record store.TokenRecord
	// FileName is the name to save the token under.
	FileName string
}

// Mint mints a new token for r. It refuses with validation_failed (field
// "message") a message over token.MaxMessageLength characters or a token
// that would be too large; other errors are the caller's mistakes (a sync
// of another tenant, a channel without or with a recipient).
func (m *Minter) Mint(r Request) (Minted, error) {
	if r.Tenant == nil || r.Tenant.ID == "" || r.Tenant.ID != r.Sync.TenantID {
		return Minted{}, errors.New("tokens: the sync does not belong to the tenant")
	}
	if r.IssuedBy == "" {
		return Minted{}, errors.New("tokens: IssuedBy is required")
	}
	switch r.Channel {
	case store.ChannelDownload:
		if r.Recipient != "" {
			return Minted{}, errors.New("tokens: a downloaded token has no recipient")
		}
	case store.ChannelEmail:
		if r.Recipient == "" {
			return Minted{}, errors.New("tokens: an emailed token needs its recipient")
		}
	default:
		return Minted{}, fmt.Errorf("tokens: unknown channel %q", r.Channel)
	}
	perms := make([]token.Principal, len(r.Sync.Permissions))
	for i, p := range r.Sync.Permissions {
		perms[i] = token.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	c := token.NewClaims(m.issuer, m.now(),
		token.Site{ClientKey: r.Tenant.ClientKey, BaseURL: r.Tenant.BaseURL, DisplayURL: r.Tenant.DisplayURL},
		token.Space{ID: r.Sync.SpaceID, Key: r.Sync.SpaceKey, Name: r.Sync.SpaceName},
		token.Sync{ID: r.Sync.ID, Name: r.Sync.Name, Permissions: perms, Comments: r.Sync.SyncComments, Labels: r.Sync.SyncLabels},
		r.Message)
	tok, err := token.Mint(m.keys, c)
	if err != nil {
		return Minted{}, err
	}
	return Minted{
		Token: tok,
		Record: store.TokenRecord{
			JTI: c.ID, TenantID: r.Tenant.ID, SyncID: r.Sync.ID, KeyID: m.keys.KeyIDs()[0],
			RSHash: store.SecretHash(c.RedemptionSecret), Channel: r.Channel, Recipient: r.Recipient,
			IssuedBy: r.IssuedBy, IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry,
		},
		FileName: FileName(r.Sync.SpaceKey),
	}, nil
}

// FileName is the token file's name, <SPACEKEY>-space-sync.token, the same
// for a download and an email attachment: ASCII letters, digits, '-', '_'
// and '~' (personal spaces) are kept, any other character becomes '_', and
// the key part is cut at 100 characters.
func FileName(spaceKey string) string {
	b := make([]byte, 0, min(len(spaceKey), maxFileKey)+len(fileSuffix))
	for _, r := range spaceKey {
		if len(b) >= maxFileKey {
			break
		}
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '~' {
			b = append(b, byte(r))
		} else {
			b = append(b, '_')
		}
	}
	if len(b) == 0 {
		b = append(b, "space"...)
	}
	return string(b) + fileSuffix
}

// The token file name: at most maxFileKey characters of the key, then
// fileSuffix.
const (
	maxFileKey = 100
	fileSuffix = "-space-sync.token"
)
