package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"

	"spacesync.io/shared/apperr"
)

// DefaultSendTimeout is the deadline of one call to SendGrid when
// SendGridConfig.Timeout is zero.
const DefaultSendTimeout = 15 * time.Second

// sendPath is SendGrid's v3 Mail Send endpoint, relative to SENDGRID_API_URL.
const sendPath = "/v3/mail/send"

// maxResponseBody bounds how much of a SendGrid answer is read.
const maxResponseBody = 256 << 10

// SendGridConfig configures the SendGrid mailer.
type SendGridConfig struct {
	// APIKey is SENDGRID_API_KEY, sent as "Authorization: Bearer <key>".
	APIKey string
	// APIURL is SENDGRID_API_URL, e.g. https://api.sendgrid.com (or the
	// simulator); the mailer posts to APIURL + /v3/mail/send.
	APIURL string
	// From is MAIL_FROM: one address, optionally with a display name.
	From string
	// Timeout is the deadline of one call; zero means DefaultSendTimeout.
	Timeout time.Duration
	// Transport carries the requests; nil means a transport of its own
	// with the standard settings (HTTPS_PROXY honoured).
	Transport http.RoundTripper
}

// SendGrid sends token emails with SendGrid's v3 Mail Send API through the
// sendgrid-go client. It uses an HTTP client of its own, never the
// package-global sendgrid.DefaultClient, so mailers with different settings
// can run side by side.
type SendGrid struct {
	key     string
	host    string
	from    *sgmail.Email
	timeout time.Duration
	client  *rest.Client
}

// NewSendGrid returns a SendGrid mailer. It refuses a missing key, a
// SENDGRID_API_URL that is not a plain http(s) URL and a MAIL_FROM that is
// not one address; the error never contains the key.
func NewSendGrid(cfg SendGridConfig) (*SendGrid, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("mail: SENDGRID_API_KEY is required to send with SendGrid")
	}
	if strings.ContainsFunc(cfg.APIKey, func(r rune) bool { return r <= ' ' || r >= 0x7F }) {
		return nil, errors.New("mail: SENDGRID_API_KEY contains spaces or control characters")
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = "https://api.sendgrid.com"
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mail: SENDGRID_API_URL %q is not an http(s) URL without credentials, query or fragment", apiURL)
	}
	from, err := parseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &SendGrid{
		key:     cfg.APIKey,
		host:    strings.TrimRight(u.String(), "/"),
		from:    sgmail.NewEmail(from.Name, from.Address),
		timeout: timeout,
		client: &rest.Client{HTTPClient: &http.Client{
			Transport: limitedBody{transport},
			// The request carries the API key and a token: never follow a
			// redirect with it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			// A backstop; the per-call context deadline normally ends it.
			Timeout: timeout + 5*time.Second,
		}},
	}, nil
}

// parseFrom checks MAIL_FROM: one address, with an optional display name.
func parseFrom(s string) (*netmail.Address, error) {
	a, err := netmail.ParseAddress(s)
	if err != nil || strings.ContainsAny(s, "\r\n") || !utf8.ValidString(a.Name) {
		return nil, fmt.Errorf("mail: MAIL_FROM %q is not one email address such as \"Space Sync <no-reply@example.com>\"", s)
	}
	return a, nil
}

// limitedBody caps what is read of a response body.
type limitedBody struct{ rt http.RoundTripper }

func (l limitedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxResponseBody), resp.Body}
	return resp, nil
}

// request builds SendGrid's mail send request for a composed email.
func (s *SendGrid) request(c composed) rest.Request {
	m := sgmail.NewV3Mail()
	m.SetFrom(s.from)
	m.Subject = c.subject
	p := sgmail.NewPersonalization()
	p.AddTos(sgmail.NewEmail("", c.to))
	m.AddPersonalizations(p)
	m.AddContent(sgmail.NewContent("text/plain", c.text), sgmail.NewContent("text/html", c.html))
	m.AddAttachment(sgmail.NewAttachment().
		SetContent(c.attachmentContent()).
		SetType(AttachmentType).
		SetFilename(c.fileName).
		SetDisposition("attachment"))
	// No tracking: links are not rewritten, no pixel, no unsubscribe
	// footer (DESIGN section 8).
	m.SetTrackingSettings(&sgmail.TrackingSettings{
		ClickTracking:        sgmail.NewClickTrackingSetting().SetEnable(false).SetEnableText(false),
		OpenTracking:         sgmail.NewOpenTrackingSetting().SetEnable(false),
		SubscriptionTracking: sgmail.NewSubscriptionTrackingSetting().SetEnable(false),
	})
	req := sendgrid.GetRequest(s.key, sendPath, s.host)
	req.Method = rest.Post // GetRequest leaves the method empty
	req.Body = sgmail.GetRequestBody(m)
	return req
}

// Send sends e through SendGrid with a deadline. Only a 2xx answer is
// "sent"; 429, 408, 5xx, timeouts and connection errors are a
// *TemporaryError (with SendGrid's Retry-After when it gave one); any other
// answer is mail_rejected with SendGrid's reason.
func (s *SendGrid) Send(ctx context.Context, e TokenEmail) (Result, error) {
	c, err := e.compose()
	if err != nil {
		return Result{}, err
	}
	req := s.request(c)
	if len(req.Body) == 0 {
		return Result{}, errors.New("mail: could not encode the SendGrid request")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client.SendWithContext(ctx, req)
	if err != nil {
		return Result{}, s.transportError(err)
	}
	return s.answer(resp, time.Now())
}

// transportError describes a call that got no answer.
func (s *SendGrid) transportError(err error) error {
	var ne net.Error
	var op *net.OpError
	reason := "The connection to SendGrid failed"
	// Only a failed dial proves nothing was sent; after any other failure
	// SendGrid may have taken the email without the answer reaching us.
	unconfirmed := true
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		reason = fmt.Sprintf("SendGrid did not answer within %s", s.timeout)
	case errors.Is(err, context.Canceled):
		reason = "The send was interrupted"
	case errors.As(err, &op) && op.Op == "dial":
		reason = "SendGrid could not be reached"
		unconfirmed = false
	}
	return &TemporaryError{Reason: reason, Unconfirmed: unconfirmed, Cause: scrubbedError{err, s.key}}
}

// answer interprets SendGrid's response.
func (s *SendGrid) answer(resp *rest.Response, now time.Time) (Result, error) {
	code := resp.StatusCode
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return Result{Status: StatusSent, MessageID: header(resp, "X-Message-Id")}, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return Result{}, &TemporaryError{
			Reason:     "SendGrid answered " + status,
			RetryAfter: retryAfter(resp, now),
			Cause:      fmt.Errorf("sendgrid: %s: %s", status, s.reasons(resp.Body)),
		}
	}
	var msg string
	details := s.reasons(resp.Body)
	switch code {
	case http.StatusUnauthorized:
		msg = "SendGrid refused the app's API key (" + status + "). Ask the app's operator to check SENDGRID_API_KEY."
	case http.StatusForbidden:
		msg = "SendGrid refused to send this email (" + status + ")"
		if details != "" {
			msg += ": " + details
		}
		msg += ". Ask the app's operator to check SENDGRID_API_KEY and that MAIL_FROM is a verified sender."
	case http.StatusRequestEntityTooLarge:
		msg = "SendGrid refused the email as too large (" + status + ")."
	default:
		if code >= 400 {
			msg = "SendGrid refused the email (" + status + ")"
			if details != "" {
				msg += ": " + details
			}
			msg += "."
		} else {
			msg = "SendGrid answered " + status + " instead of accepting the email. Ask the app's operator to check SENDGRID_API_URL."
		}
	}
	return Result{}, &apperr.Error{
		Code:    apperr.MailRejected,
		Message: msg + " The token was not sent.",
		Cause:   fmt.Errorf("sendgrid: %s", status),
	}
}

// reasons extracts SendGrid's error messages ({"errors":[{"message",
// "field"}]}) in plain words, bounded, with control characters and the API
// key removed. A body that is not SendGrid's error shape gives "".
func (s *SendGrid) reasons(body string) string {
	var parsed struct {
		Errors []struct {
			Message string  `json:"message"`
			Field   *string `json:"field"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(body), &parsed) != nil {
		return ""
	}
	var parts []string
	for _, e := range parsed.Errors {
		if len(parts) == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(parsed.Errors)-3))
			break
		}
		m := strings.TrimRight(strings.TrimSpace(clip(displayText(e.Message), 300)), ".")
		if m == "" {
			continue
		}
		if e.Field != nil && *e.Field != "" {
			m += " (" + clip(displayText(*e.Field), 100) + ")"
		}
		parts = append(parts, m)
	}
	return scrub(strings.Join(parts, "; "), s.key)
}

// header returns the first value of a response header.
func header(resp *rest.Response, name string) string {
	if v := http.Header(resp.Headers).Get(name); v != "" {
		return clip(displayText(v), 200)
	}
	return ""
}

// retryAfter reads how long SendGrid asked us to wait: Retry-After
// (seconds or an HTTP date), else, on 429, X-RateLimit-Reset (a Unix time).
func retryAfter(resp *rest.Response, now time.Time) time.Duration {
	h := http.Header(resp.Headers)
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return time.Duration(min(secs, 24*3600)) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
			if unix, err := strconv.ParseInt(v, 10, 64); err == nil {
				return max(time.Unix(unix, 0).Sub(now), 0)
			}
		}
	}
	return 0
}

// clip bounds s to n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// scrub removes the API key from a text that is about to be shown or
// logged. SendGrid does not echo keys; this makes sure of it.
func scrub(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[API key]")
}

// scrubbedError is an error whose text has the API key removed.
type scrubbedError struct {
	err error
	key string
}

func (e scrubbedError) Error() string { return scrub(e.err.Error(), e.key) }
func (e scrubbedError) Unwrap() error { return e.err }
