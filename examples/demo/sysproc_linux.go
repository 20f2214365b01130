package main

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts a child in its own process group (the terminal's Ctrl-C
// goes to the demo, which stops the chain in order) and has the kernel kill
// it if the demo itself dies without cleaning up (SIGKILL, OOM).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup signals the child's whole process group.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}
