package mail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOutbox_Send(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	o, err := NewOutbox(OutboxConfig{Dir: dir, From: "Space Sync Ü <no-reply@spacesync.example>", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e := testEmail()
	e.Subject = "Jeton pour l’espace « Ingénierie » — a long subject that needs folding across lines"
	e.Message = "Hi Bob,\n<b>not bold</b> and a long line " + strings.Repeat("word ", 40)
	res, err := o.Send(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	wantPath := filepath.Join(dir, e.ID+".eml")
	if res.Status != StatusOutbox || res.Path != wantPath || res.MessageID != e.ID+"@spacesync.example" {
		t.Fatalf("result %+v: want outbox at %s", res, wantPath)
	}
	fi, err := os.Stat(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", di.Mode().Perm())
	}
	raw, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	// MIME lines end in CRLF and stay within 78 characters (998 at most).
	for i, line := range strings.Split(strings.TrimSuffix(string(raw), "\r\n"), "\r\n") {
		if strings.Contains(line, "\n") {
			t.Fatalf("line %d has a bare LF", i)
		}
		if len(line) > 78 {
			t.Errorf("line %d is %d characters long: %q", i, len(line), line)
		}
	}

	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[Space Sync from example.atlassian.net] " + e.Subject; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	if !strings.HasPrefix(msg.Header.Get("Subject"), "=?utf-8?q?") {
		t.Errorf("a non-ASCII subject is not RFC 2047 encoded: %q", msg.Header.Get("Subject"))
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Space Sync Ü" || from[0].Address != "no-reply@spacesync.example" {
		t.Errorf("From = %v, %v", from, err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "bob@example.com" {
		t.Errorf("To = %v, %v", to, err)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date = %v, %v; want %v", d, err, now)
	}
	if got := msg.Header.Get("Message-ID"); got != "<"+res.MessageID+">" {
		t.Errorf("Message-ID = %q", got)
	}
	if msg.Header.Get("MIME-Version") != "1.0" {
		t.Error("no MIME-Version")
	}

	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", mt, err)
	}
	mixed := multipart.NewReader(msg.Body, params["boundary"])

	// Part 1: the alternative text and HTML bodies.
	alt, err := mixed.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	mt, altParams, err := mime.ParseMediaType(alt.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("first part %q: %v", mt, err)
	}
	bodies := multipart.NewReader(alt, altParams["boundary"])
	var got []string
	for _, want := range []string{"text/plain", "text/html"} {
		p, err := bodies.NextPart()
		if err != nil {
			t.Fatalf("%s part: %v", want, err)
		}
		if mt, ps, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); mt != want || ps["charset"] != "utf-8" {
			t.Errorf("part type %q %v, want %s; charset=utf-8", mt, ps, want)
		}
		b, err := io.ReadAll(p) // multipart decodes quoted-printable itself
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.ReplaceAll(string(b), "\r\n", "\n"))
	}
	if _, err := bodies.NextPart(); err != io.EOF {
		t.Errorf("a third alternative: %v", err)
	}
	if !strings.Contains(got[0], "> <b>not bold</b> and a long line word word") || !strings.Contains(got[0], "3. Drop the attached file ENG-space-sync.token") {
		t.Errorf("text body:\n%s", got[0])
	}
	if !strings.Contains(got[1], "&lt;b&gt;not bold&lt;/b&gt;") || strings.Contains(got[1], "<b>not bold") {
		t.Errorf("HTML body does not escape the message:\n%s", got[1])
	}

	// Part 2: the token, base64 wrapped at 76 columns.
	att, err := mixed.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if att.FileName() != "ENG-space-sync.token" || att.Header.Get("Content-Transfer-Encoding") != "base64" {
		t.Errorf("attachment %q, encoding %q", att.FileName(), att.Header.Get("Content-Transfer-Encoding"))
	}
	if mt, _, _ := mime.ParseMediaType(att.Header.Get("Content-Type")); mt != AttachmentType {
		t.Errorf("attachment type %q", mt)
	}
	enc, err := io.ReadAll(att)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(enc))
	lines := 0
	for sc.Scan() {
		lines++
		if l := strings.TrimSuffix(sc.Text(), "\r"); len(l) > 76 {
			t.Errorf("base64 line of %d characters", len(l))
		}
	}
	if lines < 2 {
		t.Errorf("the %d-byte token fits %d base64 line(s); want it wrapped", len(testToken), lines)
	}
	token, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(enc)))
	if err != nil || string(token) != testToken {
		t.Errorf("attachment decodes to %q, %v; want the token", token, err)
	}
	if _, err := mixed.NextPart(); err != io.EOF {
		t.Errorf("a third part: %v", err)
	}

	t.Run("OverwritesOnRetry", func(t *testing.T) {
		if _, err := o.Send(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("%d files in the outbox after sending the same email twice, want 1", len(entries))
		}
	})
	t.Run("ASCIISubjectNotEncoded", func(t *testing.T) {
		e := testEmail()
		e.ID = "plain-subject"
		res, err := o.Send(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(res.Path)
		msg, _ := netmail.ReadMessage(bytes.NewReader(raw))
		if got := msg.Header.Get("Subject"); got != "[Space Sync from example.atlassian.net] Your token for Engineering" {
			t.Errorf("Subject = %q", got)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		e := testEmail()
		e.ID = "injected"
		e.Subject = "Hi\r\nBcc: eve@example.com"
		if _, err := o.Send(context.Background(), e); err == nil {
			t.Fatal("injected subject written to the outbox")
		}
		if _, err := os.Stat(filepath.Join(dir, "injected.eml")); !os.IsNotExist(err) {
			t.Errorf("a refused email left a file: %v", err)
		}
	})
	t.Run("UnsafeIDGetsAFreshName", func(t *testing.T) {
		e := testEmail()
		e.ID = "../../escape"
		res, err := o.Send(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(res.Path) != dir || strings.Contains(res.Path, "escape") {
			t.Errorf("path %q escapes the outbox", res.Path)
		}
	})
}

func TestOutbox_Send_ErrUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := NewOutbox(OutboxConfig{Dir: filepath.Join(file, "outbox"), From: "a@spacesync.example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Send(context.Background(), testEmail()); err == nil {
		t.Fatal("Send into an impossible directory = nil error")
	} else if _, ok := IsTemporary(err); !ok {
		t.Errorf("error %v: want temporary", err)
	}
}
