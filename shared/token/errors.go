package token

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"spacesync.io/shared/apperr"
)

// The refusals below are the only errors the readers return. Their messages
// are shown to people, so they say what to do next; values taken from an
// untrusted token are shortened and quoted.

const askForNew = "Ask the source space admin for a new token."

// timeLayout is how times appear in messages.
const timeLayout = "2006-01-02 15:04 UTC"

func errInvalid(reason string) *apperr.Error {
	return apperr.New(apperr.InvalidToken,
		"This is not a valid space token: "+reason+". Use the token file exactly as you received it, or ask the source space admin for a new token.")
}

func errTooLarge() *apperr.Error {
	return apperr.Newf(apperr.PayloadTooLarge,
		"This file is larger than %d KiB, far larger than a space token. Choose the .token file you were sent.", MaxUploadSize>>10)
}

func errUnsupported(reason string) *apperr.Error {
	return apperr.New(apperr.UnsupportedToken,
		"This token "+reason+", so it was not made by a compatible Space Sync. "+askForNew)
}

func errUnsupportedVersion(ver int64) *apperr.Error {
	return apperr.Newf(apperr.UnsupportedToken,
		"This token has format version %d, but this Space Sync reads only version %d. Make sure both sides run compatible versions of Space Sync, or ask the source space admin for a new token.", ver, Version)
}

func errUnknownKey(kid []byte) *apperr.Error {
	return apperr.Newf(apperr.UnknownKey,
		"This token was issued with a key this service no longer has (key %s); it may be older than the key rotation. %s", quote(kid), askForNew)
}

func errUndecryptable(cause error) *apperr.Error {
	return apperr.Wrap(cause, apperr.InvalidToken,
		"This token could not be decrypted: it was not issued by this service, or it was changed after it was issued. "+askForNew)
}

func errUntrustedIssuer(iss string) *apperr.Error {
	return apperr.Newf(apperr.UntrustedIssuer,
		"This token was issued by %s, which this Space Sync is not set up to trust. If that address is right, an administrator can add it to the trusted cloud-app URLs; otherwise ask the source space admin for a new token.", quote(iss))
}

func errWrongIssuer(iss, own string) *apperr.Error {
	return apperr.Newf(apperr.UntrustedIssuer,
		"This token was issued by %s, not by this service (%s). Send it to the cloud-app that issued it, or ask the source space admin for a new token.", quote(iss), own)
}

func errNotYetValid(from time.Time) *apperr.Error {
	return apperr.Newf(apperr.TokenNotYetValid,
		"This token is valid only from %s. Check that this server's clock is right, or wait and try again.", from.UTC().Format(timeLayout))
}

func errExpired(exp time.Time) *apperr.Error {
	return apperr.Newf(apperr.TokenExpired,
		"This token expired on %s. %s", exp.UTC().Format(timeLayout), askForNew)
}

// maxQuoted bounds how much of an untrusted value a message repeats.
const maxQuoted = 80

// quote returns s shortened and Go-quoted, so that an untrusted value can
// be shown without control characters or unbounded length.
func quote[S string | []byte](s S) string {
	str := string(s)
	if utf8.RuneCountInString(str) > maxQuoted {
		n := 0
		for i := range str {
			if n == maxQuoted {
				str = str[:i] + "…"
				break
			}
			n++
		}
	}
	return strconv.Quote(str)
}

// internalf is for mistakes of the caller (a missing key set, a claim the
// service should have filled); it renders as internal.
func internalf(format string, args ...any) error {
	return fmt.Errorf("token: "+format, args...)
}
