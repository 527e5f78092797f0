package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-go/switchboard/sqs/sqstest"
)

// kfakeChild, set in the environment, makes this program serve a kfake
// cluster instead of benchmarking: the broker then runs in its own
// process, as a real broker would, and its allocations are not counted in
// the clients' allocations per message (the CPU is shared all the same).
const kfakeChild = "SBBENCH_KFAKE_CHILD"

// serveKfake runs a one-broker kfake cluster, prints "BROKERS addr,..."
// and serves until its standard input closes.
func serveKfake() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond), kfake.AllowAutoTopicCreation())
	if err != nil {
		fatal(err)
	}
	defer c.Close()
	fmt.Printf("BROKERS %s\n", strings.Join(c.ListenAddrs(), ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// kafkaCluster returns the brokers given, or starts kfake in a child
// process (this program, re-executed).
func kafkaCluster(given string) ([]string, func(), error) {
	if given != "" {
		return strings.Split(given, ","), func() {}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), kfakeChild+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { in.Close(); _ = cmd.Wait() }
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "BROKERS "); ok {
				got <- a
			}
		}
	}()
	select {
	case a := <-got:
		return strings.Split(a, ","), stop, nil
	case <-time.After(20 * time.Second):
		stop()
		return nil, nil, errors.New("kfake did not start within 20s")
	}
}

// sqsEndpointOrEmulator returns the endpoint given, or starts the fauxqs
// emulator (installed with npm on first use).
func sqsEndpointOrEmulator(given string) (string, func(), error) {
	sqstest.SetDummyCredentials()
	if given != "" {
		return given, func() {}, nil
	}
	e, err := sqstest.Start(0)
	if err != nil {
		return "", nil, err
	}
	return e.Endpoint(), e.Stop, nil
}
