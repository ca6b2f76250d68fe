package sendgridsim

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Request-level messages (field and help are null in these).
const (
	msgAuthRequired  = "authorization required"
	msgInvalidGrant  = "The provided authorization grant is invalid, expired, or revoked"
	msgForbidden     = "access forbidden"
	msgBadRequest    = "Bad Request"
	msgContentType   = "Content-Type should be application/json."
	msgEncoding      = "Content-Encoding should be gzip or absent." // sim
	msgInvalidUTF8   = "Invalid UTF8 in request"
	msgTooMany       = "too many requests"
	msgInternal      = "internal error"
	msgUnavailable   = "service unavailable"
	msgNotAllowed    = "method not allowed"
	msgNotFoundAPI   = "resource not found"
	rateLimitPerHour = "600"
)

// handleSend is POST /v3/mail/send. The checks run in the order SendGrid's
// front end applies them: the size limit (nginx, before anything else), the
// key, the media type, the encoding, the JSON, and last the mail itself.
// A configured delay and a planned failure come right after the body is
// read, so they apply to every send, good or bad.
func (s *Sim) handleSend(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErrors(w, http.StatusMethodNotAllowed, requestError(msgNotAllowed))
		return
	}
	// Like SendGrid's nginx, take the whole body (within the limit) before
	// anything else. Reading it also lets the server notice a client that
	// gives up during the delay below.
	if r.ContentLength > s.maxBody {
		s.refuse(w, http.StatusRequestEntityTooLarge, "body over the limit")
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.refuse(w, http.StatusRequestEntityTooLarge, "body over the limit")
			return
		}
		s.log.Info("mail send refused", "status", http.StatusBadRequest, "reason", "unreadable body")
		writeErrors(w, http.StatusBadRequest, requestError(msgBadRequest))
		return
	}
	if !s.wait(r) {
		s.log.Info("mail send abandoned by the client during the delay")
		return
	}
	if plan, ok := s.takeFailure(); ok {
		s.log.Info("mail send failed on request", "status", plan.status)
		s.writeInduced(w, plan)
		return
	}
	if st, msg := s.authorize(r); st != 0 {
		s.log.Info("mail send refused", "status", st, "reason", "authorization")
		writeErrors(w, st, requestError(msg))
		return
	}
	if !isJSONMediaType(r.Header.Get("Content-Type")) {
		s.log.Info("mail send refused", "status", http.StatusUnsupportedMediaType, "reason", "content type")
		writeErrors(w, http.StatusUnsupportedMediaType, requestError(msgContentType))
		return
	}
	body, status := s.decodeBody(raw, r.Header.Get("Content-Encoding"))
	if status != 0 {
		switch status {
		case http.StatusRequestEntityTooLarge:
			s.refuse(w, status, "decoded body over the limit")
		case http.StatusUnsupportedMediaType:
			s.log.Info("mail send refused", "status", status, "reason", "content encoding")
			writeErrors(w, status, requestError(msgEncoding))
		default:
			s.log.Info("mail send refused", "status", status, "reason", "undecodable body")
			writeErrors(w, status, requestError(msgBadRequest))
		}
		return
	}
	if !utf8.Valid(body) {
		s.log.Info("mail send refused", "status", http.StatusUnsupportedMediaType, "reason", "invalid UTF-8")
		writeErrors(w, http.StatusUnsupportedMediaType, requestError(msgInvalidUTF8))
		return
	}
	tree, dups, err := decodeJSON(body)
	req, isObject := tree.(map[string]any)
	if err != nil || !isObject {
		s.log.Info("mail send refused", "status", http.StatusBadRequest, "reason", "not a JSON object")
		writeErrors(w, http.StatusBadRequest, requestError(msgBadRequest))
		return
	}

	now := s.now()
	res := validate(req, dups, now, s.maxAttachments)
	if len(res.errs) > 0 {
		fields := make([]string, len(res.errs))
		for i, e := range res.errs {
			fields[i] = *e.Field
		}
		s.log.Info("mail send refused", "status", http.StatusBadRequest, "fields", fields)
		writeErrors(w, http.StatusBadRequest, res.errs...)
		return
	}
	if res.sandbox {
		// Sandbox mode: valid, not queued, nothing delivered.
		s.log.Info("mail send validated in sandbox mode")
		w.WriteHeader(http.StatusOK)
		return
	}

	id := newMessageID()
	m := buildMessage(id, now, req, body, res.decoded)
	s.store(m)
	s.log.Info("mail accepted", "id", id, "personalizations", len(m.Personalizations),
		"attachments", len(m.Attachments), "bytes", len(body))
	s.mu.Lock()
	late := s.lateAnswer
	s.mu.Unlock()
	if !waitFor(r, late) {
		s.log.Info("mail accepted, but the client gave up before the late answer", "id", id)
		return
	}
	w.Header().Set("X-Message-Id", id)
	w.WriteHeader(http.StatusAccepted)
}

// wait applies the configured delay; it reports false if the client gave
// up first.
func (s *Sim) wait(r *http.Request) bool {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	return waitFor(r, d)
}

// waitFor waits d, or until the client gives up (then it reports false).
func waitFor(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// authorize checks "Authorization: Bearer <key>" against the configured key
// in constant time. It returns 0 when the request may proceed.
func (s *Sim) authorize(r *http.Request) (status int, message string) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return http.StatusUnauthorized, msgAuthRequired
	}
	want := []byte("Bearer " + s.key)
	if s.key == "" || len(values) != 1 || subtle.ConstantTimeCompare([]byte(values[0]), want) != 1 {
		return http.StatusUnauthorized, msgInvalidGrant
	}
	return 0, ""
}

// isJSONMediaType accepts application/json, with at most a UTF-8 charset.
func isJSONMediaType(header string) bool {
	mt, params, err := mime.ParseMediaType(header)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// decodeBody undoes the Content-Encoding (gzip or none) within the size
// limit. A non-zero status says why it could not.
func (s *Sim) decodeBody(body []byte, encoding string) ([]byte, int) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, 0
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, http.StatusBadRequest
		}
		plain, err := io.ReadAll(io.LimitReader(zr, s.maxBody+1))
		if err != nil {
			return nil, http.StatusBadRequest
		}
		if int64(len(plain)) > s.maxBody {
			return nil, http.StatusRequestEntityTooLarge
		}
		return plain, 0
	default:
		return nil, http.StatusUnsupportedMediaType
	}
}

// refuse answers 413 the way SendGrid's nginx does: an HTML page, not JSON.
func (s *Sim) refuse(w http.ResponseWriter, status int, reason string) {
	s.log.Info("mail send refused", "status", status, "reason", reason)
	writeNginxPage(w, status)
}

// writeInduced answers a failure planned with FailNext.
func (s *Sim) writeInduced(w http.ResponseWriter, plan failurePlan) {
	if plan.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(plan.retryAfter.Seconds()))))
	}
	switch plan.status {
	case http.StatusUnauthorized:
		writeErrors(w, plan.status, requestError(msgInvalidGrant))
	case http.StatusForbidden:
		writeErrors(w, plan.status, requestError(msgForbidden))
	case http.StatusTooManyRequests:
		// sendgrid-go's MakeRequestRetry sleeps until X-RateLimit-Reset.
		reset := max(int64(math.Ceil(plan.retryAfter.Seconds())), 1)
		w.Header().Set("X-RateLimit-Limit", rateLimitPerHour)
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(s.now().Unix()+reset, 10))
		writeErrors(w, plan.status, requestError(msgTooMany))
	case http.StatusInternalServerError:
		writeErrors(w, plan.status, requestError(msgInternal))
	case http.StatusServiceUnavailable:
		writeErrors(w, plan.status, requestError(msgUnavailable))
	default: // 413 and 502 come from SendGrid's nginx
		writeNginxPage(w, plan.status)
	}
}

// handleUnknownAPI answers other /v3/ paths as SendGrid does.
func (s *Sim) handleUnknownAPI(w http.ResponseWriter, r *http.Request) {
	writeErrors(w, http.StatusNotFound, requestError(msgNotFoundAPI))
}

// requestError is an error about the whole request: field and help null.
func requestError(msg string) fieldError {
	return fieldError{Message: msg}
}

// writeErrors writes SendGrid's {"errors":[...]} body.
func writeErrors(w http.ResponseWriter, status int, errs ...fieldError) {
	body, err := json.Marshal(errorBody{Errors: errs})
	if err != nil { // cannot happen: only strings and nil pointers
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeNginxPage writes the HTML error page SendGrid's nginx front end
// answers with.
func writeNginxPage(w http.ResponseWriter, status int) {
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	if status == http.StatusRequestEntityTooLarge {
		text = "413 Request Entity Too Large" // nginx still uses the RFC 2616 name
	}
	page := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text +
		"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, page)
}

// newMessageID returns a random ID in the form of SendGrid's X-Message-Id:
// 16 random bytes, base64url without padding (22 characters).
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
