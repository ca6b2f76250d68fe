package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/dc-app/internal/importer"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
)

// syncedSpaceJSON is a synced space as the API shows it. It never carries
// a secret.
type syncedSpaceJSON struct {
	ID     string       `json:"id"`
	Name   string       `json:"name"`
	Status store.Status `json:"status"`
	// StatusText is the status in words ("waiting for Cloud
	// confirmation" for PENDING).
	StatusText       string                `json:"statusText"`
	StatusReason     string                `json:"statusReason,omitempty"`
	CloudURL         string                `json:"cloudUrl"`
	Site             protocol.Site         `json:"site"`
	Space            protocol.Space        `json:"space"`
	SyncID           string                `json:"syncId"`
	SyncName         string                `json:"syncName"`
	Settings         protocol.SyncSettings `json:"settings"`
	LocalPermissions []store.Principal     `json:"localPermissions"`
	LinkID           string                `json:"linkId,omitempty"`
	ImportedBy       string                `json:"importedBy"`
	CreatedAt        time.Time             `json:"createdAt"`
	LinkedAt         *time.Time            `json:"linkedAt,omitempty"`
}

// statusText says a status in words.
func statusText(s store.Status) string {
	switch s {
	case store.StatusPending:
		return "waiting for Cloud confirmation"
	case store.StatusLinked:
		return "linked"
	case store.StatusUnlinked:
		return "unlinked on Cloud"
	case store.StatusFailed:
		return "failed"
	}
	return string(s)
}

func toJSON(sp store.SyncedSpace) syncedSpaceJSON {
	perms := make([]protocol.Principal, len(sp.CloudPermissions))
	for i, p := range sp.CloudPermissions {
		perms[i] = protocol.Principal{Type: p.Type, ID: p.ID, Name: p.Name}
	}
	local := sp.LocalPermissions
	if local == nil {
		local = []store.Principal{}
	}
	j := syncedSpaceJSON{
		ID: sp.ID, Name: sp.Name, Status: sp.Status, StatusText: statusText(sp.Status), StatusReason: sp.StatusReason,
		CloudURL: sp.CloudURL,
		Site:     protocol.Site{BaseURL: sp.SiteBaseURL, DisplayURL: sp.SiteDisplayURL},
		Space:    protocol.Space{ID: sp.SpaceID, Key: sp.SpaceKey, Name: sp.SpaceName},
		SyncID:   sp.SyncID, SyncName: sp.SyncName,
		Settings:         protocol.SyncSettings{Permissions: perms, Comments: sp.SyncComments, Labels: sp.SyncLabels},
		LocalPermissions: local, LinkID: sp.LinkID, ImportedBy: sp.ImportedBy, CreatedAt: sp.CreatedAt,
	}
	if !sp.LinkedAt.IsZero() {
		t := sp.LinkedAt
		j.LinkedAt = &t
	}
	return j
}

// previewJSON is the answer to POST /api/v1/token-previews: cloud-app's
// preview, flattened, with the trusted cloud-app it came from and the
// suggested name (the source space's).
type previewJSON struct {
	protocol.Preview
	CloudURL      string `json:"cloudUrl"`
	SuggestedName string `json:"suggestedName"`
}

func admin(c echo.Context) store.Admin {
	a, _ := c.Get(ctxAdmin).(store.Admin)
	return a
}

// apiPreview answers POST /api/v1/token-previews: the token (raw body,
// JSON {"token"} or multipart "file") is checked and previewed; nothing is
// stored or consumed.
func (a *App) apiPreview(c echo.Context) error {
	in, err := readInput(c, true)
	if err != nil {
		return err
	}
	p, err := a.Importer.Preview(c.Request().Context(), in.Token)
	if err != nil {
		return err
	}
	noStore(c)
	name := p.Cloud.Space.Name
	if name == "" {
		name = p.Cloud.SyncName
	}
	return c.JSON(http.StatusOK, previewJSON{Preview: p.Cloud, CloudURL: p.CloudURL, SuggestedName: name})
}

// importResponse is the answer to an import: 201 with the synced space, or
// 202 with it and the code pending when Cloud's answer is not known yet.
type importResponse struct {
	SyncedSpace syncedSpaceJSON   `json:"syncedSpace"`
	Error       *apperr.BodyError `json:"error,omitempty"`
}

// apiImport answers POST /api/v1/synced-spaces.
func (a *App) apiImport(c echo.Context) error {
	in, err := readInput(c, false)
	if err != nil {
		return err
	}
	res, err := a.Importer.Import(c.Request().Context(), importer.Request{
		Token: in.Token, Name: in.Name, Permissions: in.Permissions, Expect: in.Expect, Actor: admin(c).Username,
	})
	if err != nil {
		return err
	}
	noStore(c)
	if res.Pending {
		return c.JSON(http.StatusAccepted, importResponse{
			SyncedSpace: toJSON(res.Space),
			Error: &apperr.BodyError{Code: apperr.Pending,
				Message: "Confluence Cloud has not confirmed the import yet. It shows as waiting for Cloud confirmation, and dc-app keeps asking in the background; there is nothing more to do."},
		})
	}
	return c.JSON(http.StatusCreated, importResponse{SyncedSpace: toJSON(res.Space)})
}

// apiList answers GET /api/v1/synced-spaces.
func (a *App) apiList(c echo.Context) error {
	spaces, err := a.Store.List(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]syncedSpaceJSON, len(spaces))
	for i, sp := range spaces {
		out[i] = toJSON(sp)
	}
	return c.JSON(http.StatusOK, map[string]any{"results": out})
}

// apiRemove answers DELETE /api/v1/synced-spaces/{id}: unlink on Cloud,
// then remove here.
func (a *App) apiRemove(c echo.Context) error {
	id := c.Param("id")
	if !validID(id) {
		return apperr.New(apperr.NotFound, "There is no such synced space.")
	}
	if err := a.Importer.Remove(c.Request().Context(), id, admin(c).Username); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// validID reports whether id looks like a row id (a UUID), so junk never
// reaches the database.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, ch := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if ch != '-' {
				return false
			}
		case ch >= '0' && ch <= '9', ch >= 'a' && ch <= 'f':
		default:
			return false
		}
	}
	return true
}
