//go:build !linux

package e2e

import "syscall"

// stackProcAttr puts devstack in a process group of its own, so a failed
// test can kill the whole stack.
func stackProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
