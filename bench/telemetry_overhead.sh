#!/usr/bin/env bash
# Overhead of watching a run: engine_throughput.sh's reduce sum and map
# 'x*2+1' on a SIZE_GIB (default 4) GiB f64 array under 1 GiB, page cache
# warm, timed plain, with `--metrics-addr` (scraped every second, as a
# Prometheus would) plus `--report` (the timeline sampled every 100 ms), and
# with `--otlp-endpoint` posting spans and metrics to an OTLP receiver on
# loopback (tests/python/otlp_receiver.py, decoding every post with
# opentelemetry-proto, in the venv VENV, default .venv).
# Runs alternate plain / watched / exported so drift hits all alike; prints
# a Markdown table of medians of REPEAT (default 5) runs.
#
#   bench/telemetry_overhead.sh [WORKDIR]   (default bench/out; needs ~3x SIZE_GIB free)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-5}"
venv="${VENV:-.venv}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
source bench/common.sh

x="$work/x.zarr"
rm -rf "$x" "$work/y.zarr"
"$bin" create "$x" --shape "$((size_gib * 2048)),65536" --chunks 256,4096 --fill uniform --seed 3 -q >/dev/null
"$bin" verify "$x" -q >/dev/null

addr=127.0.0.1:19184
# A scraper polling the endpoint every second while the watched runs last.
( while :; do curl -s -o /dev/null "http://$addr/metrics" || true; sleep 1; done ) &
scraper=$!
"$venv/bin/python" tests/python/otlp_receiver.py "$work/otlp.jsonl" > "$work/otlp.port" &
receiver=$!
trap 'kill $scraper $receiver 2>/dev/null; rm -rf "$work/y.zarr" "$work/run.json" "$work/otlp.jsonl" "$work/otlp.port"' EXIT
until [ -s "$work/otlp.port" ]; do sleep 0.1; done
watch=(--metrics-addr "$addr" --report "$work/run.json")
export_otlp=(--otlp-endpoint "http://127.0.0.1:$(awk '{print $2}' "$work/otlp.port")")

sum_cmd() { "$bin" reduce sum "$x" -q --memory-limit 1GiB "$@"; }
map_cmd() { rm -rf "$work/y.zarr"; "$bin" map 'x*2+1' "$x" -o "$work/y.zarr" -q --memory-limit 1GiB "$@"; }

# "WALL CPU": the wall-clock and the user + system seconds of one run (the
# CPU time is what watching costs the process, free of the disk's noise).
timed_cpu() {
    local t0 t1 c0 c1 me=$BASHPID
    c0=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$me/stat")
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    c1=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$me/stat")
    echo "$(calc "$t1 - $t0") $(calc "($c1 - $c0) / $(getconf CLK_TCK)")"
}
pct() { printf '%+.1f' "$(calc "($1 / $2 - 1) * 100")"; }

row() {
    local name="$1" cmd="$2" plain=() watched=() exported=() plain_cpu=() watched_cpu=() exported_cpu=() r
    "$cmd" >/dev/null 2>&1   # warm the page cache
    for _ in $(seq "$repeat"); do
        r=($(timed_cpu "$cmd")); plain+=("${r[0]}"); plain_cpu+=("${r[1]}")
        r=($(timed_cpu "$cmd" "${watch[@]}")); watched+=("${r[0]}"); watched_cpu+=("${r[1]}")
        r=($(timed_cpu "$cmd" "${export_otlp[@]}")); exported+=("${r[0]}"); exported_cpu+=("${r[1]}")
    done
    local p w e pc wc ec
    p=$(median "${plain[@]}"); w=$(median "${watched[@]}"); e=$(median "${exported[@]}")
    pc=$(median "${plain_cpu[@]}"); wc=$(median "${watched_cpu[@]}"); ec=$(median "${exported_cpu[@]}")
    echo "| $name | $(fmt "$p") s ($(fmt "$pc") s CPU) | $(fmt "$w") s ($(fmt "$wc") s) | $(pct "$w" "$p") % ($(pct "$wc" "$pc") %) | $(fmt "$e") s ($(fmt "$ec") s) | $(pct "$e" "$p") % ($(pct "$ec" "$pc") %) |"
}

echo "Overhead of --metrics-addr (scraped every 1 s) with --report (timeline every 100 ms), and of --otlp-endpoint (spans and metrics to a loopback OTLP receiver), ${size_gib} GiB f64 under 1 GiB in $work, page cache warm, medians of $repeat of the wall-clock (and of the process's user + system CPU time); $(machine), $(isa)"
echo
echo "| workload | plain | watched | overhead | OTLP export | overhead |"
echo "|---|---|---|---|---|---|"
row "reduce sum" sum_cmd
row "map x*2+1 (writes ${size_gib} GiB)" map_cmd
samples=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['timeline']['samples'])" "$work/run.json")
spans=$(grep -c '"signal": "span"' "$work/otlp.jsonl" || true)
errors=$(grep -c '"signal": "error"' "$work/otlp.jsonl" || true)
echo
echo "(last watched run's report: $samples timeline samples, $(stat -c %s "$work/run.json") bytes; the receiver decoded $spans spans from the exported runs, $errors posts refused)"
