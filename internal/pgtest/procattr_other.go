//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs a server program as cred (nil: as ourselves); there is no
// way to tie the server's life to the test binary here.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	if cred == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: cred}
}
