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

# The deployment files' validators from PyPI, in a virtual environment
# made once under target/: yamllint, and kubernetes-validate (it bundles
# the Kubernetes OpenAPI schemas, so nothing is fetched when it runs).
deploy_venv=target/deploy-venv
if [ ! -f "$deploy_venv/.complete" ]; then
  step "python venv for the deployment checks (yamllint, kubernetes-validate)"
  python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
  rm -rf "$deploy_venv"
  python3 -m venv "$deploy_venv"
  "$deploy_venv/bin/pip" install -q --disable-pip-version-check yamllint==1.38.0 kubernetes-validate==1.37.0
  touch "$deploy_venv/.complete"
fi

# A current ClickHouse (26.x) embedded in Python by chdb-core from PyPI, for
# the test that loads the ClickHouse sink's requests into the schemas for
# current servers (only 18.16 runs here as a server). Made once under target/.
chdb_venv=target/chdb-venv
if [ ! -f "$chdb_venv/.complete-26.9.0" ]; then
  step "python venv with chdb-core 26.9.0 (ClickHouse in-process)"
  rm -rf "$chdb_venv"
  python3 -m venv "$chdb_venv"
  "$chdb_venv/bin/pip" install -q --disable-pip-version-check chdb-core==26.9.0
  touch "$chdb_venv/.complete-26.9.0"
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo build --release --locked (the Dockerfile's build step too)"
cargo build --release --locked --workspace

step "cargo test (release: the end-to-end tests push a million lines)"
cargo test --workspace --release

# tests/deploy.rs checked the ConfigMaps, alert rules, runbooks, dashboard
# and systemd unit against the real tools; here the manifests' syntax and
# schemas. Every Kubernetes object is validated, not the kustomizations or
# JSON patches; the PodMonitor is a CRD whose schema is not bundled.
step "deployment manifests: yamllint, kubernetes-validate (Kubernetes 1.37)"
"$deploy_venv/bin/yamllint" --strict -c deploy/.yamllint.yaml deploy/
find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml ! -name '*.patch.yaml' ! -name podmonitor.yaml -print0 \
  | sort -z | xargs -0 "$deploy_venv/bin/kubernetes-validate" -k 1.37.0 --strict --quiet
# What `kubectl apply -k` would send, where kubectl is installed (it
# bundles kustomize): each kustomization built and its output validated.
if command -v kubectl >/dev/null 2>&1; then
  built=$(mktemp -d)
  for tier in node node-to-kafka aggregator; do
    kubectl kustomize "deploy/kubernetes/$tier" > "$built/$tier.yaml"
    "$deploy_venv/bin/kubernetes-validate" -k 1.37.0 --strict --quiet "$built/$tier.yaml"
  done
  rm -rf "$built"
else
  echo "kubectl is not installed: the kustomizations are not built here"
fi

step "README's first command on the embedded default"
out_dir=$(mktemp -d)
SLUICE_OUT_DIR="$out_dir" SLUICE_DATA_DIR="$out_dir/state" ./target/release/sluice run --no-progress
ls "$out_dir"/*.ndjson.zst >/dev/null
rm -rf "$out_dir"
