// Package sendgridsim simulates SendGrid's v3 Mail Send API for the local
// stack and the end-to-end tests.
//
// POST /v3/mail/send checks the API key and the request the way SendGrid does
// (required fields, addresses, content order, attachment encoding, headers)
// and answers 202 with an X-Message-Id, or 400 with SendGrid's error shape
// {"errors":[{"message","field","help"}]}. Accepted mail is kept in memory and
// shown on simple pages (GET /, GET /messages/{id}) with its attachments. The
// simulator can be told to fail the next sends (401, 403, 413, 429, 500, 502,
// 503) and to answer slowly, from Go or over its small JSON API.
package sendgridsim

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"spacesync.io/shared/apperr"
)

// Defaults for Config fields left zero.
const (
	// DefaultMaxBody is SendGrid's limit on the size of a mail send request
	// (30 MB, attachments included).
	DefaultMaxBody = 30 << 20
	// DefaultMaxAttachments is SendGrid's limit on the decoded size of all
	// attachments of one mail.
	DefaultMaxAttachments = 30 << 20
	// DefaultMaxMessages is how many accepted mails are kept; the oldest are
	// dropped first.
	DefaultMaxMessages = 200

	// maxStoredBytes bounds the memory held by kept mails (raw requests plus
	// decoded attachments); the oldest mails are dropped to stay under it.
	maxStoredBytes = 512 << 20
)

// Config configures a Sim.
type Config struct {
	// APIKey is the only key accepted, as "Authorization: Bearer <APIKey>".
	// An empty APIKey accepts no request at all.
	APIKey string
	// Logger receives one line per send; nil discards. Keys and mail bodies
	// are never logged.
	Logger *slog.Logger
	// Now is the clock (received times, send_at checks); nil means time.Now.
	Now func() time.Time
	// MaxBody caps the request body, before and after gzip decoding, in
	// bytes; zero means DefaultMaxBody. Larger requests get 413.
	MaxBody int64
	// MaxAttachments caps the decoded size of all attachments of one mail;
	// zero means DefaultMaxAttachments. Larger mails get 400.
	MaxAttachments int64
	// MaxMessages caps how many accepted mails are kept; zero means
	// DefaultMaxMessages.
	MaxMessages int
}

// Sim is a SendGrid v3 Mail Send simulator. Its methods are safe for
// concurrent use.
type Sim struct {
	key            string
	log            *slog.Logger
	now            func() time.Time
	maxBody        int64
	maxAttachments int64
	maxMessages    int
	pages          *pages
	mux            *http.ServeMux

	mu          sync.Mutex
	msgs        []Message
	storedBytes int64
	changed     chan struct{} // closed and replaced whenever msgs changes
	failure     failurePlan
	delay       time.Duration
	lateAnswer  time.Duration
}

// failurePlan is what FailNext asked for: the next remaining sends answer
// status.
type failurePlan struct {
	remaining  int
	status     int
	retryAfter time.Duration
}

// New returns a simulator configured by cfg.
func New(cfg Config) *Sim {
	s := &Sim{
		key:            cfg.APIKey,
		log:            cfg.Logger,
		now:            cfg.Now,
		maxBody:        cfg.MaxBody,
		maxAttachments: cfg.MaxAttachments,
		maxMessages:    cfg.MaxMessages,
		changed:        make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.key == "" {
		s.log.Warn("sendgridsim has no API key: every send will be answered 401")
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.maxAttachments <= 0 {
		s.maxAttachments = DefaultMaxAttachments
	}
	if s.maxMessages <= 0 {
		s.maxMessages = DefaultMaxMessages
	}
	s.pages = newPages()
	s.mux = s.routes()
	return s
}

// Handler returns the simulator's HTTP handler: the Mail Send endpoint, the
// pages and the JSON API.
func (s *Sim) Handler() http.Handler { return s.mux }

// routes is the simulator's one route table.
func (s *Sim) routes() *http.ServeMux {
	mux := http.NewServeMux()

	// SendGrid's API, as the app's mailer calls it.
	mux.HandleFunc("/v3/mail/send", s.handleSend)
	mux.HandleFunc("/v3/", s.handleUnknownAPI)

	// Pages for people and the browser end-to-end test.
	mux.HandleFunc("GET /{$}", s.handleList)
	mux.HandleFunc("GET /messages/{id}", s.handleMessage)
	mux.HandleFunc("GET /messages/{id}/attachments/{n}", s.handleAttachment)
	mux.HandleFunc("GET /messages/{id}/raw", s.handleRaw)
	mux.HandleFunc("GET /static/{file}", s.handleStatic)

	// JSON API for tests that run the simulator in another process.
	mux.HandleFunc("GET /api/messages", s.handleAPIList)
	mux.HandleFunc("GET /api/messages/{id}", s.handleAPIMessage)
	mux.HandleFunc("DELETE /api/messages", s.handleAPIClear)
	mux.HandleFunc("POST /api/failures", s.handleAPIFailures)
	mux.HandleFunc("PUT /api/delay", s.handleAPIDelay)

	mux.HandleFunc("/", s.handleNotFound)
	return mux
}

// Messages returns the accepted mails, oldest first. The returned values
// share their slices and maps with the simulator; treat them as read-only.
func (s *Sim) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Message returns the accepted mail with the given id.
func (s *Sim) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.ID == id {
			return m, true
		}
	}
	return Message{}, false
}

// WaitForMessage returns the first kept mail for which match reports true
// (any mail when match is nil), waiting for new mail until ctx is done. It
// returns ctx's error, wrapped, when nothing matched in time.
func (s *Sim) WaitForMessage(ctx context.Context, match func(Message) bool) (Message, error) {
	for {
		s.mu.Lock()
		snapshot := append([]Message(nil), s.msgs...)
		changed := s.changed
		s.mu.Unlock()

		// match is the caller's code: run it without holding the lock.
		for _, m := range snapshot {
			if match == nil || match(m) {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return Message{}, fmt.Errorf("sendgridsim: no matching mail: %w", context.Cause(ctx))
		case <-changed:
		}
	}
}

// inducible lists the statuses FailNext can be told to answer.
var inducible = map[int]bool{
	http.StatusUnauthorized:          true,
	http.StatusForbidden:             true,
	http.StatusRequestEntityTooLarge: true,
	http.StatusTooManyRequests:       true,
	http.StatusInternalServerError:   true,
	http.StatusBadGateway:            true,
	http.StatusServiceUnavailable:    true,
}

// FailNext makes the next n sends answer status (one of 401, 403, 413, 429,
// 500, 502, 503) as SendGrid would, whatever the request; later sends are
// handled normally again. retryAfter, when positive, is sent as Retry-After
// (and drives X-RateLimit-Reset on 429). n == 0 cancels a pending plan. A
// later call replaces an earlier one. It returns a validation_failed error
// for a negative n or retryAfter or an unsupported status.
func (s *Sim) FailNext(n int, status int, retryAfter time.Duration) error {
	if n < 0 {
		return apperr.Newf(apperr.ValidationFailed, "sendgridsim: fail count %d is negative", n)
	}
	if retryAfter < 0 {
		return apperr.Newf(apperr.ValidationFailed, "sendgridsim: retry-after %s is negative", retryAfter)
	}
	if n > 0 && !inducible[status] {
		return apperr.Newf(apperr.ValidationFailed,
			"sendgridsim: status %d cannot be induced; use 401, 403, 413, 429, 500, 502 or 503", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = failurePlan{remaining: n, status: status, retryAfter: retryAfter}
	return nil
}

// takeFailure consumes one planned failure, if any.
func (s *Sim) takeFailure() (failurePlan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure.remaining <= 0 {
		return failurePlan{}, false
	}
	s.failure.remaining--
	return s.failure, true
}

// SetDelay makes every send wait d before it is answered (zero for no
// delay), for client-timeout tests. A client that gives up earlier gets no
// answer and its mail is not kept. See SetLateAnswer for the other case.
func (s *Sim) SetDelay(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetLateAnswer makes every accepted send be kept at once but answered
// only d later (zero to answer at once): a client with a shorter timeout
// never learns that SendGrid took the mail, as when the answer is lost on
// the way back. Planned failures and refusals are answered as usual.
func (s *Sim) SetLateAnswer(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lateAnswer = d
}

// Reset forgets all kept mail, any planned failures and the delays.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked()
	s.failure = failurePlan{}
	s.delay = 0
	s.lateAnswer = 0
}

// clearMessages forgets all kept mail.
func (s *Sim) clearMessages() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked()
}

func (s *Sim) clearLocked() {
	s.msgs = nil
	s.storedBytes = 0
	s.notifyLocked()
}

// store keeps m, dropping the oldest mail past the count and memory caps.
func (s *Sim) store(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	s.storedBytes += m.size()
	for len(s.msgs) > 1 && (len(s.msgs) > s.maxMessages || s.storedBytes > maxStoredBytes) {
		s.storedBytes -= s.msgs[0].size()
		s.msgs[0] = Message{}
		s.msgs = s.msgs[1:]
	}
	s.notifyLocked()
}

// notifyLocked wakes every WaitForMessage; s.mu must be held.
func (s *Sim) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// status describes the pending failure plan and delay for the list page.
func (s *Sim) status() (failure failurePlan, delay, lateAnswer time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure, s.delay, s.lateAnswer
}
