#!/usr/bin/env bash
# Runs the whole comparison (every reachable transport, 5 rounds by
# default) and prints the ratio tables; keeps the raw runs and benchstat's
# summary in bench/results/. Extra arguments go to cmd/compare, e.g.
#   bash bench/run.sh -rounds 3 -transports inmem
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
go run ./cmd/compare -benchout results/latest.bench "$@" | tee results/latest.md
echo
echo "benchstat (median ± 95% CI over rounds, per implementation):"
go tool benchstat -col /impl results/latest.bench | tee results/latest.benchstat
