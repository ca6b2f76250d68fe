package web

// The details view of a sync (GET /api/ui/syncs/{id}): its settings and
// status for anyone who can view its space; its token history, link and
// audit trail, with recipients, only for that space's admins.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/store"
)

// Bounds of the details view.
const (
	// uiAuditLimit is how many audit records the view shows.
	uiAuditLimit = 100
	// uiMaxNames bounds how many account ids one view resolves to names.
	uiMaxNames = 25
)

// uiPerson is an actor or issuer, with the name to show.
type uiPerson struct {
	// ID is an Atlassian account id; empty for Space Sync itself and for a
	// Data Center instance.
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
}

// uiToken is one token of the history.
type uiToken struct {
	// Channel is download or email; Recipient the address for email.
	Channel   string     `json:"channel"`
	Recipient string     `json:"recipient,omitempty"`
	IssuedBy  uiPerson   `json:"issuedBy"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	UsedAt    *time.Time `json:"usedAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	// RevokeReason is revoked, superseded or sync_deleted.
	RevokeReason string `json:"revokeReason,omitempty"`
	// State is usable, used, revoked or expired.
	State string `json:"state"`
}

// uiLink is a link to a Data Center instance.
type uiLink struct {
	InstanceName    string     `json:"instanceName"`
	InstanceBaseURL string     `json:"instanceBaseUrl,omitempty"`
	Name            string     `json:"name"`
	Status          string     `json:"status"`
	LinkedAt        time.Time  `json:"linkedAt"`
	LastUsedAt      *time.Time `json:"lastUsedAt,omitempty"`
	UnlinkedAt      *time.Time `json:"unlinkedAt,omitempty"`
}

// uiAuditEvent is one record of the audit trail, in words.
type uiAuditEvent struct {
	At      time.Time `json:"at"`
	Actor   uiPerson  `json:"actor"`
	Action  string    `json:"action"`
	Summary string    `json:"summary"`
}

// uiSyncDetails is GET /api/ui/syncs/{id}. Tokens, Links and Audit are
// present only for admins of the sync's space.
type uiSyncDetails struct {
	Sync      uiSyncJSON     `json:"sync"`
	CanAdmin  bool           `json:"canAdmin"`
	CreatedBy *uiPerson      `json:"createdBy,omitempty"`
	Link      *uiLink        `json:"link,omitempty"`
	Links     []uiLink       `json:"links,omitempty"`
	Tokens    []uiToken      `json:"tokens,omitempty"`
	Audit     []uiAuditEvent `json:"audit,omitempty"`
}

// handleUISyncDetails is GET /api/ui/syncs/{id}.
func (a *App) handleUISyncDetails(c echo.Context) error {
	u, err := a.uiCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	s, err := a.uiSync(ctx, u, c.Param("id"))
	if err != nil {
		return err
	}
	acc, err := u.access(ctx, s.SpaceID)
	if err != nil {
		return err
	}
	if !acc.View {
		return errNoView(s.SpaceKey)
	}
	out := uiSyncDetails{Sync: syncJSON(s), CanAdmin: acc.Admin}
	if !acc.Admin {
		return c.JSON(http.StatusOK, out)
	}
	d, err := a.store.SyncDetails(ctx, u.tenant.ID, s.ID)
	if err != nil {
		return a.syncGone(err)
	}
	trail, err := a.store.AuditTrail(ctx, u.tenant.ID, s.ID, uiAuditLimit)
	if err != nil {
		return err
	}
	out.Sync = syncJSON(d.Sync)
	ids := []string{d.Sync.CreatedBy}
	for _, t := range d.Tokens {
		ids = append(ids, t.IssuedBy)
	}
	for _, e := range trail {
		ids = append(ids, e.Actor)
	}
	names := a.accountNames(ctx, u, ids)
	person := func(id string) uiPerson {
		switch {
		case id == store.ActorSystem:
			return uiPerson{Name: "Space Sync"}
		case strings.HasPrefix(id, "dc-app:"):
			return uiPerson{Name: "Data Center instance"}
		case names[id] != "":
			return uiPerson{ID: id, Name: names[id]}
		}
		return uiPerson{ID: id, Name: "Unknown user"}
	}
	cb := person(d.Sync.CreatedBy)
	out.CreatedBy = &cb
	now := a.deps.Now()
	out.Tokens = make([]uiToken, len(d.Tokens))
	for i, t := range d.Tokens {
		out.Tokens[i] = uiToken{
			Channel: t.Channel, Recipient: t.Recipient, IssuedBy: person(t.IssuedBy),
			IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt, UsedAt: t.UsedAt, RevokedAt: t.RevokedAt,
			RevokeReason: t.RevokeReason, State: t.State(now),
		}
	}
	out.Links = make([]uiLink, len(d.Links))
	for i, l := range d.Links {
		out.Links[i] = linkJSON(l)
	}
	if d.ActiveLink != nil {
		l := linkJSON(*d.ActiveLink)
		out.Link = &l
	}
	out.Audit = make([]uiAuditEvent, len(trail))
	for i, e := range trail {
		actor := person(e.Actor)
		if strings.HasPrefix(e.Actor, "dc-app:") {
			if n, ok := e.Detail["instanceName"].(string); ok && n != "" {
				actor.Name = "Data Center instance " + n
			}
		}
		out.Audit[i] = uiAuditEvent{At: e.CreatedAt, Actor: actor, Action: e.Action, Summary: auditSummary(e)}
	}
	return c.JSON(http.StatusOK, out)
}

func linkJSON(l store.Link) uiLink {
	return uiLink{
		InstanceName: l.Instance.Name, InstanceBaseURL: l.Instance.BaseURL, Name: l.Name, Status: l.Status,
		LinkedAt: l.CreatedAt, LastUsedAt: l.LastUsedAt, UnlinkedAt: l.UnlinkedAt,
	}
}

// accountNames resolves up to uiMaxNames distinct account ids to display
// names with Confluence; ids it cannot resolve are left out.
func (a *App) accountNames(ctx context.Context, u uiCaller, ids []string) map[string]string {
	seen := map[string]bool{}
	var todo []string
	for _, id := range ids {
		if id == "" || id == store.ActorSystem || strings.HasPrefix(id, "dc-app:") || seen[id] {
			continue
		}
		seen[id] = true
		if len(todo) < uiMaxNames {
			todo = append(todo, id)
		}
	}
	got := make([]string, len(todo))
	_ = forEach(ctx, len(todo), func(ctx context.Context, i int) error {
		usr, err := u.site.User(ctx, todo[i])
		if err == nil {
			got[i] = userName(usr)
		}
		return nil // a name is a nicety: the id stands in for it
	})
	out := make(map[string]string, len(todo))
	for i, id := range todo {
		if got[i] != "" {
			out[id] = got[i]
		}
	}
	return out
}

// auditSummary says what an audit record records, in words.
func auditSummary(e store.AuditEvent) string {
	str := func(k string) string {
		s, _ := e.Detail[k].(string)
		return s
	}
	num := func(k string) int {
		f, _ := e.Detail[k].(float64)
		return int(f)
	}
	switch e.Action {
	case "sync.created":
		return fmt.Sprintf("Created the sync “%s”.", str("name"))
	case "token.issued":
		if str("channel") == store.ChannelEmail {
			return fmt.Sprintf("Issued a token to email to %s.", str("recipient"))
		}
		return "Downloaded a token."
	case store.AuditEmailSent:
		return fmt.Sprintf("Emailed the token to %s (SendGrid accepted it).", str("recipient"))
	case store.AuditEmailOutbox:
		return fmt.Sprintf("Saved the email to %s in the outbox; it was not sent.", str("recipient"))
	case store.AuditEmailFailed:
		return fmt.Sprintf("The email to %s was not sent: %s", str("recipient"), str("reason"))
	case "tokens.revoked":
		n := num("count")
		if n == 1 {
			return "Revoked 1 unused token."
		}
		return fmt.Sprintf("Revoked %d unused tokens.", n)
	case "sync.deleted":
		return "Deleted the sync."
	case "link.created":
		s := fmt.Sprintf("Redeemed a token and linked the sync to %s", cmp.Or(str("instanceName"), "a Data Center instance"))
		if b := str("instanceBaseUrl"); b != "" {
			s += " (" + b + ")"
		}
		if n := str("name"); n != "" {
			s += " as “" + n + "”"
		}
		return s + "."
	case "link.unlinked":
		return "Unlinked the sync from its Data Center instance."
	}
	return e.Action
}
