package token

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// The protected header is read here, without go-jose, for two reasons: the
// allow-list must be checked before go-jose sees the input, and dc-app reads
// every uploaded file, so the header read must be cheap (no reflection, one
// stack buffer, no allocation on success beyond the strings it returns).

// maxHeaderJSON caps the decoded protected header. Ours are about 250 bytes.
const maxHeaderJSON = 1024

// maxHeaderSegment is the longest header segment that fits maxHeaderJSON.
const maxHeaderSegment = maxHeaderJSON / 3 * 4

// Segment lengths, in base64url characters, fixed by A256KW and A256GCM.
const (
	wrappedKeyChars = 54 // a 256-bit CEK wrapped by A256KW: 40 bytes
	ivChars         = 16 // a 96-bit GCM nonce: 12 bytes
	tagChars        = 22 // a 128-bit GCM tag: 16 bytes
)

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are not ours.
const maxNumericDate = 253402300799

// span is a [start, end) range of a buffer.
type span struct{ start, end int }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// header is a parsed protected header; its strings are spans of the buffer
// it was parsed from.
type header struct {
	kid, iss, jti span
	iat, exp, ver int64
}

// Members of the protected header, as bits, so duplicates are caught.
const (
	memberAlg = 1 << iota
	memberEnc
	memberTyp
	memberKid
	memberIss
	memberJti
	memberIat
	memberExp
	memberVer
)

// readHeader decodes the header segment of c into buf and checks it, in the
// order of DESIGN section 4: the allow-list (alg, enc, typ, ver, no other
// member, no zip), the replicated claims' form and lifetime, then the
// lengths of the other segments, which A256KW and A256GCM fix. It does no
// key work and does not look at the clock.
func readHeader(c *compact, buf []byte) (header, error) {
	seg := c.seg(0)
	if len(seg) > maxHeaderSegment || decodedLen(seg) > len(buf) {
		return header{}, errInvalid("its header is too large")
	}
	// seg is canonical base64url (normalize checked), so this cannot fail.
	n, err := base64.RawURLEncoding.Decode(buf, seg)
	if err != nil {
		return header{}, errInvalid("its header is not readable")
	}
	buf = buf[:n]
	h, err := parseHeader(buf)
	if err != nil {
		return header{}, err
	}
	if !validKeyID(h.kid.of(buf)) {
		return header{}, errInvalid("its key id is malformed")
	}
	if !validTokenID(h.jti.of(buf)) {
		return header{}, errInvalid("its id is malformed")
	}
	if h.iss.start == h.iss.end {
		return header{}, errInvalid("its issuer is empty")
	}
	if err := checkLifetime(h.iat, h.exp); err != nil {
		return header{}, err
	}
	if len(c.seg(1)) != wrappedKeyChars || len(c.seg(2)) != ivChars || len(c.seg(3)) < 2 || len(c.seg(4)) != tagChars {
		return header{}, errInvalid("it is damaged or cut short (a part has the wrong length)")
	}
	return h, nil
}

// checkLifetime checks iat and exp for form: positive dates, and exp after
// iat by at most Lifetime.
func checkLifetime(iat, exp int64) error {
	switch {
	case iat <= 0 || iat > maxNumericDate || exp <= 0 || exp > maxNumericDate:
		return errInvalid("its dates are out of range")
	case exp <= iat:
		return errInvalid("it expires before it was issued")
	case exp-iat > int64(Lifetime/time.Second):
		return errInvalid("it claims to be valid for longer than 7 days")
	}
	return nil
}

// parseHeader parses the protected header JSON in b strictly: one object,
// only allowed members, each once, with the expected types. Escaped strings
// are decoded in place, which is why b is writable.
func parseHeader(b []byte) (header, error) {
	var h header
	p := parser{b: b}
	p.space()
	if !p.eat('{') {
		return h, errInvalid("its header is not a JSON object")
	}
	seen := 0
	p.space()
	if !p.eat('}') {
		for {
			name, ok := p.name()
			if !ok {
				return h, errInvalid("its header is not well-formed JSON, or escapes a member name")
			}
			p.space()
			if !p.eat(':') {
				return h, errInvalid("its header is not well-formed JSON")
			}
			p.space()
			bit, err := p.member(&h, name)
			if err != nil {
				return h, err
			}
			if seen&bit != 0 {
				return h, errInvalid("its header repeats " + strconv.Quote(string(name)))
			}
			seen |= bit
			p.space()
			if p.eat(',') {
				p.space()
				continue
			}
			if p.eat('}') {
				break
			}
			return h, errInvalid("its header is not well-formed JSON")
		}
	}
	p.space()
	if p.i != len(p.b) {
		return h, errInvalid("its header has data after the JSON object")
	}
	switch {
	case seen&memberAlg == 0 || seen&memberEnc == 0:
		return h, errUnsupported("does not name its encryption algorithms")
	case seen&memberTyp == 0:
		return h, errUnsupported("has no type")
	case seen&memberVer == 0:
		return h, errUnsupported("has no format version")
	case seen&memberKid == 0:
		return h, errInvalid("its header has no key id")
	case seen&memberIss == 0:
		return h, errInvalid("its header has no issuer")
	case seen&memberJti == 0:
		return h, errInvalid("its header has no id")
	case seen&memberIat == 0 || seen&memberExp == 0:
		return h, errInvalid("its header has no issue or expiry date")
	}
	return h, nil
}

// member parses the value of the member called name into h and returns the
// member's bit. Members outside the allow-list are refused before their
// value is looked at.
func (p *parser) member(h *header, name []byte) (int, error) {
	switch string(name) {
	case "alg":
		v, err := p.stringValue()
		if err != nil {
			return 0, err
		}
		if string(v.of(p.b)) != "A256KW" {
			return 0, errUnsupported("uses key management algorithm " + quote(v.of(p.b)))
		}
		return memberAlg, nil
	case "enc":
		v, err := p.stringValue()
		if err != nil {
			return 0, err
		}
		if string(v.of(p.b)) != "A256GCM" {
			return 0, errUnsupported("uses content encryption " + quote(v.of(p.b)))
		}
		return memberEnc, nil
	case "typ":
		v, err := p.stringValue()
		if err != nil {
			return 0, err
		}
		if string(v.of(p.b)) != Type {
			return 0, errUnsupported("has type " + quote(v.of(p.b)))
		}
		return memberTyp, nil
	case "kid":
		v, err := p.stringValue()
		h.kid = v
		return memberKid, err
	case "iss":
		v, err := p.stringValue()
		h.iss = v
		return memberIss, err
	case "jti":
		v, err := p.stringValue()
		h.jti = v
		return memberJti, err
	case "iat":
		v, err := p.numberValue()
		h.iat = v
		return memberIat, err
	case "exp":
		v, err := p.numberValue()
		h.exp = v
		return memberExp, err
	case "ver":
		v, err := p.numberValue()
		if err != nil {
			return 0, err
		}
		if v != Version {
			return 0, errUnsupportedVersion(v)
		}
		h.ver = v
		return memberVer, nil
	case "zip":
		return 0, errUnsupported("is compressed")
	case "cty":
		return 0, errUnsupported("declares a content type")
	case "crit":
		return 0, errUnsupported("requires header extensions")
	}
	return 0, errUnsupported("has the header parameter " + quote(name))
}

// parser is a minimal strict JSON reader for one flat object.
type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(ch byte) bool {
	if p.i < len(p.b) && p.b[p.i] == ch {
		p.i++
		return true
	}
	return false
}

// name reads a member name. Names are plain: an escaped name (such as
// "\u0061lg") is refused rather than decoded, so that no other JSON reader
// can see a different name than this one.
func (p *parser) name() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		ch := p.b[p.i]
		if ch == '"' {
			p.i++
			return p.b[start : p.i-1], true
		}
		if ch == '\\' || ch < 0x20 || ch >= utf8.RuneSelf {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *parser) stringValue() (span, error) {
	if !p.eat('"') {
		return span{}, errInvalid("its header has a value of the wrong type")
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		// Skip plain ASCII (nearly every byte of a header) one lookup at a
		// time; stop at a quote, a backslash, a control or a non-ASCII byte.
		for p.i < len(p.b) && strClass[p.b[p.i]] == strPlain {
			p.i++
		}
		if p.i == len(p.b) {
			break
		}
		switch ch := p.b[p.i]; {
		case ch == '"':
			s := span{start, p.i}
			p.i++
			if !ascii && !utf8.Valid(s.of(p.b)) {
				return span{}, errInvalid("its header is not valid UTF-8")
			}
			return s, nil
		case ch == '\\':
			return p.escapedString(start)
		case ch < 0x20:
			return span{}, errInvalid("its header is not well-formed JSON")
		}
		ascii = false
		p.i++
	}
	return span{}, errInvalid("its header is not well-formed JSON")
}

// strClass classifies bytes inside a JSON string for stringValue: strPlain
// for printable ASCII other than '"' and '\\', strStop for everything else
// (the quote, the backslash, controls and non-ASCII bytes).
var strClass = func() (t [256]byte) {
	for i := range t {
		if i < 0x20 || i >= 0x80 || i == '"' || i == '\\' {
			t[i] = strStop
		}
	}
	return t
}()

const (
	strPlain = 0
	strStop  = 1
)

// escapedString continues stringValue from the first backslash, decoding
// the string in place: a decoded escape is never longer than its source.
func (p *parser) escapedString(start int) (span, error) {
	bad := errInvalid("its header is not well-formed JSON")
	w := p.i
	for p.i < len(p.b) {
		ch := p.b[p.i]
		switch {
		case ch == '"':
			p.i++
			s := span{start, w}
			if !utf8.Valid(s.of(p.b)) {
				return span{}, errInvalid("its header is not valid UTF-8")
			}
			return s, nil
		case ch < 0x20:
			return span{}, bad
		case ch != '\\':
			p.b[w] = ch
			w++
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return span{}, bad
		}
		esc := p.b[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			p.b[w] = esc
		case 'b':
			p.b[w] = '\b'
		case 'f':
			p.b[w] = '\f'
		case 'n':
			p.b[w] = '\n'
		case 'r':
			p.b[w] = '\r'
		case 't':
			p.b[w] = '\t'
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return span{}, bad
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one is a
				// character; a lone surrogate is refused, not replaced.
				if r >= 0xDC00 || !p.eat('\\') || !p.eat('u') {
					return span{}, bad
				}
				lo, ok := p.hex4()
				if !ok {
					return span{}, bad
				}
				if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
					return span{}, bad
				}
			}
			w += utf8.EncodeRune(p.b[w:], r)
			continue
		default:
			return span{}, bad
		}
		w++
	}
	return span{}, bad
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, ch := range p.b[p.i : p.i+4] {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, true
}

// numberValue reads a non-negative whole number of at most 15 digits. JSON
// allows fractions and exponents; a space token's dates and version never
// have them.
func (p *parser) numberValue() (int64, error) {
	var v int64
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 15 || digits > 1 && p.b[start] == '0' {
		return 0, errInvalid("its header has a value of the wrong type")
	}
	if p.i < len(p.b) {
		if ch := p.b[p.i]; ch == '.' || ch == 'e' || ch == 'E' {
			return 0, errInvalid("its header has a date or version that is not a whole number")
		}
	}
	return v, nil
}

// validTokenID reports whether s is an acceptable jti: 16 to 64 URL-safe
// characters (NewID makes 22).
func validTokenID[S string | []byte](s S) bool {
	return len(s) >= 16 && len(s) <= 64 && allBase64(s)
}

// allBase64 reports whether s holds only base64url characters.
func allBase64[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if b64Value(s[i]) < 0 {
			return false
		}
	}
	return true
}

// HeaderReader reads a token's protected header without any key: this is
// what dc-app does before asking cloud-app for a preview. The header is
// only integrity-protected for the key holder, so a Header is a hint; its
// use is to refuse early and cheaply, and to know which trusted cloud-app
// to ask.
//
// A HeaderReader is safe for concurrent use if its fields are not changed.
type HeaderReader struct {
	// TrustedIssuers are the cloud-app base URLs whose tokens are read
	// (DC_APP_TRUSTED_CLOUD_URLS). A token's `iss` must equal one of them on
	// scheme, host, port and path; see SameBaseURL.
	TrustedIssuers []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on `iat` and `exp`; zero or less
	// means DefaultLeeway.
	Leeway time.Duration
}

// Read checks raw, the contents of a token file, and returns the claims
// replicated in its header. In order it refuses:
//
//   - payload_too_large: raw is over MaxUploadSize;
//   - invalid_token: not one compact JWE of at most MaxTokenSize (see
//     Normalize), a header that is not strict JSON, a malformed or missing
//     kid, iss, jti, iat or exp, a lifetime over 7 days, or segments of the
//     wrong length for A256KW and A256GCM;
//   - unsupported_token: a header outside the allow-list (alg A256KW, enc
//     A256GCM, typ Type, ver Version, and no other member: no zip, cty,
//     crit, p2c, ...), checked as the header is parsed;
//   - untrusted_issuer: iss not in TrustedIssuers;
//   - token_not_yet_valid: iat later than now plus Leeway;
//   - token_expired: exp not later than now minus Leeway.
//
// Read does not check that the jti is new; the caller does.
func (r *HeaderReader) Read(raw []byte) (Header, error) {
	c, err := normalize(raw)
	if err != nil {
		return Header{}, err
	}
	var buf [maxHeaderJSON]byte
	h, err := readHeader(&c, buf[:])
	if err != nil {
		return Header{}, err
	}
	js := buf[:]
	iss := string(h.iss.of(js))
	if !trusted(iss, r.TrustedIssuers) {
		return Header{}, errUntrustedIssuer(iss)
	}
	now, leeway := clock(r.Now, r.Leeway)
	if err := checkTimes(now, leeway, h.iat, h.iat, h.exp); err != nil {
		return Header{}, err
	}
	return Header{
		KeyID:    string(h.kid.of(js)),
		Issuer:   iss,
		ID:       string(h.jti.of(js)),
		IssuedAt: time.Unix(h.iat, 0).UTC(),
		Expiry:   time.Unix(h.exp, 0).UTC(),
		Version:  int(h.ver),
	}, nil
}

// trusted reports whether iss is one of the trusted base URLs.
func trusted(iss string, list []string) bool {
	for _, t := range list {
		if iss == t {
			return true
		}
	}
	for _, t := range list {
		if SameBaseURL(iss, t) {
			return true
		}
	}
	return false
}

// clock returns the current time and the leeway a reader uses.
func clock(now func() time.Time, leeway time.Duration) (time.Time, time.Duration) {
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	if now == nil {
		return time.Now(), leeway
	}
	return now(), leeway
}

// checkTimes refuses a token whose iat or nbf is after now+leeway, or whose
// exp is not after now-leeway.
func checkTimes(now time.Time, leeway time.Duration, iat, nbf, exp int64) error {
	from := max(iat, nbf)
	if now.Add(leeway).Before(time.Unix(from, 0)) {
		return errNotYetValid(time.Unix(from, 0))
	}
	if !now.Add(-leeway).Before(time.Unix(exp, 0)) {
		return errExpired(time.Unix(exp, 0))
	}
	return nil
}
