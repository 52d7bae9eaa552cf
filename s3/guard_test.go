package s3_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/s3"
)

// TestStorage_DialGuard makes every name resolve to loopback and checks
// that only the allowed host:port is reached: a virtual-hosted bucket name
// under it, or an AWS endpoint, is refused at dial time.
func TestStorage_DialGuard(t *testing.T) {
	t.Parallel()
	resolver := MustFakeDNS(t, net.IPv4(127, 0, 0, 1))
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	endpoint := "http://s3.recsink.test:" + port
	st := s3.NewWithResolver(s3.Config{AllowEndpoints: []string{"S3.recsink.test:" + port}, Logger: slog.New(slog.DiscardHandler)}, resolver)
	key := recsink.AccessKey{ID: "AKID", Secret: "secret"}

	for _, tt := range []struct {
		name string
		dest recsink.Destination
		ok   bool
	}{
		{"OKAllowedEndpointPathStyle", recsink.Destination{Bucket: "b", Endpoint: endpoint, ForcePathStyle: true}, true},
		{"ErrVirtualHostedBucket", recsink.Destination{Bucket: "internal", Endpoint: endpoint}, false},
		{"ErrAWSEndpoint", recsink.Destination{Bucket: "bucket", Region: "us-east-1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			exists, err := mustClient(t, st, tt.dest, key).ObjectExists(ctx, "k")
			reached := hits.Load() - before
			if tt.ok {
				if err != nil || exists || reached != 1 {
					t.Fatalf("ObjectExists = %v, %v, server reached %d times; want false, nil, once", exists, err, reached)
				}
				return
			}
			var se *recsink.StorageError
			if !errors.As(err, &se) || se.Code != "AddressRefused" || reached != 0 {
				t.Fatalf("ObjectExists = %v, server reached %d times; want an AddressRefused StorageError, never reached", err, reached)
			}
			if !strings.Contains(recsink.ErrorMessage(err), "--allow-endpoint") || !strings.Contains(err.Error(), "non-public address 127.0.0.1:") {
				t.Errorf("message %q / error %v; want the refusal explained", recsink.ErrorMessage(err), err)
			}
		})
	}
}

// MustFakeDNS runs a DNS server that answers every A question with ip and
// every other with no record, and returns a resolver that asks only it.
func MustFakeDNS(t *testing.T, ip net.IP) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply := fakeDNSReply(buf[:n], ip.To4()); reply != nil {
				pc.WriteTo(reply, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// fakeDNSReply answers the one question of query.
func fakeDNSReply(query []byte, ip net.IP) []byte {
	if len(query) < 12 {
		return nil
	}
	i := 12
	for i < len(query) && query[i] != 0 {
		i += int(query[i]) + 1
	}
	if i+5 > len(query) {
		return nil
	}
	question := query[12 : i+5]
	qtype := binary.BigEndian.Uint16(query[i+1:])
	var b bytes.Buffer
	b.Write(query[:2])                      // ID
	b.Write([]byte{0x81, 0x80})             // response, recursion desired and available, no error
	b.Write([]byte{0, 1, 0, 0, 0, 0, 0, 0}) // one question, counts below
	b.Write(question)
	out := b.Bytes()
	if qtype == 1 { // A
		out[7] = 1 // one answer
		out = append(out, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		out = append(out, ip...)
	}
	return out
}

// TestStorage_ErrorTextRedacted has an endpoint echo the request's
// Authorization header, a presigned URL and the secret itself in its error
// message: none of it reaches an error's text or the log.
func TestStorage_ErrorTextRedacted(t *testing.T) {
	t.Parallel()
	const secret = "SECRETdoNotPrint0123456789abcdefghijklmn"
	var sigs []string
	var mu = make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		_, sig, _ := strings.Cut(auth, "Signature=")
		mu <- struct{}{}
		sigs = append(sigs, sig)
		<-mu
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<Error><Code>InvalidArgument</Code><Message>refused Authorization: %s for https://b.example.com/k?X-Amz-Credential=AKID%%2F20260101&amp;X-Amz-Signature=%s&amp;X-Amz-Security-Token=tok%s, secret %s</Message></Error>`,
			auth, sig, sig, secret)
	}))
	defer ts.Close()
	var logs bytes.Buffer
	st := s3.New(s3.Config{AllowEndpoints: []string{strings.TrimPrefix(ts.URL, "http://")}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	dest := recsink.Destination{Bucket: "b", Endpoint: ts.URL, Region: "us-east-1", ForcePathStyle: true}
	c := mustClient(t, st, dest, recsink.AccessKey{ID: "AKID", Secret: secret})
	ctx := context.Background()

	var shown []string
	_, err := c.CreateMultipartUpload(ctx, "k", "", nil)
	perr := c.PutObject(ctx, "k", "", nil, strings.NewReader("x"), 1)
	for _, err := range []error{err, perr} {
		var se *recsink.StorageError
		if !errors.As(err, &se) || se.Code != "InvalidArgument" {
			t.Fatalf("err = %v, want an InvalidArgument StorageError", err)
		}
		shown = append(shown, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%v", se), recsink.ErrorMessage(err))
	}
	if !strings.Contains(shown[0], "refused Authorization: [REDACTED]") {
		t.Errorf("error = %s; want the message kept with its secrets redacted", shown[0])
	}
	if _, err := st.Check(ctx, dest, recsink.AccessKey{ID: "AKID", Secret: secret}); err != nil {
		t.Fatal(err)
	}
	shown = append(shown, logs.String())
	mu <- struct{}{}
	defer func() { <-mu }()
	if len(sigs) < 3 {
		t.Fatalf("the endpoint saw %d signed requests, want at least 3", len(sigs))
	}
	for _, s := range shown {
		for _, bad := range append([]string{secret}, sigs...) {
			if bad != "" && strings.Contains(s, bad) {
				t.Errorf("shown text contains %q: %s", bad, s)
			}
		}
	}
}
