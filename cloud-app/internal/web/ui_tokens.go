package web

// The iframe API's token actions: Download Token, Send Token (and following
// the email), Revoke tokens and Delete sync. Each is allowed only to an
// admin of the sync's stored space (adminSync) and is audited by the store
// (token.issued with the channel and recipient; email.sent/failed/outbox by
// the mail worker; tokens.revoked; sync.deleted). A token is a bearer
// secret: it is never logged and its response is no-store.

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/tokens"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/token"
)

// errLinked refuses a token for a sync that is already linked: it could
// never be redeemed.
func errLinked() error {
	return apperr.Validation(map[string]string{
		"sync": "This sync is already linked to a Data Center instance, so it needs no token. Unlink it there first to pair it again.",
	})
}

// checkMessage normalises the sender's message for the importer: line
// breaks become "\n", surrounding space is trimmed, and control characters
// other than line breaks and tabs are refused. Its length is checked by the
// minter (token.MaxMessageLength characters).
func checkMessage(s string) (string, error) {
	s = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"))
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029')
	}) {
		return "", apperr.Validation(map[string]string{"message": "The message contains characters that are not allowed."})
	}
	if n := utf8.RuneCountInString(s); n > token.MaxMessageLength {
		return "", apperr.Validation(map[string]string{"message": "Keep the message to 1,000 characters or fewer."})
	}
	return s, nil
}

// handleUIDownloadToken is POST /api/ui/syncs/{id}/token-downloads
// {message}: a new token for the sync, as a file attachment
// (<SPACEKEY>-space-sync.token, no-store). The page saves it from a Blob.
func (a *App) handleUIDownloadToken(c echo.Context) error {
	u, s, err := a.adminSync(c)
	if err != nil {
		return err
	}
	var in struct {
		Message string `json:"message"`
	}
	if err := decodeAPIJSON(c, &in); err != nil {
		return err
	}
	msg, err := checkMessage(in.Message)
	if err != nil {
		return err
	}
	if s.Status != store.SyncNotSyncedYet {
		return errLinked()
	}
	minted, err := a.tokenMinter.Mint(tokens.Request{
		Tenant: u.tenant, Sync: s, Message: msg, Channel: store.ChannelDownload, IssuedBy: u.account,
	})
	if err != nil {
		return err
	}
	if err := a.store.IssueToken(c.Request().Context(), minted.Record, nil); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": minted.FileName}))
	h.Set("X-Token-Expires-At", minted.Record.ExpiresAt.UTC().Format(time.RFC3339))
	return c.Blob(http.StatusOK, "application/octet-stream", []byte(minted.Token+"\n"))
}

// uiEmail is an email as its sender follows it.
type uiEmail struct {
	ID string `json:"id"`
	// Status is queued, sent, failed or outbox.
	Status string `json:"status"`
	// Reason says in plain words why the email failed, or why a queued
	// email waits for another attempt.
	Reason string `json:"reason,omitempty"`
	To     string `json:"to"`
}

// handleUISendToken is POST /api/ui/syncs/{id}/token-emails {to, subject,
// message}: a new token for the sync, queued to be emailed (202 {email});
// the page follows it with GET /api/ui/token-emails/{id}. Per-user and
// per-tenant limits answer rate_limited.
func (a *App) handleUISendToken(c echo.Context) error {
	u, s, err := a.adminSync(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var body struct {
		To      string `json:"to"`
		Subject string `json:"subject"`
		Message string `json:"message"`
	}
	if err := decodeAPIJSON(c, &body); err != nil {
		return err
	}
	in, err := mail.CheckInput(body.To, body.Subject, body.Message)
	if err != nil {
		return err
	}
	if s.Status != store.SyncNotSyncedYet {
		return errLinked()
	}
	perUser, perTenant, err := a.store.CountRecentEmails(ctx, u.tenant.ID, u.account, a.deps.Now().Add(-a.mailLimits.Window))
	if err != nil {
		return err
	}
	if err := a.mailLimits.Check(perUser, perTenant); err != nil {
		return err
	}
	minted, err := a.tokenMinter.Mint(tokens.Request{
		Tenant: u.tenant, Sync: s, Message: in.Message, Channel: store.ChannelEmail, Recipient: in.To, IssuedBy: u.account,
	})
	if err != nil {
		return err
	}
	email := store.EmailRecord{
		ID: uuid.NewString(), TenantID: u.tenant.ID, SyncID: s.ID, TokenJTI: minted.Record.JTI,
		To: in.To, Subject: in.Subject, Message: in.Message,
		// The attachment is the token file, exactly as a download saves it.
		Token:     minted.Token + "\n",
		CreatedBy: u.account,
	}
	if err := a.store.IssueToken(ctx, minted.Record, &email); err != nil {
		return err
	}
	a.mailWorker.Wake()
	return c.JSON(http.StatusAccepted, map[string]uiEmail{"email": {ID: email.ID, Status: store.EmailQueued, To: in.To}})
}

// handleUIEmailStatus is GET /api/ui/token-emails/{id}: what became of a
// token email. Its sender may follow it; otherwise only an admin of its
// sync's space (recipients are shown to space admins only).
func (a *App) handleUIEmailStatus(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	st, err := a.emailState(c, u)
	if err != nil {
		return err
	}
	if st.CreatedBy != u.account {
		s, err := a.uiSync(ctx, u, st.SyncID)
		if err != nil {
			return err
		}
		if err := u.requireAdmin(ctx, s.SpaceID, s.SpaceKey); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, uiEmail{ID: st.ID, Status: st.Status, Reason: st.Reason, To: st.To})
}

func (a *App) emailState(c echo.Context, u uiCaller) (store.EmailState, error) {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return store.EmailState{}, apperr.New(apperr.NotFound, "There is no such email.")
	}
	st, err := a.store.EmailStatus(c.Request().Context(), u.tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.EmailState{}, apperr.New(apperr.NotFound, "There is no such email.")
	}
	return st, err
}

// handleUIRevokeTokens is POST /api/ui/syncs/{id}/revocations: every unused
// token of the sync stops working (204).
func (a *App) handleUIRevokeTokens(c echo.Context) error {
	u, s, err := a.adminSync(c)
	if err != nil {
		return err
	}
	if _, err := a.store.RevokeTokens(c.Request().Context(), u.tenant.ID, s.ID, u.account); err != nil {
		return a.syncGone(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// handleUIDeleteSync is DELETE /api/ui/syncs/{id}: the sync is deleted, its
// unused tokens revoked and its link, if any, ended (204).
func (a *App) handleUIDeleteSync(c echo.Context) error {
	u, s, err := a.adminSync(c)
	if err != nil {
		return err
	}
	if err := a.store.DeleteSync(c.Request().Context(), u.tenant.ID, s.ID, u.account); err != nil {
		return a.syncGone(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// syncGone maps a sync deleted meanwhile to not_found.
func (a *App) syncGone(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "There is no such sync on this site. It may have been deleted; reload the page.")
	}
	return err
}
