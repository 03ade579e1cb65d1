#!/usr/bin/env bash
# The file source against stdin on the same application lines.
#
# Writes ~N MB of generator output as 20 CRI log files in a /var/log/pods
# layout (each line wrapped as `<ts> stdout F <line>`), then runs
#   (a) stdin  → parse → file sink, on the generator output itself;
#   (a') stdin → parse → file sink, on the records the file source emits
#       (the application lines with their Kubernetes metadata, taken from a
#       file-source run): the same output bytes as (b), so what differs is
#       the source alone — reading and decoding CRI and attaching metadata
#       against reading and parsing that metadata;
#   (b) file   → parse → file sink, on the 20 CRI files (exit_at_eof);
#   (c) live   → the same, while a writer process appends the 20 files at
#       full speed (the issue's setup): `sluice run` tails them until its
#       checkpoints cover every byte, then gets SIGTERM; its CPU is taken
#       from its final summary;
# three rounds each, alternating, with a plain and with a zstd file sink,
# and prints sluice's report for each run, then the file source's extra CPU
# per application line and per GB read. (b) and (c) also decode CRI and
# write ~200 bytes of Kubernetes metadata more per event.
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
  sink="[sinks.files]
type = \"file\"
directory = \"$work/out\"
compression = \"$compression\"
zstd_level = 1
rotate_bytes = \"256MiB\"
max_files = 2"
  printf '[sources.in]\ntype = "stdin"\n%s\n' "$sink" > "$work/stdin-$compression.toml"
  printf 'data_dir = "%s"\n[sources.pods]\ntype = "file"\ninclude = ["%s"]\nexit_at_eof = true\n%s\n' \
    "$work/state" "$work/pods/*/*/*.log" "$sink" > "$work/file-$compression.toml"
  printf 'data_dir = "%s"\n[sources.pods]\ntype = "file"\ninclude = ["%s"]\ncheckpoint_interval = "100ms"\n%s\n' \
    "$work/state" "$work/live/*/*/*.log" "$sink" > "$work/live-$compression.toml"
done

# The live writer: appends each prepared file to its copy under live/ in
# runs of whole lines (~64 KiB per write, as a busy container's runtime
# would), round-robin across the 20 files, as fast as it can.
cat > "$work/append.py" <<'PY'
import os, sys
work = sys.argv[1]
pairs = []
for d in sorted(os.listdir(os.path.join(work, "pods"))):
    dst = os.path.join(work, "live", d, "app")
    os.makedirs(dst)
    pairs.append([open(os.path.join(work, "pods", d, "app", "0.log"), "rb"),
                  open(os.path.join(dst, "0.log"), "ab", buffering=0), b""])
while pairs:
    for p in list(pairs):
        chunk = p[2] + p[0].read(64 << 10)
        if not chunk:
            pairs.remove(p)
            continue
        cut = chunk.rfind(b"\n") + 1
        if cut == 0 and len(chunk) < (1 << 20):
            p[2] = chunk
            continue
        cut = cut or len(chunk)
        p[1].write(chunk[:cut])
        p[2] = chunk[cut:]
PY

# Bytes the file source's checkpoints say were delivered.
acked() {
  python3 -c 'import json,sys
try: print(sum(f["offset"] for f in json.load(open(sys.argv[1]))["files"]))
except Exception: print(0)' "$work/state/checkpoints/pods.json"
}

cpu_of() { awk '/^cpu/ {print $2}'; }
run() { # input compression → CPU seconds (and the full report on stderr)
  rm -rf "$work/out" "$work/state"
  if [ "$1" = stdin ]; then
    "$sluice" bench --config "$work/stdin-$2.toml" < "$work/app.ndjson" 2>&1 | tee /dev/stderr | cpu_of
  elif [ "$1" = enriched ]; then
    "$sluice" bench --config "$work/stdin-$2.toml" < "$work/enriched.ndjson" 2>&1 | tee /dev/stderr | cpu_of
  elif [ "$1" = file ]; then
    "$sluice" bench --config "$work/file-$2.toml" 2>&1 | tee /dev/stderr | cpu_of
  else
    rm -rf "$work/live"
    "$sluice" run --config "$work/live-$2.toml" > "$work/live.out" 2>&1 &
    local pid=$! waited=0
    python3 "$work/append.py" "$work"
    until [ "$(acked)" -ge "$cri_bytes" ]; do
      sleep 0.1
      waited=$((waited + 1))
      if [ $waited -gt 1200 ]; then
        echo "live run: not every byte acknowledged after 120 s" >&2
        kill -9 $pid
        exit 1
      fi
    done
    kill -TERM $pid
    wait $pid
    tee /dev/stderr < "$work/live.out" | grep -o 'CPU [0-9.]*s' | tr -dc '0-9.\n'
  fi
}

# (a')'s input: what the file source emits, from one plain run into one
# file (the measured configs keep only the last two 256 MiB files).
rm -rf "$work/out" "$work/state"
sed -e 's/^rotate_bytes = .*/rotate_bytes = "64GiB"/' -e '/^max_files/d' \
  "$work/file-none.toml" > "$work/file-enrich.toml"
"$sluice" bench --config "$work/file-enrich.toml" > /dev/null 2>&1
cat "$work"/out/* > "$work/enriched.ndjson"
echo "records as the file source emits them: $(wc -c < "$work/enriched.ndjson") bytes"

summary=()
for compression in none zstd; do
  for round in 1 2 3; do
    echo; echo "== round $round, $compression sink: stdin (application lines)" >&2
    s=$(run stdin "$compression")
    echo; echo "== round $round, $compression sink: stdin (the file source's records)" >&2
    e=$(run enriched "$compression")
    echo; echo "== round $round, $compression sink: file source (20 CRI files)" >&2
    f=$(run file "$compression")
    echo; echo "== round $round, $compression sink: file source, live (20 CRI files appended while tailed)" >&2
    l=$(run live "$compression")
    summary+=("$(python3 -c "
s, e, f, l, app, cri = $s, $e, $f, $l, $app_bytes, $cri_bytes
line = lambda x: f'{(x / s - 1) * 100:+.0f}%'
gb = lambda x: f'{((x / cri) / (s / app) - 1) * 100:+.0f}%'
same = lambda x: f'{(x / e - 1) * 100:+.0f}%'
print(f'$compression sink, round $round: stdin {s:.2f} s, stdin of the records {e:.2f} s, file {f:.2f} s, live {l:.2f} s CPU; '
      f'per application line: file {line(f)}, live {line(l)}; per GB read: file {gb(f)}, live {gb(l)}; '
      f'same output: file {same(f)}, live {same(l)}')
")")
  done
done
echo
printf '%s\n' "${summary[@]}"
