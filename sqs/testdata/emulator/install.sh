#!/bin/sh
# Installs the pinned SNS+SQS emulator (fauxqs, see package.json and
# package-lock.json) into node_modules here. The sqs tests run this
# themselves when node_modules is missing.
set -eu
cd "$(dirname "$0")"
exec npm ci --no-audit --no-fund --loglevel=error
