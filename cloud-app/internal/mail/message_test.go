package mail

import (
	"errors"
	"strings"
	"testing"
	"time"

	"spacesync.io/shared/apperr"
)

// testToken looks like a compact JWE: five base64url segments.
const testToken = "eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiazEifQ.d3JhcHBlZA.aXY.Y2lwaGVydGV4dA.dGFn"

func testEmail() TokenEmail {
	return TokenEmail{
		ID:        "5b0a8a4e-8a8f-4b59-9d3e-1f7f8f3d2c10",
		To:        "bob@example.com",
		Subject:   "Your token for Engineering",
		Message:   "Hi Bob,\nhere is the token we talked about.",
		SiteName:  "example.atlassian.net",
		SiteURL:   "https://example.atlassian.net/wiki",
		SpaceKey:  "ENG",
		SpaceName: "Engineering",
		SyncName:  "Engineering to DC",
		ExpiresAt: time.Date(2026, 12, 10, 14, 0, 0, 0, time.UTC),
		Token:     testToken,
	}
}

func fieldsOf(t *testing.T, err error) map[string]string {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.ValidationFailed {
		t.Fatalf("error %v: want validation_failed", err)
	}
	return ae.Fields
}

func TestCheckInput_Recipient(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"bob@example.com", "bob@example.com"},
		{"  Bob.Builder+sync@Example.COM ", "Bob.Builder+sync@example.com"},
		{"o'neil@sub.example.co.uk", "o'neil@sub.example.co.uk"},
		{"bob@exämple.com", "bob@xn--exmple-cua.com"},
		{"bob@xn--exmple-cua.com", "bob@xn--exmple-cua.com"},
	} {
		got, err := CheckInput(c.in, "", "")
		if err != nil || got.To != c.want {
			t.Errorf("CheckInput(%q).To = %q, %v; want %q", c.in, got.To, err, c.want)
		}
	}
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) + ".com"
	for _, in := range []string{
		"",
		"bob",
		"bob@",
		"@example.com",
		"bob@example",                      // one label
		"bob@example.123",                  // numeric top-level label
		"bob@[127.0.0.1]",                  // IP literal
		"Bob <bob@example.com>",            // display name
		"<bob@example.com>",                // brackets
		"bob@example.com (Bob)",            // comment
		`"bob smith"@example.com`,          // quoted local part
		`"bob@evil.com"@example.com`,       // quoted @
		"bob@example.com, eve@example.com", // two addresses
		"bob@example.com;eve@example.com",  // two addresses
		"undisclosed:bob@example.com;",     // group
		"bob@example.com\r\nBcc: eve@example.com",  // header injection
		"bob@example.com\nBcc: eve@example.com",    // header injection, bare LF
		"bob@example.com%0d%0aBcc:eve@example.com", // encoded CRLF in the domain
		"bob\x00@example.com",
		"bób@example.com", // non-ASCII local part
		"bob..x@example.com",
		"bob@-example.com",
		"bob@exa_mple.com",
		long,
	} {
		got, err := CheckInput(in, "", "")
		if err == nil {
			t.Errorf("CheckInput(%q) = %+v, want a refusal", in, got)
			continue
		}
		if f := fieldsOf(t, err); f["to"] == "" || len(f) != 1 {
			t.Errorf("CheckInput(%q): fields %v, want only \"to\"", in, f)
		}
	}
	if len(long) <= MaxAddressLength {
		t.Fatalf("the long address has %d bytes; the test needs more than %d", len(long), MaxAddressLength)
	}
	okLong := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
	if _, err := ParseRecipient(okLong); err != nil || len(okLong) != MaxAddressLength {
		t.Errorf("ParseRecipient(%d bytes) = %v; want it accepted", len(okLong), err)
	}
}

func TestCheckInput_SubjectAndMessage(t *testing.T) {
	ok := []struct{ subject, message, wantSubject, wantMessage string }{
		{"  Your token  ", "Hi\r\nBob\r\n\r\n", "Your token", "Hi\nBob"},
		{"Jeton pour l’espace « Ingénierie » 🚀", "Tabs\tare fine\nand so is ü", "Jeton pour l’espace « Ingénierie » 🚀", "Tabs\tare fine\nand so is ü"},
		{"", "", "", ""},
		{strings.Repeat("é", MaxSubjectLength), strings.Repeat("ß", MaxMessageLength), strings.Repeat("é", MaxSubjectLength), strings.Repeat("ß", MaxMessageLength)},
	}
	for _, c := range ok {
		got, err := CheckInput("bob@example.com", c.subject, c.message)
		if err != nil || got.Subject != c.wantSubject || got.Message != c.wantMessage {
			t.Errorf("CheckInput(%q, %q) = %+v, %v; want %q, %q", c.subject, c.message, got, err, c.wantSubject, c.wantMessage)
		}
	}
	for _, c := range []struct{ subject, message, field string }{
		{"Hello\r\nBcc: eve@example.com", "", "subject"},
		{"Hello\nBcc: eve@example.com", "", "subject"},
		{"Hello\rBcc: eve@example.com", "", "subject"},
		{"Hello\x00", "", "subject"},
		{"Hello\tthere", "", "subject"},
		{"Hello\u2028Bcc: eve@example.com", "", "subject"},
		{"Hello \u202Emoc.live", "", "subject"},
		{"Hello\x85", "", "subject"},
		{"bad \xff utf-8", "", "subject"},
		{strings.Repeat("x", MaxSubjectLength+1), "", "subject"},
		{"", "nul \x00 byte", "message"},
		{"", "escape \x1b[31m", "message"},
		{"", "bad \xff utf-8", "message"},
		{"", strings.Repeat("y", MaxMessageLength+1), "message"},
	} {
		_, err := CheckInput("bob@example.com", c.subject, c.message)
		if err == nil {
			t.Errorf("CheckInput(subject %q, message %q) = nil, want a refusal", c.subject, c.message)
			continue
		}
		if f := fieldsOf(t, err); f[c.field] == "" || len(f) != 1 {
			t.Errorf("CheckInput(subject %q, message %q): fields %v, want only %q", c.subject, c.message, f, c.field)
		}
	}
	// All three bad at once: one error naming each field.
	_, err := CheckInput("Eve <eve@example.com>", "a\nb", "\x00")
	if f := fieldsOf(t, err); len(f) != 3 {
		t.Errorf("three bad fields: %v", f)
	}
}

func TestTokenFileName(t *testing.T) {
	for in, want := range map[string]string{
		"ENG":                    "ENG-space-sync.token",
		"~5f1a2b3c4d":            "~5f1a2b3c4d-space-sync.token",
		"ÉQUIPE":                 "_QUIPE-space-sync.token",
		"A/B\\C\"D\r\n":          "A_B_C_D__-space-sync.token",
		"":                       "space-space-sync.token",
		strings.Repeat("K", 300): strings.Repeat("K", 100) + "-space-sync.token",
	} {
		if got := TokenFileName(in); got != want {
			t.Errorf("TokenFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenEmail_Compose(t *testing.T) {
	e := testEmail()
	e.Message = "Hi Bob,\n<script>alert(1)</script> & \"quotes\" <b>bold</b>"
	c, err := e.compose()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[Space Sync from example.atlassian.net] Your token for Engineering"; c.subject != want {
		t.Errorf("subject = %q, want %q", c.subject, want)
	}
	if c.fileName != "ENG-space-sync.token" || string(c.token) != testToken || c.to != "bob@example.com" {
		t.Errorf("file %q, token %q, to %q", c.fileName, c.token, c.to)
	}
	if c.attachmentContent() != "ZXlKaGJHY2lPaUpCTWpVMlMxY2lMQ0psYm1NaU9pSkJNalUyUjBOTklpd2lhMmxrSWpvaWF6RWlmUS5kM0poY0hCbFpBLmFYWS5ZMmx3YUdWeWRHVjRkQS5kR0Zu" {
		t.Errorf("attachment content = %q: want standard base64 of the token in one line", c.attachmentContent())
	}
	facts := []string{
		"example.atlassian.net", "https://example.atlassian.net/wiki", "Engineering", "ENG", "Engineering to DC",
		"Thursday 10 December 2026 at 14:00 UTC", "ENG-space-sync.token",
		"Space Sync for Confluence", "Edit sync settings", "Import Token", "Import", "used once",
	}
	for _, f := range facts {
		if !strings.Contains(c.text, f) {
			t.Errorf("text body lacks %q", f)
		}
		if !strings.Contains(c.html, f) {
			t.Errorf("HTML body lacks %q", f)
		}
	}
	// The text body quotes the sender's words as they are.
	if !strings.Contains(c.text, "> Hi Bob,\n> <script>alert(1)</script> & \"quotes\" <b>bold</b>") {
		t.Errorf("text body does not quote the message:\n%s", c.text)
	}
	// The HTML body escapes them: no markup of the sender's survives.
	if strings.Contains(c.html, "<script>") || strings.Contains(c.html, "<b>bold") {
		t.Errorf("HTML body carries the sender's markup:\n%s", c.html)
	}
	if !strings.Contains(c.html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34; &lt;b&gt;bold&lt;/b&gt;") ||
		!strings.Contains(c.html, "Hi Bob,<br>&lt;script&gt;") {
		t.Errorf("HTML body does not show the escaped message:\n%s", c.html)
	}
	// The three steps, in order.
	i1, i2, i3 := strings.Index(c.text, "1. Open Space Sync"), strings.Index(c.text, "2. Choose Edit sync settings"), strings.Index(c.text, "3. Drop the attached file")
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Errorf("text body steps out of order or missing (%d, %d, %d)", i1, i2, i3)
	}

	t.Run("DefaultSubjectAndNoMessage", func(t *testing.T) {
		e := testEmail()
		e.Subject, e.Message = "", ""
		c, err := e.compose()
		if err != nil {
			t.Fatal(err)
		}
		if want := "[Space Sync from example.atlassian.net] Space Sync token for the space Engineering"; c.subject != want {
			t.Errorf("subject = %q, want %q", c.subject, want)
		}
		if strings.Contains(c.text, "in their own words") || strings.Contains(c.html, "blockquote") {
			t.Error("an empty message is still quoted")
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for name, mutate := range map[string]func(*TokenEmail){
			"subject injection":   func(e *TokenEmail) { e.Subject = "Hi\r\nBcc: eve@example.com" },
			"recipient injection": func(e *TokenEmail) { e.To = "bob@example.com\r\nBcc: eve@example.com" },
			"display name":        func(e *TokenEmail) { e.To = "Eve <bob@example.com>" },
			"site with space":     func(e *TokenEmail) { e.SiteName = "example.atlassian.net] [urgent" },
			"no site":             func(e *TokenEmail) { e.SiteName = "" },
			"site url":            func(e *TokenEmail) { e.SiteURL = "javascript:alert(1)" },
			"no expiry":           func(e *TokenEmail) { e.ExpiresAt = time.Time{} },
			"no token":            func(e *TokenEmail) { e.Token = "" },
			"token not a JWE":     func(e *TokenEmail) { e.Token = "abc\r\ndef" },
		} {
			e := testEmail()
			mutate(&e)
			if _, err := e.compose(); apperr.CodeOf(err) != apperr.ValidationFailed {
				t.Errorf("%s: compose error %v, want validation_failed", name, err)
			}
		}
	})

	t.Run("StoredNamesWithControls", func(t *testing.T) {
		e := testEmail()
		e.SpaceName = "Evil\r\nBcc: x"
		c, err := e.compose()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(c.text, "Evil\r\n") || !strings.Contains(c.text, "Evil  Bcc: x") {
			t.Errorf("control characters of a stored name not replaced:\n%s", c.text)
		}
	})
}

func TestLimits_Check(t *testing.T) {
	l := DefaultLimits
	if err := l.Check(19, 199); err != nil {
		t.Errorf("under both limits: %v", err)
	}
	for _, c := range [][2]int{{20, 0}, {0, 200}, {25, 250}} {
		err := l.Check(c[0], c[1])
		var ae *apperr.Error
		if !errors.As(err, &ae) || ae.Code != apperr.RateLimited || ae.RetryAfter <= 0 {
			t.Errorf("Check(%d, %d) = %v, want rate_limited with Retry-After", c[0], c[1], err)
		}
	}
}
