#!/usr/bin/env bash
# The whole Switchboard test suite, as the README and CI run it.
#
# It first makes sure the brokers and tools the tests use are there
# (scripts/brokers.sh: RabbitMQ, the SQS emulator, kcat, amqp-tools,
# awscli), then vets and runs every package's tests with the race detector.
# Brokers given in the environment (SWITCHBOARD_AMQP_URL,
# SWITCHBOARD_KAFKA_BROKERS, SWITCHBOARD_SQS_ENDPOINT) are used as they are.
# A broker with neither an endpoint nor a local fixture (RabbitMQ on
# 127.0.0.1:5672; Node >= 20 and npm for the SQS emulator; Kafka needs none,
# kfake runs in process) is started in a container where Docker runs
# (containers/, a separate module: containers/README.md), and removed at
# exit. SWITCHBOARD_CONTAINERS=kafka,rabbitmq,sqs (or all) forces containers
# for those brokers; SWITCHBOARD_CONTAINERS=none never starts any.
# Set SWITCHBOARD_REQUIRE=all to make a missing broker fail instead of skip.
# A broker that accepts connections but does not answer fails the run at
# once (scripts/brokers.sh says which and what to do); nothing here stops
# or kills a process it did not start.
#
# go test runs with -json through internal/testsummary, which prints what
# go test prints without -v (each package's "ok"/"FAIL" line, failed tests'
# output), names tests still running after 2 minutes, and ends with every
# skipped test and its reason (after the RESULT lines tests log: figures of
# record such as the cluster tests' loss, duplicates and recovery times).
# Each package's tests are bounded by
# -timeout 20m (SWITCHBOARD_TEST_TIMEOUT), so a hung broker ends the run
# with a stack dump instead of hanging. Extra arguments go to `go test`
# (for example -run TestConformance -v).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! bash scripts/brokers.sh; then
	echo "test.sh: a broker does not answer (see above); not running the tests." >&2
	exit 1
fi

# Containers for the brokers that are still missing, where Docker runs.
port_open() { # port
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-
}
forced=",$(echo "${SWITCHBOARD_CONTAINERS:-}" | tr 'A-Z ' 'a-z,'),"
forced() { [[ $forced == *",all,"* || $forced == *",$1,"* ]]; }
node_ok() {
	command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 &&
		node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' >/dev/null 2>&1
}
want=()
if [ -z "${SWITCHBOARD_KAFKA_BROKERS:-}" ] && forced kafka; then
	want+=(kafka)
fi
if [ -z "${SWITCHBOARD_AMQP_URL:-}" ] && { forced rabbitmq || ! port_open 5672; }; then
	want+=(rabbitmq)
fi
if [ -z "${SWITCHBOARD_SQS_ENDPOINT:-}" ] && { forced sqs || forced localstack || ! node_ok; }; then
	want+=(localstack)
fi
if [ ${#want[@]} -gt 0 ] && [[ $forced != *",none,"* ]]; then
	echo "== containers for ${want[*]} (containers/cmd/sbbrokers)"
	sbbrokers_dir=$(mktemp -d)
	export SBBROKERS_RUN="test-$$-$(date +%s)"
	stop_containers() {
		"$sbbrokers_dir/sbbrokers" down >/dev/null 2>&1 || true
		rm -rf "$sbbrokers_dir"
	}
	stop_containers_cmd=stop_containers
	trap stop_containers EXIT
	rc=0
	(cd containers && go build -o "$sbbrokers_dir/sbbrokers" ./cmd/sbbrokers) || rc=$?
	if [ $rc = 0 ]; then
		exports=$("$sbbrokers_dir/sbbrokers" up "${want[@]}") || rc=$?
	fi
	case $rc in
	0)
		eval "$exports"
		echo "$exports" | sed 's/^/containers: /'
		;;
	3) echo "containers: no Docker here; the tests use what there is" ;;
	*) echo "containers: could not start ${want[*]} (exit $rc); the tests use what there is" ;;
	esac
fi

echo "== go vet ./..."
go vet ./...

# The summary of go test -json; -v among the arguments prints everything.
summary_dir=$(mktemp -d)
trap 'rm -rf "$summary_dir"; ${stop_containers_cmd:-true}' EXIT
go build -o "$summary_dir/testsummary" ./internal/testsummary
summary_flags=()
for a in "$@"; do
	case $a in -v | -test.v | -v=true | -test.v=true) summary_flags+=(-v) ;; esac
done
# gotest DIR ARGS...: go test -json in DIR through the summary; returns
# go test's exit status, else the summary's.
gotest() {
	local dir=$1
	shift
	set +e
	(cd "$dir" && go test -json "$@") | "$summary_dir/testsummary" "${summary_flags[@]}"
	local st=("${PIPESTATUS[@]}")
	set -e
	[ "${st[0]}" != 0 ] && return "${st[0]}"
	return "${st[1]}"
}

echo "== containers: go vet ./... && go test ./..."
(cd containers && go vet ./...)
gotest containers -count=1 ./...

timeout=${SWITCHBOARD_TEST_TIMEOUT:-20m}
echo "== go test -race -timeout $timeout ./... $*"
gotest . -race -count=1 -timeout "$timeout" "$@" ./...
