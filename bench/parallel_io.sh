#!/usr/bin/env bash
# Parallel reads, batched durable writes and IPC export (issue 29), against the
# disk and the peers in one run; medians of REPEAT (default 3).
#
#   bench/parallel_io.sh [WORKDIR]   (default bench/out; needs ~5x SIZE_GIB free)
#
# sum    = `reduce sum` of a SIZE_GIB (default 4) GiB f64 store in 8 MiB chunks
#          (uncompressed, crc32c) with --readers 1, 2 and 4, page cache warm and
#          dropped (cold, needs root), against `dd of=/dev/null bs=8M` of the
#          same bytes (an .npy of the array);
# map    = `map x*2+1` to a new store with --durability chunk, batch and none,
#          against `dd conv=fsync` writing the same bytes, and Dask's
#          `da.to_zarr(x*2+1)` (bench/dask_map_to_zarr.py, 2 threads, no sync);
#          then with --readers 1, 2 and 4, warm and cold (--durability none);
# export = `export` to an uncompressed Arrow IPC file, against pyarrow writing
#          the same rows from a memory-mapped .npy (bench/pyarrow_columnar.py),
#          both fsync'd.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
source bench/common.sh
rows=$((size_gib * 16384))   # 8192 f64 columns: 16384 rows per GiB
rate() { calc "$size_gib * 1024 / $1"; }   # MiB/s
median_of() { local t=(); for _ in $(seq "$repeat"); do t+=("$(timed "$@")"); done; median "${t[@]}"; }
median_cold() { local t=(); for _ in $(seq "$repeat"); do drop; t+=("$(timed "$@")"); done; median "${t[@]}"; }
# A fresh output for each run of `map` (the removal is not timed).
map_into() { rm -rf "$work/y.zarr"; sync; timed "$bin" map "x*2+1" "$work/x.zarr" --out "$work/y.zarr" -q "$@"; }
median_map() { local t=(); for _ in $(seq "$repeat"); do t+=("$(map_into "$@")"); done; median "${t[@]}"; }
dask_map() { rm -rf "$work/dask.zarr"; sync; "$dask_py" bench/dask_map_to_zarr.py "$work/x.zarr" "$work/dask.zarr"; }
median_dask() { local t=(); for _ in $(seq "$repeat"); do t+=("$(dask_map)"); done; median "${t[@]}"; }

dask_py=$(peer_python "$work/venv-dask" "dask.array, zarr" "dask[array]" "zarr>=3,<4")
arrow_py=$(peer_python "$work/venv-pyarrow" "numpy, pyarrow" numpy "pyarrow>=26,<27")

echo "preparing a ${size_gib} GiB f64 array ${rows}x8192 in $work ..." >&2
rm -rf "$work/x.zarr" "$work/x.npy" "$work/y.zarr" "$work/dask.zarr" "$work/x.arrow" "$work/peer.arrow" "$work/dd.bin"
"$bin" create "$work/x.zarr" --shape "$rows,8192" --chunks 128,8192 --fill uniform --seed 1 -q >/dev/null
"$bin" export "$work/x.zarr" "$work/x.npy" -q >/dev/null
warm() { cat "$work/x.zarr"/c/*/* "$work/x.npy" >/dev/null; }

echo
echo "Machine: $(machine), $(isa); ${size_gib} GiB f64, 8 MiB chunks (uncompressed, crc32c); medians of $repeat; $(date -u +%F)."
echo
echo "| sum | seconds warm | GB/s warm | × dd warm | seconds cold | GB/s cold | × dd cold |"
echo "|---|---|---|---|---|---|---|"
gbs() { calc "$size_gib * 1.073741824 / $1" | xargs printf '%.2f'; }
warm; ddw=$(median_of dd if="$work/x.npy" of=/dev/null bs=8M)
ddc=""; [ "$can_drop" = 1 ] && ddc=$(median_cold dd if="$work/x.npy" of=/dev/null bs=8M)
echo "| dd (same bytes) | $(fmt "$ddw") | $(gbs "$ddw") | 1.00 | $(fmt "${ddc:-0}") | $([ -n "$ddc" ] && gbs "$ddc") | 1.00 |"
for readers in 1 2 4; do
    warm; w=$(median_of "$bin" reduce sum "$work/x.zarr" --readers "$readers" --memory-limit 1GiB -q)
    c=""; [ "$can_drop" = 1 ] && c=$(median_cold "$bin" reduce sum "$work/x.zarr" --readers "$readers" --memory-limit 1GiB -q)
    echo "| ours, --readers $readers | $(fmt "$w") | $(gbs "$w") | $(ratio "$ddw" "$w") | $(fmt "${c:-0}") | $([ -n "$c" ] && gbs "$c") | $([ -n "$c" ] && ratio "$ddc" "$c") |"
done

echo
echo "| map x*2+1 to a store | seconds | GB/s | × dd conv=fsync | × Dask to_zarr |"
echo "|---|---|---|---|---|"
warm
ddf=$(median_of dd if=/dev/zero of="$work/dd.bin" bs=8M count=$((size_gib * 128)) conv=fsync)
rm -f "$work/dd.bin"
dask=$(median_dask)
echo "| dd conv=fsync (same bytes) | $(fmt "$ddf") | $(gbs "$ddf") | 1.00 | |"
echo "| Dask to_zarr (no sync) | $(fmt "$dask") | $(gbs "$dask") | $(ratio "$ddf" "$dask") | 1.00 |"
for durability in chunk batch none; do
    warm; t=$(median_map --durability "$durability" --memory-limit 1GiB)
    echo "| ours, --durability $durability | $(fmt "$t") | $(gbs "$t") | $(ratio "$ddf" "$t") | $(ratio "$dask" "$t") |"
done

echo
echo "| map x*2+1, --durability none | warm seconds | cold seconds | cold × --readers 1 |"
echo "|---|---|---|---|"
cold_map() { local t=(); for _ in $(seq "$repeat"); do rm -rf "$work/y.zarr"; drop; t+=("$(timed "$bin" map "x*2+1" "$work/x.zarr" --out "$work/y.zarr" -q "$@")"); done; median "${t[@]}"; }
for readers in 1 2 4; do
    warm; w=$(median_map --durability none --readers "$readers" --memory-limit 1GiB)
    c=""; [ "$can_drop" = 1 ] && c=$(cold_map --durability none --readers "$readers" --memory-limit 1GiB)
    [ "$readers" = 1 ] && c1="$c"
    echo "| --readers $readers | $(fmt "$w") | $(fmt "${c:-0}") | $([ -n "$c" ] && ratio "$c1" "$c") |"
done
rm -rf "$work/y.zarr" "$work/dask.zarr"

echo
echo "| export to Arrow IPC (uncompressed, fsync'd) | seconds | MiB/s | × pyarrow |"
echo "|---|---|---|---|"
warm
ours=$(median_of "$bin" export "$work/x.zarr" "$work/x.arrow" -q)
peer=$(median_of "$arrow_py" bench/pyarrow_columnar.py write-ipc "$work/x.npy" "$work/peer.arrow" 128)
echo "| pyarrow from a mapped .npy | $(fmt "$peer") | $(printf '%.0f' "$(rate "$peer")") | 1.00 |"
echo "| ours from the store | $(fmt "$ours") | $(printf '%.0f' "$(rate "$ours")") | $(ratio "$peer" "$ours") |"
rm -rf "$work/x.zarr" "$work/x.npy" "$work/x.arrow" "$work/peer.arrow"
