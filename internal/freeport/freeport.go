// Package freeport finds free loopback ports for test servers that are
// stopped and started again on the same ports.
//
// A port the kernel hands out for ":0" lies in the ephemeral range, which
// outbound connections draw from too: once the server stops, any client
// socket may claim its port before the restart binds it again. Ports are
// therefore taken below the ephemeral floor, where only listeners that ask
// for them by number go.
package freeport

import (
	"crypto/rand"
	"errors"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the first port handed out: below it lie well-known services.
const lowest = 10000

// Consecutive returns the first of n consecutive ports that were free on
// 127.0.0.1 when asked, all below the ephemeral range.
func Consecutive(n int) (int, error) {
	floor := ephemeralFloor()
	span := floor - lowest - n
	if span <= 0 {
		return 0, errors.New("freeport: no room below the ephemeral range")
	}
	for range 100 {
		r, err := rand.Int(rand.Reader, big.NewInt(int64(span)))
		if err != nil {
			return 0, err
		}
		base := lowest + int(r.Int64())
		if free(base, n) {
			return base, nil
		}
	}
	return 0, errors.New("freeport: no run of free ports found below the ephemeral range")
}

// One returns one free port below the ephemeral range.
func One() (int, error) { return Consecutive(1) }

// free reports whether ports base..base+n-1 can all be bound now.
func free(base, n int) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if err != nil {
			return false
		}
		ls = append(ls, l)
	}
	return true
}

// ephemeralFloor is the first port of Linux's ephemeral range, 32768 when
// it cannot be read.
func ephemeralFloor() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowest+100 {
		return 32768
	}
	return n
}
