#!/usr/bin/env bash
# What a hostile local client costs the daemon: starts a release busd,
# runs one attack of tests/examples/attack.rs against it, and prints the
# daemon's RSS, open fds and CPU time at its baseline, at the attack's
# peak, and 1, 3 and 5 seconds after the attacker's connections close.
#
# Usage: bench/attack.sh stall|queue|requests [attack options...]
#   e.g. bench/attack.sh stall --conns 300 --size 8388608
# BUSD=path runs another build of busd; BUSD_CONFIG=file another config.
set -euo pipefail
cd "$(dirname "$0")/.."

attack=${1:?usage: bench/attack.sh stall|queue|requests [options]}
shift
cargo build --release -q -p busd-e2e --example attack
[ -z "${BUSD:-}" ] && cargo build --release -q -p busd
busd=${BUSD:-target/release/busd}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
sock=$dir/busd.sock
args=(run --tcp "" --unix "$sock")
[ -n "${BUSD_CONFIG:-}" ] && args+=(--config "$BUSD_CONFIG")
"$busd" "${args[@]}" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

tick=$(getconf CLK_TCK)
# RSS in MiB, open fds, CPU seconds (user + system) of the daemon.
sample() {
    local rss fds cpu
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    fds=$(find "/proc/$pid/fd" -mindepth 1 | wc -l)
    cpu=$(awk -v t="$tick" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat")
    echo "$rss $fds $cpu"
}
row() { read -r rss fds cpu <<<"$2"; printf '%-10s %10s %6s %8s\n' "$1" "$rss" "$fds" "$cpu"; }

printf '%-10s %10s %6s %8s\n' when "RSS MiB" fds "CPU s"
row baseline "$(sample)"
target/release/examples/attack "$attack" --url "unix://$sock" "$@" &
attacker=$!
peak=$(sample)
while kill -0 "$attacker" 2>/dev/null; do
    now=$(sample)
    if awk -v a="${now%% *}" -v b="${peak%% *}" 'BEGIN {exit !(a > b)}'; then peak=$now; fi
    sleep 0.1
done
wait "$attacker"
row peak "$peak"
start=$(date +%s.%N)
for at in 1 3 5; do
    sleep "$(awk -v s="$start" -v a="$at" -v n="$(date +%s.%N)" 'BEGIN {d = s + a - n; print (d > 0 ? d : 0)}')"
    row "+${at}s" "$(sample)"
done
