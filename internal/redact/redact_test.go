package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/recsink/recsink/internal/redact"
)

const awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

func TestString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in, secret, keep string
	}{
		{"AWSSecret", "sign with " + awsSecret + " failed", awsSecret, "sign with"},
		{"IngestToken", "token mismatch for q3V8xZk2LpR7wN1bT5yH9mJ4cF6dG0sA_-eKuWoYiXv", "q3V8xZk2LpR7wN1bT5yH9mJ4cF6dG0sA_-eKuWoYiXv", "token mismatch"},
		{"Bearer", `header "Authorization: Bearer sometoken"`, "sometoken", "header"},
		{"BearerAlone", "bearer abc.def", "abc.def", "bearer"},
		{"AWSAuthorization", "Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20300101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=deadbeef\nnext line", "deadbeef", "next line"},
		{"PresignedURL", "GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F2030&X-Amz-Signature=abc123&x=1", "abc123", "x=1"},
		{"SecurityToken", "X-Amz-Security-Token: FQoGZXIvYXdzEJr", "FQoGZXIvYXdzEJr", "X-Amz-Security-Token"},
		{"APIKey", "key rsk_A1b2C3d4E5 refused", "rsk_A1b2C3d4E5", "refused"},
		{"WebhookSecret", "secret whsec_abc", "whsec_abc", ""},
		{"KeyValue", `{"secretAccessKey":"hunter2x","bucket":"b"}`, "hunter2x", `"bucket":"b"`},
		{"Password", "password=hunter2 user=bob", "hunter2", "user=bob"},
		{"DSN", "dial postgres://rec:pa55word@db:5432/rec failed", "pa55word", "@db:5432/rec"},
		{"HexDigestKept", "sha256 " + strings.Repeat("ab12", 16), "", strings.Repeat("ab12", 16)},
		{"PathKept", "key rooms/my-room/2030-01-02T03-04-05Z.mkv", "", "rooms/my-room/2030-01-02T03-04-05Z.mkv"},
		{"TempDirKept", "data=/tmp/TestFlagReadTimeout2962150374/001", "", "/tmp/TestFlagReadTimeout2962150374/001"},
		{"IDKept", "recording rec_AbC123dEf456gHiJ not found", "", "rec_AbC123dEf456gHiJ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := redact.String(tt.in)
			if tt.secret != "" && strings.Contains(got, tt.secret) {
				t.Errorf("secret left in %q", got)
			}
			if !strings.Contains(got, tt.keep) {
				t.Errorf("%q lost %q", got, tt.keep)
			}
		})
	}
}

type wrapped struct{ err error }

func (w wrapped) Error() string { return "s3: put part 3: " + w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }

// TestHandler logs a secret by every route an attribute can take and
// checks that none reaches the output.
func TestHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(redact.NewHandler(slog.NewTextHandler(&buf, nil)))
	err := wrapped{fmt.Errorf("signing with %s: %w", awsSecret, errors.ErrUnsupported)}
	log.With("key", awsSecret).WithGroup("g").Error("failed with "+awsSecret,
		"err", err,
		"plain", awsSecret,
		"any", struct{ S string }{awsSecret},
		slog.Group("inner", "v", awsSecret),
		"count", 3,
	)
	out := buf.String()
	if strings.Contains(out, awsSecret) || strings.Contains(out, "K7MDENG") {
		t.Fatalf("secret in log:\n%s", out)
	}
	for _, want := range []string{"s3: put part 3: signing with", "g.count=3", redact.Mask} {
		if !strings.Contains(out, want) {
			t.Errorf("log lost %q:\n%s", want, out)
		}
	}
	if l := redact.Logger(log); l != log {
		t.Errorf("Logger wrapped a redacting logger again")
	}
}
