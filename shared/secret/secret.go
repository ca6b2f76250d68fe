// Package secret loads or generates a service's 256-bit secret key, and
// seals values at rest with it (AES-256-GCM).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a secret key in bytes.
const KeySize = 32

// Key is a 256-bit secret key.
type Key [KeySize]byte

// String never reveals the key.
func (Key) String() string { return "[secret key]" }

// ParseKey decodes a base64url (padded or not) 32-byte key. The error never
// contains the value.
func ParseKey(s string) (Key, error) {
	var k Key
	s = strings.TrimSpace(s)
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return k, errors.New("not base64url")
	}
	if len(b) != KeySize {
		return k, fmt.Errorf("decodes to %d bytes, want %d", len(b), KeySize)
	}
	copy(k[:], b)
	return k, nil
}

// Encode returns the key as unpadded base64url.
func (k Key) Encode() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// NewKey returns a random key.
func NewKey() Key {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		panic(err)
	}
	return k
}

// LoadOrCreateFile returns the content of path, or, when the file does not
// exist, writes generate()'s result there with owner-only permissions and
// reports created = true. The directory is created 0700.
func LoadOrCreateFile(path string, generate func() (string, error)) (value string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", false, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	v, err := generate()
	if err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			return LoadOrCreateFile(path, generate)
		}
		return "", false, err
	}
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return "", false, err
	}
	if err := f.Close(); err != nil {
		return "", false, err
	}
	return v, true, nil
}

// Box seals and opens values with a key. Different purposes derive
// different subkeys, so a value sealed for one use cannot be opened as
// another.
type Box struct {
	aead cipher.AEAD
}

// NewBox returns a Box for purpose (e.g. "tenant-shared-secret").
func NewBox(k Key, purpose string) *Box {
	h := sha256.New()
	h.Write([]byte("spacesync/secret.Box/v1\x00" + purpose + "\x00"))
	h.Write(k[:])
	sub := h.Sum(nil)
	block, err := aes.NewCipher(sub)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Box{aead: aead}
}

// Seal encrypts plaintext, binding it to aad (e.g. the row id), and returns
// base64url text.
func (b *Box) Seal(plaintext, aad []byte) string {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out := b.aead.Seal(nonce, nonce, plaintext, aad)
	return "v1." + base64.RawURLEncoding.EncodeToString(out)
}

// ErrOpen means a sealed value could not be opened (wrong key, tampered or
// not sealed by this package).
var ErrOpen = errors.New("secret: cannot open sealed value")

// Open decrypts a value made by Seal with the same aad.
func (b *Box) Open(sealed string, aad []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, "v1.")
	if !ok {
		return nil, ErrOpen
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return nil, ErrOpen
	}
	n := b.aead.NonceSize()
	pt, err := b.aead.Open(nil, raw[:n], raw[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
