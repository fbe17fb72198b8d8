#!/bin/bash
# Throughput of event-loop servers with and without the shim (issue 5, item 6):
# memcached under memcaslap and redis-server under redis-benchmark, each run
# RUNS times alternately plain and under LD_PRELOAD=libcancelshim.so; prints
# every run's figure so the noise is visible. Needs: memcached,
# libmemcached-tools, redis-server, redis-tools.
#
#     bench/event_loop_throughput.sh [path/to/libcancelshim.so] [RUNS]
set -eu
SHIM=${1:-$(ls /tmp/build-*/shim/libcancelshim.so build/shim/libcancelshim.so 2>/dev/null | head -n1)}
RUNS=${2:-3}
[ -r "$SHIM" ] || { echo "usage: $0 path/to/libcancelshim.so [runs]" >&2; exit 2; }
DIR=$(mktemp -d /tmp/cs-evbench-XXXXXX)
PID=""
trap 'rm -rf "$DIR"' EXIT
PORT=$((20000 + $$ % 10000))

wait_port() {
	i=0
	while ! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 200 ] || { echo "server did not start" >&2; exit 1; }
		sleep 0.05
	done
}

# $1 = "plain" or "shim"; starts memcached, prints TPS.
memcached_run() {
	pre=""; [ "$1" = shim ] && pre="$SHIM"
	LD_PRELOAD=$pre memcached -u nobody -l 127.0.0.1 -p $PORT -U 0 -t 4 -m 64 &
	PID=$!; wait_port
	memcaslap --servers=127.0.0.1:$PORT --time=5s --concurrency=16 | sed -n 's/.*TPS: \([0-9]*\).*/\1/p'
	kill $PID; wait $PID 2>/dev/null || true
}

redis_run() {
	pre=""; [ "$1" = shim ] && pre="$SHIM"
	LD_PRELOAD=$pre redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$DIR" >/dev/null &
	PID=$!; wait_port
	redis-benchmark -p $PORT -q -n 200000 -c 50 -t set,get --csv |
		awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $2); printf "%s=%s ", $1, $2 } END { print "" }'
	kill $PID; wait $PID 2>/dev/null || true
}

echo "shim: $SHIM; $RUNS runs each, alternating"
for r in $(seq 1 "$RUNS"); do
	for mode in plain shim; do
		echo "memcached $mode run $r: $(memcached_run $mode) ops/s (memcaslap, 16 conns, 5 s)"
	done
done
for r in $(seq 1 "$RUNS"); do
	for mode in plain shim; do
		echo "redis $mode run $r: $(redis_run $mode)requests/s (redis-benchmark -c 50)"
	done
done
