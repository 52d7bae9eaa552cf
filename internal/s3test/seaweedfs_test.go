package s3test_test

import (
	"testing"
	"time"

	"github.com/recsink/recsink/internal/s3test"
)

// TestSeaweedFS: the helper's identities work at once and stop working when
// deleted; a key limited to one bucket cannot write another.
func TestSeaweedFS(t *testing.T) {
	t.Parallel()
	start := time.Now()
	srv := s3test.MustStartSeaweedFS(t, s3test.SeaweedFSOptions{})
	t.Logf("SeaweedFS ready with its admin identity in %v", time.Since(start).Round(time.Millisecond))
	a := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, a.ID)
	other := srv.CreateBucket(t, a.ID)
	limited := srv.CreateUserFor(t, bucket)

	if err := put(t, srv.S3Client(t, a), bucket, "rec/one", "1"); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got := string(srv.GetObject(t, bucket, "rec/one")); got != "1" {
		t.Fatalf("GetObject = %q", got)
	}
	if keys := srv.ListObjects(t, bucket, "rec/"); len(keys) != 1 {
		t.Fatalf("ListObjects = %v", keys)
	}
	if err := put(t, srv.S3Client(t, limited), bucket, "rec/two", "2"); err != nil {
		t.Fatalf("PutObject by the limited key in its bucket: %v", err)
	}
	if err := put(t, srv.S3Client(t, limited), other, "rec/two", "2"); err == nil {
		t.Fatal("PutObject by a key limited to another bucket succeeded")
	}
	srv.DeleteUser(t, a.ID) // returns once the key is refused
	if err := put(t, srv.S3Client(t, a), bucket, "rec/three", "3"); err == nil {
		t.Fatal("PutObject by a deleted key succeeded")
	}
}
