// Package apperr holds the stable error codes both services answer with
// (DESIGN section 7) and the one error type that carries them.
//
// A handler returns an *Error (or wraps one); the service's error hook maps
// it to its HTTP status and renders {"error": {"code", "message"}}. Anything
// that is not an *Error is rendered as Internal, and its detail goes only to
// the log.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code. Codes are part of the
// contract: they never change meaning once published.
type Code string

// The codes of DESIGN section 7.
const (
	InvalidToken      Code = "invalid_token"
	UnknownKey        Code = "unknown_key"
	UnsupportedToken  Code = "unsupported_token"
	UntrustedIssuer   Code = "untrusted_issuer"
	UntrustedSite     Code = "untrusted_site"
	TokenNotYetValid  Code = "token_not_yet_valid"
	TokenExpired      Code = "token_expired"
	TokenUsed         Code = "token_used"
	TokenRevoked      Code = "token_revoked"
	TokenMismatch     Code = "token_mismatch"
	AlreadyImported   Code = "already_imported"
	SyncDeleted       Code = "sync_deleted"
	TenantUninstalled Code = "tenant_uninstalled"
	CloudUnreachable  Code = "cloud_unreachable"
	Pending           Code = "pending"
	MailRejected      Code = "mail_rejected"
	ValidationFailed  Code = "validation_failed"
	Unauthorized      Code = "unauthorized"
	Forbidden         Code = "forbidden"
	NotFound          Code = "not_found"
	PayloadTooLarge   Code = "payload_too_large"
	RateLimited       Code = "rate_limited"
	Unavailable       Code = "unavailable"
	Internal          Code = "internal"
)

type codeInfo struct {
	status int
	final  bool
}

var codes = map[Code]codeInfo{
	InvalidToken:      {http.StatusBadRequest, true},
	UnknownKey:        {http.StatusBadRequest, true},
	UnsupportedToken:  {http.StatusBadRequest, true},
	UntrustedIssuer:   {http.StatusBadRequest, true},
	UntrustedSite:     {http.StatusForbidden, true},
	TokenNotYetValid:  {http.StatusBadRequest, true},
	TokenExpired:      {http.StatusGone, true},
	TokenUsed:         {http.StatusConflict, true},
	TokenRevoked:      {http.StatusGone, true},
	TokenMismatch:     {http.StatusConflict, true},
	AlreadyImported:   {http.StatusConflict, true},
	SyncDeleted:       {http.StatusGone, true},
	TenantUninstalled: {http.StatusGone, true},
	CloudUnreachable:  {http.StatusBadGateway, false},
	Pending:           {http.StatusAccepted, false},
	MailRejected:      {http.StatusUnprocessableEntity, true},
	ValidationFailed:  {http.StatusUnprocessableEntity, true},
	Unauthorized:      {http.StatusUnauthorized, true},
	Forbidden:         {http.StatusForbidden, true},
	NotFound:          {http.StatusNotFound, true},
	PayloadTooLarge:   {http.StatusRequestEntityTooLarge, true},
	RateLimited:       {http.StatusTooManyRequests, false},
	Unavailable:       {http.StatusServiceUnavailable, false},
	Internal:          {http.StatusInternalServerError, false},
}

// Codes returns every known code, for tests and documentation.
func Codes() []Code {
	out := make([]Code, 0, len(codes))
	for c := range codes {
		out = append(out, c)
	}
	return out
}

// Known reports whether c is one of the codes of DESIGN section 7.
func (c Code) Known() bool { _, ok := codes[c]; return ok }

// Status is the HTTP status the code is answered with; unknown codes are 500.
func (c Code) Status() int {
	if i, ok := codes[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// Final tells dc-app whether a refusal with this code is definite (drop a
// pending import) or may change on retry (keep it).
func (c Code) Final() bool {
	if i, ok := codes[c]; ok {
		return i.final
	}
	return false
}

// Error is an error with a stable code and a message safe to show a user.
// Cause, when set, is for the log only.
type Error struct {
	Code    Code
	Message string
	// Fields holds per-field messages for validation_failed.
	Fields map[string]string
	// RetryAfter, in seconds, is sent as Retry-After with rate_limited and
	// unavailable when positive.
	RetryAfter int
	Cause      error
}

// New returns an *Error with the code and message.
func New(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Newf is New with a formatted message.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that keeps cause for the log.
func Wrap(cause error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// Validation returns a validation_failed error with per-field messages.
func Validation(fields map[string]string) *Error {
	return &Error{Code: ValidationFailed, Message: "Some fields need attention.", Fields: fields}
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// Status is the HTTP status for the error's code.
func (e *Error) Status() int { return e.Code.Status() }

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the first *Error in err's chain, or an Internal error that keeps
// err as its cause.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: "Something went wrong on our side.", Cause: err}
}

// Body is the JSON shape of an error response: {"error": {...}}.
type Body struct {
	Error BodyError `json:"error"`
}

// BodyError is the inner object of Body.
type BodyError struct {
	Code      Code              `json:"code"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"requestId,omitempty"`
}
