#!/usr/bin/env bash
# Set up everything sluice's tests need and run all of them: formatting,
# lints, the release build, unit and end-to-end tests. Idempotent: packages
# already installed are skipped, and cargo reuses ./target between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "${component}"
  fi
done

# System packages the tests need: the multiline tests run real Python, Java,
# Node.js, Go and Ruby programs to capture their stack traces; the clickhouse tests
# start Debian's ClickHouse server as a plain process (no service is
# started by the package); the admin tests run Debian's Prometheus; the redaction tests make a real private key with
# openssl. zstd, simd-json and librdkafka build from crates.
need=()
for pair in python3:python3 java:openjdk-17-jdk-headless node:nodejs go:golang-go ruby:ruby openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ ! -x /usr/sbin/clickhouse-server ] && [ ! -x /usr/bin/clickhouse-server ]; then
  need+=(clickhouse-server clickhouse-client)
fi
# The admin tests lint /metrics with promtool and scrape sluice with a real
# Prometheus server, both from Debian's package (no service is started).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The Kafka tests run a real Apache Kafka broker (KRaft, one node) from
# Maven Central's jars: fetched once into target/kafka-broker/ (the
# marker file says the copy finished), started by the tests as a plain
# `java` process.
kafka_jars=target/kafka-broker
if [ ! -f "$kafka_jars/.complete" ]; then
  step "fetch the Kafka broker's jars (tests/kafka/pom.xml)"
  command -v mvn >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; }
  rm -rf "$kafka_jars"
  mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$PWD/$kafka_jars"
  touch "$kafka_jars/.complete"
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo build --release"
cargo build --release --workspace

step "cargo test (release: the end-to-end tests push a million lines)"
cargo test --workspace --release

step "README's first command on the embedded default"
out_dir=$(mktemp -d)
SLUICE_OUT_DIR="$out_dir" SLUICE_DATA_DIR="$out_dir/state" ./target/release/sluice run --no-progress
ls "$out_dir"/*.ndjson.zst >/dev/null
rm -rf "$out_dir"
