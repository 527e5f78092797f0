package sqsemu

import (
	"os/exec"
	"syscall"
)

// configureCmd makes the emulator die with the process that started it, even when that
// is killed.
func configureCmd(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
