//go:build !linux

package s3test

import (
	"syscall"
	"time"
)

// sysProcAttr has no way to tie the server's life to the test binary here.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processAlive cannot tell here, and says yes: nothing is removed.
func processAlive(pid int) bool { return true }

// processCPU cannot tell here.
func processCPU(pid int) (time.Duration, bool) { return 0, false }
