package recsink_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

func TestIsPublicAddr(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, addr string
		public     bool
	}{
		{"IPv4Public", "52.216.1.2", true},
		{"IPv4PublicDNS", "8.8.8.8", true},
		{"IPv4Loopback", "127.0.0.1", false},
		{"IPv4Private10", "10.1.2.3", false},
		{"IPv4Private172", "172.16.0.1", false},
		{"IPv4Private192", "192.168.1.1", false},
		{"IPv4Metadata", "169.254.169.254", false},
		{"IPv4SharedCGNAT", "100.100.100.200", false},
		{"IPv4ThisNetwork", "0.0.0.0", false},
		{"IPv4Broadcast", "255.255.255.255", false},
		{"IPv4Multicast", "224.0.0.1", false},
		{"IPv4Documentation", "192.0.2.1", false},
		{"IPv4Benchmarking", "198.18.0.1", false},
		{"IPv4Reserved", "240.0.0.1", false},

		{"IPv6Public", "2600:1f18::1", true},
		{"IPv6Loopback", "::1", false},
		{"IPv6Unspecified", "::", false},
		{"IPv6LinkLocal", "fe80::1", false},
		{"IPv6UniqueLocal", "fd00:ec2::254", false},
		{"IPv6SiteLocal", "fec0::1", false},
		{"IPv6Multicast", "ff02::1", false},
		{"IPv6Documentation", "2001:db8::1", false},
		{"IPv6Discard", "100::1", false},

		{"MappedPublic", "::ffff:8.8.8.8", true},
		{"MappedLoopback", "::ffff:127.0.0.1", false},
		{"MappedMetadata", "::ffff:169.254.169.254", false},
		{"TranslatedPublic", "::ffff:0:808:808", true},
		{"TranslatedMetadata", "::ffff:0:a9fe:a9fe", false},
		{"CompatiblePublic", "::808:808", true},
		{"CompatibleLoopback", "::7f00:1", false},
		{"CompatibleMetadata", "::a9fe:a9fe", false},

		{"NAT64Public", "64:ff9b::808:808", true},
		{"NAT64Metadata", "64:ff9b::a9fe:a9fe", false},
		{"NAT64Loopback", "64:ff9b::7f00:1", false},
		{"NAT64LocalPublic", "64:ff9b:1::808:808", true},
		{"NAT64LocalPrivate", "64:ff9b:1::a00:1", false},
		// 169.254.169.254 at the /56 position of RFC 6052: the /96
		// reading (0.0.0.1) would be wrong, so the whole form is refused.
		{"NAT64LocalOtherPrefixLength", "64:ff9b:1:a9fe:a9:fe00::1", false},

		{"6to4Public", "2002:808:808::1", true},
		{"6to4Loopback", "2002:7f00:1::1", false},
		{"6to4Metadata", "2002:a9fe:a9fe::1", false},
		{"6to4Private", "2002:c0a8:101::1", false},

		// Teredo: server 65.54.227.120, client stored inverted.
		{"TeredoPublic", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", true},         // client 8.8.8.8
		{"TeredoClientPrivate", "2001:0:4136:e378:8000:63bf:f5ff:fffe", false}, // client 10.0.0.1
		{"TeredoClientLoopback", "2001:0:4136:e378:8000:63bf:80ff:fffe", false},
		{"TeredoClientMetadata", "2001:0:4136:e378:8000:63bf:5601:5601", false}, // client 169.254.169.254
		{"TeredoServerPrivate", "2001:0:a00:1::f7f7:f7f7", false},               // server 10.0.0.1
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := netip.MustParseAddr(tt.addr)
			if got := recsink.IsPublicAddr(a); got != tt.public {
				t.Errorf("IsPublicAddr(%s) = %v, want %v", tt.addr, got, tt.public)
			}
			ap := netip.AddrPortFrom(a, 443).String()
			err := recsink.CheckDialAddress(ap)
			var re *recsink.RefusedAddressError
			if tt.public != (err == nil) || (err != nil && !errors.As(err, &re)) {
				t.Errorf("CheckDialAddress(%s) = %v, want refused %v", ap, err, !tt.public)
			}
		})
	}
}

func TestNormalizeHostPort(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"S3.Example.com:9000", "s3.example.com:9000"},
		{" localhost:80 ", "localhost:80"},
		{"[::1]:443", "[::1]:443"},
		{"NoPort", "noport"},
	} {
		if got := recsink.NormalizeHostPort(tt.in); got != tt.want {
			t.Errorf("NormalizeHostPort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestGuardDial dials a real loopback listener: refused unless allowed, and
// the dialer's own Control still runs on guarded dials.
func TestGuardDial(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var controlled int
	d := &net.Dialer{Timeout: 5 * time.Second, Control: func(string, string, syscall.RawConn) error { controlled++; return nil }}

	t.Run("ErrRefused", func(t *testing.T) {
		dial := recsink.GuardDial(d, nil)
		for _, addr := range []string{l.Addr().String(), net.JoinHostPort("localhost", port)} {
			c, err := dial(ctx, "tcp", addr)
			var re *recsink.RefusedAddressError
			if !errors.As(err, &re) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("dial %s = %v, want a RefusedAddressError", addr, err)
			}
		}
	})
	t.Run("OKAllowed", func(t *testing.T) {
		allowed := func(hp string) bool { return hp == net.JoinHostPort("localhost", port) }
		c, err := recsink.GuardDial(d, allowed)(ctx, "tcp4", net.JoinHostPort("LocalHost", port))
		if err != nil {
			t.Fatalf("dial of an allowed host:port: %v", err)
		}
		c.Close()
		// Another port of the same host is not allowed.
		if _, err := recsink.GuardDial(d, allowed)(ctx, "tcp", l.Addr().String()); err == nil {
			t.Fatal("dial of a host:port not in the list succeeded")
		}
	})
	t.Run("OKPublicRunsInnerControl", func(t *testing.T) {
		before := controlled
		inner := &net.Dialer{Control: func(string, string, syscall.RawConn) error {
			controlled++
			return errors.New("stop here")
		}}
		// A public address passes the guard and reaches the inner Control,
		// which stops the dial before any packet is sent.
		_, err := recsink.GuardDial(inner, nil)(ctx, "tcp", "8.8.8.8:443")
		if err == nil || controlled != before+1 {
			t.Fatalf("dial = %v, inner Control ran %d times, want once", err, controlled-before)
		}
	})
}
