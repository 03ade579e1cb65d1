#!/usr/bin/env bash
# The file source against stdin on the same application lines.
#
# Writes ~N MB of generator output as 20 CRI log files in a /var/log/pods
# layout (each line wrapped as `<ts> stdout F <line>`), then runs
#   (a) stdin  → parse → plain file sink, on the generator output itself;
#   (b) file   → parse → plain file sink, on the 20 CRI files (exit_at_eof);
# and prints sluice bench's report for each. Compare "MB per CPU-second" on
# the application bytes: (b) also decodes CRI and adds k8s metadata.
#
# Usage: benches/file_vs_stdin.sh [lines, default 2000000]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-2000000}
sluice=./target/release/sluice
[ -x "$sluice" ] || cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$sluice" generate --count "$lines" --seed 7 > "$work/app.ndjson"
python3 - "$work" <<'PY'
import os, sys
work = sys.argv[1]
outs = []
for i in range(20):
    d = os.path.join(work, "pods", f"ns_pod{i}_uid{i}", "app")
    os.makedirs(d)
    outs.append(open(os.path.join(d, "0.log"), "wb", buffering=1 << 20))
with open(os.path.join(work, "app.ndjson"), "rb") as src:
    for n, line in enumerate(src):
        if line.strip():
            outs[n % 20].write(b"2026-11-25T01:02:03.%09dZ stdout F " % (n % 10**9) + line)
for o in outs:
    o.close()
PY
cri_bytes=$(cat "$work"/pods/*/app/0.log | wc -c)
app_bytes=$(wc -c < "$work/app.ndjson")
echo "application bytes: $app_bytes, CRI file bytes: $cri_bytes (20 files)"

cat > "$work/stdin.toml" <<TOML
[sources.in]
type = "stdin"
[sinks.files]
type = "file"
directory = "$work/out-stdin"
compression = "none"
rotate_bytes = "256MiB"
max_files = 2
TOML
cat > "$work/file.toml" <<TOML
data_dir = "$work/state"
[sources.pods]
type = "file"
include = ["$work/pods/*/*/*.log"]
exit_at_eof = true
[sinks.files]
type = "file"
directory = "$work/out-file"
compression = "none"
rotate_bytes = "256MiB"
max_files = 2
TOML
echo; echo "== stdin (application lines)"
"$sluice" bench --config "$work/stdin.toml" < "$work/app.ndjson"
echo; echo "== file source (20 CRI files, same application lines)"
"$sluice" bench --config "$work/file.toml"
