// Package secrets encrypts customers' access secrets at rest with a master
// key that never enters the database.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KeySize is the size of a master key in bytes (AES-256).
const KeySize = 32

const (
	version1  byte = 1 // AES-256-GCM, 12-byte random nonce
	nonceSize      = 12
	tagSize        = 16
)

// ErrCannotDecrypt is returned by Open for every ciphertext that does not
// decrypt, whatever the reason, so that the error reveals nothing about it.
var ErrCannotDecrypt = errors.New("secrets: cannot decrypt: wrong master key, or the ciphertext was altered or belongs to another record")

// Box seals and opens secrets with a master key. It is safe for concurrent
// use.
type Box struct {
	aead cipher.AEAD
}

// NewBox returns a Box for a 32-byte master key.
func NewBox(masterKey []byte) (*Box, error) {
	if len(masterKey) != KeySize {
		return nil, fmt.Errorf("secrets: master key must be %d bytes, got %d", KeySize, len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to associatedData, which Open must be given
// again (a credential's AssociatedData, so that a ciphertext copied onto
// another row does not open). The result is a version byte, a random
// 12-byte nonce, then the ciphertext and tag.
func (b *Box) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = version1
	nonce := out[1 : 1+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return b.aead.Seal(out, nonce, plaintext, ad(version1, associatedData)), nil
}

// Open decrypts a ciphertext made by Seal with the same associated data. Any
// failure is ErrCannotDecrypt.
func (b *Box) Open(ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) < 1+nonceSize+tagSize || ciphertext[0] != version1 {
		return nil, ErrCannotDecrypt
	}
	nonce, sealed := ciphertext[1:1+nonceSize], ciphertext[1+nonceSize:]
	plaintext, err := b.aead.Open(nil, nonce, sealed, ad(version1, associatedData))
	if err != nil {
		return nil, ErrCannotDecrypt
	}
	return plaintext, nil
}

// ad prefixes the caller's associated data with the format version, so that
// the version byte is authenticated too.
func ad(version byte, associatedData []byte) []byte {
	return append([]byte{version}, associatedData...)
}

// LoadMasterKey returns the master key from, in order of precedence: env
// (the value of RECSINK_MASTER_KEY), the file named by file
// (--master-key-file), or <dataDir>/master.key, which is generated on first
// start. Keys are 32 bytes in standard or URL-safe base64. A key file that
// group or others may access is refused.
func LoadMasterKey(logger *slog.Logger, env, file, dataDir string) ([]byte, error) {
	if env != "" {
		key, err := decodeKey(env)
		if err != nil {
			return nil, fmt.Errorf("secrets: RECSINK_MASTER_KEY: %w", err)
		}
		return key, nil
	}
	if file != "" {
		return readKeyFile(file)
	}
	if dataDir == "" {
		return nil, errors.New("secrets: no master key: set RECSINK_MASTER_KEY, --master-key-file or a data directory")
	}
	path := filepath.Join(dataDir, "master.key")
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = generateKeyFile(path)
	if errors.Is(err, fs.ErrExist) {
		// Another process generated it first: use theirs.
		return readKeyFile(path)
	} else if err != nil {
		return nil, err
	}
	if logger != nil {
		logger.Info("generated a new master key; back it up: without it saved access secrets cannot be decrypted", "path", path)
	}
	return key, nil
}

// readKeyFile reads a base64 master key from path, refusing a file that
// group or others may access. A missing file's error wraps fs.ErrNotExist.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: master key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: master key file: %w", err)
	}
	// Windows has no Unix permission bits to check.
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets: master key file %s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	// A key is 44 characters; the limit keeps a wrong path from being slurped.
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("secrets: master key file %s: %w", path, err)
	}
	key, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("secrets: master key file %s: %w", path, err)
	}
	return key, nil
}

// generateKeyFile creates path exclusively with a new random key, synced to
// disk with its directory entry. An existing file's error wraps
// fs.ErrExist.
func generateKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generate master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets: generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("secrets: generate master key: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		// A partial file would be read as a bad key at the next start.
		os.Remove(path)
		return nil, fmt.Errorf("secrets: generate master key %s: %w", path, err)
	}
	return key, nil
}

// syncDir fsyncs a directory so that a file created in it survives a crash.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// decodeKey decodes a master key in standard or URL-safe base64, padded or
// not, and checks its length. Errors never include the value.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty: want a 32-byte key in base64 (openssl rand -base64 32)")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("key is %d bytes, want %d bytes in base64 (openssl rand -base64 32)", len(key), KeySize)
		}
		return key, nil
	}
	return nil, errors.New("not valid base64: want a 32-byte key in base64 (openssl rand -base64 32)")
}
