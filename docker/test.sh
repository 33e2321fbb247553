#!/usr/bin/env bash
# The busd image, built and probed: the daemon in a container with a
# read-only root, reached through its socket volume from the host (root, a
# different uid) and from other containers (busd's uid); pub/sub and
# request/reply both ways, the healthcheck, the uid it runs as, a fresh
# named volume, `docker stop`; then docker/compose.yaml when a compose
# command is installed. Installs and starts the engine if missing (as
# root). Run by .ci/run: seconds (20 with compose) once target/static is
# built, which takes about 4 minutes cold.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "docker/test.sh: FAILED: $*" >&2
    exit 1
}
step() { echo "-- $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

started=$(now_ms)
# Dockerfile.builder (for those with a registry) cannot be built here; its
# final stage must at least say what the tested Dockerfile says.
final_stage() { sed -n '/^USER /,$p' "$1" | grep -v -e '^#' -e '^$'; }
diff <(final_stage docker/Dockerfile) <(final_stage docker/Dockerfile.builder) ||
    fail "docker/Dockerfile.builder's final stage differs from docker/Dockerfile's"
docker/engine.sh
image=$(docker/build.sh)
bin=$PWD/target/static/x86_64-unknown-linux-gnu/release/busd
uid=10271
weather=Contoso.Weather_8wekyb3d8bbwe
maps=Fabrikam.Maps_1234567890abc

name=busd-test-$$
volume=busd-test-$$
work=$(mktemp -d)
cleanup() {
    docker ps -aq --filter "name=^$name" | xargs -r docker rm -f >/dev/null
    docker volume rm -f "$volume" >/dev/null 2>&1 || true
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The socket's directory, bound at /run/busd: busd's uid's, as the image's
# own /run/busd is (busd refuses a directory of another user).
install -d -o "$uid" -g "$uid" -m 0750 "$work/sock"
# The config and tokens, mounted read-only at /etc/busd. The tokens are
# the daemon's uid's (it reads them) and mode 0600 (it refuses others).
install -d -m 0755 "$work/etc"
install -d -o "$uid" -g "$uid" -m 0700 "$work/etc/tokens"
cp docker/busd.toml "$work/etc/"
for key in weather maps; do
    "$bin" token new "$work/etc/tokens/$key.key" >/dev/null
done
chown "$uid:$uid" "$work"/etc/tokens/*.key

# From the host: root, admin by the sample config, the socket through the
# bound directory.
host() { BUSD_URL="unix://$work/sock/busd.sock" "$bin" "$@"; }
as_weather=(--pfn "$weather" --token-file "$work/etc/tokens/weather.key")
# From another container of the image: busd's uid, sharing the socket.
client_args=(--read-only -v "$work/sock:/run/busd"
    -v "$work/etc/tokens/maps.key:/etc/busd/maps.key:ro" "$image")
as_maps=(--pfn "$maps" --token-file /etc/busd/maps.key)
container() { docker run --rm "${client_args[@]}" "$@"; }

# Waits until the daemon lists SUBJECT among its subscriptions or
# services, so that what is sent next has a receiver.
await_registered() {
    for _ in $(seq 1 100); do
        # Read whole before grep: `grep -q` stops reading at the first
        # match, and busd panics on the broken pipe.
        subs=$(host ctl --json subs)
        grep -qF "\"subject\": \"$1\"" <<<"$subs" && return 0
        sleep 0.1
    done
    fail "no subscription or service for $1 within 10 s"
}
# Waits up to 10 s for background job PID to exit; fails unless it exits 0.
await_exit() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$1" 2>/dev/null && fail "$2: still running after 10 s"
    wait "$1" || fail "$2: exited with $?"
}
# Fails unless FILE, the output of `busd sub`, holds the message SUBJECT
# from package PFN (the sender is shown as PFN#CLIENT_ID) with PAYLOAD.
expect_msg() {
    awk -F '\t' -v s="$2" -v p="$3#" -v v="$4" \
        '$1 == s && index($2, p) == 1 && $3 == v { found = 1 } END { exit !found }' "$1" ||
        fail "expected $2 from $3 with payload $4, got: $(cat "$1")"
}

step "daemon: read-only root, socket on $work/sock, healthcheck every 1 s"
t0=$(now_ms)
# --health-interval only shortens the image's 10 s; the check is the image's.
docker run -d --name "$name" --read-only --health-interval 1s \
    -v "$work/sock:/run/busd" -v "$work/etc:/etc/busd:ro" \
    "$image" run --config /etc/busd/busd.toml >/dev/null
until host ctl stats >/dev/null 2>&1; do
    [ $(($(now_ms) - t0)) -lt 10000 ] || {
        docker logs "$name" >&2
        fail "the daemon did not answer busd ctl stats within 10 s"
    }
    sleep 0.02
done
ready_ms=$(($(now_ms) - t0))

step "container (Maps, uid $uid) -> host (Weather, root)"
host sub -n 1 "${as_weather[@]}" 'weather.>' >"$work/host-sub.out" &
sub=$!
await_registered 'weather.>'
container pub "${as_maps[@]}" weather.today.paris sunny
await_exit "$sub" "host sub"
expect_msg "$work/host-sub.out" weather.today.paris "$maps" sunny

step "host (Weather) -> container (Maps): the sender as the daemon proved it"
docker run -d --name "$name-sub" "${client_args[@]}" \
    sub -n 1 "${as_maps[@]}" 'maps.>' >/dev/null
await_registered 'maps.>'
# Across pid namespaces the daemon cannot see the client's pid: it must
# say so (null), not name pid 0 or another process of its own namespace.
host ctl --json clients >"$work/clients.json"
grep -qF "\"pid\": 0" "$work/clients.json" &&
    fail "a client's pid is listed as 0: $(cat "$work/clients.json")"
grep -qF "\"uid\": $uid" "$work/clients.json" ||
    fail "no client of uid $uid listed: $(cat "$work/clients.json")"
host pub "${as_weather[@]}" maps.route.paris north
[ "$(docker wait "$name-sub")" = 0 ] || fail "container sub exited non-zero"
docker logs "$name-sub" >"$work/container-sub.out" 2>&1
expect_msg "$work/container-sub.out" maps.route.paris "$weather" north

step "request: host (Weather) -> service in a container (Maps)"
docker run -d --name "$name-reply" "${client_args[@]}" \
    reply -n 1 --echo "${as_maps[@]}" maps.echo >/dev/null
await_registered maps.echo
[ "$(host req "${as_weather[@]}" maps.echo hello)" = hello ] ||
    fail "busd req maps.echo did not answer hello"
[ "$(docker wait "$name-reply")" = 0 ] || fail "container reply exited non-zero"

step "request: container over the daemon's loopback TCP (shared network namespace) -> container over unix"
docker run -d --name "$name-echo" "${client_args[@]}" \
    reply -n 1 --echo local.echo >/dev/null
await_registered local.echo
# Both unpackaged, both uid 10271: allowed by unpackaged = "same-uid".
answer=$(docker run --rm --network "container:$name" "$image" \
    req --server tcp://127.0.0.1:4271 local.echo ping)
[ "$answer" = ping ] || fail "busd req over tcp answered '$answer'"
[ "$(docker wait "$name-echo")" = 0 ] || fail "container reply exited non-zero"

step "healthcheck"
for _ in $(seq 1 30); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
    [ "$health" = healthy ] && break
    sleep 0.5
done
[ "$health" = healthy ] || fail "health is '$health' after 15 s"

step "the daemon's uid and root filesystem"
pid=$(docker inspect -f '{{.State.Pid}}' "$name")
ids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
[ "$ids" = "$uid $uid $uid $uid" ] || fail "busd runs as uids '$ids', not $uid"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true ] ||
    fail "the root filesystem is not read-only"

step "a fresh named volume at /run/busd takes the image's ownership"
docker run -d --name "$name-vol" --read-only -v "$volume:/run/busd" "$image" >/dev/null
for _ in $(seq 1 50); do
    docker exec "$name-vol" busd ctl stats >/dev/null 2>&1 && break
    sleep 0.1
done
docker exec "$name-vol" busd ctl stats >/dev/null ||
    fail "busd on a fresh named volume: $(docker logs "$name-vol" 2>&1)"
docker rm -f "$name-vol" >/dev/null

step "docker stop, with a client connected"
host sub 'weather.>' >/dev/null 2>&1 &
await_registered 'weather.>'
t0=$(now_ms)
docker stop -t 10 "$name" >/dev/null
stop_ms=$(($(now_ms) - t0))
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "busd exited $code on SIGTERM"
[ "$stop_ms" -lt 5000 ] || fail "docker stop took $stop_ms ms"

compose_test=docker/test-compose.sh
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; then
    step "compose"
    "$compose_test" "$image"
else
    step "compose: skipped, neither 'docker compose' nor docker-compose is installed"
fi

size=$(docker image inspect -f '{{.Size}}' "$image")
echo "image $image: $((size / 1000)) kB"
echo "start to ready (docker run until busd ctl stats answers): $ready_ms ms"
echo "docker stop: $stop_ms ms, exit code 0"
echo "docker/test.sh: ok in $((($(now_ms) - started) / 1000)) s"
