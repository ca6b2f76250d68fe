// Package mail sends token emails: it builds the message (a subject with a
// fixed prefix naming the verified Cloud site, text and HTML bodies, the
// token attached), sends it through SendGrid or writes it to the outbox
// (MAIL_MODE, DESIGN section 11), and drains the token_emails queue with a
// worker that several replicas can run at once.
//
// Email must not become a relay (DESIGN section 8): recipients are single
// plain addresses, the subject cannot carry headers and always names the
// site the token comes from, the sender's message is quoted as the
// sender's words and escaped, and nothing is tracked.
package mail

import (
	"bytes"
	"embed"
	"encoding/base64"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"spacesync.io/cloud-app/internal/tokens"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/token"
)

// Limits on what a sender types in the Send Token dialog.
const (
	// MaxSubjectLength is the longest subject a sender may type, in
	// characters; the fixed prefix comes on top.
	MaxSubjectLength = 150
	// MaxMessageLength is the longest message, in characters: the same
	// bound as the message carried in the token.
	MaxMessageLength = token.MaxMessageLength
	// MaxAddressLength is the longest recipient address, in bytes (RFC 5321
	// path limit less the angle brackets).
	MaxAddressLength = 254
)

// AttachmentType is the media type of the token attachment: bare, without
// parameters, as SendGrid requires.
const AttachmentType = "application/octet-stream"

// Statuses a Mailer reports; the same words as the store's email statuses.
const (
	StatusSent   = "sent"
	StatusOutbox = "outbox"
)

// TokenEmail is one token email to send. Everything but To, Subject and
// Message comes from stored, verified records (the tenant's site, the
// sync's space), never from the sender.
type TokenEmail struct {
	// ID is the email's id (the queue row); it names the outbox file and
	// the Message-ID.
	ID string
	// To is the recipient: one plain address (see ParseRecipient).
	To string
	// Subject is what the sender typed, without the prefix; empty means a
	// default naming the space.
	Subject string
	// Message is the sender's message, quoted in the body as their words.
	Message string
	// SiteName is the verified Cloud site's host, e.g.
	// example.atlassian.net; it is the subject prefix.
	SiteName string
	// SiteURL is the verified Cloud site's address, shown in the body.
	SiteURL   string
	SpaceKey  string
	SpaceName string
	SyncName  string
	// ExpiresAt is when the token stops working.
	ExpiresAt time.Time
	// Token is the token to attach, exactly as it was minted and recorded.
	Token string
}

// FileName is the attachment's name: TokenFileName of the space key.
func (e TokenEmail) FileName() string { return TokenFileName(e.SpaceKey) }

// TokenFileName returns the token file name for a space key, the same name
// a download gets (tokens.FileName): "<SPACEKEY>-space-sync.token" in ASCII.
func TokenFileName(spaceKey string) string { return tokens.FileName(spaceKey) }

// SubjectPrefix is the fixed start of every token email's subject. It names
// the verified Cloud site, so a recipient can tell where a token comes from
// whatever the sender typed.
func SubjectPrefix(siteName string) string { return "[Space Sync from " + siteName + "] " }

// DefaultSubject is the subject the Send Token dialog suggests.
func DefaultSubject(spaceName string) string {
	name := strings.TrimSpace(displayText(spaceName))
	if name == "" {
		return "Space Sync token"
	}
	if utf8.RuneCountInString(name) > 100 {
		name = string([]rune(name)[:100]) + "…"
	}
	return "Space Sync token for the space " + name
}

// Input is a validated Send Token request.
type Input struct {
	// To is the recipient, normalised (see ParseRecipient).
	To string
	// Subject is trimmed and free of control characters; it may be empty.
	Subject string
	// Message has its line breaks normalised to "\n".
	Message string
}

// CheckInput validates what a sender typed in the Send Token dialog. It
// returns validation_failed with a message for each bad field ("to",
// "subject", "message").
func CheckInput(to, subject, message string) (Input, error) {
	fields := map[string]string{}
	var in Input
	var err error
	if in.To, err = checkRecipient(to); err != nil {
		fields["to"] = err.Error()
	}
	if in.Subject, err = checkSubject(subject); err != nil {
		fields["subject"] = err.Error()
	}
	if in.Message, err = checkMessage(message); err != nil {
		fields["message"] = err.Error()
	}
	if len(fields) > 0 {
		return Input{}, apperr.Validation(fields)
	}
	return in, nil
}

// ParseRecipient checks that s is one plain email address and returns it
// normalised: surrounding spaces trimmed, the domain in lower case and, if
// it is internationalised, in its ASCII (IDNA) form. Display names,
// comments, groups, several addresses, quoted or non-ASCII local parts, IP
// literals, control characters and addresses over 254 bytes are refused
// with validation_failed ("to").
func ParseRecipient(s string) (string, error) {
	to, err := checkRecipient(s)
	if err != nil {
		return "", apperr.Validation(map[string]string{"to": err.Error()})
	}
	return to, nil
}

// fieldError is a message about one field, safe to show the sender.
type fieldError string

func (e fieldError) Error() string { return string(e) }

// checkSubject trims s and refuses control characters (CR and LF above
// all: they would start a new header), invalid UTF-8 and overlong
// subjects.
func checkSubject(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fieldError("The subject contains characters that are not allowed.")
	}
	s = strings.TrimSpace(s)
	if r, bad := forbiddenRune(s, false); bad {
		if r == '\r' || r == '\n' {
			return "", fieldError("The subject must be one line.")
		}
		return "", fieldError("The subject contains characters that are not allowed.")
	}
	if utf8.RuneCountInString(s) > MaxSubjectLength {
		return "", fieldError(fmt.Sprintf("Keep the subject to %d characters or fewer.", MaxSubjectLength))
	}
	return s, nil
}

// checkMessage normalises line breaks to "\n", trims trailing space and
// refuses other control characters and overlong messages.
func checkMessage(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fieldError("The message contains characters that are not allowed.")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	if _, bad := forbiddenRune(s, true); bad {
		return "", fieldError("The message contains characters that are not allowed.")
	}
	if utf8.RuneCountInString(s) > MaxMessageLength {
		return "", fieldError(fmt.Sprintf("Keep the message to %d characters or fewer.", MaxMessageLength))
	}
	return s, nil
}

// forbiddenRune finds a rune no subject or message may hold: C0 and C1
// controls (but tab and line feed in a multi-line text), DEL, the Unicode
// line and paragraph separators, and the bidirectional overrides and
// isolates that can make text read differently from what it is.
func forbiddenRune(s string, multiline bool) (rune, bool) {
	for _, r := range s {
		switch {
		case multiline && (r == '\n' || r == '\t'):
		case r < 0x20, r == 0x7F, r >= 0x80 && r < 0xA0:
			return r, true
		case r == '\u2028', r == '\u2029':
			return r, true
		case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
			return r, true
		}
	}
	return 0, false
}

// displayText replaces what forbiddenRune refuses with spaces, for stored
// names (space, sync) that are shown but were not typed here.
func displayText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if _, bad := forbiddenRune(string(r), false); bad {
			return ' '
		}
		return r
	}, s)
}

// composed is a validated token email, ready for either mailer.
type composed struct {
	to       string
	subject  string
	text     string
	html     string
	fileName string
	token    []byte
}

// compose validates e (a queued email is checked again here, so nothing
// that slipped past the endpoint reaches a header) and renders it. Its
// errors are validation_failed.
func (e TokenEmail) compose() (composed, error) {
	bad := func(msg string) (composed, error) {
		return composed{}, apperr.New(apperr.ValidationFailed, msg+" The token was not sent.")
	}
	to, err := checkRecipient(e.To)
	if err != nil {
		return bad("The recipient address is not valid: " + err.Error())
	}
	subject, err := checkSubject(e.Subject)
	if err != nil {
		return bad(err.Error())
	}
	message, err := checkMessage(e.Message)
	if err != nil {
		return bad(err.Error())
	}
	if !validSiteName(e.SiteName) {
		return bad("The Cloud site of this email is not known.")
	}
	site, err := url.Parse(e.SiteURL)
	if err != nil || (site.Scheme != "https" && site.Scheme != "http") || site.Host == "" ||
		strings.ContainsFunc(e.SiteURL, func(r rune) bool { return r <= ' ' || r == 0x7F }) {
		return bad("The Cloud site of this email is not known.")
	}
	if e.SpaceKey == "" || e.ExpiresAt.IsZero() {
		return bad("The space or the token's expiry of this email is not known.")
	}
	tok := strings.TrimSuffix(e.Token, "\n")
	if tok == "" || len(e.Token) > token.MaxTokenSize || strings.Trim(tok, tokenAlphabet) != "" {
		return bad("The token of this email is not a token.")
	}
	if subject == "" {
		subject = DefaultSubject(e.SpaceName)
	}
	d := bodyData{
		SiteName:     e.SiteName,
		SiteURL:      site.String(),
		SpaceKey:     displayText(e.SpaceKey),
		SpaceName:    displayText(e.SpaceName),
		SyncName:     displayText(e.SyncName),
		Expires:      e.ExpiresAt.UTC().Format("Monday 2 January 2006 at 15:04 MST"),
		FileName:     e.FileName(),
		Message:      message,
		MessageLines: strings.Split(message, "\n"),
		Quoted:       quote(message),
	}
	if d.SpaceName == "" {
		d.SpaceName = d.SpaceKey
	}
	var text, html bytes.Buffer
	if err := textBody.Execute(&text, d); err != nil {
		return composed{}, fmt.Errorf("mail: render text body: %w", err)
	}
	if err := htmlBody.Execute(&html, d); err != nil {
		return composed{}, fmt.Errorf("mail: render HTML body: %w", err)
	}
	return composed{
		to:       to,
		subject:  SubjectPrefix(e.SiteName) + subject,
		text:     text.String(),
		html:     html.String(),
		fileName: d.FileName,
		token:    []byte(e.Token),
	}, nil
}

// tokenAlphabet is every character of a compact JWE: base64url and dots.
const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

// validSiteName accepts a host name (with an optional port).
func validSiteName(s string) bool {
	if s == "" || len(s) > 253+6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// quote prefixes each line of the sender's message with "> ".
func quote(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight("> "+l, " ")
	}
	return strings.Join(lines, "\n")
}

// attachmentContent is the token as SendGrid wants it: standard base64 in
// one line.
func (c composed) attachmentContent() string { return base64.StdEncoding.EncodeToString(c.token) }

// bodyData is what the body templates show.
type bodyData struct {
	SiteName  string
	SiteURL   string
	SpaceKey  string
	SpaceName string
	SyncName  string
	Expires   string
	FileName  string
	// Message is the sender's message, MessageLines the same split at line
	// breaks (for the HTML body), Quoted the same with "> " line prefixes
	// (for the text body).
	Message      string
	MessageLines []string
	Quoted       string
}

//go:embed templates
var templateFS embed.FS

// The body templates are parsed once; a test executes both.
var (
	textBody = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/token.txt.tmpl"))
	htmlBody = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/token.html.tmpl"))
)
