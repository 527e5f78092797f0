#!/usr/bin/env bash
# Makes sure what the tests need is installed and running on this machine:
# RabbitMQ and Redis (installed with apt if missing, started if not
# running), and the command-line clients the interoperability tests use
# (kcat, amqp-tools, awscli, node/npm). Kafka needs nothing: the tests start
# an in-process cluster (kfake). The SQS emulator (fauxqs, pinned in
# sqs/testdata/emulator) is installed with npm by the SQS tests themselves.
#
# It never stops, restarts or kills a process it did not start. The one
# exception is asked for explicitly: with SWITCHBOARD_RABBITMQ_RESTART=1
# (CI sets it, in .ci/run, on a machine whose RabbitMQ serves nothing
# else) it resets the local RabbitMQ to an empty node and restarts it when
# it is wedged.
#
# Exit status:
#   0  every broker found answers, or is missing (then scripts/test.sh tries
#      containers, and the tests skip, or fail under SWITCHBOARD_REQUIRE)
#   1  a broker accepts connections but does not answer within 5 seconds:
#      the tests would hang on it. The message says which broker and what
#      to do.
set -uo pipefail

log() { echo "brokers: $*"; }

# Seconds a probe waits for a broker's answer.
probe_timeout=5

can_install=false
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	can_install=true
fi
apt_updated=false
apt_install() { # package...
	$can_install || { log "cannot install $* (needs root and apt-get)"; return 1; }
	if ! $apt_updated; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
		apt_updated=true
	fi
	log "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || { log "apt-get install $* failed"; return 1; }
}

port_open() { # host port
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# amqp_answers host port: the broker answers the AMQP protocol header with
# its Connection.Start within probe_timeout seconds (a wedged RabbitMQ
# accepts TCP connections and never answers).
amqp_answers() {
	local n
	n=$(timeout "$probe_timeout" bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 8 <&3" 2>/dev/null | wc -c)
	[ "${n:-0}" -ge 8 ]
}

# redis_answers host port: PING gets +PONG within probe_timeout seconds.
redis_answers() {
	local r
	r=$(timeout "$probe_timeout" bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null)
	[ "$r" = "+PONG" ]
}

# host_port URL default_port: prints "host port" of a URL.
host_port() {
	local rest=${1#*://}
	rest=${rest%%[/?]*}
	rest=${rest##*@}
	rest=${rest%%,*}
	local host=${rest%:*} port=${rest##*:}
	[ "$host" = "$rest" ] && port=$2
	host=${host#[}
	host=${host%]}
	echo "${host:-127.0.0.1} ${port:-$2}"
}

failed=0
wedged() { # broker what-to-do
	log "ERROR: $1 accepts connections but does not answer within ${probe_timeout}s; the tests would hang on it."
	log "  $2"
	failed=1
}

# Command-line clients for interoperability tests.
command -v amqp-publish >/dev/null 2>&1 || apt_install amqp-tools
command -v kcat >/dev/null 2>&1 || apt_install kcat
command -v aws >/dev/null 2>&1 || apt_install awscli
command -v node >/dev/null 2>&1 || apt_install nodejs npm

# ours_to_restart: CI said this machine's RabbitMQ is the tests' alone.
ours_to_restart() { [ "${SWITCHBOARD_RABBITMQ_RESTART:-}" = 1 ]; }

# RabbitMQ (3.x) counts sockets and queue files against its file handle
# cache, sized from the node's open-files limit; when the cache runs out,
# new connections wait in the AMQP handshake forever (the node "accepts TCP,
# never answers AMQP"). Debian's wrapper starts the node through `su`,
# whose PAM session resets the soft limit to 1024: too few for this suite's
# queues and connections. min_open_files is what the tests need.
min_open_files=8192

# rabbit_open_files: the open-files limit of the node listening on 5672,
# or nothing when it cannot be read.
rabbit_open_files() {
	local pid
	pid=$(ss -ltnpH 'sport = :5672' 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
	[ -n "$pid" ] && awk '/^Max open files/ {print $4}' "/proc/$pid/limits" 2>/dev/null
}

# start_rabbitmq: starts the machine's node, as the rabbitmq user with the
# hard open-files limit where this script may (run as root), else as
# rabbitmq-server does by itself.
start_rabbitmq() {
	if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
		(cd /var/lib/rabbitmq && su rabbitmq -s /bin/sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached') >/dev/null 2>&1 || true
	else
		rabbitmq-server -detached >/dev/null 2>&1 || true
	fi
}

# restart_rabbitmq: only with SWITCHBOARD_RABBITMQ_RESTART=1. Stops the
# node with rabbitmqctl, else ends the process named in the node's pid
# file (never by a name pattern), starts it with an empty data directory
# and waits until AMQP answers.
restart_rabbitmq() {
	log "SWITCHBOARD_RABBITMQ_RESTART=1: restarting this machine's RabbitMQ"
	timeout 30 rabbitmqctl -q stop >/dev/null 2>&1 || true
	if port_open 127.0.0.1 5672; then
		local f pid
		for f in /var/lib/rabbitmq/mnesia/*.pid; do
			[ -f "$f" ] || continue
			pid=$(cat "$f")
			[[ $pid =~ ^[0-9]+$ ]] && kill -9 "$pid" 2>/dev/null && log "ended RabbitMQ node (pid $pid, from $f)"
		done
		for _ in $(seq 1 30); do port_open 127.0.0.1 5672 || break; sleep 1; done
	fi
	if [ -d /var/lib/rabbitmq/mnesia ]; then
		# A node stuck recovering hundreds of test queues starts empty.
		rm -rf /var/lib/rabbitmq/mnesia/*
	fi
	start_rabbitmq
	for _ in $(seq 1 90); do amqp_answers 127.0.0.1 5672 && return 0; sleep 2; done
	return 1
}

# RabbitMQ.
if [ -n "${SWITCHBOARD_AMQP_URL:-}" ]; then
	read -r h p < <(host_port "$SWITCHBOARD_AMQP_URL" 5672)
	if [[ $SWITCHBOARD_AMQP_URL == amqps://* ]]; then
		port_open "$h" "$p" || log "RabbitMQ at $h:$p (SWITCHBOARD_AMQP_URL) does not accept connections"
	elif port_open "$h" "$p" && ! amqp_answers "$h" "$p"; then
		wedged "RabbitMQ at $h:$p (SWITCHBOARD_AMQP_URL)" "Restart that broker, or point SWITCHBOARD_AMQP_URL at one that answers."
	fi
else
	if ! port_open 127.0.0.1 5672; then
		command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
		if command -v rabbitmq-server >/dev/null 2>&1; then
			log "starting RabbitMQ"
			start_rabbitmq
			for _ in $(seq 1 60); do amqp_answers 127.0.0.1 5672 && break; sleep 1; done
		fi
	elif ours_to_restart && command -v rabbitmqctl >/dev/null 2>&1; then
		files=$(rabbit_open_files)
		if [ -n "$files" ] && [ "$files" -lt "$min_open_files" ]; then
			log "RabbitMQ may open only $files files (it stalls under this suite below $min_open_files)"
			restart_rabbitmq || true
		elif amqp_answers 127.0.0.1 5672; then
			# Start from an empty node, so that queues left by earlier runs
			# do not slow it down.
			log "SWITCHBOARD_RABBITMQ_RESTART=1: resetting RabbitMQ to an empty node"
			timeout 60 rabbitmqctl -q stop_app >/dev/null 2>&1 &&
				timeout 60 rabbitmqctl -q reset >/dev/null 2>&1 &&
				timeout 60 rabbitmqctl -q start_app >/dev/null 2>&1 ||
				log "could not reset RabbitMQ"
		fi
		amqp_answers 127.0.0.1 5672 || restart_rabbitmq || true
	fi
	if ! port_open 127.0.0.1 5672; then
		log "RabbitMQ is NOT running on 127.0.0.1:5672"
	elif amqp_answers 127.0.0.1 5672; then
		log "RabbitMQ is up on 127.0.0.1:5672"
		files=$(rabbit_open_files)
		if [ -n "$files" ] && [ "$files" -lt "$min_open_files" ]; then
			log "WARNING: RabbitMQ may open only $files files; under this suite it runs out and stops answering. Restart it with a higher limit (ulimit -n $min_open_files for the rabbitmq user, or LimitNOFILE in its systemd unit), or set SWITCHBOARD_RABBITMQ_RESTART=1 on a machine whose RabbitMQ serves only these tests."
		fi
	else
		wedged "RabbitMQ on 127.0.0.1:5672" "It is not this script's to restart: restart it yourself (for example: sudo rabbitmqctl stop_app && sudo rabbitmqctl start_app, or sudo systemctl restart rabbitmq-server), point the tests at another broker with SWITCHBOARD_AMQP_URL, or, on a machine whose RabbitMQ serves only these tests, set SWITCHBOARD_RABBITMQ_RESTART=1 to let this script restart it."
	fi
fi

# Redis, for the Redis deduplication store.
if [ -z "${SWITCHBOARD_REDIS_URL:-}" ]; then
	if ! port_open 127.0.0.1 6379; then
		command -v redis-server >/dev/null 2>&1 || apt_install redis-server
		if command -v redis-server >/dev/null 2>&1; then
			log "starting Redis"
			redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
			for _ in $(seq 1 30); do port_open 127.0.0.1 6379 && break; sleep 1; done
		fi
	fi
	if ! port_open 127.0.0.1 6379; then
		log "Redis is NOT running on 127.0.0.1:6379"
	elif redis_answers 127.0.0.1 6379; then
		log "Redis is up on 127.0.0.1:6379"
	else
		wedged "Redis on 127.0.0.1:6379" "Restart it yourself, or point the tests at another one with SWITCHBOARD_REDIS_URL."
	fi
fi

# Brokers given in the environment: they must at least accept connections
# in time (their protocols are checked by the tests, with timeouts).
if [ -n "${SWITCHBOARD_KAFKA_BROKERS:-}" ]; then
	read -r h p < <(host_port "kafka://$SWITCHBOARD_KAFKA_BROKERS" 9092)
	port_open "$h" "$p" || log "Kafka at $h:$p (SWITCHBOARD_KAFKA_BROKERS) does not accept connections"
fi
if [ -n "${SWITCHBOARD_SQS_ENDPOINT:-}" ] && command -v curl >/dev/null 2>&1; then
	read -r h p < <(host_port "$SWITCHBOARD_SQS_ENDPOINT" 80)
	if ! port_open "$h" "$p"; then
		log "the SQS endpoint $SWITCHBOARD_SQS_ENDPOINT (SWITCHBOARD_SQS_ENDPOINT) does not accept connections"
	elif ! curl -s -o /dev/null -m "$probe_timeout" "$SWITCHBOARD_SQS_ENDPOINT"; then
		wedged "the SQS endpoint $SWITCHBOARD_SQS_ENDPOINT (SWITCHBOARD_SQS_ENDPOINT)" "Restart it, or unset SWITCHBOARD_SQS_ENDPOINT to let the tests start the emulator."
	fi
fi
# --- Databases for the transactional outbox and inbox (outbox/, dedup/sqldedup) ---
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust, database test) and
# MariaDB on 127.0.0.1:3306 (root, empty password, database test), unless
# SWITCHBOARD_POSTGRES_URL / SWITCHBOARD_MYSQL_URL name others. Installed
# with apt when missing (and then set up for those test logins), started
# when stopped; never stopped or restarted here.
if [ -z "${SWITCHBOARD_POSTGRES_URL:-}" ] && ! port_open 127.0.0.1 5432; then
	pg_fresh=false
	if ! command -v pg_ctlcluster >/dev/null 2>&1; then
		apt_install postgresql && pg_fresh=true
	fi
	if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
		pg_ver=$(ls /etc/postgresql | sort -n | tail -1)
		if $pg_fresh; then # our own install: trust local TCP logins for the tests
			sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$pg_ver/main/pg_hba.conf"
		fi
		log "starting PostgreSQL $pg_ver"
		pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main start >/dev/null 2>&1 || true
		for _ in $(seq 1 30); do port_open 127.0.0.1 5432 && break; sleep 1; done
		su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" >/dev/null 2>&1 || true
	fi
	port_open 127.0.0.1 5432 && log "PostgreSQL is up on 127.0.0.1:5432" || log "PostgreSQL is NOT running on 127.0.0.1:5432"
fi
if [ -z "${SWITCHBOARD_MYSQL_URL:-}" ] && ! port_open 127.0.0.1 3306; then
	my_fresh=false
	if ! [ -x /usr/sbin/mariadbd ]; then
		apt_install mariadb-server && my_fresh=true
	fi
	if [ -x /usr/sbin/mariadbd ]; then
		log "starting MariaDB"
		mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
		start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
		for _ in $(seq 1 30); do port_open 127.0.0.1 3306 && break; sleep 1; done
		mysql -uroot -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null 2>&1 || true
		if $my_fresh; then # our own install: root may log in over TCP without a password
			mysql -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" >/dev/null 2>&1 || true
		fi
	fi
	port_open 127.0.0.1 3306 && log "MariaDB is up on 127.0.0.1:3306" || log "MariaDB is NOT running on 127.0.0.1:3306"
fi
# --- end of databases ---
exit $failed
