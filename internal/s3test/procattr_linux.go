package s3test

import "syscall"

// sysProcAttr makes the kernel kill versitygw when the test binary dies
// without running its cleanups (a timeout panic, a kill).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
