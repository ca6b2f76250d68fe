package token

import (
	"strings"
	"testing"

	"spacesync.io/shared/apperr"
)

func TestNormalize_OK(t *testing.T) {
	tok := mustMint(t, serviceKeys(t), testClaims(t0))
	tests := map[string]string{
		"bare":            tok,
		"trailing LF":     tok + "\n",
		"CRLF":            tok + "\r\n",
		"BOM and CRLF":    "\xEF\xBB\xBF" + tok + "\r\n",
		"wrapped CRLF":    wrap(tok, 64),
		"wrapped LF":      strings.ReplaceAll(wrap(tok, 76), "\r", ""),
		"indented":        "  \t" + tok + "\n\n",
		"spaces in parts": strings.ReplaceAll(tok, ".", " .\t"),
		"form feeds":      "\f\v" + tok + "\v",
		"padded to cap":   tok + strings.Repeat(" ", MaxUploadSize-len(tok)),
	}
	for name, in := range tests {
		got, err := Normalize([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != tok {
			t.Errorf("%s: Normalize = %q, want the token", name, got)
		}
	}
}

func TestNormalize_Err(t *testing.T) {
	tok := mustMint(t, serviceKeys(t), testClaims(t0))
	p := segments(t, tok)
	tests := []struct {
		name, in string
		want     apperr.Code
	}{
		{"over upload cap", tok + strings.Repeat(" ", MaxUploadSize-len(tok)+1), apperr.PayloadTooLarge},
		{"over token cap", strings.Join([]string{p[0], p[1], p[2], strings.Repeat("A", MaxTokenSize), p[4]}, "."), apperr.InvalidToken},
		{"empty", "", apperr.InvalidToken},
		{"only BOM", "\xEF\xBB\xBF", apperr.InvalidToken},
		{"UTF-16BE", "\xFE\xFF\x00e", apperr.InvalidToken},
		{"BOM inside", tok[:10] + "\xEF\xBB\xBF" + tok[10:], apperr.InvalidToken},
		{"NUL", tok + "\x00", apperr.InvalidToken},
		{"padding", tok + "==", apperr.InvalidToken},
		{"standard base64", strings.Replace(tok, p[3][:4], "++//", 1), apperr.InvalidToken},
		{"JSON serialization", `{"protected":"` + p[0] + `"}`, apperr.InvalidToken},
		{"quoted", `"` + tok + `"`, apperr.InvalidToken},
		{"non-breaking space", tok + "\u00a0", apperr.InvalidToken},
		{"length 1 mod 4", strings.Join([]string{p[0], p[1], p[2], p[3][:len(p[3])-len(p[3])%4] + "A", p[4]}, "."), apperr.InvalidToken},
	}
	for _, tt := range tests {
		_, err := Normalize([]byte(tt.in))
		checkRefusal(t, tt.name, err, tt.want)
	}
}

// TestCharClass checks the lookup table against the definitions.
func TestCharClass(t *testing.T) {
	if len(charClass) != 256 {
		t.Fatalf("charClass has %d entries", len(charClass))
	}
	for v := range 256 {
		ch := byte(v)
		want := classInvalid
		switch {
		case b64Value(ch) >= 0:
			want = classBase64
		case ch == '.':
			want = classDot
		case isSpace(ch):
			want = classSpace
		}
		if got := int(charClass[ch]); got != want {
			t.Errorf("charClass[%#x] = %d, want %d", v, got, want)
		}
	}
}
