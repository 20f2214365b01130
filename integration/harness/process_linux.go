package harness

import "syscall"

// sysProcAttr kills the child if the test binary dies without running its cleanups
// (a panic, a timeout), so no Envoy outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
