package pgtest

import "syscall"

// sysProcAttr runs a server program as cred (nil: as ourselves) and makes
// the kernel send it SIGQUIT, PostgreSQL's immediate shutdown, when the test
// binary dies without running its cleanups (a timeout panic, a kill).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
