#!/usr/bin/env bash
# The three scale targets of the benchmark issue, measured on this machine:
#
#   1. 10,000 idle connections held with daemon RSS under 200 MB;
#   2. 1,000 concurrent requesters without a timeout;
#   3. publish cost with 100,000 subscriptions on unrelated subjects within
#      1.2x of the cost with 10.
#
# For each transport (tcp, unix, shm) a fresh `busd run` (so that no run
# inherits another's memory or peak) gets CONNS connections from `busd
# bench idle`, each with a subscription of its own. Once the bench prints
# `ready`, the daemon's VmRSS and VmHWM are read from /proc/<pid>/status and
# its CPU time from /proc/<pid>/stat over IDLE_SECS seconds of silence (an
# idle connection should cost no CPU); then the bench is released and
# checks every connection with a round trip. Then one daemon serves
# `busd bench reqrep --requesters REQUESTERS --count REQ_COUNT` over each
# transport, whose request timeout is the bench's --idle-timeout (10 s).
# Last, one daemon (unix) is given UNRELATED subscriptions on subjects of
# their own, held by `busd bench idle --conns 1 --subjects N`, while
# `busd bench pubsub --size 16 --count PUB_COUNT` runs beside them: the
# daemon's CPU per delivered message is the publish cost, taken with 10
# and with UNRELATED held, alternating, COST_ROUNDS times.
#
#   bench/scale.sh                     # a few minutes on 2 cores
#   CONNS=2000 REQUESTERS=200 bench/scale.sh
#   NOFILE=100000 TRANSPORTS=shm bench/scale.sh   # raise the hard open-files limit (needs CAP_SYS_RESOURCE)
#
# TCP connections once cost more as the machine's socket table grew (the
# daemon scanned /proc/net/tcp per connection; it now asks netlink for the
# one socket, and scans only if netlink cannot answer). Each TCP run still
# first waits (up to 75 s) for the TIME_WAIT rows of earlier runs to expire,
# as they hold ephemeral ports, and records the table's size.
#
# An shm connection costs six fds on each side (four eventfds, the socket
# and its dup) and maps two 4 MiB rings into the daemon: when the hard open-files limit cannot hold CONNS of them, the shm
# run opens as many as fit and says so. Writes a machine header and one
# JSON line per run to bench/results/<date>-<time>-<host>-scale.jsonl, then
# prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-10000}
IDLE_SECS=${IDLE_SECS:-10}
REQUESTERS=${REQUESTERS:-1000}
REQ_COUNT=${REQ_COUNT:-20}
UNRELATED=${UNRELATED:-100000}
PUB_COUNT=${PUB_COUNT:-2000000}
COST_ROUNDS=${COST_ROUNDS:-3}
TRANSPORTS=${TRANSPORTS:-tcp unix shm}
# fds an shm connection holds on each side, and fds kept aside for the
# rest, mostly the two memfds of each of the 128 connects in flight.
SHM_FDS=6
SPARE_FDS=512

log() { printf '== %s\n' "$*" >&2; }

if [ -n "${NOFILE:-}" ]; then
    ulimit -n "$NOFILE" # soft and hard at once
fi
nofile_hard=$(ulimit -Hn)

log "building busd (release)"
cargo build --release --quiet -p busd
busd=target/release/busd

tmp=$(mktemp -d)
pids=()
cleanup() {
    exec 3>&-
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
# Takes an ended process off the list cleanup kills, so a reused pid is never hit.
forget() {
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}

# Waits up to $3 seconds for a line matching $2 in $1 while process $4 lives.
wait_for_line() {
    local _
    for _ in $(seq $(($3 * 10))); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || break
        sleep 0.1
    done
    grep -qE "$2" "$1" 2>/dev/null && return 0
    echo "no '$2' in $1:" >&2
    tail -5 "$1" >&2
    return 1
}

status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
shmem_kb() { awk '$1 == "Shmem:" { print $2 }' /proc/meminfo; }
ticks=$(getconf CLK_TCK)
# CPU percent of one core: ticks $1 over $2 seconds.
cpu_pct() { awk -v t="$1" -v s="$2" -v hz="$ticks" 'BEGIN { printf "%.2f", t / hz / s * 100 }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
tcp_rows() { cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -c ':' || true; }

# Waits, up to 75 s, until fewer than 100 sockets are in TIME_WAIT (state 06).
wait_tcp_quiet() {
    local _
    for _ in $(seq 75); do
        [ "$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "06"' | wc -l)" -lt 100 ] && return 0
        sleep 1
    done
}

# The per-identity connection limit (max_connections, 16384 by default)
# must hold every connection of one run, all from this uid.
need=$((CONNS > REQUESTERS ? CONNS : REQUESTERS))
if [ $((need + SPARE_FDS)) -gt 16384 ]; then
    export BUSD_LIMITS__MAX_CONNECTIONS=$((need + SPARE_FDS))
fi

# Starts a fresh daemon; sets daemon_pid, tcp_url, unix_url and shm_url.
start_daemon() {
    rm -f "$tmp/busd.sock"
    RUST_LOG=info "$busd" run --tcp 127.0.0.1:0 --unix "$tmp/busd.sock" >"$tmp/busd-$1.log" 2>&1 &
    daemon_pid=$!
    pids+=("$daemon_pid")
    wait_for_line "$tmp/busd-$1.log" "tcp://127\.0\.0\.1:[0-9]+" 10 "$daemon_pid"
    wait_for_line "$tmp/busd-$1.log" "unix://" 10 "$daemon_pid"
    tcp_url=$(grep -m1 -oE 'tcp://127\.0\.0\.1:[0-9]+' "$tmp/busd-$1.log")
    unix_url="unix://$tmp/busd.sock"
    shm_url="shm://$tmp/busd.sock"
}

stop_daemon() {
    kill "$daemon_pid"
    wait "$daemon_pid" || true
    forget "$daemon_pid"
}

url_of() {
    case $1 in
        tcp) echo "$tcp_url" ;;
        unix) echo "$unix_url" ;;
        shm) echo "$shm_url" ;;
    esac
}

mkdir -p bench/results
results="bench/results/$(date +%Y-%m-%d-%H%M)-$(hostname)-scale.jsonl"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/"/\\"/g')
rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- busd crates || echo "+dirty")
printf '{"machine":{"host":"%s","date":"%s","cores":%s,"cpu":"%s","kernel":"%s","mem_kb":%s,"nofile_hard":%s,"busd_rev":"%s","conns":%s,"idle_secs":%s,"requesters":%s,"req_count":%s,"transports":"%s"}}\n' \
    "$(hostname)" "$(date -Iseconds)" "$(nproc)" "$cpu" "$(uname -r)" \
    "$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)" "$nofile_hard" "$rev" \
    "$CONNS" "$IDLE_SECS" "$REQUESTERS" "$REQ_COUNT" "$TRANSPORTS" >"$results"

# A number field of the JSON object in $json.
field() { grep -oE "\"$1\":[0-9.]+" <<<"$json" | cut -d: -f2; }

idle_rows=()
notes=()
for transport in $TRANSPORTS; do
    conns=$CONNS
    note=""
    if [ "$transport" = shm ]; then
        fit=$(((nofile_hard - SPARE_FDS) / SHM_FDS))
        if [ "$fit" -lt "$conns" ]; then
            conns=$fit
            note="shm: $conns connections, not $CONNS: each holds $SHM_FDS fds on each side and the hard open-files limit is $nofile_hard (NOFILE=N raises it, with CAP_SYS_RESOURCE)"
            notes+=("$note")
            log "$note"
        fi
    fi
    [ "$transport" != tcp ] || wait_tcp_quiet
    table=$(tcp_rows)
    start_daemon "$transport"
    sleep 1
    rss_base=$(status_kb "$daemon_pid" VmRSS)
    shmem_base=$(shmem_kb)
    log "idle $transport: $conns connections to $(url_of "$transport")"
    fifo="$tmp/hold-$transport"
    mkfifo "$fifo"
    # The bench holds until its stdin, this fifo, closes (or 1 h passes).
    "$busd" bench idle --server "$(url_of "$transport")" --conns "$conns" --hold 3600 --json \
        <"$fifo" >"$tmp/idle-$transport.json" 2>"$tmp/idle-$transport.err" &
    bench_pid=$!
    pids+=("$bench_pid")
    exec 3>"$fifo"
    if wait_for_line "$tmp/idle-$transport.err" "^ready:" 600 "$bench_pid"; then
        log "$(grep -m1 '^ready:' "$tmp/idle-$transport.err")"
        rss=$(status_kb "$daemon_pid" VmRSS)
        hwm=$(status_kb "$daemon_pid" VmHWM)
        rss_anon=$(status_kb "$daemon_pid" RssAnon)
        rss_shmem=$(status_kb "$daemon_pid" RssShmem)
        threads=$(status_kb "$daemon_pid" Threads)
        fds=$(find "/proc/$daemon_pid/fd" -mindepth 1 | wc -l)
        shmem=$(shmem_kb)
        client_rss=$(status_kb "$bench_pid" VmRSS)
        client_fds=$(find "/proc/$bench_pid/fd" -mindepth 1 | wc -l)
        d0=$(cpu_ticks "$daemon_pid")
        c0=$(cpu_ticks "$bench_pid")
        sleep "$IDLE_SECS"
        d1=$(cpu_ticks "$daemon_pid")
        c1=$(cpu_ticks "$bench_pid")
        rss_end=$(status_kb "$daemon_pid" VmRSS)
        hwm=$(status_kb "$daemon_pid" VmHWM)
        exec 3>&-
        rc=0
        wait "$bench_pid" || rc=$?
        forget "$bench_pid"
        sleep 1
        rss_after=$(status_kb "$daemon_pid" VmRSS)
        idle_cpu=$(cpu_pct $((d1 - d0)) "$IDLE_SECS")
        client_cpu=$(cpu_pct $((c1 - c0)) "$IDLE_SECS")
        daemon=$(printf '"daemon":{"rss_base_kb":%s,"rss_kb":%s,"rss_end_kb":%s,"hwm_kb":%s,"rss_anon_kb":%s,"rss_shmem_kb":%s,"rss_after_close_kb":%s,"fds":%s,"threads":%s,"idle_cpu_pct":%s},"client":{"rss_kb":%s,"fds":%s,"idle_cpu_pct":%s},"shmem_delta_kb":%s,"tcp_table_rows":%s,"idle_secs":%s,"exit":%s' \
            "$rss_base" "$rss" "$rss_end" "$hwm" "$rss_anon" "$rss_shmem" "$rss_after" "$fds" "$threads" \
            "$idle_cpu" "$client_rss" "$client_fds" "$client_cpu" $((shmem - shmem_base)) "$table" "$IDLE_SECS" "$rc")
        [ -z "$note" ] || daemon+=$(printf ',"note":"%s"' "$note")
        json=$(grep -m1 '^{' "$tmp/idle-$transport.json" || true)
        if [ -n "$json" ]; then
            established=$(field established)
            dropped=$(field dropped)
            printf '%s\n' "${json%\}},$daemon}" | tee -a "$results" >&2
        else
            established=0 dropped="?"
            printf '{"workload":"idle","transport":"%s","conns":%s,"error":"no result, exit %s",%s}\n' \
                "$transport" "$conns" "$rc" "$daemon" | tee -a "$results" >&2
        fi
        per_conn=$(awk -v a="$rss" -v b="$rss_base" -v n="$established" 'BEGIN { printf "%.1f", n ? (a - b) / n : 0 }')
        # A run of fewer connections gets an estimate: base + what each cost, times CONNS.
        verdict=$(awk -v r="$rss" -v b="$rss_base" -v n="$established" -v want="$CONNS" 'BEGIN {
            if (n >= want) { print (r < 200 * 1024 ? "yes" : "NO"); exit }
            printf "n/a (%d conns; ~%.0f MB at %d)", n, (b + (n ? (r - b) / n : 0) * want) / 1024, want }')
        idle_rows+=("$(printf '%-9s %7s %11s %7s %10s %9s %11s %8s %7s %10s %12s  %s' \
            "$transport" "$conns" "$established" "$dropped" "$(mb "$rss")" "$(mb "$hwm")" \
            "$per_conn" "$(mb "$rss_after")" "$fds" "$idle_cpu" "$client_cpu" "$verdict")")
    else
        exec 3>&-
        wait "$bench_pid" || true
        forget "$bench_pid"
        log "idle $transport: the bench never got ready"
        printf '{"workload":"idle","transport":"%s","conns":%s,"error":"never ready: %s"}\n' \
            "$transport" "$conns" "$(tail -1 "$tmp/idle-$transport.err" | sed 's/"/\\"/g')" | tee -a "$results" >&2
        idle_rows+=("$(printf '%-9s %7s %11s' "$transport" "$conns" "FAILED")")
    fi
    stop_daemon
done

log "reqrep: $REQUESTERS requesters × $REQ_COUNT requests over each transport"
req_rows=()
for transport in $TRANSPORTS; do
    [ "$transport" != tcp ] || wait_tcp_quiet
    table=$(tcp_rows)
    start_daemon "reqrep-$transport"
    rc=0
    t0=$(date +%s.%N)
    out=$("$busd" bench reqrep --requesters "$REQUESTERS" --count "$REQ_COUNT" \
        --server "$(url_of "$transport")" --json 2>"$tmp/reqrep-$transport.err") || rc=$?
    # Connecting every requester included, which the bench's own clock leaves out.
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    json=$(grep -m1 '^{' <<<"$out" || true)
    rss=$(status_kb "$daemon_pid" VmRSS)
    hwm=$(status_kb "$daemon_pid" VmHWM)
    stop_daemon
    extra=$(printf '"daemon":{"rss_kb":%s,"hwm_kb":%s},"wall_s":%s,"tcp_table_rows":%s,"exit":%s' \
        "$rss" "$hwm" "$wall" "$table" "$rc")
    if [ -n "$json" ]; then
        printf '%s\n' "${json%\}},$extra}" | tee -a "$results" >&2
        verdict=$([ "$rc" -eq 0 ] && [ "$(field lost)" = 0 ] && echo yes || echo NO)
        req_rows+=("$(printf '%-9s %10s %9s %9s %6s %10s %10s %10s %7s  %s' \
            "$transport" "$REQUESTERS" "$(field sent)" "$(field received)" "$(field lost)" \
            "$(field p50_us)" "$(field p99_us)" "$(awk -v s="$(field elapsed_s)" 'BEGIN { printf "%.2f", s }')" \
            "$wall" "$verdict")")
    else
        printf '{"workload":"reqrep","transport":"%s","requesters":%s,"error":"no result, exit %s: %s",%s}\n' \
            "$transport" "$REQUESTERS" "$rc" "$(tail -1 "$tmp/reqrep-$transport.err" | sed 's/"/\\"/g')" "$extra" |
            tee -a "$results" >&2
        req_rows+=("$(printf '%-9s %10s  FAILED after %s s: %s' "$transport" "$REQUESTERS" "$wall" \
            "$(tail -1 "$tmp/reqrep-$transport.err" | cut -c1-120)")")
    fi
done

# Starts `busd bench idle` holding $1 subscriptions on subjects of its own,
# which it keeps until its stdin (fd 3 here) closes; waits up to $2 s for
# them to be made. Sets holder_pid.
holds=0
hold_unrelated() {
    holds=$((holds + 1))
    local fifo="$tmp/hold-unrelated-$holds"
    mkfifo "$fifo"
    "$busd" bench idle --server "$unix_url" --conns 1 --subjects "$1" --hold 3600 --json \
        <"$fifo" >"$tmp/cost-hold.json" 2>"$tmp/cost-hold.err" &
    holder_pid=$!
    pids+=("$holder_pid")
    exec 3>"$fifo"
    wait_for_line "$tmp/cost-hold.err" "^ready:" "$2" "$holder_pid"
}

release_holder() {
    exec 3>&-
    wait "$holder_pid" || true
    forget "$holder_pid"
}

# The measured run: $1 messages of 16 B, one publisher, one subscriber.
cost_pubsub() {
    "$busd" bench pubsub --size 16 --count "$1" --overflow block --procs --json \
        --server "$unix_url" 2>"$tmp/cost.err"
}

log "publish cost: 16 B pub/sub beside 10 and $UNRELATED unrelated subscriptions, $COST_ROUNDS rounds"
start_daemon cost
cost_rows=()
declare -A cost_ns=()
for round in $(seq "$COST_ROUNDS"); do
    # Alternating which goes first, so that neither always follows the other.
    order="10 $UNRELATED"
    [ $((round % 2)) = 1 ] || order="$UNRELATED 10"
    for unrelated in $order; do
        hold_unrelated "$unrelated" 120
        d0=$(cpu_ticks "$daemon_pid")
        rc=0
        out=$(cost_pubsub "$PUB_COUNT") || rc=$?
        d1=$(cpu_ticks "$daemon_pid")
        release_holder
        json=$(grep -m1 '^{' <<<"$out" || true)
        if [ -z "$json" ]; then
            log "publish cost: no result (exit $rc): $(tail -1 "$tmp/cost.err")"
            cost_rows+=("$(printf '%5s %10s  FAILED (exit %s)' "$round" "$unrelated" "$rc")")
            continue
        fi
        ns=$(awk -v t=$((d1 - d0)) -v hz="$ticks" -v n="$(field received)" 'BEGIN { printf "%.0f", t / hz * 1e9 / n }')
        extra=$(printf '"unrelated":%s,"round":%s,"daemon_ns_per_msg":%s,"exit":%s' "$unrelated" "$round" "$ns" "$rc")
        printf '%s\n' "${json%\}},$extra}" |
            tee -a "$results" >&2
        cost_rows+=("$(printf '%5s %10s %12s %6s %16s' "$round" "$unrelated" "$(field msgs_per_s)" "$(field lost)" "$ns")")
        cost_ns[$unrelated]=$ns
    done
    if [ -n "${cost_ns[10]:-}" ] && [ -n "${cost_ns[$UNRELATED]:-}" ]; then
        cost_rows+=("$(awk -v r="$round" -v a="${cost_ns[$UNRELATED]}" -v b="${cost_ns[10]}" \
            'BEGIN { printf "%5s %10s %36s  %.2fx", r, "ratio", "", a / b }')")
    fi
    cost_ns=()
done
stop_daemon

# CPU time on a shared VM swings by 20% between runs; instructions do not.
# The same runs once each under callgrind, counting the daemon's
# instructions from just before the pub/sub run (after the unrelated
# subscriptions are made) to just after it.
ir_rows=()
if command -v callgrind_control >/dev/null; then
    log "publish cost in instructions (callgrind): 10 and $UNRELATED unrelated subscriptions"
    rm -f "$tmp/busd.sock"
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out" \
        "$busd" run --tcp "" --unix "$tmp/busd.sock" >"$tmp/busd-callgrind.log" 2>&1 &
    daemon_pid=$!
    pids+=("$daemon_pid")
    for _ in $(seq 300); do [ -S "$tmp/busd.sock" ] && break; sleep 0.1; done
    for unrelated in 10 "$UNRELATED"; do
        hold_unrelated "$unrelated" 600 # the daemon runs under callgrind
        callgrind_control -z "$daemon_pid" >/dev/null
        out=$(cost_pubsub $((PUB_COUNT / 10))) || true
        callgrind_control -d "unrelated-$unrelated" "$daemon_pid" >/dev/null
        release_holder
        json=$(grep -m1 '^{' <<<"$out" || true)
        dump=$(grep -l "Trigger: dump unrelated-$unrelated\$" "$tmp"/callgrind.out.* 2>/dev/null | head -1)
        ir=$(awk '$1 == "summary:" { print $2 }' "$dump" 2>/dev/null || true)
        if [ -z "$json" ] || [ -z "$ir" ]; then
            ir_rows+=("$(printf '%10s  FAILED' "$unrelated")")
            continue
        fi
        per=$(awk -v i="$ir" -v n="$(field received)" 'BEGIN { printf "%.0f", i / n }')
        printf '{"workload":"publish_cost","unrelated":%s,"received":%s,"daemon_instructions":%s,"per_msg":%s}\n' \
            "$unrelated" "$(field received)" "$ir" "$per" | tee -a "$results" >&2
        ir_rows+=("$(printf '%10s %10s %15s %10s' "$unrelated" "$(field received)" "$ir" "$per")")
        if [ "$unrelated" = 10 ]; then
            base_ir=$ir
        else
            ir_rows[-1]+=$(awk -v a="$ir" -v b="$base_ir" 'BEGIN { printf "  %.3fx", a / b }')
        fi
    done
    stop_daemon
fi

log "results in $results"
echo "Machine: $(nproc) cores, $cpu; hard open-files limit $nofile_hard; busd $rev"
echo
echo "Idle connections (daemon after 'ready'; CPU over ${IDLE_SECS} s; target: $CONNS held, RSS < 200 MB)"
printf '%-9s %7s %11s %7s %10s %9s %11s %8s %7s %10s %12s  %s\n' \
    transport conns established dropped "RSS MB" "HWM MB" "KB/conn" "closed MB" fds "idle CPU%" "client CPU%" "target met"
printf '%s\n' "${idle_rows[@]}"
echo
echo "Request/reply ($REQUESTERS requesters × $REQ_COUNT requests, 10 s timeout; target: no timeout)"
printf '%-9s %10s %9s %9s %6s %10s %10s %10s %7s  %s\n' \
    transport requesters sent answered failed "p50 µs" "p99 µs" "elapsed s" "wall s" "target met"
printf '%s\n' "${req_rows[@]}"
echo
echo "Publish cost (16 B pub/sub over unix, daemon CPU per message; target: with $UNRELATED unrelated subscriptions within 1.2x of 10)"
printf '%5s %10s %12s %6s %16s  %s\n' round unrelated msgs/s lost "daemon ns/msg" "$UNRELATED vs 10"
printf '%s\n' "${cost_rows[@]}"
if [ "${#ir_rows[@]}" -gt 0 ]; then
    echo "The same in daemon instructions (callgrind, one run each; exact where CPU time is not)"
    printf '%10s %10s %15s %10s  %s\n' unrelated messages instructions "per msg" "vs 10"
    printf '%s\n' "${ir_rows[@]}"
fi
for n in "${notes[@]}"; do echo "Note: $n"; done
