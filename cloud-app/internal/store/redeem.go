package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"gorm.io/gorm"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/token"
)

// Redemption (DESIGN section 5) is decided here, in one transaction, after
// the handler has opened the token: the claims are authenticated, and the
// checks that depend only on them (ver, aud, iss, nbf, exp) are done. The
// order of what follows is part of the contract:
//
//  1. The stored record: an unknown jti, or a redemption secret whose hash
//     does not match (compared in constant time), is invalid_token, as is a
//     token whose claims disagree with its record. Nothing about stored
//     state is revealed before this.
//  2. expect (site base URL, space id, sync id) must match the token:
//     token_mismatch. This depends only on the authenticated token and the
//     request, so it comes before the codes that reveal stored state; a DC
//     admin who previewed another token learns nothing about this one.
//  3. Stored state: tenant_uninstalled, sync_deleted, token_revoked, then a
//     used token, which is token_used unless the request is an exact replay.
//  4. The writes, each checked by rows affected: the sync from
//     NOT_SYNCED_YET to SYNCED first (0 rows: another redemption won,
//     token_used), then the token marked used (0 rows: token_used), the
//     sync's other outstanding tokens revoked as superseded, the link, the
//     audit record. A unique violation (a second active link, a second link
//     for the token, a reused link secret) is token_used: never a 500.

// Expect is what the DC admin saw in the preview.
type Expect struct {
	SiteBaseURL string
	SpaceID     string
	SyncID      string
}

// RedeemInput is a redemption request whose token the caller has opened.
type RedeemInput struct {
	// Claims are the authenticated claims from token.Opener.Open.
	Claims *token.Claims
	// Instance is the redeeming dc-app installation.
	Instance Instance
	// Name is the name the DC admin gave the synced space.
	Name string
	// LinkSecret is the dc-app generated link secret; only its hash is kept.
	LinkSecret string
	Expect     Expect
}

// The refusals of a redemption. Messages are shown to the DC admin.
var (
	errRedeemInvalid = apperr.New(apperr.InvalidToken,
		"This is not a valid space token: Space Sync has no record of it. Use the token file exactly as you received it, or ask the source space admin for a new token.")
	errRedeemMismatch = apperr.New(apperr.TokenMismatch,
		"This token is not the one that was previewed: its site, space or sync differs. Start the import again with the token file.")
	errRedeemUninstalled = apperr.New(apperr.TenantUninstalled,
		"The Confluence Cloud site that issued this token has uninstalled Space Sync. Ask the source space admin to reinstall it and send a new token.")
	errRedeemSyncDeleted = apperr.New(apperr.SyncDeleted,
		"The sync this token belongs to was deleted on the Confluence Cloud side. Ask the source space admin for a new token.")
	errRedeemRevoked = apperr.New(apperr.TokenRevoked,
		"This token was revoked on the Confluence Cloud side. Ask the source space admin for a new token.")
	errRedeemSuperseded = apperr.New(apperr.TokenRevoked,
		"This token no longer works: the sync was linked with another token. Ask the source space admin for a new token if it must be paired again.")
	errRedeemUsed = apperr.New(apperr.TokenUsed,
		"This token has already been used. A token works once; ask the source space admin for a new token.")
)

// redemptionState is what the checks of steps 1 to 3 read.
type redemptionState struct {
	tok  tokenRow
	sync syncRow
	site Site
	// tenant is the token's tenant as checkRecord read it.
	tenant recordTenant
}

type recordTenant struct {
	ClientKey, BaseURL, DisplayURL, State string
}

// recordRow is a token with its tenant and sync: what a redemption reads,
// in one statement.
type recordRow struct {
	JTI          string     `gorm:"column:jti"`
	TenantID     string     `gorm:"column:tenant_id"`
	SyncID       string     `gorm:"column:sync_id"`
	RsHash       string     `gorm:"column:rs_hash"`
	UsedAt       *time.Time `gorm:"column:used_at"`
	RevokedAt    *time.Time `gorm:"column:revoked_at"`
	RevokeReason string     `gorm:"column:revoke_reason"`
	ClientKey    string     `gorm:"column:client_key"`
	BaseURL      string     `gorm:"column:base_url"`
	DisplayURL   string     `gorm:"column:display_url"`
	TenantState  string     `gorm:"column:tenant_state"`
	SpaceID      string     `gorm:"column:space_id"`
	SpaceKey     string     `gorm:"column:space_key"`
	SpaceName    string     `gorm:"column:space_name"`
	SyncName     string     `gorm:"column:sync_name"`
	Permissions  string     `gorm:"column:permissions"`
	SyncComments bool       `gorm:"column:sync_comments"`
	SyncLabels   bool       `gorm:"column:sync_labels"`
	SyncStatus   string     `gorm:"column:sync_status"`
	CreatedBy    string     `gorm:"column:created_by"`
	CreatedAt    time.Time  `gorm:"column:created_at"`
	UpdatedAt    time.Time  `gorm:"column:updated_at"`
	DeletedAt    *time.Time `gorm:"column:deleted_at"`
}

const recordQuery = `SELECT t.jti, t.tenant_id, t.sync_id, t.rs_hash, t.used_at, t.revoked_at, t.revoke_reason,
	n.client_key, n.base_url, n.display_url, n.state AS tenant_state,
	s.space_id, s.space_key, s.space_name, s.name AS sync_name, s.permissions, s.sync_comments, s.sync_labels,
	s.status AS sync_status, s.created_by, s.created_at, s.updated_at, s.deleted_at
	FROM tokens t JOIN tenants n ON n.id = t.tenant_id JOIN syncs s ON s.id = t.sync_id
	WHERE t.jti = ?`

// checkRecord is step 1: the token row for the claims, with its redemption
// secret checked in constant time. It reads the token's tenant and sync in
// the same statement, for checkState; nothing of them is judged here.
func checkRecord(tx *gorm.DB, c *token.Claims) (redemptionState, error) {
	var rows []recordRow
	if err := tx.Raw(recordQuery, c.ID).Scan(&rows).Error; err != nil {
		return redemptionState{}, err
	}
	if len(rows) != 1 {
		return redemptionState{}, errRedeemInvalid
	}
	r := rows[0]
	st := redemptionState{
		tok: tokenRow{JTI: r.JTI, TenantID: r.TenantID, SyncID: r.SyncID, RsHash: r.RsHash,
			UsedAt: r.UsedAt, RevokedAt: r.RevokedAt, RevokeReason: r.RevokeReason},
		sync: syncRow{ID: r.SyncID, TenantID: r.TenantID, SpaceID: r.SpaceID, SpaceKey: r.SpaceKey, SpaceName: r.SpaceName,
			Name: r.SyncName, Permissions: r.Permissions, SyncComments: r.SyncComments, SyncLabels: r.SyncLabels,
			Status: r.SyncStatus, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DeletedAt: r.DeletedAt},
		tenant: recordTenant{ClientKey: r.ClientKey, BaseURL: r.BaseURL, DisplayURL: r.DisplayURL, State: r.TenantState},
	}
	ok := subtle.ConstantTimeCompare([]byte(SecretHash(c.RedemptionSecret)), []byte(r.RsHash)) == 1
	if !ok || r.SyncID != c.Sync.ID {
		return st, errRedeemInvalid
	}
	return st, nil
}

// checkState is step 3 up to, not including, the used check, on what
// checkRecord read: it refuses in the order tenant_uninstalled,
// sync_deleted, token_revoked.
func checkState(c *token.Claims, st redemptionState) (redemptionState, error) {
	if st.tenant.ClientKey != c.Site.ClientKey {
		return st, errRedeemInvalid
	}
	if st.tenant.State == string(TenantUninstalled) {
		return st, errRedeemUninstalled
	}
	st.site = Site{BaseURL: st.tenant.BaseURL, DisplayURL: st.tenant.DisplayURL}
	if st.sync.DeletedAt != nil {
		return st, errRedeemSyncDeleted
	}
	if t := st.tok; t.RevokedAt != nil {
		if t.RevokeReason == RevokeSuperseded {
			return st, errRedeemSuperseded
		}
		return st, errRedeemRevoked
	}
	return st, nil
}

// expectMatches is step 2.
func expectMatches(e Expect, c *token.Claims) bool {
	siteOK := e.SiteBaseURL == c.Site.BaseURL || token.SameBaseURL(e.SiteBaseURL, c.Site.BaseURL)
	return siteOK && e.SpaceID == c.Space.ID && e.SyncID == c.Sync.ID
}

// replay applies the replay rules to a used token: the same link comes back
// only if the instance id and the link secret match (both compared in
// constant time, both always compared), the link is still active and dc-app
// has made no authenticated call on it. Anything else is token_used.
func replay(tx *gorm.DB, st redemptionState, instanceID, linkHash string) (Link, error) {
	var r linkRow
	err := tx.Where("token_jti = ?", st.tok.JTI).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Link{}, errRedeemUsed
	}
	if err != nil {
		return Link{}, err
	}
	sameInstance := subtle.ConstantTimeCompare([]byte(instanceID), []byte(r.InstanceID))
	sameSecret := subtle.ConstantTimeCompare([]byte(linkHash), []byte(r.SecretHash))
	if sameInstance&sameSecret != 1 || r.Status != LinkActive || r.LastUsedAt != nil {
		return Link{}, errRedeemUsed
	}
	sync, err := st.sync.domain()
	if err != nil {
		return Link{}, err
	}
	return r.domain(sync, st.site), nil
}

// Redeem redeems an opened token (DESIGN section 5) in one transaction and
// returns the new link, or on an exact replay the existing link with replay
// true. Refusals are *apperr.Error with the codes invalid_token,
// token_mismatch, tenant_uninstalled, sync_deleted, token_revoked and
// token_used, in the order described above; a conflict that outlives the
// bounded retries is unavailable. The link secret is kept only as a hash.
func (s *Store) Redeem(ctx context.Context, in RedeemInput) (Link, bool, error) {
	c := in.Claims
	if c == nil || in.LinkSecret == "" || in.Instance.ID == "" || in.Name == "" {
		return Link{}, false, errors.New("store: Redeem: incomplete input")
	}
	linkHash := SecretHash(in.LinkSecret)
	var (
		out      Link
		isReplay bool
	)
	err := s.txNow(ctx, func(tx *gorm.DB, now time.Time) error {
		isReplay = false
		rec, err := checkRecord(tx, c)
		if err != nil {
			return err
		}
		t := rec.tok
		if !expectMatches(in.Expect, c) {
			return errRedeemMismatch
		}
		st, err := checkState(c, rec)
		if err != nil {
			return err
		}
		if t.UsedAt != nil {
			out, err = replay(tx, st, in.Instance.ID, linkHash)
			isReplay = err == nil
			return err
		}

		// The first write: only one redemption of this sync can move it.
		res := tx.Exec(`UPDATE syncs SET status = ?, updated_at = ? WHERE id = ? AND status = ? AND deleted_at IS NULL`,
			SyncSynced, now, t.SyncID, SyncNotSyncedYet)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			// Another redemption won. If it was this very token (a retry
			// racing the first attempt), the replay rules decide; on
			// Postgres this statement sees what that one committed.
			var again tokenRow
			if err := tx.Where("jti = ?", t.JTI).Take(&again).Error; err != nil {
				return err
			}
			if again.UsedAt != nil {
				st.tok = again
				if err := tx.Where("id = ?", t.SyncID).Take(&st.sync).Error; err != nil {
					return err
				}
				out, err = replay(tx, st, in.Instance.ID, linkHash)
				isReplay = err == nil
				return err
			}
			return errRedeemUsed
		}
		res = tx.Exec(`UPDATE tokens SET used_at = ? WHERE jti = ? AND used_at IS NULL AND revoked_at IS NULL`, now, t.JTI)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errRedeemUsed
		}
		superseded, err := revokeOutstanding(tx, t.SyncID, t.JTI, RevokeSuperseded, now)
		if err != nil {
			return err
		}
		row := linkRow{
			ID: newRecordID(), TenantID: t.TenantID, SyncID: t.SyncID, TokenJTI: t.JTI,
			InstanceID: in.Instance.ID, InstanceName: in.Instance.Name, InstanceBaseURL: in.Instance.BaseURL,
			Name: in.Name, SecretHash: linkHash, Status: LinkActive, CreatedAt: now,
		}
		if err := tx.Create(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errRedeemUsed
			}
			return err
		}
		if err := audit(tx, t.TenantID, t.SyncID, InstanceActor(in.Instance.ID), "link.created", map[string]any{
			"linkId": row.ID, "jti": t.JTI, "instanceId": in.Instance.ID, "instanceName": in.Instance.Name,
			"instanceBaseUrl": in.Instance.BaseURL, "name": in.Name, "tokensSuperseded": superseded,
		}); err != nil {
			return err
		}
		st.sync.Status = SyncSynced
		st.sync.UpdatedAt = now
		sync, err := st.sync.domain()
		if err != nil {
			return err
		}
		out = row.domain(sync, st.site)
		return nil
	})
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		err = errRedeemUsed
	}
	if err != nil {
		return Link{}, false, err
	}
	return out, isReplay, nil
}

// ReplayExpired answers a redemption of an expired token (DESIGN section 5,
// item 4): the token is used and the request is an exact replay of the
// redemption that used it, so the same link comes back. Any other case is
// refused with expired, the caller's token_expired error, so that a late
// request learns nothing about stored state that an expired token would not
// tell it. It writes nothing.
func (s *Store) ReplayExpired(ctx context.Context, in RedeemInput, expired error) (Link, error) {
	c := in.Claims
	if c == nil || in.LinkSecret == "" || in.Instance.ID == "" {
		return Link{}, expired
	}
	linkHash := SecretHash(in.LinkSecret)
	var out Link
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		rec, err := checkRecord(tx, c)
		if err != nil {
			return err
		}
		if !expectMatches(in.Expect, c) || rec.tok.UsedAt == nil {
			return expired
		}
		st, err := checkState(c, rec)
		if err != nil {
			return err
		}
		out, err = replay(tx, st, in.Instance.ID, linkHash)
		return err
	})
	if err != nil {
		if ae := apperr.As(err); ae != nil && ae.Code != apperr.Unavailable {
			return Link{}, expired // a refusal: the expiry is the answer
		}
		return Link{}, err
	}
	return out, nil
}

// CheckToken says what a redemption of an opened token would get now,
// without changing anything (for previews): nil if it could succeed, or
// the *apperr.Error it would be refused with: invalid_token (unknown jti,
// wrong redemption secret), tenant_uninstalled, sync_deleted,
// token_revoked or token_used (used, or its sync already linked by another
// token). Other errors are failures to read.
func (s *Store) CheckToken(ctx context.Context, c *token.Claims) error {
	if c == nil {
		return errors.New("store: CheckToken: no claims")
	}
	var verdict error
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		verdict = nil
		rec, err := checkRecord(tx, c)
		if err == nil {
			var st redemptionState
			st, err = checkState(c, rec)
			if err == nil && (rec.tok.UsedAt != nil || st.sync.Status != SyncNotSyncedYet) {
				err = errRedeemUsed
			}
		}
		var ae *apperr.Error
		if errors.As(err, &ae) {
			verdict = ae
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return verdict
}
