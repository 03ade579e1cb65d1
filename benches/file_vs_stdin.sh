#!/usr/bin/env bash
# The file source against stdin on the same application lines.
#
# Writes ~N MB of generator output as 20 CRI log files in a /var/log/pods
# layout (each line wrapped as `<ts> stdout F <line>`), then runs
#   (a) stdin  → parse → file sink, on the generator output itself;
#   (b) file   → parse → file sink, on the 20 CRI files (exit_at_eof);
# three rounds each, alternating, with a plain and with a zstd file sink,
# and prints sluice bench's report for each run, then the file source's
# extra CPU per application line and per GB read. (b) also decodes CRI and
# writes ~230 bytes of Kubernetes metadata more per event.
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

# One config per (input, compression): the file sink's cost grows with its
# output, and the file source's output is larger (Kubernetes metadata on
# every event), so both a plain and a zstd sink are measured.
for compression in none zstd; do
  cat > "$work/stdin-$compression.toml" <<TOML
[sources.in]
type = "stdin"
[sinks.files]
type = "file"
directory = "$work/out"
compression = "$compression"
zstd_level = 1
rotate_bytes = "256MiB"
max_files = 2
TOML
  cat > "$work/file-$compression.toml" <<TOML
data_dir = "$work/state"
[sources.pods]
type = "file"
include = ["$work/pods/*/*/*.log"]
exit_at_eof = true
[sinks.files]
type = "file"
directory = "$work/out"
compression = "$compression"
zstd_level = 1
rotate_bytes = "256MiB"
max_files = 2
TOML
done

cpu_of() { awk '/^cpu/ {print $2}'; }
run() { # input compression → CPU seconds (and the full report on stderr)
  rm -rf "$work/out" "$work/state"
  if [ "$1" = stdin ]; then
    "$sluice" bench --config "$work/stdin-$2.toml" < "$work/app.ndjson" 2>&1 | tee /dev/stderr | cpu_of
  else
    "$sluice" bench --config "$work/file-$2.toml" 2>&1 | tee /dev/stderr | cpu_of
  fi
}

summary=()
for compression in none zstd; do
  for round in 1 2 3; do
    echo; echo "== round $round, $compression sink: stdin (application lines)" >&2
    s=$(run stdin "$compression")
    echo; echo "== round $round, $compression sink: file source (20 CRI files)" >&2
    f=$(run file "$compression")
    summary+=("$(python3 -c "
s, f, app, cri = $s, $f, $app_bytes, $cri_bytes
print(f'$compression sink, round $round: stdin {s:.2f} s, file {f:.2f} s CPU: '
      f'{(f / s - 1) * 100:+.0f}% per application line, '
      f'{((f / cri) / (s / app) - 1) * 100:+.0f}% per GB read')
")")
  done
done
echo
printf '%s\n' "${summary[@]}"
