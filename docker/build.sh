#!/usr/bin/env bash
# Builds the busd image from a static binary built on this host:
#   docker/build.sh [TAG]        (default TAG: busd)
# There is no registry to pull a Rust image from, so the binary is built
# here with the host's toolchain, linked statically against glibc (jemalloc
# is compiled from source by its build script and linked in too), and put
# on `scratch` with docker/Dockerfile. With a registry, use
# docker/Dockerfile.builder instead (see README.md, "Docker").
# Prints the image's tag on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-busd}
triple=x86_64-unknown-linux-gnu
# A target directory of its own: other RUSTFLAGS would otherwise rebuild
# the ordinary build's artefacts, and the two would keep overwriting each other.
target_dir=${CARGO_TARGET_DIR_STATIC:-target/static}
binary=$target_dir/$triple/release/busd

# crt-static applies to the target only: with an explicit --target, build
# scripts and proc macros are built for the host without it (a static
# proc macro cannot be loaded).
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$target_dir \
    cargo build --release --locked -p busd --target "$triple" >&2

# A binary that needs a loader or a shared library would fail in `scratch`
# with a bare "no such file or directory": refuse it here instead.
# (`ldd` cannot tell: it accepts a static-pie binary.)
if readelf --program-headers "$binary" | grep -q INTERP; then
    echo "build: $binary needs a dynamic loader; it cannot run on scratch:" >&2
    readelf --dynamic "$binary" | grep NEEDED >&2
    exit 1
fi

docker/engine.sh

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
install -m 0755 "$binary" "$context/busd"
strip "$context/busd"
# The socket directory: the Dockerfile copies it (mode and all) owned by
# busd's uid; git cannot hold an empty directory, so it is made here.
install -d -m 0750 "$context/rootfs/run/busd"
cp docker/Dockerfile "$context/"
docker build -q -t "$tag" "$context" >&2
echo "$tag"
