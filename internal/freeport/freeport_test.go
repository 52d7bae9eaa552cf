package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestConsecutive_BelowEphemeralAndFree(t *testing.T) {
	base, err := Consecutive(10)
	if err != nil {
		t.Fatal(err)
	}
	if base < lowest || base+10 > ephemeralFloor() {
		t.Fatalf("ports %d..%d are not between %d and the ephemeral floor %d", base, base+9, lowest, ephemeralFloor())
	}
	for i := range 10 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if err != nil {
			t.Fatalf("port %d was handed out but cannot be bound: %v", base+i, err)
		}
		l.Close()
	}
}
