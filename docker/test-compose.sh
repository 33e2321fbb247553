#!/usr/bin/env bash
# docker/compose.yaml as a user runs it: copied with busd.toml into a
# temporary directory, tokens made there as README.md says, `up`; then a
# forecast published as Weather must reach the sample Maps client, and
# `stop` must take under 5 s and leave busd exited 0. Run by docker/test.sh when `docker
# compose` or docker-compose is installed, after the image is built.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "docker/test-compose.sh: FAILED: $*" >&2
    exit 1
}

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    compose=(docker-compose)
fi
work=$(mktemp -d)
compose+=(--project-name "busdtest$$" --file "$work/compose.yaml")
cleanup() {
    "${compose[@]}" down --volumes >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cp docker/compose.yaml docker/busd.toml "$work/"
install -d -o 10271 -g 10271 -m 0700 "$work/tokens"
for key in weather maps; do
    docker run --rm -v "$work/tokens:/tokens" busd token new "/tokens/$key.key" 2>/dev/null
done

# `up` waits for busd's healthcheck (its first run is 10 s in) before it
# starts the client.
"${compose[@]}" up -d 2>/dev/null
for _ in $(seq 1 30); do
    # Until the client has subscribed, a publish reaches no one.
    "${compose[@]}" exec -T busd busd pub --pfn Contoso.Weather_8wekyb3d8bbwe \
        --token-file /etc/busd/tokens/weather.key weather.today.paris sunny
    logs=$("${compose[@]}" logs --no-color maps)
    grep -qF "$(printf 'weather.today.paris\tContoso.Weather_8wekyb3d8bbwe#')" <<<"$logs" && break
    sleep 0.3
done
grep -qF "sunny" <<<"$logs" || fail "the maps client got no forecast: $logs"

busd=$("${compose[@]}" ps -q busd)
started=$(date +%s%N)
"${compose[@]}" stop -t 10 2>/dev/null
stop_ms=$((($(date +%s%N) - started) / 1000000))
code=$(docker inspect -f '{{.State.ExitCode}}' "$busd")
[ "$code" = 0 ] || fail "busd exited $code on stop"
# Both containers: one that ignored SIGTERM would take the full 10 s.
[ "$stop_ms" -lt 5000 ] || fail "compose stop took $stop_ms ms"
echo "compose: the Maps client got Weather's forecast; stop took $stop_ms ms, busd exited 0"
