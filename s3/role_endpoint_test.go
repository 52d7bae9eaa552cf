package s3_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/oidc"
	"github.com/recsink/recsink/s3"
)

// TestStorage_RoleEndpointNotAllowed: a role destination's custom endpoint
// is also where recsink calls STS, and it follows the operator's allowlist
// exactly as an S3 endpoint does: a role on an endpoint that is not allowed
// is refused by the Endpoint check, AssumeRoleWithWebIdentity is skipped,
// opening a client is EFORBIDDEN on the endpoint field, and the endpoint
// never sees a connection (no identity token leaves recsink).
func TestStorage_RoleEndpointNotAllowed(t *testing.T) {
	t.Parallel()
	issuer := MustIssuer(t, "")
	l := newStrayListener(t)
	st := s3.New(s3.Config{AllowEndpoints: []string{"127.0.0.1:1"}, Logger: slog.New(slog.DiscardHandler), Identity: issuer})
	dest := recsink.Destination{Bucket: "recordings", Endpoint: "http://" + l.Addr().String(), Region: "us-east-1", ForcePathStyle: true}
	role := recsink.AccessKey{ID: "arn:aws:iam::123456789012:role/recsink", Subject: oidc.Subject("org_a")}

	report, err := st.Check(context.Background(), dest, role)
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, report)
	wantMsg := "endpoint " + l.Addr().String() + " is not allowed on this recsink server"
	if c := report.Checks[0]; c.Name != "Endpoint" || c.OK || !strings.Contains(c.Message, wantMsg) {
		t.Errorf("first check = %+v, want Endpoint failed with %q", c, wantMsg)
	}
	var sawAssume bool
	for _, c := range report.Checks[1:] {
		sawAssume = sawAssume || c.Name == recsink.OpAssumeRole
		if !c.Skipped {
			t.Errorf("%s not skipped", c.Name)
		}
	}
	if !sawAssume {
		t.Errorf("checks %v: want AssumeRoleWithWebIdentity listed, skipped", checkNames(report))
	}
	if report.OK {
		t.Error("report OK")
	}

	c, err := st.Client(context.Background(), dest, role)
	var e *recsink.Error
	if !errors.As(err, &e) || e.Code != recsink.EFORBIDDEN || e.Field != "endpoint" {
		t.Fatalf("Client = %v, %v; want EFORBIDDEN on endpoint", c, err)
	}
	if n := l.strays(t); n != 0 {
		t.Errorf("the endpoint not allowed accepted %d connections, want none", n)
	}
}
