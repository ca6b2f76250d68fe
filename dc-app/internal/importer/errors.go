package importer

import (
	"errors"
	"net/url"
	"strconv"
	"unicode/utf8"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
)

func errAlreadyImported() *apperr.Error {
	return apperr.New(apperr.AlreadyImported,
		"This token has already been imported here: its synced space is in the Synced Spaces list. A token pairs one space once; to pair again, remove that synced space and ask the source space admin for a new token.")
}

// passThrough lists cloud-app's codes that mean the same to dc-app's
// clients. Any other code (unauthorized, not_found, internal, ...) would be
// misleading if passed on — a 401 from Cloud is not the admin's session
// ending — and becomes cloud_unreachable.
var passThrough = map[apperr.Code]bool{
	apperr.InvalidToken:      true,
	apperr.UnknownKey:        true,
	apperr.UnsupportedToken:  true,
	apperr.UntrustedIssuer:   true,
	apperr.TokenNotYetValid:  true,
	apperr.TokenExpired:      true,
	apperr.TokenUsed:         true,
	apperr.TokenRevoked:      true,
	apperr.TokenMismatch:     true,
	apperr.SyncDeleted:       true,
	apperr.TenantUninstalled: true,
	apperr.ValidationFailed:  true,
	apperr.RateLimited:       true,
	apperr.Unavailable:       true,
}

// defaultMessages are used when cloud-app sends a code without a message.
var defaultMessages = map[apperr.Code]string{
	apperr.InvalidToken:      "Confluence Cloud could not read this token. Use the token file exactly as you received it, or ask the source space admin for a new token.",
	apperr.UnknownKey:        "Confluence Cloud no longer has the key this token was made with. Ask the source space admin for a new token.",
	apperr.UnsupportedToken:  "Confluence Cloud does not accept this kind of token. Ask the source space admin for a new token.",
	apperr.UntrustedIssuer:   "Confluence Cloud says it did not issue this token.",
	apperr.TokenNotYetValid:  "This token is not valid yet. Check that this server's clock is right.",
	apperr.TokenExpired:      "This token has expired. Ask the source space admin for a new token.",
	apperr.TokenUsed:         "This token has already been used. Ask the source space admin for a new token.",
	apperr.TokenRevoked:      "This token was revoked on Confluence Cloud. Ask the source space admin for a new token.",
	apperr.TokenMismatch:     "This token does not match what you previewed. Choose the file again.",
	apperr.SyncDeleted:       "The sync this token belongs to was deleted on Confluence Cloud.",
	apperr.TenantUninstalled: "Space Sync was uninstalled from the Confluence Cloud site this token comes from.",
	apperr.ValidationFailed:  "Confluence Cloud refused the request as incomplete.",
	apperr.RateLimited:       "Confluence Cloud asks to slow down. Wait a minute and try again.",
	apperr.Unavailable:       "Space Sync on Confluence Cloud is temporarily unavailable. Try again shortly.",
}

// cloudError turns an error of the cloud client into the *apperr.Error
// shown to the admin. base names the cloud-app in messages when known.
func (s *Service) cloudError(base *url.URL, err error) error {
	var ref *cloud.Refusal
	if errors.As(err, &ref) {
		if passThrough[ref.Code] {
			msg := ref.Message
			if msg == "" {
				msg = defaultMessages[ref.Code]
			}
			e := apperr.New(ref.Code, msg)
			if ref.Code == apperr.RateLimited || ref.Code == apperr.Unavailable {
				e.RetryAfter = 30
			}
			return e
		}
		s.log.Warn("unexpected answer from cloud-app", "code", ref.Code, "status", ref.Status)
		return apperr.Wrap(err, apperr.CloudUnreachable,
			"Space Sync on Confluence Cloud"+where(base)+" gave an unexpected answer ("+string(ref.Code)+"), so nothing was imported. Check that DC_APP_TRUSTED_CLOUD_URLS names the right address, then try again.")
	}
	var notSent *cloud.NotSentError
	if errors.As(err, &notSent) {
		return apperr.Wrap(err, apperr.CloudUnreachable,
			"Could not connect to Space Sync on Confluence Cloud"+where(base)+", so nothing was imported. Check this server's network and proxy settings, then try again.")
	}
	var unknown *cloud.UnknownOutcomeError
	if errors.As(err, &unknown) {
		return apperr.Wrap(err, apperr.CloudUnreachable,
			"Space Sync on Confluence Cloud"+where(base)+" did not give a usable answer, so nothing was imported. Check this server's network and proxy settings, then try again.")
	}
	return err
}

func where(base *url.URL) string {
	if base == nil {
		return ""
	}
	return " (" + base.String() + ")"
}

// stateError is the refusal for a preview whose token cannot be redeemed
// now; Cloud names the code in State.
func stateError(p *protocol.Preview) error {
	code := apperr.Code(p.State)
	if !passThrough[code] {
		return apperr.New(apperr.InvalidToken, "Confluence Cloud says this token cannot be used. Ask the source space admin for a new token.")
	}
	msg := p.Reason
	if msg == "" {
		msg = defaultMessages[code]
	}
	if msg == "" {
		msg = "Confluence Cloud says this token cannot be used (" + string(code) + "). Ask the source space admin for a new token."
	}
	return apperr.New(code, msg)
}

// quote shortens an untrusted value and quotes it for a message.
func quote(s string) string {
	if utf8.RuneCountInString(s) > 120 {
		r := []rune(s)
		s = string(r[:120]) + "…"
	}
	return strconv.Quote(s)
}
