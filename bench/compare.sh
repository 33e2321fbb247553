#!/usr/bin/env bash
# busd against NATS on this machine: the same workloads, run by the same
# bench code (busd bench / natsbench), as separate processes, alternating
# between NATS and busd over TCP, a unix socket and shared memory, in one
# run.
#
#   bench/compare.sh                 # a few minutes on 2 cores
#   COUNT=4 ROUNDS=3 bench/compare.sh
#
# COUNT scales every workload's message count; ROUNDS repeats the whole
# alternation (the table takes medians); BUSD runs another build of busd
# (daemon and bench client both), e.g. an older commit's, to compare two
# builds of busd in alternating runs; OVERFLOW is busd's subscription
# policy (default block: lossless back-pressure, and busd's publishers then
# run without a confirmation window; disconnect or drop-oldest to compare
# with NATS running free). Each round starts with the raw round-trip floors
# (the busd-shm `floors` example). Writes every result as a JSON line to
# bench/results/<date>-<time>-<hostname>.jsonl (time to the second) after a header naming the machine,
# then prints the busd/NATS ratios and the floors.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-1}
ROUNDS=${ROUNDS:-1}
OVERFLOW=${OVERFLOW:-block}

log() { printf '== %s\n' "$*" >&2; }

if ! command -v nats-server >/dev/null; then
    log "installing nats-server from Debian packages"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    $sudo apt-get install -y nats-server
fi

log "building busd, natsbench and the floors example (release)"
cargo build --release --quiet -p busd -p natsbench
cargo build --release --quiet -p busd-shm --example floors
busd=${BUSD:-target/release/busd}
natsbench=target/release/natsbench
floors=target/release/examples/floors

tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Waits (bounded) for a line matching $2 in the log $1 and prints it.
wait_for_line() {
    for _ in $(seq 100); do
        if line=$(grep -m1 -E "$2" "$1" 2>/dev/null); then
            printf '%s\n' "$line"
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

# Both servers pick a free loopback port themselves; we read it from their logs.
nats-server -a 127.0.0.1 -p -1 >"$tmp/nats.log" 2>&1 &
pids+=($!)
nats_port=$(wait_for_line "$tmp/nats.log" "Listening for client connections on" | grep -oE '[0-9]+$')
nats_url="nats://127.0.0.1:$nats_port"

RUST_LOG=info "$busd" run --tcp 127.0.0.1:0 --unix "$tmp/busd.sock" >"$tmp/busd.log" 2>&1 &
pids+=($!)
busd_tcp=$(wait_for_line "$tmp/busd.log" "tcp://127\.0\.0\.1:[0-9]+" | grep -oE 'tcp://127\.0\.0\.1:[0-9]+')
wait_for_line "$tmp/busd.log" "unix://" >/dev/null
busd_unix="unix://$tmp/busd.sock"
busd_shm="shm://$tmp/busd.sock"
log "NATS $(nats-server --version | grep -oE "[0-9.]+$") on $nats_url; busd on $busd_tcp, $busd_unix and $busd_shm"

mkdir -p bench/results
results="bench/results/$(date +%Y-%m-%d-%H%M%S)-$(hostname).jsonl"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/"/\\"/g')
printf '{"machine":{"host":"%s","date":"%s","cores":%s,"cpu":"%s","kernel":"%s","nats_server":"%s","count_scale":%s,"rounds":%s,"busd_overflow":"%s","procs":true}}\n' \
    "$(hostname)" "$(date -Iseconds)" "$(nproc)" "$cpu" "$(uname -r)" \
    "$(nats-server --version | grep -oE '[0-9.]+$')" "$COUNT" "$ROUNDS" "$OVERFLOW" >"$results"

# COUNT × n, at least 1 (COUNT may be a fraction: COUNT=0.1 for a quick check).
scaled() { awk -v n="$1" -v c="$COUNT" 'BEGIN { v = int(n * c); print (v < 1 ? 1 : v) }'; }

# name | bench arguments (counts are per publisher / per requester)
workloads=(
    "pubsub 1→1 16 B|pubsub --size 16 --count $(scaled 500000)"
    "pubsub 1→1 256 B|pubsub --size 256 --count $(scaled 500000)"
    "fanout 1→8 256 B|fanout --subs 8 --size 256 --count $(scaled 100000)"
    "reqrep 128 B, 1 requester|reqrep --size 128 --requesters 1 --count $(scaled 20000)"
    "pubsub 1→1 64 KiB|pubsub --size 65536 --count $(scaled 20000)"
)

# Runs one bench; its exit code 3 (completed with losses) is a result, not a failure.
run() {
    local out
    if out=$("$@" --procs --json); then :; else
        local rc=$?
        if [ "$rc" -ne 3 ] || [ -z "$out" ]; then
            log "FAILED ($rc): $*"
            return 0
        fi
    fi
    printf '%s\n' "$out" | tee -a "$results" >&2
}

for round in $(seq "$ROUNDS"); do
    # The physical floors in this round: two processes' round trips with
    # no broker (a request/reply through one is two of them).
    log "round $round/$ROUNDS: floors (raw round trips, 128 B)"
    "$floors" --json "$(scaled 10000)" 128 | tee -a "$results" >&2
    for w in "${workloads[@]}"; do
        name=${w%%|*}
        read -ra args <<<"${w#*|}"
        log "round $round/$ROUNDS: $name"
        run "$natsbench" bench "${args[@]}" --server "$nats_url"
        run "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_tcp"
        run "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_unix"
        run "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_shm"
    done
done

log "results in $results"
echo "Machine: $(nproc) cores, $cpu; NATS $(nats-server --version | grep -oE '[0-9.]+$'), busd overflow=$OVERFLOW, separate processes"
"$natsbench" table "$results"
