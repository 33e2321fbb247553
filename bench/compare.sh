#!/usr/bin/env bash
# busd against NATS on this machine: the same workloads, run by the same
# bench code (busd bench / natsbench), as separate processes, alternating
# between NATS and busd over TCP, a unix socket and shared memory, in one
# run. The large-payload pub/sub workloads also run over iceoryx2
# (bench/iox2bench: brokerless shared memory, samples loaned and written in
# place) and busd over shm with --in-place (publishers write into shared
# memory too), in the same alternation.
#
#   bench/compare.sh                 # ten minutes or so on 2 cores
#   COUNT=4 ROUNDS=3 bench/compare.sh
#   ONLY='KiB|MiB' bench/compare.sh  # the workloads whose names match
#
# COUNT scales every workload's message count; ROUNDS repeats the whole
# alternation (the table takes medians); BUSD runs another build of busd
# (daemon and bench client both), e.g. an older commit's, to compare two
# builds of busd in alternating runs; OVERFLOW is busd's subscription
# policy (default block: lossless back-pressure, and busd's publishers then
# run without a confirmation window; disconnect or drop-oldest to compare
# with NATS running free). Each round starts with the raw round-trip floors
# (the busd-shm `floors` example) and, when large workloads run, the cost
# of filling and copying 1 MiB (its `copy_floor` example). Writes every
# result as a JSON line to
# bench/results/<date>-<time>-<hostname>.jsonl (time to the second) after a header naming the machine,
# then prints the busd/NATS ratios, the busd/iceoryx2 ratios and the floors.
#
# Each result also gets the CPU time (user + system) and minor page faults
# per message sent of every process of the run: the bench's (from this
# shell's waited-for children in /proc/$$/stat) and the server's share (the
# growth of its own counters over the run); iox2bench, which has no
# server, counts its workers itself (getrusage). Clock ticks are 10 ms, so
# short runs (small COUNT) give coarse figures.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-1}
ROUNDS=${ROUNDS:-1}
OVERFLOW=${OVERFLOW:-block}
ONLY=${ONLY:-}

log() { printf '== %s\n' "$*" >&2; }

if ! command -v nats-server >/dev/null; then
    log "installing nats-server from Debian packages"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    $sudo apt-get install -y nats-server
fi

log "building busd, natsbench, the floors example and iox2bench (release)"
cargo build --release --quiet -p busd -p natsbench
cargo build --release --quiet -p busd-shm --example floors --example copy_floor
# Its own workspace and target/ (it pulls in iceoryx2, which busd's never builds).
cargo build --release --quiet --manifest-path bench/iox2bench/Cargo.toml
busd=${BUSD:-target/release/busd}
natsbench=target/release/natsbench
floors=target/release/examples/floors
copy_floor=target/release/examples/copy_floor
iox2bench=bench/iox2bench/target/release/iox2bench
iceoryx2=$(awk '$0 == "name = \"iceoryx2\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' bench/iox2bench/Cargo.lock)

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
nats_pid=$!
pids+=("$nats_pid")
nats_port=$(wait_for_line "$tmp/nats.log" "Listening for client connections on" | grep -oE '[0-9]+$')
nats_url="nats://127.0.0.1:$nats_port"

RUST_LOG=info "$busd" run --tcp 127.0.0.1:0 --unix "$tmp/busd.sock" >"$tmp/busd.log" 2>&1 &
busd_pid=$!
pids+=("$busd_pid")
busd_tcp=$(wait_for_line "$tmp/busd.log" "tcp://127\.0\.0\.1:[0-9]+" | grep -oE 'tcp://127\.0\.0\.1:[0-9]+')
wait_for_line "$tmp/busd.log" "unix://" >/dev/null
busd_unix="unix://$tmp/busd.sock"
busd_shm="shm://$tmp/busd.sock"
log "NATS $(nats-server --version | grep -oE "[0-9.]+$") on $nats_url; busd on $busd_tcp, $busd_unix and $busd_shm; iceoryx2 $iceoryx2"

mkdir -p bench/results
results="bench/results/$(date +%Y-%m-%d-%H%M%S)-$(hostname).jsonl"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/"/\\"/g')
printf '{"machine":{"host":"%s","date":"%s","cores":%s,"cpu":"%s","kernel":"%s","nats_server":"%s","iceoryx2":"%s","count_scale":%s,"rounds":%s,"busd_overflow":"%s","procs":true}}\n' \
    "$(hostname)" "$(date -Iseconds)" "$(nproc)" "$cpu" "$(uname -r)" \
    "$(nats-server --version | grep -oE '[0-9.]+$')" "$iceoryx2" "$COUNT" "$ROUNDS" "$OVERFLOW" >"$results"

# COUNT × n, at least 1 (COUNT may be a fraction: COUNT=0.1 for a quick check).
scaled() { awk -v n="$1" -v c="$COUNT" 'BEGIN { v = int(n * c); print (v < 1 ? 1 : v) }'; }

# name | bench arguments (counts are per publisher / per requester) | large:
# also over iceoryx2 and busd shm --in-place (iox2bench runs pub/sub and
# fan-out only)
workloads=(
    "pubsub 1→1 16 B|pubsub --size 16 --count $(scaled 500000)|"
    "pubsub 1→1 256 B|pubsub --size 256 --count $(scaled 500000)|"
    "fanout 1→8 256 B|fanout --subs 8 --size 256 --count $(scaled 100000)|"
    "reqrep 128 B, 1 requester|reqrep --size 128 --requesters 1 --count $(scaled 20000)|"
    "pubsub 1→1 64 KiB|pubsub --size 65536 --count $(scaled 20000)|large"
    "pubsub 1→1 1 MiB|pubsub --size 1048576 --count $(scaled 20000)|large"
    "fanout 1→4 1 MiB|fanout --subs 4 --size 1048576 --count $(scaled 5000)|large"
)

ticks_per_s=$(getconf CLK_TCK)
# Sets `usage` to "CPU ticks (user + system) and minor faults" of this
# shell's waited-for children so far (cutime, cstime, cminflt), or of the
# process $1 itself (0 0 for "-"). Builtins only: a child process reading
# them would add to them.
children_usage() {
    local -a stat
    read -ra stat <"/proc/$$/stat"
    usage=("$((stat[15] + stat[16]))" "${stat[10]}")
}
process_usage() {
    local -a stat=(0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)
    [ "$1" = - ] || read -ra stat <"/proc/$1/stat"
    usage=("$((stat[13] + stat[14]))" "${stat[9]}")
}

# Runs one bench against the server with pid $1 ("-" for none); its exit
# code 3 (completed with losses) is a result, not a failure. Adds the CPU
# and minor faults per message sent unless the bench reported them.
run() {
    local server=$1 out before sent ticks faults
    shift
    children_usage
    before=("${usage[@]}")
    process_usage "$server"
    before+=("${usage[@]}")
    if out=$("$@" --procs --json); then :; else
        local rc=$?
        if [ "$rc" -ne 3 ] || [ -z "$out" ]; then
            log "FAILED ($rc): $*"
            return 0
        fi
    fi
    children_usage
    ticks=$((usage[0] - before[0])) faults=$((usage[1] - before[1]))
    process_usage "$server"
    ticks=$((ticks + usage[0] - before[2])) faults=$((faults + usage[1] - before[3]))
    sent=$(grep -oE '"sent":[0-9]+' <<<"$out" | cut -d: -f2)
    if [[ $out != *'"cpu_us_per_msg"'* ]] && [ "${sent:-0}" -gt 0 ]; then
        out="${out%\}},$(awk -v t="$ticks" -v f="$faults" -v hz="$ticks_per_s" -v n="$sent" \
            'BEGIN { printf "\"cpu_us_per_msg\":%.2f,\"minflt_per_msg\":%.3f}", t * 1e6 / hz / n, f / n }')"
    fi
    printf '%s\n' "$out" | tee -a "$results" >&2
}

# Whether any large workload runs (then each round measures the copy floor).
large_selected=""
for w in "${workloads[@]}"; do
    IFS='|' read -r name _ large <<<"$w"
    if [ -n "$large" ] && { [ -z "$ONLY" ] || [[ $name =~ $ONLY ]]; }; then large_selected=1; fi
done

for round in $(seq "$ROUNDS"); do
    # The physical floors in this round: two processes' round trips with
    # no broker (a request/reply through one is two of them).
    log "round $round/$ROUNDS: floors (raw round trips, 128 B)"
    "$floors" --json "$(scaled 10000)" 128 | tee -a "$results" >&2
    # And what filling and copying a 1 MiB payload costs, under the large
    # workloads: the CPU floor of busd's one copy per message.
    if [ -n "$large_selected" ]; then
        "$copy_floor" --json "$(scaled 2000)" 1048576 | tee -a "$results" >&2
    fi
    for w in "${workloads[@]}"; do
        IFS='|' read -r name argv large <<<"$w"
        if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then continue; fi
        read -ra args <<<"$argv"
        log "round $round/$ROUNDS: $name"
        run "$nats_pid" "$natsbench" bench "${args[@]}" --server "$nats_url"
        run "$busd_pid" "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_tcp"
        run "$busd_pid" "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_unix"
        run "$busd_pid" "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_shm"
        if [ -n "$large" ]; then
            run "$busd_pid" "$busd" bench "${args[@]}" --overflow "$OVERFLOW" --server "$busd_shm" --in-place
            run - "$iox2bench" "${args[@]}"
        fi
    done
done

log "results in $results"
echo "Machine: $(nproc) cores, $cpu; NATS $(nats-server --version | grep -oE '[0-9.]+$'), iceoryx2 $iceoryx2, busd overflow=$OVERFLOW, separate processes"
"$natsbench" table "$results"
