// Package cloud is dc-app's client of cloud-app's dc-app-facing API
// (DESIGN sections 5 and 11): token previews, redemptions and the link
// endpoints.
//
// Network hygiene: every request URL is built from a trusted base URL the
// caller passes in (an entry of DC_APP_TRUSTED_CLOUD_URLS), never from a
// token; redirects are never followed (the body carries a token, and a
// redirect answer is an error); proxies come from HTTPS_PROXY/HTTP_PROXY/
// NO_PROXY; every call has a deadline.
//
// A redemption can end three ways, and callers must tell them apart:
// Cloud's definite answer (a link, or a refusal with a code), nothing sent
// (NotSentError: no connection was ever made), or an unknown outcome
// (UnknownOutcomeError: the request may have been processed).
package cloud

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
)

// maxResponse caps how much of an answer is read.
const maxResponse = 1 << 20

// Options configure a Client.
type Options struct {
	// Timeout bounds each call, from dialling to the end of the answer
	// (default 30s).
	Timeout time.Duration
	// UserAgent is sent with every call.
	UserAgent string
	// Transport replaces the default transport (tests only).
	Transport http.RoundTripper
}

// Client calls cloud-app. It is safe for concurrent use.
type Client struct {
	hc        *http.Client
	userAgent string
}

// New returns a Client.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: o.Timeout,
			MaxIdleConns:          16,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       60 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "spacesync-dc-app"
	}
	return &Client{
		hc: &http.Client{
			Transport: tr,
			Timeout:   o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		userAgent: ua,
	}
}

// NotSentError means the call failed before a connection to cloud-app was
// made (the name did not resolve, the connection was refused, TLS failed):
// nothing was sent, so nothing can have happened on the Cloud side.
type NotSentError struct {
	Err error
}

func (e *NotSentError) Error() string { return "cloud-app not reached: " + e.Err.Error() }
func (e *NotSentError) Unwrap() error { return e.Err }

// UnknownOutcomeError means the request may have reached cloud-app but no
// definite answer came back: a timeout or reset after sending, a redirect,
// or an answer without one of the protocol's codes. Status is the HTTP
// status when there was an answer.
type UnknownOutcomeError struct {
	Status int
	Err    error
}

func (e *UnknownOutcomeError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("no definite answer from cloud-app (HTTP %d): %v", e.Status, e.Err)
	}
	return "no definite answer from cloud-app: " + e.Err.Error()
}
func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// Refusal is cloud-app's definite refusal: an answer with one of the
// protocol's error codes.
type Refusal struct {
	Status  int
	Code    apperr.Code
	Message string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("cloud-app refused (HTTP %d %s): %s", r.Status, r.Code, r.Message)
}

// Final reports whether the refusal is definite: a 4xx with a code that
// does not change on retry (DESIGN section 7, "final").
func (r *Refusal) Final() bool {
	return r.Status >= 400 && r.Status < 500 && r.Code.Final()
}

// endpoint joins a trusted base URL and a protocol path.
func endpoint(base *url.URL, path string) string {
	return strings.TrimSuffix(base.String(), "/") + path
}

// call sends a JSON request and returns the answer's status and body, or a
// *NotSentError / *UnknownOutcomeError. bearer, when set, is sent as the
// Authorization.
func (c *Client) call(ctx context.Context, method, u string, body any, bearer string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	var connected atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, u, rd)
	if err != nil {
		return 0, nil, &NotSentError{Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// GotConn fires before the request is written; without it no byte
		// of this request can have reached cloud-app.
		if !connected.Load() {
			return 0, nil, &NotSentError{Err: scrub(err)}
		}
		return 0, nil, &UnknownOutcomeError{Err: scrub(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, nil, &UnknownOutcomeError{Status: resp.StatusCode, Err: scrub(err)}
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return resp.StatusCode, nil, &UnknownOutcomeError{Status: resp.StatusCode,
			Err: errors.New("cloud-app answered with a redirect, which is never followed; check DC_APP_TRUSTED_CLOUD_URLS")}
	}
	return resp.StatusCode, b, nil
}

// scrub drops the URL from a *url.Error so that no query or path detail
// ends up in messages (there are none with a secret today; keep it so).
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// refusal decodes a protocol error answer, or returns nil if the body is
// not one.
func refusal(status int, body []byte) *Refusal {
	var e apperr.Body
	if err := json.Unmarshal(body, &e); err != nil || !e.Error.Code.Known() {
		return nil
	}
	return &Refusal{Status: status, Code: e.Error.Code, Message: e.Error.Message}
}

// Preview asks cloud-app at base what the token holds, consuming nothing.
// Errors: *Refusal (a code from cloud-app), *NotSentError,
// *UnknownOutcomeError.
func (c *Client) Preview(ctx context.Context, base *url.URL, token string) (*protocol.Preview, error) {
	status, body, err := c.call(ctx, http.MethodPost, endpoint(base, protocol.PathPreviews), protocol.PreviewRequest{Token: token}, "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		if r := refusal(status, body); r != nil {
			return nil, r
		}
		return nil, &UnknownOutcomeError{Status: status, Err: errors.New("the answer is not a Space Sync preview")}
	}
	var p protocol.Preview
	if err := json.Unmarshal(body, &p); err != nil || p.TokenID == "" || p.State == "" {
		return nil, &UnknownOutcomeError{Status: status, Err: errors.New("the answer is not a Space Sync preview")}
	}
	return &p, nil
}

// Redemption is cloud-app's definite acceptance of a redemption.
type Redemption struct {
	Link protocol.Link
	// Created is true for 201 (a new link) and false for 200 (the exact
	// replay of a redemption that had already succeeded).
	Created bool
}

// Redeem sends the redemption to cloud-app at base. Errors: *Refusal
// (definite when Final), *NotSentError, *UnknownOutcomeError.
func (c *Client) Redeem(ctx context.Context, base *url.URL, r protocol.RedemptionRequest) (*Redemption, error) {
	status, body, err := c.call(ctx, http.MethodPost, endpoint(base, protocol.PathRedemptions), r, "")
	if err != nil {
		return nil, err
	}
	switch status {
	case http.StatusCreated, http.StatusOK:
		var rr protocol.RedemptionResponse
		if err := json.Unmarshal(body, &rr); err != nil || rr.Link.ID == "" {
			return nil, &UnknownOutcomeError{Status: status, Err: errors.New("the answer is not a Space Sync link")}
		}
		return &Redemption{Link: rr.Link, Created: status == http.StatusCreated}, nil
	}
	if ref := refusal(status, body); ref != nil {
		return nil, ref
	}
	return nil, &UnknownOutcomeError{Status: status, Err: errors.New("the answer has no Space Sync error code")}
}

// ErrNoLink means cloud-app holds no active link for the link secret.
var ErrNoLink = errors.New("cloud-app has no active link for this secret")

// Unlink ends the link whose secret is linkSecret (DELETE
// /api/v1/links/self). It returns nil when cloud-app unlinked it, ErrNoLink
// when cloud-app says there is no such active link (a protocol error answer
// with 401, 404 or 410), and otherwise *NotSentError, *UnknownOutcomeError
// or *Refusal.
func (c *Client) Unlink(ctx context.Context, base *url.URL, linkSecret string) error {
	status, body, err := c.call(ctx, http.MethodDelete, endpoint(base, protocol.PathLinkSelf), nil, linkSecret)
	if err != nil {
		return err
	}
	if status >= 200 && status < 300 {
		return nil
	}
	if r := refusal(status, body); r != nil {
		if status == http.StatusUnauthorized || status == http.StatusNotFound || status == http.StatusGone {
			return ErrNoLink
		}
		return r
	}
	return &UnknownOutcomeError{Status: status, Err: errors.New("the answer has no Space Sync error code")}
}
