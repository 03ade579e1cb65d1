#!/usr/bin/env bash
# What idle container files cost a node agent: N pods' CRI files with one
# line each, the shipped config/k8s-node.toml with a zstd file sink in place
# of ClickHouse, and the process's CPU ticks (user + system, from
# /proc/<pid>/stat) over 20 s after an 8 s settle, with its RSS.
#
# Usage: benches/idle_files.sh [files, default 1000] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-1000}
bin=${2:-target/release/sluice}
[ -x "$bin" ] || cargo build --release -q
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
for i in $(seq "$files"); do
    d="$work/pods/ns_pod$i-0_0000-$i/app"
    mkdir -p "$d"
    echo '2026-12-07T10:00:00.000000000Z stdout F {"level":"info","msg":"hello"}' > "$d/0.log"
done
sed '/^\[sinks.clickhouse\]/,$d' config/k8s-node.toml > "$work/idle.toml"
printf '[sinks.files]\ntype = "file"\ndirectory = "%s/out"\ncompression = "zstd"\n' "$work" >> "$work/idle.toml"
SLUICE_LOG_DIR="$work/pods" SLUICE_DATA_DIR="$work/state" SLUICE_ADMIN_ADDRESS=127.0.0.1:0 \
    "$bin" run -c "$work/idle.toml" 2>"$work/err" &
pid=$!
sleep 8
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
a=$(ticks); sleep 20; b=$(ticks)
echo "$files idle files: $((b - a)) ticks in 20 s ($(awk "BEGIN {printf \"%.2f\", ($b - $a) * 100 / $hz / 20}")% of a core), RSS $(awk '/VmRSS/ {print $2 / 1024 " MB"}' "/proc/$pid/status")"
