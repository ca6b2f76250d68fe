package sendgridsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// goldenNow is the clock of the golden tests (send_at cases depend on it):
// 2026-12-03T12:00:00Z, Unix 1796299200.
var goldenNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

const testKey = "SG.test-key.0123456789abcdefghijklmnopqrstuvwxyz"

// goldenCase is one file of testdata/golden: a request body (JSON, or raw
// text for bodies that are not JSON) and what SendGrid answers to it.
type goldenCase struct {
	Description string          `json:"description"`
	Request     json.RawMessage `json:"request"`
	RawBody     *string         `json:"rawBody"`
	Status      int             `json:"status"`
	Errors      []goldenError   `json:"errors"`
}

// goldenError is an expected error. Help is checked only when the file
// gives it (a string, or null for none).
type goldenError struct {
	Field   *string         `json:"field"`
	Message string          `json:"message"`
	Help    json.RawMessage `json:"help"`
}

func loadGolden(tb testing.TB) map[string]goldenCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	cases := map[string]goldenCase{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		var c goldenCase
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		cases[strings.TrimSuffix(filepath.Base(p), ".json")] = c
	}
	return cases
}

// TestSend_Golden posts every golden request to the simulator and checks
// the status and the errors: field, message and, where given, help.
func TestSend_Golden(t *testing.T) {
	cases := loadGolden(t)
	if len(cases) < 80 {
		t.Fatalf("found %d golden files, want at least 80", len(cases))
	}
	var ok, refused int
	for name, c := range cases {
		switch {
		case strings.HasPrefix(name, "ok_") && c.Status < 300 && c.Errors == nil:
			ok++
		case strings.HasPrefix(name, "err_") && c.Status >= 400 && len(c.Errors) > 0:
			refused++
		default:
			t.Fatalf("%s: name, status and errors disagree", name)
		}
	}
	if ok < 10 || refused < 60 {
		t.Fatalf("golden files: %d accepted, %d refused; want both kinds well covered", ok, refused)
	}

	sim := New(Config{APIKey: testKey, Now: func() time.Time { return goldenNow }})
	h := sim.Handler()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			body := []byte(c.Request)
			if c.RawBody != nil {
				body = []byte(*c.RawBody)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, newSendRequest(body))

			if rec.Code != c.Status {
				t.Fatalf("%s\nstatus = %d, want %d; body %s", c.Description, rec.Code, c.Status, rec.Body)
			}
			if c.Status >= 300 {
				checkErrors(t, rec, c.Errors)
				return
			}
			if rec.Body.Len() != 0 {
				t.Errorf("body = %q, want empty", rec.Body)
			}
			id := rec.Header().Get("X-Message-Id")
			if c.Status == http.StatusAccepted && len(id) != 22 {
				t.Errorf("X-Message-Id = %q, want 22 characters", id)
			}
			if _, kept := sim.Message(id); kept != (c.Status == http.StatusAccepted) {
				t.Errorf("mail kept = %v, want %v (202 keeps it, sandbox 200 does not)", kept, !kept)
			}
		})
	}
}

func checkErrors(t *testing.T, rec *httptest.ResponseRecorder, want []goldenError) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	// Decode strictly: the body is exactly {"errors":[{message,field,help}]}.
	var got struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
			Help    *string `json:"help"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("error body %s: %v", rec.Body, err)
	}
	for _, e := range bytes.Split(rec.Body.Bytes(), []byte(`},{`)) {
		for _, key := range []string{`"field":`, `"message":`, `"help":`} {
			if !bytes.Contains(e, []byte(key)) {
				t.Errorf("error entry %s lacks %s; SendGrid always sends message, field and help", e, key)
			}
		}
	}
	type entry struct{ Field, Message, Help string }
	show := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	var gotEntries, wantEntries []entry
	for i, w := range want {
		we := entry{Field: show(w.Field), Message: w.Message, Help: "<unchecked>"}
		ge := entry{Help: "<unchecked>"}
		if i < len(got.Errors) {
			ge.Field, ge.Message = show(got.Errors[i].Field), got.Errors[i].Message
			if w.Help != nil {
				var h *string
				if err := json.Unmarshal(w.Help, &h); err != nil {
					t.Fatalf("golden help %s: %v", w.Help, err)
				}
				we.Help, ge.Help = show(h), show(got.Errors[i].Help)
			}
		}
		wantEntries, gotEntries = append(wantEntries, we), append(gotEntries, ge)
	}
	for i := len(want); i < len(got.Errors); i++ {
		gotEntries = append(gotEntries, entry{show(got.Errors[i].Field), got.Errors[i].Message, show(got.Errors[i].Help)})
	}
	if diff := cmp.Diff(wantEntries, gotEntries); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

// newSendRequest is a well-authorized mail send request carrying body.
func newSendRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v3/mail/send", bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+testKey)
	r.Header.Set("Content-Type", "application/json")
	return r
}
