# sluice's container image. Not built in CI (no container engine runs
# there); its build step is CI's own: `cargo build --release --locked`.
#   docker build -t <registry>/sluice:<tag> .
#
# Build: the Debian-based Rust image has what librdkafka's and zstd's
# bundled C builds need (gcc, make, perl, python3).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice \
 && install -D -m 0755 target/release/sluice /out/sluice

# Run: glibc, CA certificates and time-zone data, no shell, no package
# manager (zlib, zstd and librdkafka are linked in statically: the binary
# needs nothing beyond glibc and libgcc); user 65532 ("nonroot") by default. The node DaemonSet runs it
# as uid 0 with only CAP_DAC_READ_SEARCH to read other pods' log files
# (deploy/kubernetes/node/daemonset.yaml says why); the aggregator runs
# as the image's non-root user. sluice also bundles the time-zone
# database, so `timezone = "Asia/Seoul"` works on any base.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
USER 65532:65532
EXPOSE 9598
ENTRYPOINT ["sluice"]
CMD ["run", "--config", "/etc/sluice/sluice.toml"]
