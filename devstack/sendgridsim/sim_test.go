package sendgridsim

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/shared/apperr"
)

// validBody is a minimal mail SendGrid accepts, with subject as given.
func validBody(subject string) []byte {
	b, err := json.Marshal(map[string]any{
		"personalizations": []any{map[string]any{"to": []any{map[string]any{"email": "bob@example.com"}}}},
		"from":             map[string]any{"email": "noreply@spacesync.example"},
		"subject":          subject,
		"content":          []any{map[string]any{"type": "text/plain", "value": "Hello"}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// mailWith returns a valid body with extra top-level fields set.
func mailWith(tb testing.TB, extra map[string]any) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(validBody("Token"), &m); err != nil {
		tb.Fatal(err)
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// errorMessages returns the messages of a SendGrid error body.
func errorMessages(tb testing.TB, body []byte) []string {
	tb.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		tb.Fatalf("error body %s: %v", body, err)
	}
	var out []string
	for _, e := range eb.Errors {
		out = append(out, e.Message)
	}
	return out
}

func TestSend_Authorization(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     string   // configured key
		headers []string // Authorization values sent
		status  int
		message string
	}{
		{"OK", testKey, []string{"Bearer " + testKey}, http.StatusAccepted, ""},
		{"ErrMissing", testKey, nil, http.StatusUnauthorized, msgAuthRequired},
		{"ErrWrongKey", testKey, []string{"Bearer SG.other"}, http.StatusUnauthorized, msgInvalidGrant},
		{"ErrKeyPrefix", testKey, []string{"Bearer " + testKey[:len(testKey)-1]}, http.StatusUnauthorized, msgInvalidGrant},
		{"ErrTrailingSpace", testKey, []string{"Bearer " + testKey + " "}, http.StatusUnauthorized, msgInvalidGrant},
		{"ErrLowercaseScheme", testKey, []string{"bearer " + testKey}, http.StatusUnauthorized, msgInvalidGrant},
		{"ErrOtherScheme", testKey, []string{"Token " + testKey}, http.StatusUnauthorized, msgInvalidGrant},
		{"ErrTwoHeaders", testKey, []string{"Bearer " + testKey, "Bearer " + testKey}, http.StatusUnauthorized, msgInvalidGrant},
		{"ErrNoKeyConfigured", "", []string{"Bearer "}, http.StatusUnauthorized, msgInvalidGrant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := New(Config{APIKey: tc.key})
			r := newSendRequest(validBody("Token"))
			r.Header.Del("Authorization")
			for _, v := range tc.headers {
				r.Header.Add("Authorization", v)
			}
			rec := serve(sim.Handler(), r)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.message == "" {
				return
			}
			want := fmt.Sprintf(`{"errors":[{"message":%q,"field":null,"help":null}]}`, tc.message)
			if rec.Body.String() != want {
				t.Errorf("body = %s, want %s", rec.Body, want)
			}
			if n := len(sim.Messages()); n != 0 {
				t.Errorf("kept %d mails, want 0", n)
			}
		})
	}
}

func TestSend_ContentType(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		status      int
	}{
		{"application/json", http.StatusAccepted},
		{"application/json; charset=UTF-8", http.StatusAccepted},
		{"", http.StatusUnsupportedMediaType},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"application/json; charset=iso-8859-1", http.StatusUnsupportedMediaType},
		{"application/json-patch+json", http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.contentType, func(t *testing.T) {
			sim := New(Config{APIKey: testKey})
			r := newSendRequest(validBody("Token"))
			r.Header.Set("Content-Type", tc.contentType)
			rec := serve(sim.Handler(), r)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusUnsupportedMediaType {
				if got := errorMessages(t, rec.Body.Bytes()); len(got) != 1 || got[0] != msgContentType {
					t.Errorf("messages = %q", got)
				}
			}
		})
	}
}

func TestSend_Encoding(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	// 64 KiB of zero bytes, base64 "AAAA…", compresses to almost nothing.
	bomb := mailWith(t, map[string]any{"attachments": []any{map[string]any{
		"content": base64.StdEncoding.EncodeToString(make([]byte, 64<<10)), "filename": "zeros.bin"}}})

	for _, tc := range []struct {
		name     string
		encoding string
		body     []byte
		status   int
		message  string
	}{
		{"OKGzip", "gzip", gz(validBody("Token")), http.StatusAccepted, ""},
		{"OKIdentity", "identity", validBody("Token"), http.StatusAccepted, ""},
		{"ErrGzipCorrupt", "gzip", []byte("not gzip at all"), http.StatusBadRequest, msgBadRequest},
		{"ErrGzipTruncated", "gzip", gz(validBody("Token"))[:20], http.StatusBadRequest, msgBadRequest},
		{"ErrGzipOverLimitWhenDecoded", "gzip", gz(bomb), http.StatusRequestEntityTooLarge, ""},
		{"ErrUnknownEncoding", "br", validBody("Token"), http.StatusUnsupportedMediaType, msgEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := New(Config{APIKey: testKey, MaxBody: 32 << 10})
			if int64(len(tc.body)) > 32<<10 {
				t.Fatalf("test body is %d bytes; it must pass the wire limit", len(tc.body))
			}
			r := newSendRequest(tc.body)
			r.Header.Set("Content-Encoding", tc.encoding)
			rec := serve(sim.Handler(), r)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.message != "" {
				if got := errorMessages(t, rec.Body.Bytes()); len(got) != 1 || got[0] != tc.message {
					t.Errorf("messages = %q, want %q", got, tc.message)
				}
			}
		})
	}
}

func TestSend_Size(t *testing.T) {
	const limit = 4 << 10
	exact := validBody("Token")
	exact = append(exact[:len(exact)-1], bytes.Repeat([]byte(" "), limit-len(exact))...)
	exact = append(exact, '}')
	if len(exact) != limit {
		t.Fatalf("exact body is %d bytes, want %d", len(exact), limit)
	}
	over := append(bytes.Clone(exact[:len(exact)-1]), ' ', '}')

	for _, tc := range []struct {
		name    string
		body    []byte
		chunked bool
		status  int
	}{
		{"OKAtLimit", exact, false, http.StatusAccepted},
		{"OKAtLimitChunked", exact, true, http.StatusAccepted},
		{"ErrOverLimit", over, false, http.StatusRequestEntityTooLarge},
		{"ErrOverLimitChunked", over, true, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := New(Config{APIKey: testKey, MaxBody: limit})
			r := newSendRequest(tc.body)
			if tc.chunked {
				r.ContentLength = -1 // as a streamed body: only reading finds the size
				r.Body = io.NopCloser(bytes.NewReader(tc.body))
			}
			rec := serve(sim.Handler(), r)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %.200s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusRequestEntityTooLarge {
				if ct := rec.Header().Get("Content-Type"); ct != "text/html" || !strings.Contains(rec.Body.String(), "413 Request Entity Too Large") {
					t.Errorf("Content-Type %q, body %q; want nginx's HTML 413 page", ct, rec.Body)
				}
			}
		})
	}
}

func TestSend_InvalidUTF8(t *testing.T) {
	sim := New(Config{APIKey: testKey})
	ok := validBody("Grüße")
	rec := serve(sim.Handler(), newSendRequest(ok))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("valid UTF-8: status = %d, want 202; body %s", rec.Code, rec.Body)
	}
	bad := bytes.Replace(ok, []byte("ü"), []byte{0xfc}, 1) // Latin-1 ü
	rec = serve(sim.Handler(), newSendRequest(bad))
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("Latin-1 body: status = %d, want 415; body %s", rec.Code, rec.Body)
	}
	if got := errorMessages(t, rec.Body.Bytes()); len(got) != 1 || got[0] != msgInvalidUTF8 {
		t.Errorf("messages = %q", got)
	}
}

func TestSend_MethodAndPaths(t *testing.T) {
	sim := New(Config{APIKey: testKey})
	h := sim.Handler()

	rec := serve(h, httptest.NewRequest(http.MethodGet, "/v3/mail/send", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET /v3/mail/send: status %d, Allow %q; want 405 and POST", rec.Code, rec.Header().Get("Allow"))
	}
	rec = serve(h, httptest.NewRequest(http.MethodPost, "/v3/mail/batch", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("POST /v3/mail/batch: status %d, type %q; want a 404 JSON error", rec.Code, rec.Header().Get("Content-Type"))
	}
	rec = serve(h, newSendRequest(validBody("Token")))
	if rec.Code != http.StatusAccepted {
		t.Errorf("POST /v3/mail/send: status %d, want 202", rec.Code)
	}
}

// TestSend_Limits checks the counts SendGrid caps, at and past each limit.
func TestSend_Limits(t *testing.T) {
	rcpts := func(prefix string, n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"email": fmt.Sprintf("%s%d@example.com", prefix, i)}
		}
		return out
	}
	personalizations := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"to": rcpts(fmt.Sprintf("p%d-", i), 1)}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string // the one expected error message; "" for 202
	}{
		{"OK1000Personalizations", map[string]any{"personalizations": personalizations(1000)}, ""},
		{"Err1001Personalizations", map[string]any{"personalizations": personalizations(1001)},
			fmt.Sprintf(msgPersonalizationsLimit, 1001)},
		{"OK1000Recipients", map[string]any{"personalizations": []any{
			map[string]any{"to": rcpts("to", 600), "cc": rcpts("cc", 300), "bcc": rcpts("bcc", 100)}}}, ""},
		{"Err1001Recipients", map[string]any{"personalizations": []any{
			map[string]any{"to": rcpts("to", 600), "cc": rcpts("cc", 300), "bcc": rcpts("bcc", 101)}}}, msgRecipientsLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := New(Config{APIKey: testKey})
			rec := serve(sim.Handler(), newSendRequest(mailWith(t, tc.extra)))
			if tc.want == "" {
				if rec.Code != http.StatusAccepted {
					t.Fatalf("status = %d, want 202; body %.300s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", rec.Code)
			}
			if got := errorMessages(t, rec.Body.Bytes()); len(got) != 1 || got[0] != tc.want {
				t.Errorf("messages = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSend_AttachmentsTotal(t *testing.T) {
	att := func(n int) map[string]any {
		return map[string]any{"content": base64.StdEncoding.EncodeToString(make([]byte, n)), "filename": "f.bin"}
	}
	for _, tc := range []struct {
		name   string
		sizes  []int
		status int
	}{
		{"OKAtLimit", []int{512, 512}, http.StatusAccepted},
		{"ErrOverLimit", []int{512, 513}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := New(Config{APIKey: testKey, MaxAttachments: 1024})
			var as []any
			for _, n := range tc.sizes {
				as = append(as, att(n))
			}
			rec := serve(sim.Handler(), newSendRequest(mailWith(t, map[string]any{"attachments": as})))
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusBadRequest {
				want := "The total size of your attachments must not exceed 1.0 KB."
				if got := errorMessages(t, rec.Body.Bytes()); len(got) != 1 || got[0] != want {
					t.Errorf("messages = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestSim_FailNext(t *testing.T) {
	t.Run("ErrBadArguments", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		for _, tc := range []struct {
			n          int
			status     int
			retryAfter time.Duration
		}{
			{-1, http.StatusInternalServerError, 0},
			{1, http.StatusNotFound, 0},
			{1, http.StatusOK, 0},
			{1, http.StatusTooManyRequests, -time.Second},
		} {
			err := sim.FailNext(tc.n, tc.status, tc.retryAfter)
			if apperr.CodeOf(err) != apperr.ValidationFailed {
				t.Errorf("FailNext(%d, %d, %s) = %v, want a validation_failed error", tc.n, tc.status, tc.retryAfter, err)
			}
		}
		// Refused plans leave normal service in place.
		if rec := serve(sim.Handler(), newSendRequest(validBody("Token"))); rec.Code != http.StatusAccepted {
			t.Errorf("status = %d, want 202", rec.Code)
		}
	})
	t.Run("OKCancel", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		if err := sim.FailNext(3, http.StatusInternalServerError, 0); err != nil {
			t.Fatal(err)
		}
		if rec := serve(sim.Handler(), newSendRequest(validBody("Token"))); rec.Code != http.StatusInternalServerError {
			t.Fatalf("status = %d, want the planned 500", rec.Code)
		}
		if err := sim.FailNext(0, 0, 0); err != nil {
			t.Fatal(err)
		}
		if rec := serve(sim.Handler(), newSendRequest(validBody("Token"))); rec.Code != http.StatusAccepted {
			t.Errorf("after cancelling: status = %d, want 202", rec.Code)
		}
	})
}

func TestSim_WaitForMessage(t *testing.T) {
	subject := func(s string) func(Message) bool {
		return func(m Message) bool { return m.Subject == s }
	}
	t.Run("OKAlreadyThere", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		serve(sim.Handler(), newSendRequest(validBody("first")))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m, err := sim.WaitForMessage(ctx, nil)
		if err != nil || m.Subject != "first" {
			t.Fatalf("got %q, %v; want the first mail", m.Subject, err)
		}
	})
	t.Run("OKArrivesLater", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		serve(sim.Handler(), newSendRequest(validBody("other")))
		go func() {
			time.Sleep(50 * time.Millisecond)
			serve(sim.Handler(), newSendRequest(validBody("wanted")))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := sim.WaitForMessage(ctx, subject("wanted"))
		if err != nil || m.Subject != "wanted" {
			t.Fatalf("got %q, %v; want the mail sent later", m.Subject, err)
		}
	})
	t.Run("ErrTimeout", func(t *testing.T) {
		sim := New(Config{APIKey: testKey})
		serve(sim.Handler(), newSendRequest(validBody("other")))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := sim.WaitForMessage(ctx, subject("never"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestSim_MessagesBounded(t *testing.T) {
	sim := New(Config{APIKey: testKey, MaxMessages: 3})
	for i := range 5 {
		serve(sim.Handler(), newSendRequest(validBody(fmt.Sprint(i))))
	}
	var got []string
	for _, m := range sim.Messages() {
		got = append(got, m.Subject)
	}
	if strings.Join(got, ",") != "2,3,4" {
		t.Errorf("kept %q, want the newest three: 2,3,4", got)
	}
	sim.Reset()
	if n := len(sim.Messages()); n != 0 {
		t.Errorf("after Reset kept %d, want 0", n)
	}
}

// TestSend_Concurrent is meant for -race: parallel sends, unique IDs.
func TestSend_Concurrent(t *testing.T) {
	sim, srv := startSim(t, Config{})
	const n = 20
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v3/mail/send", bytes.NewReader(validBody(fmt.Sprint(i))))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("status = %d", resp.StatusCode)
			}
			ids <- resp.Header.Get("X-Message-Id")
		})
	}
	go func() {
		_, _ = sim.WaitForMessage(context.Background(), func(m Message) bool { return m.Subject == "never" })
	}()
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("duplicate X-Message-Id %s", id)
		}
		seen[id] = true
	}
	if len(seen) != n || len(sim.Messages()) != n {
		t.Errorf("%d IDs, %d kept; want %d", len(seen), len(sim.Messages()), n)
	}
}

// TestSend_LogsNoSecrets checks that neither the key nor the mail's content
// reaches the log, while the log does record the outcome.
func TestSend_LogsNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	sim := New(Config{APIKey: testKey, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	secret := "TOKEN-SECRET-" + strings.Repeat("x", 16)
	body := mailWith(t, map[string]any{
		"content":     []any{map[string]any{"type": "text/plain", "value": secret}},
		"attachments": []any{map[string]any{"content": base64.StdEncoding.EncodeToString([]byte(secret)), "filename": "t.token"}},
	})
	serve(sim.Handler(), newSendRequest(body))
	bad := newSendRequest(body)
	bad.Header.Set("Authorization", "Bearer "+testKey+"-wrong")
	serve(sim.Handler(), bad)

	out := logs.String()
	if !strings.Contains(out, "mail accepted") || !strings.Contains(out, "status=401") {
		t.Errorf("log lacks the outcomes:\n%s", out)
	}
	for _, s := range []string{testKey, secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
		if strings.Contains(out, s) {
			t.Errorf("log contains %q:\n%s", s, out)
		}
	}
}

func TestValidAddress(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"bob@example.com", true},
		{"Bob.Smith+tag@mail.example.co.uk", true},
		{"o'hara@xn--bcher-kva.example", true},
		{"a!#$%&'*+-/=?^_`{|}~@example.com", true},
		{"x@a-b.example", true},
		{strings.Repeat("a", 64) + "@example.com", true},
		{"", false},
		{"bob", false},
		{"@example.com", false},
		{"bob@", false},
		{"bob@@example.com", false},
		{"bob@home@example.com", false},
		{".bob@example.com", false},
		{"bob.@example.com", false},
		{"bo..b@example.com", false},
		{strings.Repeat("a", 65) + "@example.com", false},
		{`"bob"@example.com`, false},
		{"bob smith@example.com", false},
		{"bob@example.com ", false},
		{"bob@example.com\r\nBcc: eve@evil.example", false},
		{"bob@example.com\n", false},
		{"bob@localhost", false},
		{"bob@example..com", false},
		{"bob@-example.com", false},
		{"bob@example-.com", false},
		{"bob@example.123", false},
		{"bob@[127.0.0.1]", false},
		{"bob@exämple.com", false},
		{"Bob <bob@example.com>", false},
		{"bob@" + strings.Repeat("a", 64) + ".com", false},
	} {
		if got := validAddress(tc.addr); got != tc.ok {
			t.Errorf("validAddress(%q) = %v, want %v", tc.addr, got, tc.ok)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxJSONDepth+2) + "1" + strings.Repeat("}", maxJSONDepth+2)
	shallow := strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth)
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
		dups []string
	}{
		{"OKNested", shallow, true, nil},
		{"OKDuplicateKeysReported", `{"h":{"a":1,"a":2},"l":[{"x":1,"x":1}]}`, true, []string{"h", "l.0"}},
		{"ErrTooDeep", deep, false, nil},
		{"ErrTrailing", `{} {}`, false, nil},
		{"ErrTrailingGarbage", `{}x`, false, nil},
		{"ErrTruncated", `{"a":[1,2`, false, nil},
		{"ErrEmpty", ``, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dups, err := decodeJSON([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			var got []string
			for k := range dups {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.dups) {
				t.Errorf("duplicate-key paths = %q, want %q", got, tc.dups)
			}
		})
	}
}
