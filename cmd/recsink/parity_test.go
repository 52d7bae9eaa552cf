package main_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestRotation_Parity: with two recordings running on key A, saving key B
// that may write only under another prefix is accepted with a warning
// naming the permission it lacks on the running uploads; key C with A's
// access is accepted with "can take over 2 running recordings".
func TestRotation_Parity(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	b := e.S3.CreateUser(t, "user")
	c := e.S3.CreateUser(t, "user")
	// B: anything on the bucket and under other/ only; A (the owner: a policy
	// binds it too in versitygw) and C: anything.
	policy, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{"Effect": "Allow", "Principal": map[string]any{"AWS": []string{b.ID}}, "Action": []string{"s3:*"},
				"Resource": []string{"arn:aws:s3:::" + e.Bucket, "arn:aws:s3:::" + e.Bucket + "/other/*"}},
			{"Effect": "Allow", "Principal": map[string]any{"AWS": []string{e.Key.ID, c.ID}}, "Action": []string{"s3:*"},
				"Resource": []string{"arn:aws:s3:::" + e.Bucket, "arn:aws:s3:::" + e.Bucket + "/*"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.S3.S3Client(t, e.Key).PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{
		Bucket: aws.String(e.Bucket), Policy: aws.String(string(policy)),
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		MustStartRecording(t, e.Org, meeting)
	}

	out := e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/other", b))
	p, _ := out["parity"].(map[string]any)
	t.Logf("key B: parity %v", p)
	if p == nil || p["ok"] != false || p["runningRecordings"] != float64(2) || p["check"] != "ListParts" || p["permission"] != "s3:ListMultipartUploadParts" {
		t.Fatalf("saving key B without access to the running uploads: parity %v", p)
	}
	mustContain(t, p["message"].(string), "s3:ListMultipartUploadParts")

	out = e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", c))
	p, _ = out["parity"].(map[string]any)
	t.Logf("key C: parity %v", p)
	if p == nil || p["ok"] != true || p["runningRecordings"] != float64(2) {
		t.Fatalf("saving key C with the same access: parity %v", p)
	}
	mustContain(t, p["message"].(string), "can take over the 2 running recordings")
}
