#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs Debian's docker.io when
# dockerd is missing, and starts dockerd in the background when `docker
# info` fails (a CI machine or a container has no init to start it). Run as
# root there; where an engine already answers it does nothing. Sourced or
# run: `docker/engine.sh`.
set -euo pipefail

engine_log=${BUSD_DOCKERD_LOG:-/tmp/busd-dockerd.log}

if ! command -v dockerd >/dev/null; then
    echo "engine: dockerd missing, installing docker.io" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "engine: starting dockerd (log: $engine_log)" >&2
    # setsid: the engine outlives this script and its process group, as a
    # service would; it is left running for the next run to reuse.
    setsid dockerd >"$engine_log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        echo "engine: dockerd did not answer within 30 s; its log:" >&2
        tail -n 30 "$engine_log" >&2
        exit 1
    fi
fi
