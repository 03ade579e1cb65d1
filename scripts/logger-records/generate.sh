#!/usr/bin/env bash
# Rebuilds the programs in this directory and rewrites
# tests/fixtures/loggers/<library>.jsonl from their stdout.
# Usage: scripts/logger-records/generate.sh [go] [node] [python] [java] [rust]
# (no argument: all five).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../tests/fixtures/loggers"
mkdir -p "$out"

gen_go() {
    cd "$here/go"
    go build -mod=readonly -o /tmp/logger-records-go .
    for lib in slog zap zerolog logrus; do /tmp/logger-records-go "$lib" > "$out/$lib.jsonl"; done
}

gen_node() {
    cd "$here/node"
    npm ci --no-audit --no-fund --loglevel=error
    for lib in pino winston bunyan; do node records.js "$lib" > "$out/$lib.jsonl"; done
}

gen_python() {
    cd "$here/python"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q -r requirements.txt
    for lib in structlog python-json-logger; do .venv/bin/python records.py "$lib" > "$out/$lib.jsonl"; done
}

gen_java() {
    cd "$here/java"
    mvn -B -q compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
    for lib in logstash-logback log4j2-ecs log4j2-json; do
        java -cp "target/classes:$(cat target/classpath.txt)" sluice.loggerrecords.Records "$lib" > "$out/$lib.jsonl"
    done
}

gen_rust() {
    cd "$here/rust"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/logger-rust-target}"
    cargo build --locked -j1 --quiet
    "$CARGO_TARGET_DIR/debug/logger-records" > "$out/tracing-json.jsonl"
}

[ "$#" -gt 0 ] || set -- go node python java rust
for eco in "$@"; do ( "gen_$eco" ); done
