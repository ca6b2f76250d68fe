package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// OutboxConfig configures the outbox mailer.
type OutboxConfig struct {
	// Dir is where the .eml files go (<CLOUD_APP_DATA_DIR>/outbox); it is
	// created owner-only if missing.
	Dir string
	// From is MAIL_FROM.
	From string
	// Now stamps the Date header; nil means time.Now.
	Now func() time.Time
}

// Outbox writes each token email as a MIME message to <Dir>/<id>.eml
// (owner-only) instead of sending it: MAIL_MODE=outbox, for the embedded
// default and the local stack. Its status is always "outbox", never "sent".
type Outbox struct {
	dir  string
	from *netmail.Address
	now  func() time.Time
}

// NewOutbox returns an Outbox mailer. It refuses an empty directory and a
// MAIL_FROM that is not one address.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if cfg.Dir == "" {
		return nil, errors.New("mail: the outbox needs a directory")
	}
	from, err := parseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Outbox{dir: cfg.Dir, from: from, now: now}, nil
}

// Dir is the directory the outbox writes to.
func (o *Outbox) Dir() string { return o.dir }

// Send writes e to the outbox. A write failure (a full disk, a permission)
// is a *TemporaryError; an invalid email is validation_failed.
func (o *Outbox) Send(ctx context.Context, e TokenEmail) (Result, error) {
	c, err := e.compose()
	if err != nil {
		return Result{}, err
	}
	id := e.ID
	if !safeID(id) {
		id = uuid.NewString()
	}
	msgID := id + "@" + domainOf(o.from.Address)
	raw, err := o.message(c, msgID)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, &TemporaryError{Reason: "The send was interrupted", Cause: err}
	}
	path := filepath.Join(o.dir, id+".eml")
	if err := writePrivate(o.dir, path, raw); err != nil {
		return Result{}, &TemporaryError{Reason: "The email could not be written to the outbox", Cause: err}
	}
	return Result{Status: StatusOutbox, MessageID: msgID, Path: path}, nil
}

// safeID reports whether id can name a file: 1 to 64 letters, digits and
// dashes.
func safeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// domainOf returns the domain of an address, for Message-IDs.
func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 && at < len(addr)-1 {
		return addr[at+1:]
	}
	return "spacesync.invalid"
}

// message renders the MIME message: multipart/mixed holding a
// multipart/alternative (text, then HTML, both quoted-printable) and the
// token as a base64 attachment wrapped at 76 columns. Lines end in CRLF.
func (o *Outbox) message(c composed, msgID string) ([]byte, error) {
	var buf bytes.Buffer
	mixed := multipart.NewWriter(&buf)
	if err := mixed.SetBoundary(newBoundary()); err != nil {
		return nil, err
	}
	hdr := func(name, value string) { buf.WriteString(foldHeader(name, value)) }
	hdr("Date", o.now().Format(time.RFC1123Z))
	hdr("From", o.from.String())
	hdr("To", c.to)
	hdr("Subject", encodeHeader(c.subject))
	hdr("Message-ID", "<"+msgID+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mixed.Boundary()}))
	buf.WriteString("\r\n")

	// The alternative part's boundary goes in its header before the writer
	// for its body exists: take a fresh random one and set it afterwards.
	altBoundary := newBoundary()
	altPart, err := mixed.CreatePart(textproto.MIMEHeader{
		"Content-Type": {mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": altBoundary})},
	})
	if err != nil {
		return nil, err
	}
	alt := multipart.NewWriter(altPart)
	if err := alt.SetBoundary(altBoundary); err != nil {
		return nil, err
	}
	for _, body := range []struct{ typ, text string }{{"text/plain", c.text}, {"text/html", c.html}} {
		w, err := alt.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {body.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(body.text)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := alt.Close(); err != nil {
		return nil, err
	}

	att, err := mixed.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {mime.FormatMediaType(AttachmentType, map[string]string{"name": c.fileName})},
		"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": c.fileName})},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(c.token)
	for len(enc) > 76 {
		fmt.Fprintf(att, "%s\r\n", enc[:76])
		enc = enc[76:]
	}
	fmt.Fprintf(att, "%s\r\n", enc)
	if err := mixed.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newBoundary returns a random multipart boundary short enough that the
// Content-Type line announcing it stays within 78 characters.
func newBoundary() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "ss-" + hex.EncodeToString(b[:])
}

// encodeHeader returns s as is when it is printable ASCII, else as RFC 2047
// encoded-words (UTF-8, Q encoding).
func encodeHeader(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// foldHeader formats "Name: value\r\n", folding at spaces so that lines
// stay within 78 characters where the words allow. Values never hold CR or
// LF here: every one of them was validated or built by this package.
func foldHeader(name, value string) string {
	var b strings.Builder
	line := name + ":"
	for _, word := range strings.Split(value, " ") {
		if len(line)+1+len(word) > 78 && line != "" {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + word
	}
	b.WriteString(line + "\r\n")
	return b.String()
}

// writePrivate writes data to path atomically with owner-only permissions,
// creating dir (0700) if needed.
func writePrivate(dir, path string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*.eml")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
