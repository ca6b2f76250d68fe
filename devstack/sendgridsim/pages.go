package sendgridsim

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// pageCSP keeps the pages inert: no scripts anywhere, and mail HTML (shown
// in a sandboxed srcdoc iframe, which inherits this policy) can load nothing
// but inline styles and data: images.
const pageCSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// pages holds the parsed templates and the stylesheet's hashed name.
type pages struct {
	list, message, errPage *template.Template
	cssName                string
}

func newPages() *pages {
	sum := sha256.Sum256(styleCSS)
	parse := func(page string) *template.Template {
		// The templates are embedded: a parse error is a build defect that
		// TestPages_Templates catches, not a runtime condition.
		return template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+page))
	}
	return &pages{
		list:    parse("list.html"),
		message: parse("message.html"),
		errPage: parse("error.html"),
		cssName: "style." + hex.EncodeToString(sum[:8]) + ".css",
	}
}

// pageBase is what the layout needs.
type pageBase struct {
	Title string
	CSS   string
}

// listPage is the view of GET /.
type listPage struct {
	pageBase
	// Plan describes pending induced failures and the delay, if any.
	Plan string
	Rows []listRow
}

type listRow struct {
	ID, URL               string
	ReceivedISO, Received string
	From, To, Subject     string
	Attachments           int
}

// messagePage is the view of GET /messages/{id}.
type messagePage struct {
	pageBase
	ID, Subject, From, ReplyTo string
	ReceivedISO, Received      string
	TemplateID                 string
	Categories                 []string
	Envelopes                  []envelopeView
	Attachments                []attachmentView
	Text, HTML                 string
	Headers                    []headerView
	RawURL                     string
}

type envelopeView struct {
	To, CC, BCC, From, Subject string
	Headers                    []headerView
}

type attachmentView struct {
	Filename, Type, Disposition, ContentID string
	Size, URL                              string
}

type headerView struct{ Name, Value string }

// errorPage is the view of a page that could not be shown.
type errorPage struct {
	pageBase
	Heading, Text string
}

func (s *Sim) base(title string) pageBase {
	return pageBase{Title: title, CSS: "/static/" + s.pages.cssName}
}

// handleList is GET /: the mails, newest first.
func (s *Sim) handleList(w http.ResponseWriter, r *http.Request) {
	msgs := s.Messages()
	view := listPage{pageBase: s.base("Mail"), Plan: s.planText()}
	for _, m := range slices.Backward(msgs) {
		view.Rows = append(view.Rows, listRow{
			ID:          m.ID,
			URL:         messageURL(m.ID),
			ReceivedISO: m.ReceivedAt.UTC().Format(time.RFC3339),
			Received:    formatTime(m.ReceivedAt),
			From:        m.From.String(),
			To:          joinAddresses(m.To),
			Subject:     subjectOrPlaceholder(m.Subject),
			Attachments: len(m.Attachments),
		})
	}
	s.render(w, http.StatusOK, s.pages.list, view)
}

// planText describes what FailNext and SetDelay set up, for the list page.
func (s *Sim) planText() string {
	plan, delay, late := s.status()
	var parts []string
	if plan.remaining > 0 {
		sends := "sends answer"
		if plan.remaining == 1 {
			sends = "send answers"
		}
		parts = append(parts, fmt.Sprintf("The next %d %s %d %s.", plan.remaining, sends, plan.status, http.StatusText(plan.status)))
	}
	if delay > 0 {
		parts = append(parts, fmt.Sprintf("Sends are answered after %s.", delay))
	}
	if late > 0 {
		parts = append(parts, fmt.Sprintf("Accepted mail is kept at once but answered after %s.", late))
	}
	return strings.Join(parts, " ")
}

// handleMessage is GET /messages/{id}.
func (s *Sim) handleMessage(w http.ResponseWriter, r *http.Request) {
	m, ok := s.Message(r.PathValue("id"))
	if !ok {
		s.notFound(w, "There is no mail with this ID. The simulator keeps mail in memory only.")
		return
	}
	view := messagePage{
		pageBase:    s.base(subjectOrPlaceholder(m.Subject)),
		ID:          m.ID,
		Subject:     subjectOrPlaceholder(m.Subject),
		From:        m.From.String(),
		ReceivedISO: m.ReceivedAt.UTC().Format(time.RFC3339),
		Received:    formatTime(m.ReceivedAt),
		TemplateID:  m.TemplateID,
		Categories:  m.Categories,
		Text:        m.Text,
		HTML:        m.HTML,
		Headers:     headerViews(m.Headers),
		RawURL:      messageURL(m.ID) + "/raw",
	}
	if m.ReplyTo != nil {
		view.ReplyTo = m.ReplyTo.String()
	}
	for _, p := range m.Personalizations {
		env := envelopeView{
			To:      joinAddresses(p.To),
			CC:      joinAddresses(p.CC),
			BCC:     joinAddresses(p.BCC),
			Headers: headerViews(p.Headers),
		}
		if p.From != nil {
			env.From = p.From.String()
		}
		if p.Subject != m.Subject {
			env.Subject = p.Subject
		}
		view.Envelopes = append(view.Envelopes, env)
	}
	for i, a := range m.Attachments {
		view.Attachments = append(view.Attachments, attachmentView{
			Filename:    a.Filename,
			Type:        a.Type,
			Disposition: a.Disposition,
			ContentID:   a.ContentID,
			Size:        formatSize(len(a.Content)),
			URL:         messageURL(m.ID) + "/attachments/" + strconv.Itoa(i),
		})
	}
	s.render(w, http.StatusOK, s.pages.message, view)
}

// handleAttachment is GET /messages/{id}/attachments/{n}: the decoded file,
// always as a download and never rendered, whatever type it declares.
func (s *Sim) handleAttachment(w http.ResponseWriter, r *http.Request) {
	m, ok := s.Message(r.PathValue("id"))
	n, err := strconv.Atoi(r.PathValue("n"))
	if !ok || err != nil || n < 0 || n >= len(m.Attachments) {
		s.notFound(w, "There is no such attachment.")
		return
	}
	a := m.Attachments[n]
	disposition := mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename})
	if disposition == "" {
		disposition = "attachment"
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Length", strconv.Itoa(len(a.Content)))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(a.Content)
}

// handleRaw is GET /messages/{id}/raw: the request body as received.
func (s *Sim) handleRaw(w http.ResponseWriter, r *http.Request) {
	m, ok := s.Message(r.PathValue("id"))
	if !ok {
		s.notFound(w, "There is no mail with this ID.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(m.Raw)
}

// handleStatic serves the stylesheet under its content-hashed name, so it
// can be cached for good.
func (s *Sim) handleStatic(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("file") != s.pages.cssName {
		s.notFound(w, "There is no such file.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(styleCSS)
}

// handleNotFound answers every path no route claims.
func (s *Sim) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.notFound(w, "There is no page at this address.")
}

func (s *Sim) notFound(w http.ResponseWriter, text string) {
	s.render(w, http.StatusNotFound, s.pages.errPage,
		errorPage{pageBase: s.base("Not found"), Heading: "Not found", Text: text})
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 instead of half a page.
func (s *Sim) render(w http.ResponseWriter, status int, t *template.Template, view any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", view); err != nil {
		s.log.Error("rendering a page", "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func messageURL(id string) string { return "/messages/" + url.PathEscape(id) }

func subjectOrPlaceholder(s string) string {
	if s == "" {
		return "(no subject)"
	}
	return s
}

func joinAddresses(as []Address) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

func headerViews(h map[string]string) []headerView {
	var out []headerView
	for _, k := range slices.Sorted(maps.Keys(h)) {
		out = append(out, headerView{Name: k, Value: h[k]})
	}
	return out
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// formatSize prints a byte count for people: "512 B", "1.5 KB", "2.0 MB".
func formatSize(n int) string {
	switch {
	case n < 1024:
		return strconv.Itoa(n) + " B"
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/(1024*1024))
	}
}
