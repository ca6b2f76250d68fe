package server

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
)

func randRead(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
}

// ToAppError maps any handler error — an *apperr.Error, one of Echo's own
// errors (404, 405, 413, bind, CSRF), or a database that went away — to an
// *apperr.Error. Anything else is internal.
func ToAppError(err error) *apperr.Error {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return ae
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return apperr.New(apperr.NotFound, "There is nothing here.")
		case http.StatusMethodNotAllowed:
			return apperr.New(apperr.NotFound, "This address does not accept that method.")
		case http.StatusRequestEntityTooLarge:
			return apperr.New(apperr.PayloadTooLarge, "The upload is too large.")
		case http.StatusBadRequest, http.StatusUnsupportedMediaType:
			return apperr.Wrap(err, apperr.ValidationFailed, "The request could not be read.")
		case http.StatusUnauthorized:
			return apperr.New(apperr.Unauthorized, "Sign in first.")
		case http.StatusForbidden:
			return apperr.New(apperr.Forbidden, "This request was refused. Reload the page and try again.")
		case http.StatusTooManyRequests:
			return &apperr.Error{Code: apperr.RateLimited, Message: "Too many requests. Wait a minute and try again.", RetryAfter: 60}
		case http.StatusServiceUnavailable:
			return apperr.New(apperr.Unavailable, "The service is temporarily unavailable. Try again shortly.")
		}
		return apperr.Wrap(err, apperr.Internal, "Something went wrong on our side.")
	}
	if db.Unavailable(err) {
		return &apperr.Error{Code: apperr.Unavailable, Message: "The service is temporarily unavailable. Try again shortly.", RetryAfter: 5, Cause: err}
	}
	return apperr.As(err)
}

func errorHandler(log *slog.Logger, isAPI func(echo.Context) bool, html func(echo.Context, *apperr.Error, string) error) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		ae := ToAppError(err)
		rid := RequestID(c)
		status := ae.Status()
		if status >= 500 && ae.Code != apperr.Unavailable {
			log.Error("request failed", "request_id", rid, "code", ae.Code, "err", err)
		} else if ae.Code == apperr.Unavailable {
			log.Warn("dependency unavailable", "request_id", rid, "err", err)
		}
		msg := ae.Message
		if ae.Code == apperr.Internal {
			msg = "Something went wrong on our side. If it keeps happening, report request id " + rid + "."
		}
		shown := &apperr.Error{Code: ae.Code, Message: msg, Fields: ae.Fields, RetryAfter: ae.RetryAfter}
		if ae.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
		}
		if ae.Code == apperr.Unauthorized {
			// Never invite the browser to prompt for (and then cache) Basic
			// credentials.
			c.Response().Header().Del("WWW-Authenticate")
		}
		var rerr error
		if c.Request().Method == http.MethodHead {
			rerr = c.NoContent(status)
		} else if html != nil && !isAPI(c) {
			rerr = html(c, shown, rid)
		} else {
			rerr = c.JSON(status, apperr.Body{Error: apperr.BodyError{Code: shown.Code, Message: shown.Message, Fields: shown.Fields, RequestID: rid}})
		}
		if rerr != nil {
			log.Error("render error response", "request_id", rid, "err", rerr)
		}
	}
}
