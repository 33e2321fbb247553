# The busd image built wholly by Docker, for a machine that can pull
# rust:1-bookworm from a registry (this project's CI cannot: it uses
# docker/build.sh, which builds the same binary on the host). From the
# repository's root:
#   docker build -f docker/Dockerfile.builder -t busd .
# The stage after `FROM scratch` is docker/Dockerfile's; docker/test.sh
# checks that the two stay the same from `USER` on.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# glibc and jemalloc linked in statically; build scripts and proc macros,
# built for the host because of the explicit --target, stay dynamic.
RUN RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked -p busd --target x86_64-unknown-linux-gnu \
    && install -m 0755 -s target/x86_64-unknown-linux-gnu/release/busd /busd \
    && install -d -m 0750 /rootfs/run/busd

FROM scratch
COPY --from=build --chown=10271:10271 /rootfs/ /
COPY --from=build /busd /usr/local/bin/busd
USER 10271:10271
VOLUME /run/busd
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/busd", "ctl", "stats", "--server", "unix:///run/busd/busd.sock"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/busd"]
CMD ["run"]
