package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the size of a token key: 256 bits for A256KW.
const KeySize = 32

// MaxKeys is the most keys a KeySet holds. Rotation needs two or three.
const MaxKeys = 16

// maxKeyIDLength bounds a kid; ours are short names like "2026-12".
const maxKeyIDLength = 64

// KeySet is cloud-app's set of token keys, by kid. The first key mints;
// every key decrypts, so a new key can be added (second, decrypt-only),
// promoted to first, and the old one dropped once its tokens have expired.
//
// A KeySet is immutable and safe for concurrent use. Its String, GoString
// and LogValue show the kids only; Encode is the one way to get the key
// material out.
type KeySet struct {
	keys []key
}

type key struct {
	id     string
	secret []byte
}

// ParseKeySet parses the SPACESYNC_TOKEN_KEYS form:
// `kid:base64url-32-bytes[,kid:...]`. A kid is 1 to 64 characters of
// A-Z a-z 0-9 . _ -; a key is 43 base64url characters without padding.
// Spaces around entries and a trailing newline are ignored.
//
// Errors are one line and name the entry by position and the problem. They
// never contain key material, nor a kid: a garbled entry may have a key
// where the kid should be.
func ParseKeySet(s string) (*KeySet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("token key set: empty; want kid:base64url-32-bytes[,kid:...]")
	}
	entries := strings.Split(s, ",")
	if len(entries) > MaxKeys {
		return nil, fmt.Errorf("token key set: %d keys; at most %d are allowed", len(entries), MaxKeys)
	}
	ks := &KeySet{keys: make([]key, 0, len(entries))}
	for i, e := range entries {
		n := i + 1
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("token key set: entry %d is empty", n)
		}
		id, enc, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("token key set: entry %d has no \"kid:\" prefix; want kid:base64url-32-bytes", n)
		}
		if !validKeyID(id) {
			return nil, fmt.Errorf("token key set: entry %d: the kid must be 1 to %d characters of A-Z a-z 0-9 . _ -", n, maxKeyIDLength)
		}
		if j := ks.index(id); j >= 0 {
			return nil, fmt.Errorf("token key set: entry %d repeats the kid of entry %d", n, j+1)
		}
		secret, err := base64.RawURLEncoding.Strict().DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("token key set: entry %d: the key is not unpadded base64url", n)
		}
		if len(secret) != KeySize {
			return nil, fmt.Errorf("token key set: entry %d: the key is %d bytes; want %d (43 base64url characters)", n, len(secret), KeySize)
		}
		ks.keys = append(ks.keys, key{id: id, secret: secret})
	}
	return ks, nil
}

// GenerateKeySet returns a key set of one new random key named kid, for the
// embedded default (stored in the data directory with Encode).
func GenerateKeySet(kid string) (*KeySet, error) {
	if !validKeyID(kid) {
		return nil, fmt.Errorf("token key set: the kid must be 1 to %d characters of A-Z a-z 0-9 . _ -", maxKeyIDLength)
	}
	secret := make([]byte, KeySize)
	rand.Read(secret) // crypto/rand.Read never returns an error
	return &KeySet{keys: []key{{id: kid, secret: secret}}}, nil
}

// Encode returns the key set in the SPACESYNC_TOKEN_KEYS form, for storing
// in the data directory. The result is secret.
func (k *KeySet) Encode() string {
	var b strings.Builder
	for i, key := range k.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(key.id)
		b.WriteByte(':')
		b.WriteString(base64.RawURLEncoding.EncodeToString(key.secret))
	}
	return b.String()
}

// KeyIDs returns the kids in order; the first one mints.
func (k *KeySet) KeyIDs() []string {
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.id
	}
	return ids
}

// String returns the kids only, such as "KeySet[k2 (mints), k1]".
func (k *KeySet) String() string {
	if k == nil || len(k.keys) == 0 {
		return "KeySet[]"
	}
	var b strings.Builder
	b.WriteString("KeySet[")
	for i, key := range k.keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(key.id)
		if i == 0 {
			b.WriteString(" (mints)")
		}
	}
	b.WriteByte(']')
	return b.String()
}

// GoString keeps %#v from printing key material.
func (k *KeySet) GoString() string { return k.String() }

// LogValue keeps slog from printing key material.
func (k *KeySet) LogValue() slog.Value { return slog.StringValue(k.String()) }

// index returns the position of kid in the set, or -1.
func (k *KeySet) index(kid string) int {
	for i, key := range k.keys {
		if key.id == kid {
			return i
		}
	}
	return -1
}

// lookup returns the secret for kid, given as bytes so that the header
// reader need not allocate a string.
func (k *KeySet) lookup(kid []byte) ([]byte, bool) {
	for _, key := range k.keys {
		if key.id == string(kid) {
			return key.secret, true
		}
	}
	return nil, false
}

// validKeyID reports whether s is an acceptable kid.
func validKeyID[S string | []byte](s S) bool {
	if len(s) == 0 || len(s) > maxKeyIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
