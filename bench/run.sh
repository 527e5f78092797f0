#!/usr/bin/env bash
# Runs the whole comparison (inmem, rabbitmq, kafka, sqs: every reachable
# transport, 5 rounds by default; Kafka on a kfake cluster in a child
# process unless SWITCHBOARD_KAFKA_BROKERS is set, SQS on the fauxqs
# emulator unless SWITCHBOARD_SQS_ENDPOINT is set) and prints the ratio tables; keeps the raw runs and benchstat's
# summary in bench/results/. Extra arguments go to cmd/compare, e.g.
#   bash bench/run.sh -rounds 3 -transports inmem
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
go run ./cmd/compare -transports inmem,rabbitmq,kafka,sqs -benchout results/latest.bench "$@" | tee results/latest.md
echo
echo "benchstat (median ± 95% CI over rounds, per implementation):"
go tool benchstat -col /impl results/latest.bench | tee results/latest.benchstat
