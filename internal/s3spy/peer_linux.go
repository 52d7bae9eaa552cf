//go:build linux

package s3spy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// peerPID returns the process among pids that holds the client's end of c,
// or 0. The kernel's socket table lists the client's end with the client's
// port as its local port and ours as its remote one; its inode appears in
// the owner's /proc/PID/fd as socket:[INODE].
func peerPID(c net.Conn, pids []int) int {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0
	}
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = findInode(table, remote.Port, local.Port); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/" + fd.Name()); err == nil && link == want {
				return pid
			}
		}
	}
	return 0
}

// findInode returns the inode of the socket whose local port is lport and
// remote port rport in a /proc/net/tcp table.
func findInode(table string, lport, rport int) string {
	f, err := os.Open(table)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		if portOf(fields[1]) == lport && portOf(fields[2]) == rport {
			return fields[9]
		}
	}
	return ""
}

// portOf returns the port of a table address such as 0100007F:1F90.
func portOf(addr string) int {
	_, hex, ok := strings.Cut(addr, ":")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(hex, 16, 32)
	if err != nil {
		return -1
	}
	return int(n)
}
