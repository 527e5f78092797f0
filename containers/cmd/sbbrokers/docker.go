package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// errNoDocker marks every reason Docker cannot be used; main turns it into
// exit code 3.
var errNoDocker = errors.New("no usable Docker")

// pingTimeout bounds the one call to the Docker engine made before
// anything else, so that a missing or hung engine is reported fast.
const pingTimeout = 2 * time.Second

// dockerHost finds the Docker engine the way testcontainers-go does, without
// touching the network: tc.host in ~/.testcontainers.properties, then
// DOCKER_HOST, then the usual (rootful, then rootless and Docker Desktop)
// socket paths, then docker.host in the properties file. It returns the
// first that is set or exists, or an errNoDocker error naming where it
// looked.
func dockerHost() (string, error) {
	props := readProperties()
	if h := props["tc.host"]; h != "" {
		return h, nil
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h, nil
	}
	var tried []string
	for _, p := range socketPaths() {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix://" + p, nil
		}
		tried = append(tried, p)
	}
	if h := props["docker.host"]; h != "" {
		return h, nil
	}
	return "", fmt.Errorf("%w: DOCKER_HOST is unset and no Docker socket exists (%s)", errNoDocker, strings.Join(tried, ", "))
}

// socketPaths are the Docker sockets testcontainers-go looks for.
func socketPaths() []string {
	paths := []string{"/var/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		paths = append(paths, filepath.Join(d, "docker.sock"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths,
			filepath.Join(home, ".docker", "run", "docker.sock"),
			filepath.Join(home, ".docker", "desktop", "docker.sock"))
	}
	paths = append(paths, filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "docker.sock"))
	return paths
}

// readProperties reads ~/.testcontainers.properties (key=value lines), if
// there is one.
func readProperties() map[string]string {
	props := map[string]string{}
	home, err := os.UserHomeDir()
	if err != nil {
		return props
	}
	f, err := os.Open(filepath.Join(home, ".testcontainers.properties"))
	if err != nil {
		return props
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "!") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			props[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return props
}

// newDockerClient returns a client for host (TLS settings and API version
// from the environment, as the docker CLI reads them).
func newDockerClient(host string) (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithHost(host), client.WithAPIVersionNegotiation())
}

// checkDocker reports whether a Docker engine answers, fast: it finds the
// host without the network, then pings it with a short timeout. Every
// failure wraps errNoDocker.
func checkDocker(ctx context.Context) (host string, err error) {
	host, err = dockerHost()
	if err != nil {
		return "", err
	}
	cli, err := newDockerClient(host)
	if err != nil {
		return host, fmt.Errorf("%w: Docker client for %s: %v", errNoDocker, host, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return host, fmt.Errorf("%w: Docker at %s does not answer: %v", errNoDocker, host, oneLine(err))
	}
	return host, nil
}

// oneLine flattens an error message onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
