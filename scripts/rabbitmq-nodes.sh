#!/usr/bin/env bash
# Starts and stops extra RabbitMQ nodes for tests (a three-node cluster, a
# TLS listener), next to, and apart from, the machine's own RabbitMQ.
#
# Every node lives under one base directory (BASE) that holds its own
# Erlang cookie, so rabbitmqctl run by this script can reach only the nodes
# this script started: the machine's node (rabbit@<host>, port 5672, with
# the cookie of /var/lib/rabbitmq) is never touched. Each node NAME
# (sbtestN@localhost) has its own data directory (RABBITMQ_MNESIA_BASE),
# log directory, configuration file, AMQP port (RABBITMQ_NODE_PORT) and
# distribution port (RABBITMQ_DIST_PORT); the system's rabbitmq-env.conf
# and rabbitmq.conf are not read. Nodes are stopped by their node name
# (rabbitmqctl -n NAME stop).
#
# Usage:
#   rabbitmq-nodes.sh start   BASE NAME PORT DIST_PORT [CONF]  start a node, wait until it runs
#   rabbitmq-nodes.sh restart BASE NAME                        start a stopped node again
#   rabbitmq-nodes.sh join    BASE NAME SEED                   join NAME to SEED's cluster
#   rabbitmq-nodes.sh stop    BASE NAME                        stop a node by its name
#   rabbitmq-nodes.sh stop-all BASE                            stop every node started in BASE
#   rabbitmq-nodes.sh watch   BASE PID                         in the background: stop-all once PID exits
#   rabbitmq-nodes.sh ctl     BASE NAME ARGS...                run rabbitmqctl -n NAME ARGS
#
# CONF is a file of extra rabbitmq.conf lines (for example ssl_options).
# With "listeners.tcp = none" in it, the node has no plain AMQP listener.
# Exit status: 0 on success, 1 on failure (with the node's log tail on
# stderr), 3 when rabbitmq-server is not installed.
set -uo pipefail

RMQ_BIN=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
log() { echo "rabbitmq-nodes: $*" >&2; }

if [ ! -x "$RMQ_BIN/rabbitmq-server" ]; then
	log "rabbitmq-server is not installed ($RMQ_BIN/rabbitmq-server missing; scripts/brokers.sh installs it)"
	exit 3
fi

cmd=${1:-}
base=${2:-}
[ -n "$cmd" ] && [ -n "$base" ] || { sed -n '2,27p' "$0" >&2; exit 1; }
mkdir -p "$base"
base=$(cd "$base" && pwd)

# Our own cookie and an empty environment file, shared by our nodes and
# our rabbitmqctl calls (HOME points at BASE).
if [ ! -f "$base/.erlang.cookie" ]; then
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F >"$base/.erlang.cookie")
	chmod 400 "$base/.erlang.cookie"
fi
: >"$base/rabbitmq-env.conf"
[ -f "$base/enabled_plugins" ] || echo '[].' >"$base/enabled_plugins"

common_env() {
	export HOME="$base"
	export RABBITMQ_CONF_ENV_FILE="$base/rabbitmq-env.conf"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins"
	export RABBITMQ_USE_LONGNAME=false
	export ERL_EPMD_ADDRESS=127.0.0.1
	unset RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT ERL_FLAGS
}

ctl() { # NAME ARGS...
	local name=$1
	shift
	(common_env && timeout 120 "$RMQ_BIN/rabbitmqctl" -q -n "$name" "$@")
}

node_dir() { echo "$base/${1%@*}"; }

launch() { # NAME: start the node whose env file exists, wait for it
	local name=$1 dir
	dir=$(node_dir "$name")
	(
		common_env
		# shellcheck disable=SC1091
		. "$dir/env"
		cd "$dir" || exit 1
		setsid "$RMQ_BIN/rabbitmq-server" >>"$dir/log/console.log" 2>&1 </dev/null &
		echo $! >"$dir/launcher.pid"
	)
	# "wait" waits for the node's pid file, then for the node to boot.
	if ! ctl "$name" wait "$dir/node.pid" --timeout 90 >/dev/null 2>&1; then
		log "node $name did not start; last lines of its log:"
		tail -n 30 "$dir/log/console.log" >&2
		return 1
	fi
	log "node $name runs (AMQP port $(sed -n 's/^export RABBITMQ_NODE_PORT=//p' "$dir/env"))"
}

stop_node() { # NAME
	local name=$1 dir pid
	dir=$(node_dir "$name")
	ctl "$name" stop >/dev/null 2>&1 || true
	# rabbitmq-server's own process (started by launch) exits with the
	# node; wait for it, then end it if it did not (it is ours).
	pid=$(cat "$dir/launcher.pid" 2>/dev/null || true)
	if [ -n "$pid" ]; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "node $name did not stop by name; ending its rabbitmq-server (pid $pid, started by this script)"
			kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
		fi
		rm -f "$dir/launcher.pid"
	fi
}

case $cmd in
start)
	name=${3:?NAME}
	port=${4:?PORT}
	dist=${5:?DIST_PORT}
	conf=${6:-}
	dir=$(node_dir "$name")
	# A node left by an earlier run that died: stop it, then start afresh.
	[ -f "$dir/env" ] && stop_node "$name"
	rm -rf "$dir"
	mkdir -p "$dir/mnesia" "$dir/log" "$dir/conf.d"
	{
		echo "listeners.tcp.default = 127.0.0.1:$port"
		echo "loopback_users = none"
		echo "log.file.level = warning"
		echo "log.console = false"
		echo "disk_free_limit.absolute = 50MB"
		echo "vm_memory_high_watermark.absolute = 512MiB"
		[ -n "$conf" ] && cat "$conf"
	} >"$dir/rabbitmq.conf"
	cat >"$dir/env" <<EOF
export RABBITMQ_NODENAME=$name
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_DIST_PORT=$dist
export RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
export RABBITMQ_CONFIG_FILES=$dir/conf.d
export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
export RABBITMQ_PID_FILE=$dir/node.pid
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 2:2 +SDio 2 +A 4 -kernel inet_dist_use_interface {127,0,0,1}"
EOF
	launch "$name"
	;;
restart)
	name=${3:?NAME}
	[ -f "$(node_dir "$name")/env" ] || { log "node $name was never started in $base"; exit 1; }
	pid=$(cat "$(node_dir "$name")/launcher.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		log "node $name runs already"
		exit 1
	fi
	launch "$name"
	;;
join)
	name=${3:?NAME}
	seed=${4:?SEED}
	ctl "$name" stop_app && ctl "$name" join_cluster "$seed" && ctl "$name" start_app ||
		{ log "joining $name to $seed failed"; exit 1; }
	log "node $name joined $seed"
	;;
stop)
	stop_node "${3:?NAME}"
	;;
stop-all)
	# Every node that runs (it has a launcher.pid), in parallel.
	for envf in "$base"/*/env; do
		[ -f "$envf" ] && [ -f "$(dirname "$envf")/launcher.pid" ] || continue
		name=$(sed -n 's/^export RABBITMQ_NODENAME=//p' "$envf")
		[ -n "$name" ] && stop_node "$name" &
	done
	wait
	;;
watch)
	owner=${3:?PID}
	(
		trap '' HUP INT
		while kill -0 "$owner" 2>/dev/null; do sleep 1; done
		"$0" stop-all "$base" >/dev/null 2>&1
	) </dev/null >/dev/null 2>&1 &
	disown
	;;
ctl)
	name=${3:?NAME}
	shift 3
	ctl "$name" "$@"
	;;
*)
	sed -n '2,27p' "$0" >&2
	exit 1
	;;
esac
