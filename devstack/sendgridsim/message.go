package sendgridsim

import (
	"encoding/json"
	"strings"
	"time"
)

// Message is one accepted mail send request.
type Message struct {
	// ID is the X-Message-Id the send was answered with.
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"receivedAt"`
	From       Address   `json:"from"`
	ReplyTo    *Address  `json:"replyTo,omitempty"`
	// To lists the "to" recipients of every personalization, in order.
	To []Address `json:"to"`
	// Subject is the top-level subject, or the first personalization's.
	Subject string `json:"subject"`
	// Text and HTML are the text/plain and text/html content, if present.
	Text       string `json:"text,omitempty"`
	HTML       string `json:"html,omitempty"`
	TemplateID string `json:"templateId,omitempty"`
	// Personalizations are the envelopes SendGrid would send one mail each
	// for.
	Personalizations []Personalization `json:"personalizations"`
	Attachments      []Attachment      `json:"attachments"`
	// Headers are the top-level custom headers.
	Headers    map[string]string `json:"headers,omitempty"`
	Categories []string          `json:"categories,omitempty"`
	// Raw is the request body as received (after gzip decoding).
	Raw json.RawMessage `json:"raw,omitempty"`
}

// Address is an email address with an optional display name.
type Address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// String formats a as `Name <email>`, or the bare email without a name.
func (a Address) String() string {
	if a.Name == "" {
		return a.Email
	}
	return a.Name + " <" + a.Email + ">"
}

// Personalization is one envelope of a mail: its recipients and the fields
// it overrides.
type Personalization struct {
	To      []Address         `json:"to"`
	CC      []Address         `json:"cc,omitempty"`
	BCC     []Address         `json:"bcc,omitempty"`
	From    *Address          `json:"from,omitempty"`
	Subject string            `json:"subject,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Attachment is one attachment of a mail, with its content decoded.
type Attachment struct {
	Filename string `json:"filename"`
	// Type is the declared media type; empty when the request gave none.
	Type string `json:"type,omitempty"`
	// Disposition is "attachment" (the default) or "inline".
	Disposition string `json:"disposition"`
	ContentID   string `json:"contentId,omitempty"`
	// Content is the decoded bytes (base64 in JSON).
	Content []byte `json:"content"`
}

// size is roughly the memory m holds, for the store's cap.
func (m Message) size() int64 {
	n := int64(len(m.Raw) + len(m.Text) + len(m.HTML))
	for _, a := range m.Attachments {
		n += int64(len(a.Content))
	}
	return n
}

// buildMessage turns a validated request into a Message. attachments holds
// the decoded content of each attachment, in order.
func buildMessage(id string, at time.Time, req map[string]any, raw []byte, attachments [][]byte) Message {
	m := Message{
		ID:         id,
		ReceivedAt: at,
		From:       address(req["from"]),
		Subject:    str(req, "subject"),
		TemplateID: str(req, "template_id"),
		Headers:    stringMap(req["headers"]),
		Raw:        json.RawMessage(raw),
	}
	if _, ok := req["reply_to"]; ok {
		a := address(req["reply_to"])
		m.ReplyTo = &a
	}
	for _, c := range list(req["categories"]) {
		m.Categories = append(m.Categories, c.(string))
	}
	for _, p := range list(req["personalizations"]) {
		pm := p.(map[string]any)
		env := Personalization{
			To:      addresses(pm["to"]),
			CC:      addresses(pm["cc"]),
			BCC:     addresses(pm["bcc"]),
			Subject: str(pm, "subject"),
			Headers: stringMap(pm["headers"]),
		}
		if _, ok := pm["from"]; ok {
			a := address(pm["from"])
			env.From = &a
		}
		m.Personalizations = append(m.Personalizations, env)
		m.To = append(m.To, env.To...)
	}
	if m.Subject == "" && len(m.Personalizations) > 0 {
		m.Subject = m.Personalizations[0].Subject
	}
	for _, c := range list(req["content"]) {
		cm := c.(map[string]any)
		switch strings.ToLower(str(cm, "type")) {
		case "text/plain":
			m.Text = str(cm, "value")
		case "text/html":
			m.HTML = str(cm, "value")
		}
	}
	m.Attachments = []Attachment{}
	for i, a := range list(req["attachments"]) {
		am := a.(map[string]any)
		disp := str(am, "disposition")
		if disp == "" {
			disp = "attachment"
		}
		m.Attachments = append(m.Attachments, Attachment{
			Filename:    str(am, "filename"),
			Type:        str(am, "type"),
			Disposition: disp,
			ContentID:   str(am, "content_id"),
			Content:     attachments[i],
		})
	}
	return m
}

// str returns m[key] if it is a string, else "".
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// list returns v if it is a JSON array, else nil.
func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// stringMap converts a validated JSON object of strings; nil if absent.
func stringMap(v any) map[string]string {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(obj))
	for k, val := range obj {
		out[k], _ = val.(string)
	}
	return out
}

// address converts a validated email object.
func address(v any) Address {
	obj, _ := v.(map[string]any)
	return Address{Email: str(obj, "email"), Name: str(obj, "name")}
}

// addresses converts a validated array of email objects.
func addresses(v any) []Address {
	var out []Address
	for _, e := range list(v) {
		out = append(out, address(e))
	}
	return out
}
