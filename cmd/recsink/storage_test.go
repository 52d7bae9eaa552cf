package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestStorage_SaveValidKey: a key that may do what recordings need is saved
// after the checks pass, its secret never shown, the probe objects removed.
// On versitygw and SeaweedFS.
func TestStorage_SaveValidKey(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e := MustS3Env(t, srv)
		out := e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", e.Key))
		if out["accessKeyId"] != e.Key.ID || out["bucket"] != e.Bucket+"/recordings" {
			t.Fatalf("PUT /v1/storage: %v", out)
		}
		t.Logf("%s: check %v", srv.Name(), out["check"])
		got := e.Org.MustDo(t, 200, "GET", "/v1/storage", nil)
		if got["accessKeyId"] != e.Key.ID || got["fileFormat"] != "mkv" || got["region"] != "us-east-1" {
			t.Fatalf("GET /v1/storage: %v", got)
		}
		for k, v := range got {
			if s, ok := v.(string); ok && strings.Contains(s, e.Key.Secret) {
				t.Fatalf("GET /v1/storage shows the secret in %s", k)
			}
		}
		// The check's probe objects are cleaned up.
		if objs := e.S3.ListObjects(t, e.Bucket, ""); len(objs) != 0 {
			t.Fatalf("probe objects left in the bucket: %v", objs)
		}
		e.Org.MustDo(t, 204, "DELETE", "/v1/storage", nil)
		e.Org.MustDo(t, 404, "GET", "/v1/storage", nil)
	})
}

// TestStorage_CheckFailures shows what a user sees for each failure: 422,
// the failing check with its permission, S3's code and a plain sentence
// that names the cause. On versitygw and SeaweedFS, which answer alike but
// for one case: a bucket that does not exist, named with a key whose
// permissions name only its own bucket, is NoSuchBucket on versitygw and
// AccessDenied on SeaweedFS; the sentence then says to check the name too.
func TestStorage_CheckFailures(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e := MustS3Env(t, srv)
		deleted := e.S3.CreateUserFor(t, e.Bucket)
		e.S3.DeleteUser(t, deleted.ID)
		other, _ := e.S3.CreateBucketAndKey(t)
		stranger := e.S3.CreateUserFor(t, other) // no right on e.Bucket
		missing := fmt.Sprintf("no-such-bucket-%d", time.Now().UnixNano())
		seaweed := srv.Name() == "seaweedfs"

		type want struct{ check, code, message string }
		for _, tc := range []struct {
			name string
			body map[string]any
			want want
		}{
			{"ErrSignatureDoesNotMatch", e.Storage(e.Bucket, recsink.AccessKey{ID: e.Key.ID, Secret: "wrong" + e.Key.Secret[5:]}), want{"HeadBucket", "SignatureDoesNotMatch", "secret is wrong"}},
			{"ErrInvalidAccessKeyId", e.Storage(e.Bucket, deleted), want{"HeadBucket", "InvalidAccessKeyId", "deleted"}},
			{"ErrAccessDenied", e.Storage(e.Bucket, stranger), want{"HeadBucket", "AccessDenied", "not allowed"}},
			{"ErrNoSuchBucket", e.Storage(missing, e.S3.AdminKey()), want{"HeadBucket", "NoSuchBucket", "does not exist"}},
			{"ErrNoSuchBucketScopedKey", e.Storage(missing, e.Key), func() want {
				if seaweed {
					return want{"HeadBucket", "AccessDenied", "Check the bucket name"}
				}
				return want{"HeadBucket", "NoSuchBucket", "does not exist"}
			}()},
			{"ErrEndpointRefused", func() map[string]any {
				b := e.Storage(e.Bucket, e.Key)
				b["endpoint"] = "http://169.254.169.254:80"
				return b
			}(), want{"Endpoint", "", "not allowed"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, out := e.Org.Do(t, "PUT", "/v1/storage", tc.body)
				if status != 422 || out["code"] != "destination" {
					t.Fatalf("status %d, want 422 destination: %v", status, out)
				}
				var failed map[string]any
				for _, c := range out["checks"].([]any) {
					c := c.(map[string]any)
					if c["ok"] == false && c["skipped"] != true {
						failed = c
						break
					}
				}
				if failed == nil {
					t.Fatalf("no failing check: %v", out)
				}
				if failed["name"] != tc.want.check {
					t.Errorf("failing check %v, want %s: %v", failed["name"], tc.want.check, failed)
				}
				if tc.want.code != "" && failed["code"] != tc.want.code {
					t.Errorf("code %v, want %s: %v", failed["code"], tc.want.code, failed)
				}
				mustContain(t, failed["message"].(string), tc.want.message)
				if failed["permission"] == nil && failed["name"] != "Endpoint" {
					t.Errorf("no permission named: %v", failed)
				}
				t.Logf("%s on %s: %v (%v) %v: %v", tc.name, srv.Name(), failed["name"], failed["permission"], failed["code"], failed["message"])
				// Nothing was saved.
				e.Org.MustDo(t, 404, "GET", "/v1/storage", nil)
			})
		}
	})
}

func TestStorage_InvalidInput(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	for _, tc := range []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"ErrBucketUppercase", func(b map[string]any) { b["bucket"] = "MyBucket" }, "bucket"},
		{"ErrBucketURL", func(b map[string]any) { b["bucket"] = "https://s3.amazonaws.com/b" }, "bucket"},
		{"ErrBucketIP", func(b map[string]any) { b["bucket"] = "192.168.1.1" }, "bucket"},
		{"ErrFileFormat", func(b map[string]any) { b["fileFormat"] = "avi" }, "fileFormat"},
		{"ErrNoSecret", func(b map[string]any) { delete(b, "accessKeySecret") }, "accessKeySecret"},
		{"ErrUnknownField", func(b map[string]any) { b["acl"] = "public-read" }, "acl"},
		{"ErrWrongType", func(b map[string]any) { b["forcePathStyle"] = "yes" }, "forcePathStyle"},
		{"ErrEndpointNotURL", func(b map[string]any) { b["endpoint"] = "s3.example.com" }, "endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.Storage(e.Bucket, e.Key)
			tc.edit(b)
			status, out := e.Org.Do(t, "PUT", "/v1/storage", b)
			if status != 400 || out["field"] != tc.field {
				t.Fatalf("status %d field %v, want 400 %s: %v", status, out["field"], tc.field, out)
			}
		})
	}
}

// TestStorage_Isolation: one organization's key never reads, changes or
// learns of another's meetings or settings.
func TestStorage_Isolation(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket, e.Key))
	meeting := e.MustMeeting(t, e.Org)
	other := e.Main.MustCreateOrg(t)
	other.MustDo(t, 404, "GET", "/v1/storage", nil)
	other.MustDo(t, 404, "GET", "/v1/meetings/"+meeting, nil)
	// Idempotent as Whereby's: 204 for a meeting it cannot see, which stays.
	other.MustDo(t, 204, "DELETE", "/v1/meetings/"+meeting, nil)
	other.MustDo(t, 404, "PUT", "/v1/meetings/"+meeting+"/recording/destination", e.Storage(e.Bucket, e.Key))
	other.MustDo(t, 404, "POST", "/v1/meetings/"+meeting+"/recordings", nil)
	if out := other.MustDo(t, 200, "GET", "/v1/meetings", nil); len(out["results"].([]any)) != 0 {
		t.Fatalf("other org lists meetings: %v", out)
	}
	e.Org.MustDo(t, 200, "GET", "/v1/meetings/"+meeting, nil)
	(&Client{m: e.Main, Key: "rsk_wrong"}).MustDo(t, 401, "GET", "/v1/storage", nil)
}

// TestStorage_SecretNeverStored writes a key and searches the whole data
// folder and the captured logs for its secret.
func TestStorage_SecretNeverStored(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket, e.Key))
	m := e.MustMeeting(t, e.Org)
	e.Org.MustDo(t, 200, "PUT", "/v1/meetings/"+m+"/recording/destination", e.Storage(e.Bucket, e.Key))
	bad := e.Storage(e.Bucket, recsink.AccessKey{ID: e.Key.ID, Secret: e.Key.Secret + "x"})
	e.Org.MustDo(t, 422, "PUT", "/v1/storage", bad)
	e.Org.MustDo(t, 200, "POST", "/v1/storage/check", nil)
	e.Main.Restart(t) // flush everything to disk
	for _, secret := range []string{e.Key.Secret, e.Key.Secret + "x"} {
		if strings.Contains(e.Main.Logs.String(), secret) {
			t.Fatal("the secret is in the log")
		}
		err := filepath.WalkDir(e.Main.Config.Data, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the secret is in plain text in %s", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOrgCreate: the command prints the API key as its last line, and the
// key works against a server on the same data folder.
func TestOrgCreate(t *testing.T) {
	t.Parallel()
	s3 := MustStartS3(t)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := main.Run(context.Background(), []string{"org", "create", "acme", "--data", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("org create: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, "rsk_") {
		t.Fatalf("last line %q is not an API key", key)
	}
	m := MustRunMain(t, s3, func(c *main.Config) { c.Data = dir })
	(&Client{m: m, Key: key}).MustDo(t, 404, "GET", "/v1/storage", nil)
	(&Client{m: m, Key: key + "x"}).MustDo(t, 401, "GET", "/v1/storage", nil)
}
