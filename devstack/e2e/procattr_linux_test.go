package e2e

import "syscall"

// stackProcAttr puts devstack in a process group of its own (so a failed
// test can kill the whole stack) and has the kernel send it SIGTERM if the
// test binary dies without cleaning up (a -timeout panic): devstack then
// stops its services as on Ctrl-C.
func stackProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
