//go:build !linux

package sqsemu

import "os/exec"

func configureCmd(*exec.Cmd) {}
