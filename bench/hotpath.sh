#!/usr/bin/env bash
# Instructions the shim adds to an intercepted call on the common path
# (a thread serving no client), counted by callgrind with and without the
# shim over N calls of each kind. Usage: bench/hotpath.sh [BUILD_DIR] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-1000000}
prog=$(mktemp -d)/hotpath
cc -O2 -o "$prog" bench/hotpath.c
shim=$(realpath "$build/shim/libcancelshim.so")

count() { # instructions of one run; $1 = preload or empty, $2 = kind, $3 = calls
	local out
	out=$(mktemp)
	env ${1:+LD_PRELOAD=$1} valgrind --tool=callgrind --callgrind-out-file="$out" "$prog" "$3" "$2" 2>/dev/null
	callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
	rm -f "$out"
}

# Each figure is the difference between a run of 2N calls and a run of N, so
# what happens once (loading, resolving symbols) cancels out. Instruction
# counts do not depend on the load, so the kinds run HOTPATH_JOBS at a time.
row() {
	local kind=$1 calls=$n a b
	case $kind in write | send) calls=$((2 * n)) ;; esac	# each round is two intercepted calls
	a=$(( $(count "" "$kind" $((2 * n))) - $(count "" "$kind" "$n") ))
	b=$(( $(count "$shim" "$kind" $((2 * n))) - $(count "$shim" "$kind" "$n") ))
	printf '%-8s %16.1f %16.1f %12.1f\n' "$kind" "$(echo "$a / $calls" | bc -l)" "$(echo "$b / $calls" | bc -l)" \
		"$(echo "($b - $a) / $calls" | bc -l)"
}
rows=$(mktemp -d)
jobs=${HOTPATH_JOBS:-$(nproc)}
i=0
for kind in read recv write send poll epoll; do
	row "$kind" >"$rows/$kind" &
	if (( ++i % jobs == 0 )); then wait; fi
done
wait
printf '%-8s %16s %16s %12s\n' call "without (/call)" "with (/call)" "added/call"
for kind in read recv write send poll epoll; do
	cat "$rows/$kind"
done
rm -rf "$rows" "$(dirname "$prog")"
