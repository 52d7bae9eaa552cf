// Command demo tells the key-rotation story on one machine with no cloud
// account: versitygw stands in for S3, recsink runs on its embedded
// defaults, ffmpeg records, and the old key is deleted once the drain view
// says so. Run it with `make demo`.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	recsinkBin := flag.String("recsink", "bin/recsink", "the recsink binary")
	vgwBin := flag.String("versitygw", "", "the versitygw binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *recsinkBin, *vgwBin); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("\n▶ "+format+"\n", args...) }

func run(ctx context.Context, recsinkBin, vgwBin string) error {
	dir, err := os.MkdirTemp("", "recsink-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	say("Starting versitygw, a real S3 server, as the customer's storage")
	s3Port, adminPort := freePort(), freePort()
	root := key("ROOT")
	os.MkdirAll(filepath.Join(dir, "s3", "data"), 0o700)
	os.MkdirAll(filepath.Join(dir, "s3", "iam"), 0o700)
	vgw := exec.CommandContext(ctx, vgwBin, "--port", "127.0.0.1:"+s3Port, "--admin-port", "127.0.0.1:"+adminPort,
		"--access", root[0], "--secret", root[1], "--iam-dir", filepath.Join(dir, "s3", "iam"), "--iam-cache-disable", "--quiet",
		"posix", filepath.Join(dir, "s3", "data"))
	if err := vgw.Start(); err != nil {
		return err
	}
	defer vgw.Process.Kill()
	if err := waitTCP(ctx, "127.0.0.1:"+s3Port); err != nil {
		return err
	}
	endpoint := "http://127.0.0.1:" + s3Port
	admin := func(args ...string) error {
		out, err := exec.CommandContext(ctx, vgwBin, append([]string{"admin", "--access", root[0], "--secret", root[1],
			"--endpoint-url", "http://127.0.0.1:" + adminPort}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("versitygw admin %s: %v: %s", args[0], err, out)
		}
		return nil
	}
	a, b := key("AKIAOLDKEY"), key("AKIANEWKEY")
	bucket := "demo-recordings"
	for _, k := range [][2]string{a, b} {
		if err := admin("create-user", "--access", k[0], "--secret", k[1], "--role", "user"); err != nil {
			return err
		}
	}
	if err := admin("create-bucket", "--owner", a[0], "--bucket", bucket); err != nil {
		return err
	}
	// Two IAM keys with identical permissions: a bucket policy naming both.
	if err := putPolicy(ctx, endpoint, a, bucket, a[0], b[0]); err != nil {
		return err
	}
	fmt.Printf("  bucket %s, old key %s, new key %s (same permissions)\n", bucket, a[0], b[0])

	say("Starting recsink on its embedded defaults (SQLite and a data folder)")
	data := filepath.Join(dir, "recsink-data")
	out, err := exec.CommandContext(ctx, recsinkBin, "org", "create", "acme", "--data", data).Output()
	if err != nil {
		return fmt.Errorf("org create: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	api := &client{url: "http://127.0.0.1:" + freePort(), key: lines[len(lines)-1]}
	srv := exec.CommandContext(ctx, recsinkBin, "serve", "--addr", strings.TrimPrefix(api.url, "http://"), "--data", data,
		"--allow-endpoint", "127.0.0.1:"+s3Port, "--log-level", "warn")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Process.Signal(os.Interrupt)
	if err := waitTCP(ctx, strings.TrimPrefix(api.url, "http://")); err != nil {
		return err
	}

	say("The admin saves the old key A; recsink checks it against the bucket first")
	storage := func(k [2]string) map[string]any {
		return map[string]any{"bucket": bucket + "/meetings", "endpoint": endpoint, "forcePathStyle": true,
			"accessKeyId": k[0], "accessKeySecret": k[1]}
	}
	if _, err := api.do(ctx, "PUT", "/v1/storage", storage(a)); err != nil {
		return err
	}
	m, err := api.do(ctx, "POST", "/v1/meetings", map[string]any{"endDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "roomNamePrefix": "standup"})
	if err != nil {
		return err
	}
	rec, err := api.do(ctx, "POST", "/v1/meetings/"+m["meetingId"].(string)+"/recordings", nil)
	if err != nil {
		return err
	}
	id := rec["recordingId"].(string)
	ingest := rec["ingest"].(map[string]any)
	fmt.Printf("  recording %s holds key %s, streaming into s3://%s/%s\n", id, a[0], bucket, rec["objectKey"])

	say("ffmpeg records 12 s of test video and audio, streamed into recsink as it is made")
	ff := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=12", "-f", "lavfi", "-i", "sine=duration=12",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "matroska",
		"-method", "PUT", "-headers", "Authorization: Bearer "+ingest["token"].(string)+"\r\n", ingest["url"].(string))
	ff.Stderr = os.Stderr
	if err := ff.Start(); err != nil {
		return err
	}

	select {
	case <-time.After(4 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	say("Rotation step 1-2: the admin saves the new key B while the recording runs")
	if _, err := api.do(ctx, "PUT", "/v1/storage", storage(b)); err != nil {
		return err
	}
	if err := api.printCredentials(ctx); err != nil {
		return err
	}

	if err := ff.Wait(); err != nil {
		return fmt.Errorf("ffmpeg: %w", err)
	}
	say("Rotation step 3: the recording ends; recsink completes it with the key it started with")
	if _, err := api.do(ctx, "POST", "/v1/recordings/"+id+"/stop", nil); err != nil {
		return err
	}
	var final map[string]any
	for final == nil || final["state"] != "uploaded" {
		if final != nil && final["state"] == "failed" {
			return fmt.Errorf("recording failed: %v", final["lastError"])
		}
		if final, err = api.do(ctx, "GET", "/v1/recordings/"+id, nil); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := api.printCredentials(ctx); err != nil {
		return err
	}

	say("Rotation step 4: the drain view says key A is safe to delete: delete it in IAM (here, versitygw)")
	if err := admin("delete-user", "--access", a[0]); err != nil {
		return err
	}
	if report, err := api.do(ctx, "POST", "/v1/storage/check", nil); err != nil || report["ok"] != true {
		return fmt.Errorf("the saved key B no longer works: %v %v", err, report)
	}
	fmt.Println("  key B still passes every check")

	say("Done: the recording is in the customer's bucket")
	fmt.Printf("  s3://%s/%s\n  %.0f bytes, sha256 %v, checksum %v (S3's, head-object --checksum-mode ENABLED)\n", bucket, final["objectKey"], final["sizeBytes"], final["sha256"], final["checksum"])
	return nil
}

type client struct{ url, key string }

func (c *client) do(ctx context.Context, method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("%s %s: %d: %v", method, path, resp.StatusCode, out["error"])
	}
	return out, nil
}

func (c *client) printCredentials(ctx context.Context) error {
	out, err := c.do(ctx, "GET", "/v1/credentials", nil)
	if err != nil {
		return err
	}
	fmt.Printf("  %-20s %-9s %-10s %s\n", "KEY", "STATE", "RECORDINGS", "SAFE TO DELETE")
	for _, r := range out["results"].([]any) {
		r := r.(map[string]any)
		safe := "now"
		if r["state"] == "current" {
			safe = "-"
		} else if r["safeToDeleteAfter"] != nil {
			safe = "after " + fmt.Sprint(r["safeToDeleteAfter"])
		}
		fmt.Printf("  %-20s %-9s %-10v %s\n", r["accessKeyId"], r["state"], r["activeRecordings"].(map[string]any)["count"], safe)
	}
	return nil
}

func putPolicy(ctx context.Context, endpoint string, owner [2]string, bucket string, keys ...string) error {
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(owner[0], owner[1], ""),
	})
	policy, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"AWS": keys}, "Action": []string{"s3:*"},
		"Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
	}}})
	_, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(string(policy))})
	return err
}

func key(prefix string) [2]string {
	b := make([]byte, 16)
	rand.Read(b)
	return [2]string{prefix + strings.ToUpper(hex.EncodeToString(b[:4])), hex.EncodeToString(b)}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New(addr + " did not answer within 20 s")
}
