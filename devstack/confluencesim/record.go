package confluencesim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRecorded bounds the request log; the oldest entries are dropped.
const maxRecorded = 20000

// RecordedRequest is one REST call the app made to the simulator.
type RecordedRequest struct {
	Method string
	// Path and Query are raw, as sent; a jwt query value is redacted.
	Path  string
	Query string
	// Verified is true when the JWT passed every check.
	Verified bool
	Status   int
	// Reason says why the call was refused or failed, if it was.
	Reason string
	Time   time.Time
}

// Requests returns the REST calls the app made, oldest first.
func (s *Sim) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.requests...)
}

// ResetRequests forgets the recorded calls.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Sim) record(r RecordedRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= maxRecorded {
		s.requests = append(s.requests[:0], s.requests[len(s.requests)-maxRecorded+1:]...)
	}
	s.requests = append(s.requests, r)
}

// Fault is an answer the simulator gives instead of the real one, for
// testing how the app copes with rate limits and outages.
type Fault struct {
	// Status is the HTTP status, e.g. 429 or 503.
	Status int
	// RetryAfter, when not empty, is sent verbatim as the Retry-After header
	// (seconds or an HTTP date; tests may send garbage on purpose).
	RetryAfter string
	// Body, when not empty, replaces the default JSON body.
	Body string
}

func (f Fault) write(w http.ResponseWriter) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(f.Body))
		return
	}
	msg := http.StatusText(f.Status)
	if f.Status == http.StatusTooManyRequests {
		msg = "Rate limit exceeded."
	}
	writeJSON(w, f.Status, map[string]any{"statusCode": f.Status, "message": msg})
}

type faultQueue struct {
	prefix string
	faults []Fault
}

// InjectFaults makes the next calls whose raw path starts with pathPrefix
// (e.g. "/wiki/api/v2/spaces") answer the given faults, one per call, in
// order; later calls are served normally again. A pathPrefix containing
// "?" is matched against the raw path and query instead, so
// "/wiki/api/v2/spaces?cursor=" hits the second and later pages of a
// listing and not the first. Faults apply only to calls whose JWT
// verified; a refused call does not use one up. Queues for different
// prefixes are consulted in the order they were added.
func (s *Sim) InjectFaults(pathPrefix string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.faults {
		if q.prefix == pathPrefix {
			q.faults = append(q.faults, faults...)
			return
		}
	}
	s.faults = append(s.faults, &faultQueue{prefix: pathPrefix, faults: append([]Fault(nil), faults...)})
}

// ClearFaults removes every pending fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// RateLimited is a convenience: n faults of 429 with Retry-After seconds.
func RateLimited(n, retryAfterSeconds int) []Fault {
	out := make([]Fault, n)
	for i := range out {
		out[i] = Fault{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(retryAfterSeconds)}
	}
	return out
}

func (s *Sim) nextFault(path, rawQuery string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.faults {
		target := path
		if strings.Contains(q.prefix, "?") {
			target = path + "?" + rawQuery
		}
		if len(q.faults) > 0 && strings.HasPrefix(target, q.prefix) {
			f := q.faults[0]
			q.faults = q.faults[1:]
			return f, true
		}
	}
	return Fault{}, false
}
