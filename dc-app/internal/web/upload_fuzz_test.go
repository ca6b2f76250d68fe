package web

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/shared/apperr"
)

var updateUploadCorpus = flag.Bool("update-upload-corpus", false, "rewrite testdata/fuzz/FuzzUpload from the bad-token corpus")

// Ways FuzzUpload sends its input, as the page and automation do (form %
// uploadForms); forms uploadForms..2*uploadForms-1 send the same without a
// declared length (chunked).
const (
	formPasteRaw      = iota // preview: the pasted text as the body (text/plain)
	formPreviewFile          // preview: the dropped file (multipart "file")
	formImportFile           // import: the file and a name (multipart)
	formImportJSON           // import: JSON {"token": <input as text>, "name"}
	formImportRawPart        // import: the input is the whole multipart body
	formImportRawJSON        // import: the input is the whole JSON body
	uploadForms
)

// uploadRepeat is a generator seed: "#repeat N\n" followed by a pattern
// stands for the pattern repeated N times (capped at uploadMaxGenerated),
// so that a 10 MB upload can be a seed of a few bytes.
var uploadRepeat = regexp.MustCompile(`\A#repeat ([0-9]{1,9})\n`)

const (
	uploadMaxGenerated = 12 << 20
	// uploadMaxBody bounds any answer; uploadMaxErrBody an error's.
	uploadMaxBody    = 64 << 10
	uploadMaxErrBody = 8 << 10
)

// expandUpload returns the bytes an input stands for.
func expandUpload(in []byte) []byte {
	m := uploadRepeat.FindSubmatch(in)
	if m == nil {
		return in
	}
	n, _ := strconv.Atoi(string(m[1]))
	pat := in[len(m[0]):]
	if len(pat) == 0 || n <= 1 {
		return pat
	}
	n = min(n, uploadMaxGenerated/len(pat))
	return bytes.Repeat(pat, n)
}

// uploadCodes are the refusals an upload may get with cloud-app reachable
// and a valid session: anything else (internal, cloud_unreachable,
// unauthorized, ...) is a defect.
var uploadCodes = []apperr.Code{
	apperr.InvalidToken, apperr.UnknownKey, apperr.UnsupportedToken, apperr.UntrustedIssuer, apperr.UntrustedSite,
	apperr.TokenNotYetValid, apperr.TokenExpired, apperr.TokenUsed, apperr.TokenRevoked, apperr.TokenMismatch,
	apperr.AlreadyImported, apperr.SyncDeleted, apperr.TenantUninstalled, apperr.ValidationFailed, apperr.PayloadTooLarge,
}

// uploadRequest builds the request form sends with body as its input.
func uploadRequest(tb testing.TB, form uint8, body []byte) *http.Request {
	tb.Helper()
	var (
		path, ct string
		payload  []byte
	)
	switch form % uploadForms {
	case formPasteRaw:
		path, ct, payload = "/api/v1/token-previews", "text/plain; charset=utf-8", body
	case formPreviewFile, formImportFile:
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		path = "/api/v1/token-previews"
		if form%uploadForms == formImportFile {
			path = "/api/v1/synced-spaces"
			w.WriteField("name", "Fuzzed space")
		}
		part, err := w.CreateFormFile("file", "dropped.token")
		if err != nil {
			tb.Fatal(err)
		}
		part.Write(body)
		w.Close()
		ct, payload = w.FormDataContentType(), buf.Bytes()
	case formImportJSON:
		b, err := json.Marshal(map[string]string{"token": string(body), "name": "Fuzzed space"})
		if err != nil {
			tb.Fatal(err)
		}
		path, ct, payload = "/api/v1/synced-spaces", "application/json", b
	case formImportRawPart:
		path, ct, payload = "/api/v1/synced-spaces", "multipart/form-data; boundary=fuzz", body
	case formImportRawJSON:
		path, ct, payload = "/api/v1/synced-spaces", "application/json", body
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(payload))
	if form%(2*uploadForms) >= uploadForms {
		req.ContentLength = -1
		req.Body = io.NopCloser(bytes.NewReader(payload))
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	return req
}

// FuzzUpload sends arbitrary bytes through the token upload routes the
// drop zone and automation use (preview of a pasted text or dropped file;
// import of a file or JSON; hostile multipart and JSON framing; declared
// and chunked lengths) with a signed-in session, and checks that dc-app
// never answers 500 or panics (the recover middleware would make it a
// 500), answers only with a stable code at that code's status, keeps every
// answer small and uncacheable, and stores nothing — no synced space, no
// redemption at cloud-app — for input it refuses or only previews.
func FuzzUpload(f *testing.F) {
	boundMinimization(f)
	h := newHarness(f, harnessOptions{})
	c := h.signedIn()
	cookie := sessionCookie(c)
	if cookie == nil {
		f.Fatal("no session cookie")
	}
	// Seeds that need the live fake cloud-app (its URL is the issuer):
	// real tokens as downloaded, saved by Notepad (BOM, CRLF) and
	// wrapped, and the bad-token corpus of the token issue.
	good := h.fake.Mint(f, cloudtest.MintOptions{})
	live := [][]byte{
		[]byte(good + "\n"),
		[]byte("\xEF\xBB\xBF" + good + "\r\n"),
		[]byte(wrap(good, 76, "\r\n")),
	}
	for _, bt := range cloudtest.BadTokens(f, h.fake) {
		if len(bt.Body) <= 128<<10 {
			live = append(live, bt.Body)
		}
	}
	for _, in := range live {
		for form := range uint8(uploadForms) {
			f.Add(form, in)
		}
	}
	csrf := c.csrf
	// rows is the count of synced spaces after the previous exec (-1:
	// unknown); execs in a worker run one at a time.
	rows := -1
	f.Fuzz(func(t *testing.T, form uint8, in []byte) {
		body := expandUpload(in)
		if rows < 0 {
			rows = uploadRows(t, h)
		}
		rowsBefore, redeemedBefore := rows, h.fake.Redeemed()
		rows = -1 // until this exec is checked
		req := uploadRequest(t, form, body)
		req.AddCookie(cookie)
		req.Header.Set("X-CSRF-Token", csrf)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		rec := httptest.NewRecorder()
		h.app.Server.ServeHTTP(rec, req)
		rows = checkUploadAnswer(t, form, rec, rowsBefore, redeemedBefore, h)
	})
}

// checkUploadAnswer checks FuzzUpload's invariants on one answer and
// returns the count of synced spaces after it.
func checkUploadAnswer(t *testing.T, form uint8, rec *httptest.ResponseRecorder, rowsBefore, redeemedBefore int, h *harness) int {
	t.Helper()
	status, out := rec.Code, rec.Body.Bytes()
	if status >= 500 {
		t.Fatalf("form %d: HTTP %d: %s", form, status, clipBytes(out))
	}
	if len(out) > uploadMaxBody {
		t.Fatalf("form %d: a %d-byte answer", form, len(out))
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("form %d: Content-Type %q", form, ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("form %d: Cache-Control %q", form, cc)
	}
	after := uploadRows(t, h)
	stored := after - rowsBefore
	redeemed := h.fake.Redeemed() - redeemedBefore
	switch {
	case status == http.StatusOK: // a preview
		if stored != 0 || redeemed != 0 {
			t.Fatalf("form %d: a preview stored %d rows and redeemed %d", form, stored, redeemed)
		}
		return after
	case status == http.StatusCreated || status == http.StatusAccepted: // an import
		if stored != 1 || redeemed != 1 {
			t.Fatalf("form %d: an import (%d) stored %d rows and redeemed %d", form, status, stored, redeemed)
		}
		return after
	}
	var e apperr.Body
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("form %d: HTTP %d, not an error body: %v: %s", form, status, err, clipBytes(out))
	}
	if !slices.Contains(uploadCodes, e.Error.Code) || e.Error.Code.Status() != status || e.Error.Message == "" {
		t.Fatalf("form %d: HTTP %d with code %q: %s", form, status, e.Error.Code, clipBytes(out))
	}
	if len(out) > uploadMaxErrBody {
		t.Fatalf("form %d: a %d-byte error answer", form, len(out))
	}
	if stored != 0 || redeemed != 0 {
		t.Fatalf("form %d: refused with %s, yet %d rows stored and %d redeemed", form, e.Error.Code, stored, redeemed)
	}
	return after
}

// uploadRows counts synced spaces in any status (every row, whatever
// its state: a PENDING row left behind counts).
func uploadRows(t *testing.T, h *harness) int {
	t.Helper()
	var n int64
	if err := h.app.deps.DB.WithContext(context.Background()).Raw("SELECT COUNT(*) FROM synced_spaces").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// uploadMinimizeTime bounds the minimization of each new interesting input
// (60s by default) unless the command line sets -fuzzminimizetime. Every
// exec here is a request through the app, often with a call to the fake
// cloud-app, and a token's bytes seldom shrink without losing the new
// coverage, so with the default a 10-minute run spent nearly all its time
// minimizing (11 inputs, 26,757 execs).
const uploadMinimizeTime = "5s"

func boundMinimization(f *testing.F) {
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", uploadMinimizeTime); err != nil {
			f.Logf("cannot bound minimization: %v", err)
		}
	}
}

func clipBytes(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// wrap breaks s into lines of n characters.
func wrap(s string, n int, nl string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + nl)
		s = s[n:]
	}
	return b.String() + s + nl
}

// TestFuzzUploadCorpus keeps the committed seed corpus: with
// -update-upload-corpus it rewrites testdata/fuzz/FuzzUpload from the
// bad-token corpus of the token issue (UTF-16, two tokens, % in a segment,
// six segments, ...), real tokens saved with a BOM and CRLF or wrapped, a
// generator seed for 10 MB of dots, and hostile framing; without it, it
// checks the corpus is there and holds those cases. (The tokens in it were
// minted by a fake cloud-app that is gone, so today they are refused as
// expired or untrusted; FuzzUpload adds live ones as it starts.)
func TestFuzzUploadCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzUpload")
	if *updateUploadCorpus {
		f := cloudtest.New(t)
		good := f.Mint(t, cloudtest.MintOptions{})
		seeds := map[string][]byte{
			"good":            []byte(good + "\n"),
			"good-bom-crlf":   []byte("\xEF\xBB\xBF" + good + "\r\n"),
			"good-wrapped-76": []byte(wrap(good, 76, "\r\n")),
			"dots-10MB":       []byte("#repeat 10485760\n."),
			"dots-64KiB-plus": []byte("#repeat 65537\n."),
			"dots-70KiB":      []byte("#repeat 71680\n."),
			"nul-bytes":       bytes.Repeat([]byte{0}, 64),
			"multipart-junk":  []byte("--fuzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n" + good + "\r\n--fuzz--\r\n"),
			"multipart-two-files": []byte("--fuzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nx\r\n" +
				"--fuzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\ny\r\n--fuzz--\r\n"),
			"json-token": []byte(`{"token":"` + good + `","name":"n","permissions":[{"type":"group","name":"g"}],"expect":{"siteBaseUrl":"x"}}`),
			"json-deep":  []byte(strings.Repeat("[", 10000)),
		}
		for _, bt := range cloudtest.BadTokens(t, f) {
			if len(bt.Body) > 16<<10 {
				continue // the generator seeds stand for these
			}
			seeds[bt.Name] = bt.Body
		}
		// Inputs a fuzzing run found interesting are committed here too:
		// rewrite the named seeds, keep the rest.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range seeds {
			form := uint8(formPasteRaw)
			switch {
			case strings.HasPrefix(name, "multipart-"):
				form = formImportRawPart
			case strings.HasPrefix(name, "json-"):
				form = formImportRawJSON
			case strings.HasPrefix(name, "good"):
				form = formImportFile
			}
			data := fmt.Sprintf("go test fuzz v1\nuint8(%d)\n[]byte(%s)\n", form, strconv.Quote(string(body)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"utf16-with-bom", "utf16-no-bom", "two-tokens", "percent-in-segment", "six-segments",
		"good-bom-crlf", "dots-10MB", "zip-DEF", "PBES2", "RSA1_5", "issuer-prefix-port"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("seed %s missing (go test -run TestFuzzUploadCorpus -update-upload-corpus): %v", name, err)
		}
	}
	if got := expandUpload([]byte("#repeat 10485760\n.")); len(got) != 10<<20 || got[len(got)-1] != '.' {
		t.Errorf("the generator seed expands to %d bytes, want 10 MiB of dots", len(got))
	}
}
