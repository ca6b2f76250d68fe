package sendgridsim

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"spacesync.io/shared/apperr"
)

// maxControlBody caps the small JSON bodies of the control endpoints.
const maxControlBody = 4 << 10

// messageList is the body of GET /api/messages.
type messageList struct {
	Messages []Message `json:"messages"`
}

// failuresRequest is the body of POST /api/failures; see Sim.FailNext.
type failuresRequest struct {
	Count             int     `json:"count"`
	Status            int     `json:"status"`
	RetryAfterSeconds float64 `json:"retryAfterSeconds"`
}

// delayRequest is the body of PUT /api/delay; see Sim.SetDelay, and
// Sim.SetLateAnswer when afterAccept is true.
type delayRequest struct {
	Milliseconds int64 `json:"milliseconds"`
	AfterAccept  bool  `json:"afterAccept"`
}

// handleAPIList is GET /api/messages: every kept mail, oldest first,
// without the raw request bodies (GET /api/messages/{id} has them).
func (s *Sim) handleAPIList(w http.ResponseWriter, r *http.Request) {
	msgs := s.Messages()
	for i := range msgs {
		msgs[i].Raw = nil
	}
	writeJSON(w, http.StatusOK, messageList{Messages: msgs})
}

// handleAPIMessage is GET /api/messages/{id}.
func (s *Sim) handleAPIMessage(w http.ResponseWriter, r *http.Request) {
	m, ok := s.Message(r.PathValue("id"))
	if !ok {
		writeAppError(w, apperr.New(apperr.NotFound, "There is no mail with this ID."))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// handleAPIClear is DELETE /api/messages: forget all kept mail.
func (s *Sim) handleAPIClear(w http.ResponseWriter, r *http.Request) {
	s.clearMessages()
	w.WriteHeader(http.StatusNoContent)
}

// handleAPIFailures is POST /api/failures {"count","status",
// "retryAfterSeconds"}: Sim.FailNext over HTTP.
func (s *Sim) handleAPIFailures(w http.ResponseWriter, r *http.Request) {
	var req failuresRequest
	if err := decodeControl(w, r, &req); err != nil {
		writeAppError(w, err)
		return
	}
	retryAfter := time.Duration(req.RetryAfterSeconds * float64(time.Second))
	if err := s.FailNext(req.Count, req.Status, retryAfter); err != nil {
		writeAppError(w, apperr.As(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleAPIDelay is PUT /api/delay {"milliseconds", "afterAccept"}:
// Sim.SetDelay (or Sim.SetLateAnswer) over HTTP.
func (s *Sim) handleAPIDelay(w http.ResponseWriter, r *http.Request) {
	var req delayRequest
	if err := decodeControl(w, r, &req); err != nil {
		writeAppError(w, err)
		return
	}
	if req.Milliseconds < 0 || req.Milliseconds > int64(time.Hour/time.Millisecond) {
		writeAppError(w, apperr.Validation(map[string]string{"milliseconds": "Give 0 to 3600000."}))
		return
	}
	d := time.Duration(req.Milliseconds) * time.Millisecond
	if req.AfterAccept {
		s.SetLateAnswer(d)
	} else {
		s.SetDelay(d)
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeControl reads one small JSON object with no unknown fields. It
// insists on Content-Type application/json so that a web page cannot drive
// the simulator with a simple cross-origin form post.
func decodeControl(w http.ResponseWriter, r *http.Request, into any) *apperr.Error {
	if !isJSONMediaType(r.Header.Get("Content-Type")) {
		return apperr.New(apperr.ValidationFailed, "Send the body as Content-Type: application/json.")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return apperr.Wrap(err, apperr.ValidationFailed, "The body must be one JSON object with the documented fields.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return apperr.New(apperr.ValidationFailed, "The body must be one JSON object with the documented fields.")
	}
	return nil
}

// writeAppError renders the project's error shape {"error":{"code",
// "message"}} for the simulator's own API.
func writeAppError(w http.ResponseWriter, e *apperr.Error) {
	writeJSON(w, e.Status(), apperr.Body{Error: apperr.BodyError{Code: e.Code, Message: e.Message, Fields: e.Fields}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
