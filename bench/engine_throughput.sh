#!/usr/bin/env bash
# Engine throughput on a SIZE_GIB (default 4) GiB f64 array, against dd on the
# same bytes and the peers (NumPy memmap, Dask + zarr-python) in the same run:
#   - reduce sum, page-cache warm and cold;
#   - map 'x*2+1' (ours writes a new array; Dask's (x*2+1).sum() writes nothing);
#   - transpose of a 3-d array of the same size under a 256 MiB limit: bytes
#     read + written against the array size, time and peak memory.
# Prints a Markdown table of medians of REPEAT (default 3) runs.
#
#   bench/engine_throughput.sh [WORKDIR]   (default bench/out; needs ~5x SIZE_GIB free)
#
# The peers run from a virtualenv in WORKDIR/venv with numpy, zarr>=3 and
# dask[array] from PyPI (created on first use). Cold runs drop the page cache
# first (needs root; skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-3}"
peers="$PWD/../shared/peers"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
source bench/common.sh
py=$(peer_python "$work/venv" "numpy, zarr, dask.array" numpy "zarr>=3,<4" "dask[array]")

gbs() { calc "$size_gib * 1.073741824 / $1"; }   # GB/s for the array size

rows=$((size_gib * 2048))
x="$work/x.zarr"
raw="$work/x.raw"
rm -rf "$x" "$raw" "$work/y.zarr" "$work/t3.zarr" "$work/x3.zarr"
"$bin" create "$x" --shape "$rows,65536" --chunks 256,4096 --fill uniform --seed 3 -q >/dev/null
"$bin" export "$x" "$raw" -q >/dev/null
cat "$raw" >/dev/null; "$bin" verify "$x" -q >/dev/null

run_warm() { local r=(); "$@" >/dev/null 2>&1; for _ in $(seq "$repeat"); do r+=("$(timed "$@")"); done; median "${r[@]}"; }
run_cold() { local r=(); for _ in $(seq "$repeat"); do drop; r+=("$(timed "$@")"); done; median "${r[@]}"; }

dd_warm=$(run_warm dd if="$raw" of=/dev/null bs=8M)
ours_sum_warm=$(run_warm "$bin" reduce sum "$x" -q --memory-limit 1GiB)
np_warm=$(run_warm "$py" "$peers/memmap_sum.py" "$raw")
# Dask prints its own timings; take sum and (x*2+1).sum medians.
dask_sum=(); dask_map=()
for _ in $(seq "$repeat"); do
    out=$("$py" "$peers/dask_zarr_reduce.py" "$x")
    dask_sum+=("$(echo "$out" | awk '/^sum:/ {sub("s","",$2); print $2}')")
    dask_map+=("$(echo "$out" | awk '/^\(x\*2\+1\).sum:/ {sub("s","",$2); print $2}')")
done
dask_sum_warm=$(median "${dask_sum[@]}")
dask_map_warm=$(median "${dask_map[@]}")
ours_map=(); for _ in $(seq "$repeat"); do rm -rf "$work/y.zarr"; ours_map+=("$(timed "$bin" map 'x*2+1' "$x" -o "$work/y.zarr" -q --memory-limit 1GiB)"); done
ours_map_warm=$(median "${ours_map[@]}")
rm -rf "$work/y.zarr"
if [ "$can_drop" = 1 ]; then
    dd_cold=$(run_cold dd if="$raw" of=/dev/null bs=8M)
    ours_sum_cold=$(run_cold "$bin" reduce sum "$x" -q --memory-limit 1GiB)
    np_cold=$(run_cold "$py" "$peers/memmap_sum.py" "$raw")
    m=(); for _ in $(seq "$repeat"); do rm -rf "$work/y.zarr"; drop; m+=("$(timed "$bin" map 'x*2+1' "$x" -o "$work/y.zarr" -q --memory-limit 1GiB)"); done
    ours_map_cold=$(median "${m[@]}")
    rm -rf "$work/y.zarr"
fi

echo
echo "| workload (${size_gib} GiB f64) | tenrso-ooc GB/s | dd GB/s | ours / dd | NumPy memmap GB/s | Dask+zarr GB/s | ours / Dask |"
echo "|---|---|---|---|---|---|---|"
echo "| sum, warm | $(fmt "$(gbs "$ours_sum_warm")") | $(fmt "$(gbs "$dd_warm")") | $(fmt "$(calc "$dd_warm / $ours_sum_warm")") | $(fmt "$(gbs "$np_warm")") | $(fmt "$(gbs "$dask_sum_warm")") | $(fmt "$(calc "$dask_sum_warm / $ours_sum_warm")") |"
if [ "$can_drop" = 1 ]; then
echo "| sum, cold | $(fmt "$(gbs "$ours_sum_cold")") | $(fmt "$(gbs "$dd_cold")") | $(fmt "$(calc "$dd_cold / $ours_sum_cold")") | $(fmt "$(gbs "$np_cold")") | | |"
fi
echo "| map x*2+1, warm (ours writes the result; Dask sums it) | $(fmt "$(gbs "$ours_map_warm")") | $(fmt "$(gbs "$dd_warm")") | $(fmt "$(calc "$dd_warm / $ours_map_warm")") | | $(fmt "$(gbs "$dask_map_warm")") | $(fmt "$(calc "$dask_map_warm / $ours_map_warm")") |"
if [ "$can_drop" = 1 ]; then
echo "| map x*2+1, cold | $(fmt "$(gbs "$ours_map_cold")") | $(fmt "$(gbs "$dd_cold")") | $(fmt "$(calc "$dd_cold / $ours_map_cold")") | | | |"
fi

# Transpose of a 3-d array of the same size under 256 MiB.
d0=$((size_gib * 256))
"$bin" create "$work/x3.zarr" --shape "$d0,1024,512" --chunks 32,64,512 --fill uniform -q >/dev/null
"$bin" verify "$work/x3.zarr" -q >/dev/null
report="$work/transpose.json"
t0=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "$bin" transpose "$work/x3.zarr" --axes 2,0,1 -o "$work/t3.zarr" --memory-limit 256MiB -q --json >"$report"
t1=$(date +%s.%N)
read -r bytes_read bytes_written bytes_spilled <<<"$("$py" -c "import json,sys; j=json.load(open('$report')); print(j['bytes_read'], j['bytes_written'], j['bytes_spilled'])")"
nbytes=$((size_gib * 1073741824))
echo
echo "| transpose ${size_gib} GiB (${d0}x1024x512 → axes 2,0,1) under 256 MiB | value |"
echo "|---|---|"
echo "| bytes read + written / array | $(fmt "$(calc "($bytes_read + $bytes_written) / $nbytes")") |"
echo "| bytes spilled | $bytes_spilled |"
echo "| time | $(fmt "$(calc "$t1 - $t0")") s ($(fmt "$(gbs "$(calc "$t1 - $t0")")") GB/s of input) |"
echo "| peak RSS | $(( $(cat "$work/rss") / 1024 )) MiB |"
echo
echo "$(machine), median of $repeat, $(date -u +%Y-%m-%d); chunks 256x4096 (8 MiB), no compression, crc32c; tenrso-ooc with --memory-limit 1GiB for sum/map"
rm -rf "$raw" "$work/t3.zarr" "$work/x3.zarr"
