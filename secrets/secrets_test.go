package secrets_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/secrets"
)

// MustNewBox returns a Box with a fixed key.
func MustNewBox(tb testing.TB) *secrets.Box {
	tb.Helper()
	b, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBox(t *testing.T) {
	t.Parallel()
	c1 := &recsink.Credential{ID: "cred_1", OrgID: "org_a", AccessKeyID: "AKIA1", CreatedAt: time.Now()}
	c2 := &recsink.Credential{ID: "cred_2", OrgID: "org_a", AccessKeyID: "AKIA1", CreatedAt: time.Now()}
	secret := []byte("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := MustNewBox(t)
		for _, p := range [][]byte{secret, {}, bytes.Repeat([]byte{0}, 300)} {
			sealed, err := b.Seal(p, c1.AssociatedData())
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != 1+12+len(p)+16 || sealed[0] != 1 {
				t.Fatalf("sealed is %d bytes with version %d, want %d with version 1", len(sealed), sealed[0], 1+12+len(p)+16)
			}
			if len(p) > 8 && bytes.Contains(sealed, p[:8]) {
				t.Fatal("sealed contains the plaintext")
			}
			got, err := b.Open(sealed, c1.AssociatedData())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("Open = %q, want %q", got, p)
			}
		}
	})

	t.Run("ErrWrongAssociatedData", func(t *testing.T) {
		t.Parallel()
		b := MustNewBox(t)
		sealed, err := b.Seal(secret, c1.AssociatedData())
		if err != nil {
			t.Fatal(err)
		}
		// A ciphertext copied onto another row (another ID, organization or
		// key ID) does not decrypt.
		other := *c1
		other.OrgID = "org_b"
		otherKey := *c1
		otherKey.AccessKeyID = "AKIA2"
		for _, c := range []*recsink.Credential{c2, &other, &otherKey} {
			checkCannotDecrypt(t, b, sealed, c.AssociatedData())
		}
		checkCannotDecrypt(t, b, sealed, nil)
	})

	t.Run("ErrTampered", func(t *testing.T) {
		t.Parallel()
		b := MustNewBox(t)
		sealed, err := b.Seal(secret, c1.AssociatedData())
		if err != nil {
			t.Fatal(err)
		}
		for i := range sealed {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			checkCannotDecrypt(t, b, bad, c1.AssociatedData())
		}
		checkCannotDecrypt(t, b, sealed[:len(sealed)-1], c1.AssociatedData())
		checkCannotDecrypt(t, b, append(bytes.Clone(sealed), 0), c1.AssociatedData())
		checkCannotDecrypt(t, b, nil, c1.AssociatedData())
		checkCannotDecrypt(t, b, sealed[:13], c1.AssociatedData())
	})

	t.Run("ErrWrongKey", func(t *testing.T) {
		t.Parallel()
		sealed, err := MustNewBox(t).Seal(secret, c1.AssociatedData())
		if err != nil {
			t.Fatal(err)
		}
		other, err := secrets.NewBox(bytes.Repeat([]byte{8}, 32))
		if err != nil {
			t.Fatal(err)
		}
		checkCannotDecrypt(t, other, sealed, c1.AssociatedData())
	})

	t.Run("DistinctNonces", func(t *testing.T) {
		t.Parallel()
		b := MustNewBox(t)
		seen := map[string]bool{}
		for range 1000 {
			sealed, err := b.Seal(secret, c1.AssociatedData())
			if err != nil {
				t.Fatal(err)
			}
			nonce := string(sealed[1:13])
			if seen[nonce] {
				t.Fatal("nonce reused")
			}
			seen[nonce] = true
		}
	})

	t.Run("ErrKeySize", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{0, 16, 24, 31, 33, 64} {
			if _, err := secrets.NewBox(make([]byte, n)); err == nil {
				t.Fatalf("NewBox accepted a %d-byte key", n)
			}
		}
	})
}

func checkCannotDecrypt(t *testing.T, b *secrets.Box, sealed, ad []byte) {
	t.Helper()
	got, err := b.Open(sealed, ad)
	if !errors.Is(err, secrets.ErrCannotDecrypt) {
		t.Fatalf("Open = %q, %v; want ErrCannotDecrypt", got, err)
	}
	if got != nil {
		t.Fatal("Open returned plaintext with an error")
	}
}

func TestLoadMasterKey(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb}, 32) // encodes differently in std and URL base64
	std := base64.StdEncoding.EncodeToString(key)
	url := base64.RawURLEncoding.EncodeToString(key)
	other := bytes.Repeat([]byte{1}, 32)

	t.Run("Env", func(t *testing.T) {
		t.Parallel()
		for _, env := range []string{std, url, base64.URLEncoding.EncodeToString(key), " " + std + "\n"} {
			// The env wins over a file and the data dir.
			file := writeKeyFile(t, base64.StdEncoding.EncodeToString(other), 0o600)
			got, err := secrets.LoadMasterKey(discard(), env, file, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, key) {
				t.Fatalf("key from env %q is wrong", env)
			}
		}
	})

	t.Run("File", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "master.key"), []byte(base64.StdEncoding.EncodeToString(other)), 0o600); err != nil {
			t.Fatal(err)
		}
		// The file wins over the data dir's key.
		got, err := secrets.LoadMasterKey(discard(), "", writeKeyFile(t, url+"\n", 0o400), dir)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, key) {
			t.Fatal("key from file is wrong")
		}
	})

	t.Run("ErrFilePermissions", func(t *testing.T) {
		t.Parallel()
		for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
			file := writeKeyFile(t, std, mode)
			_, err := secrets.LoadMasterKey(discard(), "", file, "")
			if err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("mode %04o: err = %v, want a refusal", mode, err)
			}
		}
	})

	t.Run("ErrFileMissing", func(t *testing.T) {
		t.Parallel()
		// An explicit file is never generated.
		file := filepath.Join(t.TempDir(), "missing.key")
		if _, err := secrets.LoadMasterKey(discard(), "", file, t.TempDir()); err == nil {
			t.Fatal("missing --master-key-file accepted")
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing key file was created: %v", err)
		}
	})

	t.Run("ErrLength", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []string{
			base64.StdEncoding.EncodeToString(make([]byte, 16)),
			base64.StdEncoding.EncodeToString(make([]byte, 33)),
			"not base64 at all!",
			"   ",
		} {
			_, err := secrets.LoadMasterKey(discard(), bad, "", t.TempDir())
			if err == nil || !strings.Contains(err.Error(), "RECSINK_MASTER_KEY") {
				t.Fatalf("env %q: err = %v, want an error naming RECSINK_MASTER_KEY", bad, err)
			}
			if strings.TrimSpace(bad) != "" && strings.Contains(err.Error(), bad) {
				t.Fatalf("error leaks the value: %v", err)
			}
			file := writeKeyFile(t, bad, 0o600)
			_, err = secrets.LoadMasterKey(discard(), "", file, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), file) {
				t.Fatalf("file %q: err = %v, want an error naming the file", bad, err)
			}
		}
	})

	t.Run("Generate", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "data")
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		got, err := secrets.LoadMasterKey(logger, "", "", dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 32 || bytes.Equal(got, make([]byte, 32)) {
			t.Fatalf("generated key %x", got)
		}
		path := filepath.Join(dir, "master.key")
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Fatalf("master.key mode = %04o, want 0600", mode)
		}
		encoded := base64.StdEncoding.EncodeToString(got)
		if !strings.Contains(logs.String(), "back it up") || !strings.Contains(logs.String(), path) ||
			strings.Contains(logs.String(), encoded) || strings.Count(logs.String(), "\n") != 1 {
			t.Fatalf("log = %q, want one line with the path and without the key", logs.String())
		}

		// The next start reads the same key and logs nothing.
		logs.Reset()
		again, err := secrets.LoadMasterKey(logger, "", "", dir)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, got) {
			t.Fatal("second start returned a different key")
		}
		if logs.Len() != 0 {
			t.Fatalf("second start logged %q", logs.String())
		}
	})
}

// writeKeyFile writes content to a new file with mode and returns its path.
func writeKeyFile(tb testing.TB, content string, mode os.FileMode) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "key")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to the umask
		tb.Fatal(err)
	}
	return path
}

func discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
