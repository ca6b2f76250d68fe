package sendgridsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fieldError is one entry of SendGrid's error body. Field and Help are null
// for errors that concern the request as a whole.
type fieldError struct {
	Message string  `json:"message"`
	Field   *string `json:"field"`
	Help    *string `json:"help"`
}

// errorBody is SendGrid's error response: {"errors":[...]}.
type errorBody struct {
	Errors []fieldError `json:"errors"`
}

// Messages SendGrid answers with. Most are quoted from SendGrid's published
// error reference or from real responses; the few marked "sim" have no
// published wording and name the check plainly.
const (
	msgPersonalizationsRequired = "The personalizations field is required and must have at least one personalization."
	msgPersonalizationsLimit    = "The personalization block is limited to 1000 personalizations per API request. You have provided %d personalizations. Please consider splitting this into multiple requests and resending your request."
	msgRecipientsLimit          = "There is a limit of 1000 total recipients (to + cc + bcc) per request."
	msgToRequired               = "The to array is required for all personalization objects, and must have at least one email object with a valid email address."
	msgCcEmpty                  = `The %s array, when used, must at least have an email parameter with a valid email address and it may also contain a name parameter. e.g. {"email": "example@example.com"} or {"email": "example@example.com", "name": "Example Recipient"}`
	msgRecipientEmailRequired   = "The %s email parameter is required."
	msgInvalidAddress           = "Does not contain a valid address."
	msgAddressTooLong           = "The %s email exceeds the maximum total length of 320 characters"
	msgNameCRLF                 = "The %s name cannot contain CRLF characters." // sim
	msgDuplicateRecipient       = "Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [%s] in the %s field."
	msgFromRequired             = `The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.`
	msgFromInvalid              = "The from email does not contain a valid address."
	msgReplyToInvalid           = `The reply_to object, when used, must at least have an email parameter with a valid email address and it may also contain a name parameter. e.g. {"email": "example@example.com"} or {"email": "example@example.com", "name": "Example Recipient"}`
	msgSubjectEmpty             = "The subject of your email must be a string at least one character in length."
	msgSubjectRequired          = "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."
	msgSubjectCRLF              = "The subject cannot contain CRLF characters." // sim
	msgContentRequired          = "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."
	msgContentTypeRequired      = "A content type is required, this tells email clients how to display the email."
	msgContentTypeEmpty         = "Your content type must be a string with length of at least one character."
	msgContentTypeBad           = "Cannot contain ';', or CRLF characters."
	msgContentValueRequired     = "A content value is required, this is the content of the email you are sending."
	msgContentValueEmpty        = "The content value must be a string at least one character in length."
	msgContentOrder             = "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in your email: text/plain needs to be first, followed by text/html, followed by any other content."
	msgContentTwice             = "If present, text/plain and text/html may only be provided once."
	msgAttachmentContentEmpty   = "The attachment content must be a string at least one character in length."
	msgAttachmentNotBase64      = "The attachment content must be base64 encoded."
	msgFilenameRequired         = "filename is required."
	msgFilenameBad              = "The filename of your attachment cannot contain CRLF characters."
	msgAttachmentTypeEmpty      = "The attachment type must be a string and at least one character in length."
	msgAttachmentTypeBad        = "The type cannot contain ';', or CRLF characters."
	msgAttachmentTypeNotMIME    = "The attachment type must be a media type such as application/pdf." // sim
	msgDisposition              = `The disposition of your attachment can be either "inline" or "attachment". You provided %s.`
	msgContentIDBad             = "The content ID of your attachment cannot contain CRLF characters."
	msgContentIDRequired        = "The content_id parameter is required if the disposition is set to inline." // sim
	msgAttachmentsTooLarge      = "The total size of your attachments must not exceed %s."                    // sim
	msgHeaderValues             = "The header values must be strings."
	msgPersHeaderValues         = "All values of the headers object must be strings."
	msgHeaderDuplicate          = "The headers cannot contain duplicate keys."
	msgHeaderKey                = "Header keys cannot contain non-ASCII characters and empty spaces."
	msgHeaderReserved           = "Header can not be one of the reserved keys."
	msgPersHeaderReserved       = "Header cannot be one of the reserved keys."
	msgHeaderValueCRLF          = "The header values cannot contain CRLF characters." // sim
	msgCustomArgs               = "All values of custom arguments object must be strings"
	msgCustomArgsEmpty          = "custom_args cannot be empty."
	msgSubstitutions            = "The substitution values must be an object of key/value pairs, where the values are all strings."
	msgSections                 = "The section values must be strings."
	msgSendAtTooFar             = "Scheduling more than 72 hours in advance is forbidden."
	msgCategoriesLimit          = "There is a limit of 10 categories for each email that is sent. You provided %d categories."
	msgCategoryTooLong          = "Each category must not be longer than 255 characters. %s exceeds this limit"
	msgCategoryDuplicate        = "The categories must be a unique list, and you have included %s more than once."
	msgCategoryASCII            = "Categories can not contain non-ASCII characters."
	msgInvalidType              = "Invalid type. Expected: %s, given: %s."
	msgAdditionalProperty       = "Additional property %s is not allowed."
)

// reservedHeaders are the header names SendGrid sets itself (lower case).
var reservedHeaders = setOf(
	"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
	"content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
)

// helpBase prefixes the links SendGrid puts in "help".
const helpBase = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"

// helpTables are the fields (indexes stripped) that have a table in
// SendGrid's error reference; a field's help links the nearest one.
var helpTables = setOf(
	"personalizations.to", "personalizations.cc", "personalizations.bcc",
	"personalizations.custom_args", "personalizations.headers", "personalizations.send_at",
	"personalizations.subject", "personalizations.substitutions",
	"asm.group_id", "asm.groups_to_display",
	"attachments.content", "attachments.content_id", "attachments.disposition",
	"attachments.filename", "attachments.type",
	"batch_id", "categories", "content", "content.type", "content.value", "from", "headers",
	"ip_pool_name", "reply_to", "sections", "send_at", "subject", "template_id",
)

func setOf(keys ...string) map[string]bool {
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return set
}

// helpFor returns the help link SendGrid gives with an error on field, or
// nil. Like SendGrid, an error on a bare array element ("content.0") has no
// link.
func helpFor(field string) *string {
	segs := strings.Split(field, ".")
	var named []string
	for _, s := range segs {
		if !isIndex(s) {
			named = append(named, s)
		}
	}
	if len(named) == 1 && isIndex(segs[len(segs)-1]) {
		return nil
	}
	if len(named) == 1 && named[0] == "personalizations" {
		h := helpBase + "-Personalizations-Errors"
		return &h
	}
	for n := len(named); n > 0; n-- {
		key := strings.Join(named[:n], ".")
		if helpTables[key] {
			h := helpBase + "message." + key
			return &h
		}
	}
	if named[0] == "personalizations" {
		h := helpBase + "-Personalizations-Errors"
		return &h
	}
	return nil
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validation is the outcome of checking one request.
type validation struct {
	errs []fieldError
	// decoded holds each attachment's decoded content (nil where invalid).
	decoded [][]byte
	// sandbox is set when mail_settings.sandbox_mode.enable is true: SendGrid
	// then answers 200 and sends nothing.
	sandbox bool
}

// validator checks a decoded request in SendGrid's two passes: first the
// JSON schema (types, unknown properties), then, only if that passed, the
// rules between fields.
type validator struct {
	now            time.Time
	maxAttachments int64
	dups           map[string]bool
	validation
}

// validate checks req, a decoded request body; dups lists objects that
// repeated a key (see decodeJSON).
func validate(req map[string]any, dups map[string]bool, now time.Time, maxAttachments int64) validation {
	v := &validator{now: now, maxAttachments: maxAttachments, dups: dups}
	v.schema(req)
	if len(v.errs) > 0 {
		return v.validation
	}
	v.rules(req)
	return v.validation
}

// fail records an error on field, once per field and message.
func (v *validator) fail(field, msg string) {
	v.add(field, msg, helpFor(field))
}

// failNoHelp records an error without a help link, as SendGrid does for
// unknown properties.
func (v *validator) failNoHelp(field, msg string) {
	v.add(field, msg, nil)
}

func (v *validator) add(field, msg string, help *string) {
	for _, e := range v.errs {
		if *e.Field == field && e.Message == msg {
			return
		}
	}
	v.errs = append(v.errs, fieldError{Message: msg, Field: &field, Help: help})
}

// jsonType names a decoded value's type the way SendGrid's schema errors
// do.
func jsonType(val any) string {
	switch x := val.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, ok := integer(x); ok {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

// integer returns n as an int64 when it is a whole number in range.
func integer(n json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// want records a type error unless val has the wanted type.
func (v *validator) want(path string, val any, typ string) bool {
	if got := jsonType(val); got != typ {
		v.fail(path, fmt.Sprintf(msgInvalidType, typ, got))
		return false
	}
	return true
}

// object checks that val is an object whose keys are all known; check is
// called for each known key, in sorted order.
func (v *validator) object(path string, val any, known []string, check func(key, path string, val any)) {
	if !v.want(path, val, "object") {
		return
	}
	obj := val.(map[string]any)
	for _, k := range sortedKeys(obj) {
		if !slices.Contains(known, k) {
			v.failNoHelp(join(path, k), fmt.Sprintf(msgAdditionalProperty, k))
			continue
		}
		check(k, join(path, k), obj[k])
	}
}

// array checks that val is an array and calls each for its elements.
func (v *validator) array(path string, val any, each func(path string, val any)) {
	if !v.want(path, val, "array") {
		return
	}
	for i, e := range val.([]any) {
		each(join(path, strconv.Itoa(i)), e)
	}
}

// stringValues checks that val is an object of string values; msg is SendGrid's
// message for a non-string value.
func (v *validator) stringValues(path string, val any, msg string) {
	if !v.want(path, val, "object") {
		return
	}
	for _, x := range val.(map[string]any) {
		if _, ok := x.(string); !ok {
			v.fail(path, msg)
			return
		}
	}
}

// emailObject checks {"email": string, "name": string}.
func (v *validator) emailObject(path string, val any) {
	v.object(path, val, []string{"email", "name"}, func(_, p string, x any) {
		v.want(p, x, "string")
	})
}

// schema is the first pass: the shape of the request.
func (v *validator) schema(req map[string]any) {
	known := []string{
		"personalizations", "from", "reply_to", "reply_to_list", "subject", "content",
		"attachments", "template_id", "headers", "categories", "custom_args", "send_at",
		"batch_id", "asm", "ip_pool_name", "mail_settings", "tracking_settings", "sections",
	}
	v.object("", req, known, func(key, path string, val any) {
		switch key {
		case "personalizations":
			v.array(path, val, v.personalizationSchema)
		case "from", "reply_to":
			v.emailObject(path, val)
		case "reply_to_list":
			v.array(path, val, v.emailObject)
		case "subject", "template_id", "batch_id", "ip_pool_name":
			v.want(path, val, "string")
		case "content":
			v.array(path, val, func(p string, x any) {
				v.object(p, x, []string{"type", "value"}, func(_, pp string, y any) { v.want(pp, y, "string") })
			})
		case "attachments":
			v.array(path, val, func(p string, x any) {
				v.object(p, x, []string{"content", "type", "filename", "disposition", "content_id"},
					func(_, pp string, y any) { v.want(pp, y, "string") })
			})
		case "headers":
			v.stringValues(path, val, msgHeaderValues)
		case "categories":
			v.array(path, val, func(p string, x any) { v.want(p, x, "string") })
		case "custom_args":
			v.stringValues(path, val, msgCustomArgs)
		case "sections":
			v.stringValues(path, val, msgSections)
		case "send_at":
			v.want(path, val, "integer")
		case "asm":
			v.object(path, val, []string{"group_id", "groups_to_display"}, func(k, p string, x any) {
				if k == "group_id" {
					v.want(p, x, "integer")
					return
				}
				v.array(p, x, func(pp string, y any) { v.want(pp, y, "integer") })
			})
		case "mail_settings", "tracking_settings":
			v.settingsSchema(path, val)
		}
	})
}

// personalizationSchema checks one element of personalizations.
func (v *validator) personalizationSchema(path string, val any) {
	known := []string{"to", "cc", "bcc", "from", "subject", "headers", "substitutions",
		"dynamic_template_data", "custom_args", "send_at"}
	v.object(path, val, known, func(key, p string, x any) {
		switch key {
		case "to", "cc", "bcc":
			v.array(p, x, v.emailObject)
		case "from":
			v.emailObject(p, x)
		case "subject":
			v.want(p, x, "string")
		case "headers":
			v.stringValues(p, x, msgPersHeaderValues)
		case "substitutions":
			v.stringValues(p, x, msgSubstitutions)
		case "custom_args":
			v.stringValues(p, x, msgCustomArgs)
		case "dynamic_template_data":
			v.want(p, x, "object")
		case "send_at":
			v.want(p, x, "integer")
		}
	})
}

// settingsSchema checks mail_settings and tracking_settings: objects of
// objects whose "enable" flags are booleans.
func (v *validator) settingsSchema(path string, val any) {
	if !v.want(path, val, "object") {
		return
	}
	obj := val.(map[string]any)
	for _, k := range sortedKeys(obj) {
		p := join(path, k)
		if !v.want(p, obj[k], "object") {
			continue
		}
		if e, ok := obj[k].(map[string]any)["enable"]; ok {
			v.want(join(p, "enable"), e, "boolean")
		}
	}
}

// rules is the second pass: what SendGrid checks between and inside fields
// once the shape is right.
func (v *validator) rules(req map[string]any) {
	hasTemplate := str(req, "template_id") != ""
	ps := list(req["personalizations"])
	v.personalizations(ps)
	v.from("from", req["from"], "From")
	v.replyTo(req)
	v.subject(req, ps, hasTemplate)
	v.content(list(req["content"]), hasTemplate)
	v.checkAttachments(list(req["attachments"]))
	if h, ok := req["headers"]; ok {
		v.headers("headers", h, msgHeaderReserved)
	}
	v.categories(list(req["categories"]))
	v.sendAt("send_at", req["send_at"])
	if ms, ok := req["mail_settings"].(map[string]any); ok {
		if sb, ok := ms["sandbox_mode"].(map[string]any); ok {
			v.sandbox, _ = sb["enable"].(bool)
		}
	}
}

func (v *validator) personalizations(ps []any) {
	if len(ps) == 0 {
		v.fail("personalizations", msgPersonalizationsRequired)
		return
	}
	if len(ps) > 1000 {
		v.fail("personalizations", fmt.Sprintf(msgPersonalizationsLimit, len(ps)))
		return
	}
	total := 0
	for i, p := range ps {
		pm := p.(map[string]any)
		base := join("personalizations", strconv.Itoa(i))
		if len(list(pm["to"])) == 0 {
			v.fail(join(base, "to"), msgToRequired)
		}
		seen := map[string]bool{}
		duplicate := false
		for _, kind := range []string{"to", "cc", "bcc"} {
			raw, present := pm[kind]
			rcpts := list(raw)
			if present && len(rcpts) == 0 && kind != "to" {
				v.fail(join(base, kind), fmt.Sprintf(msgCcEmpty, kind))
			}
			total += len(rcpts)
			for j, r := range rcpts {
				addr := v.recipient(join(join(base, kind), strconv.Itoa(j)), kind, r.(map[string]any))
				if addr == "" {
					continue
				}
				key := strings.ToLower(addr)
				if seen[key] && !duplicate {
					v.fail(base, fmt.Sprintf(msgDuplicateRecipient, addr, join(base, kind)))
					duplicate = true
				}
				seen[key] = true
			}
		}
		if f, ok := pm["from"]; ok {
			v.from(join(base, "from"), f, "From")
		}
		if s, ok := pm["subject"].(string); ok {
			v.subjectValue(join(base, "subject"), s)
		}
		if h, ok := pm["headers"]; ok {
			v.headers(join(base, "headers"), h, msgPersHeaderReserved)
		}
		if ca, ok := pm["custom_args"].(map[string]any); ok && len(ca) == 0 {
			v.fail(join(base, "custom_args"), msgCustomArgsEmpty)
		}
		v.sendAt(join(base, "send_at"), pm["send_at"])
	}
	if total > 1000 {
		v.fail("personalizations", msgRecipientsLimit)
	}
}

// recipient checks one to/cc/bcc entry and returns its address when valid.
func (v *validator) recipient(path, kind string, r map[string]any) string {
	email := str(r, "email")
	switch {
	case email == "":
		v.fail(join(path, "email"), fmt.Sprintf(msgRecipientEmailRequired, kind))
		return ""
	case len(email) > maxAddressLen:
		v.fail(join(path, "email"), fmt.Sprintf(msgAddressTooLong, map[string]string{"to": "To", "cc": "CC", "bcc": "BCC"}[kind]))
		return ""
	case !validAddress(email):
		v.fail(join(path, "email"), msgInvalidAddress)
		return ""
	}
	if hasCRLF(str(r, "name")) {
		v.fail(join(path, "name"), fmt.Sprintf(msgNameCRLF, kind))
	}
	return email
}

// from checks a from object (top level or in a personalization).
func (v *validator) from(path string, val any, title string) {
	f, _ := val.(map[string]any)
	email := str(f, "email")
	switch {
	case email == "":
		v.fail(join(path, "email"), msgFromRequired)
	case len(email) > maxAddressLen:
		v.fail(join(path, "email"), fmt.Sprintf(msgAddressTooLong, title))
	case !validAddress(email):
		v.fail(join(path, "email"), msgFromInvalid)
	}
	if hasCRLF(str(f, "name")) {
		v.fail(join(path, "name"), fmt.Sprintf(msgNameCRLF, "from"))
	}
}

func (v *validator) replyTo(req map[string]any) {
	check := func(path string, val any) {
		r, _ := val.(map[string]any)
		email := str(r, "email")
		switch {
		case len(email) > maxAddressLen:
			v.fail(join(path, "email"), fmt.Sprintf(msgAddressTooLong, "Reply-To"))
		case !validAddress(email):
			v.fail(join(path, "email"), msgReplyToInvalid)
		}
		if hasCRLF(str(r, "name")) {
			v.fail(join(path, "name"), fmt.Sprintf(msgNameCRLF, "reply_to"))
		}
	}
	if r, ok := req["reply_to"]; ok {
		check("reply_to", r)
	}
	for i, r := range list(req["reply_to_list"]) {
		check(join("reply_to_list", strconv.Itoa(i)), r)
	}
}

// subject checks the top-level subject and that every personalization has
// one when there is none (unless a template provides it).
func (v *validator) subject(req map[string]any, ps []any, hasTemplate bool) {
	if s, ok := req["subject"].(string); ok {
		v.subjectValue("subject", s)
		return
	}
	if hasTemplate || len(ps) == 0 {
		return
	}
	for _, p := range ps {
		if str(p.(map[string]any), "subject") == "" {
			v.fail("subject", msgSubjectRequired)
			return
		}
	}
}

func (v *validator) subjectValue(path, s string) {
	switch {
	case s == "":
		v.fail(path, msgSubjectEmpty)
	case hasCRLF(s):
		v.fail(path, msgSubjectCRLF)
	}
}

func (v *validator) content(cs []any, hasTemplate bool) {
	if len(cs) == 0 {
		if !hasTemplate {
			v.fail("content", msgContentRequired)
		}
		return
	}
	plain, html := -1, -1
	twice := false
	for i, c := range cs {
		cm := c.(map[string]any)
		base := join("content", strconv.Itoa(i))
		typ, hasType := cm["type"].(string)
		switch {
		case !hasType:
			v.fail(join(base, "type"), msgContentTypeRequired)
		case typ == "":
			v.fail(join(base, "type"), msgContentTypeEmpty)
		case strings.ContainsAny(typ, ";\r\n"):
			v.fail(join(base, "type"), msgContentTypeBad)
		}
		if val, ok := cm["value"].(string); !ok {
			v.fail(join(base, "value"), msgContentValueRequired)
		} else if val == "" {
			v.fail(join(base, "value"), msgContentValueEmpty)
		}
		switch strings.ToLower(typ) {
		case "text/plain":
			twice = twice || plain >= 0
			if plain < 0 {
				plain = i
			}
		case "text/html":
			twice = twice || html >= 0
			if html < 0 {
				html = i
			}
		}
	}
	switch {
	case twice:
		v.fail("content", msgContentTwice)
	case plain > 0, html >= 0 && plain >= 0 && html != 1, html >= 0 && plain < 0 && html != 0:
		v.fail("content", msgContentOrder)
	}
}

func (v *validator) checkAttachments(as []any) {
	var total int64
	for i, a := range as {
		am := a.(map[string]any)
		base := join("attachments", strconv.Itoa(i))
		var data []byte
		content, ok := am["content"].(string)
		if !ok || content == "" {
			v.fail(join(base, "content"), msgAttachmentContentEmpty)
		} else if d, err := decodeBase64(content); err != nil {
			v.fail(join(base, "content"), msgAttachmentNotBase64)
		} else {
			data = d
			total += int64(len(d))
		}
		v.decoded = append(v.decoded, data)

		filename := str(am, "filename")
		switch {
		case filename == "":
			v.fail(join(base, "filename"), msgFilenameRequired)
		case strings.ContainsAny(filename, ";,\r\n"):
			v.fail(join(base, "filename"), msgFilenameBad)
		}
		if typ, ok := am["type"].(string); ok {
			switch {
			case typ == "":
				v.fail(join(base, "type"), msgAttachmentTypeEmpty)
			case strings.ContainsAny(typ, ";,\r\n"):
				v.fail(join(base, "type"), msgAttachmentTypeBad)
			case !isMediaType(typ):
				v.fail(join(base, "type"), msgAttachmentTypeNotMIME)
			}
		}
		disposition := "attachment"
		if d, ok := am["disposition"].(string); ok {
			disposition = d
			if d != "attachment" && d != "inline" {
				v.fail(join(base, "disposition"), fmt.Sprintf(msgDisposition, d))
			}
		}
		cid, hasCID := am["content_id"].(string)
		switch {
		case hasCID && strings.ContainsAny(cid, ";,\r\n"):
			v.fail(join(base, "content_id"), msgContentIDBad)
		case disposition == "inline" && cid == "":
			v.fail(join(base, "content_id"), msgContentIDRequired)
		}
	}
	if total > v.maxAttachments {
		v.fail("attachments", fmt.Sprintf(msgAttachmentsTooLarge, sizeLimitText(v.maxAttachments)))
	}
}

// sizeLimitText prints a byte limit: "30 MB", or "1.0 KB" for odd sizes.
func sizeLimitText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MB"
	}
	return formatSize(int(n))
}

// decodeBase64 decodes standard, padded base64 and refuses anything else,
// line breaks included (Go's decoder would skip them; SendGrid does not).
func decodeBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, base64.CorruptInputError(i)
		}
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// isMediaType reports whether s is a bare "type/subtype" of RFC 2045 tokens.
func isMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && isToken(typ) && isToken(sub)
}

// isToken reports whether s is a non-empty RFC 7230 token, the syntax of
// header names and media type parts.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// headers checks custom headers: token names, not reserved, no duplicates
// (exact or by case), values on one line.
func (v *validator) headers(path string, val any, reservedMsg string) {
	h, ok := val.(map[string]any)
	if !ok {
		return
	}
	if v.dups[path] {
		v.fail(path, msgHeaderDuplicate)
	}
	seen := map[string]bool{}
	for _, k := range sortedKeys(h) {
		lower := strings.ToLower(k)
		switch {
		case !isToken(k):
			v.fail(path, msgHeaderKey)
		case reservedHeaders[lower]:
			v.fail(path, reservedMsg)
		}
		if seen[lower] {
			v.fail(path, msgHeaderDuplicate)
		}
		seen[lower] = true
		if s, _ := h[k].(string); hasCRLF(s) {
			v.fail(path, msgHeaderValueCRLF)
		}
	}
}

func (v *validator) categories(cs []any) {
	if len(cs) > 10 {
		v.fail("categories", fmt.Sprintf(msgCategoriesLimit, len(cs)))
	}
	seen := map[string]bool{}
	for _, c := range cs {
		s := c.(string)
		switch {
		case len(s) > 255:
			v.fail("categories", fmt.Sprintf(msgCategoryTooLong, s))
		case strings.IndexFunc(s, func(r rune) bool { return r > 127 }) >= 0:
			v.fail("categories", msgCategoryASCII)
		}
		if seen[s] {
			v.fail("categories", fmt.Sprintf(msgCategoryDuplicate, s))
		}
		seen[s] = true
	}
}

// sendAt refuses schedules more than 72 hours ahead; SendGrid sends past
// times at once.
func (v *validator) sendAt(path string, val any) {
	n, ok := val.(json.Number)
	if !ok {
		return
	}
	at, _ := integer(n)
	if at > v.now.Add(72*time.Hour).Unix() {
		v.fail(path, msgSendAtTooFar)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
