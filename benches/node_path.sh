#!/usr/bin/env bash
# The node path as a new user runs it: the shipped `config/k8s-node.toml`
# (file source with Kubernetes metadata → parse → multiline → redact →
# budget → ClickHouse through its disk buffer), reading four CRI files of
# generator lines to their end (`exit_at_eof`), into a local Debian
# ClickHouse started here on the same cores (tests/clickhouse/server.xml,
# everything in a temp dir, stopped at the end). `--sink file` swaps the
# ClickHouse sink for a zstd file sink.
#
# Each binary given runs once per round, binaries alternated round by round
# (the machines are shared and noisy: compare ratios within one sitting),
# and prints sluice's own report: MB per CPU-second and peak RSS.
#
# Usage: benches/node_path.sh [--sink clickhouse|file] [--rounds N]
#                             [--lines N] [BINARY ...]
#   BINARY defaults to ./target/release/sluice; lines are per file
#   (150000 ≈ 54 MB of CRI text each). SLUICE_BENCH_WRAP prefixes each run
#   (e.g. "perf record -g -o /tmp/perf.data", "env MIMALLOC_PURGE_DELAY=0").
set -euo pipefail
cd "$(dirname "$0")/.."
sink=clickhouse rounds=3 lines=150000 bins=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sink) sink=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --lines) lines=$2; shift 2 ;;
        *) bins+=("$1"); shift ;;
    esac
done
if [ ${#bins[@]} -eq 0 ]; then
    [ -x target/release/sluice ] || cargo build --release -q
    bins=(target/release/sluice)
fi
work=$(mktemp -d)
ch_pid=
cleanup() {
    [ -n "$ch_pid" ] && kill "$ch_pid" 2>/dev/null && wait "$ch_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Four pods' CRI files, as the kubelet writes them.
"${bins[0]}" generate -n "$lines" --seed 7 > "$work/app.ndjson"
for pod in web api worker cron; do
    d="$work/pods/shop_${pod}-0_00000000-0000-0000-0000-000000000000/$pod"
    mkdir -p "$d"
    sed 's/^/2026-12-07T10:00:00.000000000Z stdout F /' "$work/app.ndjson" > "$d/0.log"
done
rm "$work/app.ndjson"

config="$work/sluice.toml"
sed 's/^\[sources.pods\]$/[sources.pods]\nexit_at_eof = true/' config/k8s-node.toml > "$config"
if [ "$sink" = clickhouse ]; then
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    http_port=$(free_port) tcp_port=$(free_port)
    mkdir -p "$work/ch"
    sed -e "s|@DIR@|$work/ch|g" -e "s|@HTTP_PORT@|$http_port|" -e "s|@TCP_PORT@|$tcp_port|" \
        tests/clickhouse/server.xml > "$work/ch/config.xml"
    server=$(command -v clickhouse-server || echo /usr/bin/clickhouse-server)
    (cd "$work/ch" && exec "$server" --config-file="$work/ch/config.xml" >/dev/null 2>&1) &
    ch_pid=$!
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$http_port/ping" >/dev/null && break
        sleep 0.1
    done
    query() { curl -sf "http://127.0.0.1:$http_port/" --data-binary "$1"; }
    query "$(cat deploy/clickhouse/schema.sql)"
    export SLUICE_CLICKHOUSE_URL="http://127.0.0.1:$http_port"
else
    # Everything before [sinks.clickhouse] stays; a zstd file sink replaces it.
    sed -i '/^\[sinks.clickhouse\]/,$d' "$config"
    printf '[sinks.files]\ntype = "file"\ndirectory = "%s/out"\ncompression = "zstd"\n' "$work" >> "$config"
fi
export SLUICE_LOG_DIR="$work/pods" SLUICE_ADMIN_ADDRESS="127.0.0.1:0"

echo "node path → $sink, $(du -sm "$work/pods" | cut -f1) MB of CRI files, $rounds rounds"
for round in $(seq "$rounds"); do
    for bin in "${bins[@]}"; do
        rm -rf "$work/state" "$work/out"
        [ "$sink" = clickhouse ] && query "TRUNCATE TABLE logs"
        report=$(SLUICE_DATA_DIR="$work/state" ${SLUICE_BENCH_WRAP:-} "$bin" bench -c "$config")
        per_cpu=$(sed -n 's/.*→ \([0-9.]*\) MB per CPU-second.*/\1/p' <<<"$report")
        rss=$(sed -n 's/^peak rss *\([0-9.]*\) MB.*/\1/p' <<<"$report")
        stored=
        [ "$sink" = clickhouse ] && stored=" · $(query "SELECT count() FROM logs") rows stored"
        echo "round $round  $bin: $per_cpu MB per CPU-second, peak RSS $rss MB$stored"
    done
done
