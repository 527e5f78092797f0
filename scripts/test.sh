#!/usr/bin/env bash
# The whole Switchboard test suite, as the README and CI run it.
#
# It first makes sure the brokers and tools the tests use are there
# (scripts/brokers.sh: RabbitMQ, the SQS emulator, kcat, amqp-tools,
# awscli), then vets and runs every package's tests with the race detector.
# Brokers given in the environment (SWITCHBOARD_AMQP_URL,
# SWITCHBOARD_KAFKA_BROKERS, SWITCHBOARD_SQS_ENDPOINT) are used as they are.
# Set SWITCHBOARD_REQUIRE=all to make a missing broker fail instead of skip.
# Extra arguments go to `go test` (for example -run TestConformance -v).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/brokers.sh

echo "== go vet ./..."
go vet ./...

echo "== go test -race ./... $*"
go test -race -count=1 -timeout 40m "$@" ./...
