// Package scripts holds the tests of the project's shell scripts:
// brokers.sh (what the tests need, installed and started) and test.sh (the
// test command of the README and CI). It has no Go API.
package scripts
