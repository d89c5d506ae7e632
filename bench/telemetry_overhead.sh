#!/usr/bin/env bash
# Overhead of watching a run: engine_throughput.sh's reduce sum and map
# 'x*2+1' on a SIZE_GIB (default 4) GiB f64 array under 1 GiB, page cache
# warm, timed plain and with `--metrics-addr` (scraped every second, as a
# Prometheus would) plus `--report` (the timeline sampled every 100 ms).
# Runs alternate plain / watched so drift hits both alike; prints a Markdown
# table of medians of REPEAT (default 5) runs.
#
#   bench/telemetry_overhead.sh [WORKDIR]   (default bench/out; needs ~3x SIZE_GIB free)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-5}"
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
trap 'kill $scraper 2>/dev/null; rm -rf "$work/y.zarr" "$work/run.json"' EXIT
watch=(--metrics-addr "$addr" --report "$work/run.json")

sum_cmd() { "$bin" reduce sum "$x" -q --memory-limit 1GiB "$@"; }
map_cmd() { rm -rf "$work/y.zarr"; "$bin" map 'x*2+1' "$x" -o "$work/y.zarr" -q --memory-limit 1GiB "$@"; }

row() {
    local name="$1" cmd="$2" plain=() watched=()
    "$cmd" >/dev/null 2>&1   # warm the page cache
    for _ in $(seq "$repeat"); do
        plain+=("$(timed "$cmd")")
        watched+=("$(timed "$cmd" "${watch[@]}")")
    done
    local p w
    p=$(median "${plain[@]}"); w=$(median "${watched[@]}")
    echo "| $name | $(fmt "$p") s | $(fmt "$w") s | $(printf '%+.1f' "$(calc "($w / $p - 1) * 100")") % |"
}

echo "Overhead of --metrics-addr (scraped every 1 s) and --report (timeline every 100 ms), ${size_gib} GiB f64 under 1 GiB, page cache warm, medians of $repeat; $(machine), $(isa)"
echo
echo "| workload | plain | watched | overhead |"
echo "|---|---|---|---|"
row "reduce sum" sum_cmd
row "map x*2+1 (writes ${size_gib} GiB)" map_cmd
samples=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['timeline']['samples'])" "$work/run.json")
echo
echo "(last watched run's report: $samples timeline samples, $(stat -c %s "$work/run.json") bytes)"
