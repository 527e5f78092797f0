#!/usr/bin/env bash
# Runs the whole comparison (inmem, rabbitmq, kafka, sqs: every reachable
# transport, 5 rounds by default; Kafka on a kfake cluster in a child
# process unless SWITCHBOARD_KAFKA_BROKERS is set, SQS on the fauxqs
# emulator unless SWITCHBOARD_SQS_ENDPOINT is set) and prints the ratio tables; keeps the raw runs and benchstat's
# summary in bench/results/. Extra arguments go to cmd/compare, e.g.
#   bash bench/run.sh -rounds 3 -transports inmem
#
# The scale table (keys in flight, subscriptions, body sizes, group
# members; each row against a baseline row of the same run) and the soak
# (steady load, heap sampled; -soak sets its duration, default 10m per
# transport) are modes of the same command:
#   bash bench/run.sh scale                       # every reachable transport, 1 round
#   bash bench/run.sh scale -transports inmem -rounds 3
#   bash bench/run.sh soak -soak 10m -transports inmem
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
case "${1:-}" in
scale)
	shift
	go run ./cmd/compare -mode scale -transports inmem,rabbitmq,kafka,sqs -rounds 1 "$@" | tee results/scale.md
	exit
	;;
soak)
	shift
	go run ./cmd/compare -mode soak -transports inmem,rabbitmq,kafka,sqs -soak-profiles results "$@" | tee results/soak.md
	exit
	;;
esac
go run ./cmd/compare -transports inmem,rabbitmq,kafka,sqs -benchout results/latest.bench "$@" | tee results/latest.md
echo
echo "benchstat (median ± 95% CI over rounds, per implementation):"
go tool benchstat -col /impl results/latest.bench | tee results/latest.benchstat
