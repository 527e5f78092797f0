#!/usr/bin/env bash
# Makes sure what the tests need is installed and running on this machine:
# RabbitMQ and Redis (installed with apt if missing, started if stopped), and the
# command-line clients the interoperability tests use (kcat, amqp-tools,
# awscli). Kafka needs nothing: the tests start an in-process cluster
# (kfake). The SQS emulator (fauxqs, pinned in sqs/testdata/emulator) is
# installed with npm by the SQS tests themselves.
#
# It never fails the run by itself. For what it cannot provide,
# scripts/test.sh then tries containers where Docker runs
# (containers/cmd/sbbrokers); what is still missing, the tests report
# (skipping loudly, or failing when SWITCHBOARD_REQUIRE says so).
set -uo pipefail

log() { echo "brokers: $*"; }

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

# amqp_answers: the broker answers the AMQP protocol header with its
# Connection.Start within 5 seconds (rabbitmqctl can answer while the AMQP
# listener is stuck, as seen here after the machine was paused).
amqp_answers() {
	local n
	n=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672 && printf "AMQP\x00\x00\x09\x01" >&3 && head -c 8 <&3' 2>/dev/null | wc -c)
	[ "${n:-0}" -ge 8 ]
}

# rabbit_healthy: the app runs (the restart fault test stops and starts it)
# and AMQP answers.
rabbit_healthy() {
	if command -v rabbitmqctl >/dev/null 2>&1; then
		timeout 20 rabbitmqctl -q await_startup --timeout 15 >/dev/null 2>&1 ||
			timeout 20 rabbitmqctl -q start_app >/dev/null 2>&1 || true
	fi
	amqp_answers
}

port_open() { # port
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-
}

# Command-line clients for interoperability tests.
command -v amqp-publish >/dev/null 2>&1 || apt_install amqp-tools
command -v kcat >/dev/null 2>&1 || apt_install kcat
command -v aws >/dev/null 2>&1 || apt_install awscli
command -v node >/dev/null 2>&1 || apt_install nodejs npm

# RabbitMQ, unless the tests are pointed at another broker.
if [ -z "${SWITCHBOARD_AMQP_URL:-}" ]; then
	if ! port_open 5672; then
		command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
		if command -v rabbitmq-server >/dev/null 2>&1; then
			log "starting RabbitMQ"
			rabbitmq-server -detached >/dev/null 2>&1 || true
			for _ in $(seq 1 60); do port_open 5672 && break; sleep 1; done
		fi
	fi
	if [ "${SWITCHBOARD_RABBITMQ_RESTART:-}" = 1 ] && port_open 5672 && command -v rabbitmqctl >/dev/null 2>&1; then
		# The broker is this machine's own (CI says so): start from an empty
		# node, so that queues left by earlier runs do not slow it down.
		log "resetting RabbitMQ to an empty node"
		timeout 60 rabbitmqctl -q stop_app >/dev/null 2>&1 &&
			timeout 60 rabbitmqctl -q reset >/dev/null 2>&1 &&
			timeout 60 rabbitmqctl -q start_app >/dev/null 2>&1 ||
			log "could not reset RabbitMQ"
	fi
	if port_open 5672 && ! rabbit_healthy; then
		# Seen here after the machine was paused: the port accepts
		# connections but the node never answers. Restart it.
		log "RabbitMQ accepts connections but does not answer; restarting it"
		pkill -f rabbitmqctl >/dev/null 2>&1 || true
		pkill -9 -u rabbitmq beam.smp >/dev/null 2>&1 || true
		pkill -9 -u rabbitmq epmd >/dev/null 2>&1 || true
		for _ in $(seq 1 30); do port_open 5672 || break; sleep 1; done
		if [ "${SWITCHBOARD_RABBITMQ_RESTART:-}" = 1 ] && [ -d /var/lib/rabbitmq/mnesia ]; then
			# Ours (CI says so): a node stuck recovering hundreds of test
			# queues is started empty instead.
			log "starting RabbitMQ with an empty data directory"
			rm -rf /var/lib/rabbitmq/mnesia/*
		fi
		rabbitmq-server -detached >/dev/null 2>&1 || true
		for _ in $(seq 1 90); do amqp_answers && break; sleep 2; done
	fi
	if port_open 5672 && rabbit_healthy; then
		log "RabbitMQ is up on 127.0.0.1:5672"
	else
		log "RabbitMQ is NOT answering on 127.0.0.1:5672"
	fi
fi
# Redis, for the Redis deduplication store, unless one is given.
if [ -z "${SWITCHBOARD_REDIS_URL:-}" ] && ! port_open 6379; then
	command -v redis-server >/dev/null 2>&1 || apt_install redis-server
	if command -v redis-server >/dev/null 2>&1; then
		log "starting Redis"
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
		for _ in $(seq 1 30); do port_open 6379 && break; sleep 1; done
	fi
	port_open 6379 && log "Redis is up on 127.0.0.1:6379" || log "Redis is NOT running on 127.0.0.1:6379"
fi
# --- Databases for the transactional outbox and inbox (outbox/, dedup/sqldedup) ---
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust, database test) and
# MariaDB on 127.0.0.1:3306 (root, empty password, database test), unless
# SWITCHBOARD_POSTGRES_URL / SWITCHBOARD_MYSQL_URL name others. Installed
# with apt when missing (and then set up for those test logins), started
# when stopped; never stopped or restarted here.
if [ -z "${SWITCHBOARD_POSTGRES_URL:-}" ] && ! port_open 5432; then
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
		for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
		su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" >/dev/null 2>&1 || true
	fi
	port_open 5432 && log "PostgreSQL is up on 127.0.0.1:5432" || log "PostgreSQL is NOT running on 127.0.0.1:5432"
fi
if [ -z "${SWITCHBOARD_MYSQL_URL:-}" ] && ! port_open 3306; then
	my_fresh=false
	if ! [ -x /usr/sbin/mariadbd ]; then
		apt_install mariadb-server && my_fresh=true
	fi
	if [ -x /usr/sbin/mariadbd ]; then
		log "starting MariaDB"
		mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
		start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
		for _ in $(seq 1 30); do port_open 3306 && break; sleep 1; done
		mysql -uroot -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null 2>&1 || true
		if $my_fresh; then # our own install: root may log in over TCP without a password
			mysql -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" >/dev/null 2>&1 || true
		fi
	fi
	port_open 3306 && log "MariaDB is up on 127.0.0.1:3306" || log "MariaDB is NOT running on 127.0.0.1:3306"
fi
# --- end of databases ---
exit 0
