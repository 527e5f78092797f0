package sqstest

import (
	"os/exec"
	"syscall"
)

// configureCmd makes the emulator die with the test binary, even when it
// is killed.
func configureCmd(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
