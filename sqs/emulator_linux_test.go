package sqs_test

import (
	"os/exec"
	"syscall"
)

func init() {
	// The emulator dies with the test binary, even when it is killed.
	configureEmulatorCmd = func(cmd *exec.Cmd) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
}
