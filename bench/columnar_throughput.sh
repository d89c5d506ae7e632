#!/usr/bin/env bash
# Arrow IPC and Parquet throughput on a SIZE_GIB (default 4) GiB f64 tensor of
# 64x64 cells (arrow.fixed_shape_tensor), against pyarrow on the same files, in
# one run. Prints a Markdown table of medians of REPEAT (default 3) runs.
#
#   bench/columnar_throughput.sh [WORKDIR]   (default bench/out; needs ~6x SIZE_GIB free)
#
# read   = ours: `tenrso-ooc reduce sum FILE --memory-limit 256MiB` (the file read
#          in place: IPC memory-mapped zero-copy, Parquet row group by row group);
#          pyarrow: bench/pyarrow_columnar.py reads the same file batch by batch
#          into numpy and sums it (read-table: pq.read_table, whole file in memory).
#          Warm = page cache warm; cold = dropped first (needs root).
# export = ours: `tenrso-ooc export` from an uncompressed store in 8 MiB chunks (IPC
#          uncompressed, Parquet zstd level 1, default row groups of 512 rows = 16 MiB, fsync'd and renamed
#          into place); pyarrow: the same slabs from a memory-mapped .npy, same
#          compression, fsync'd.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
rows=$((size_gib * 32768))
source bench/common.sh
rate() { calc "$size_gib * 1024 / $1"; }   # MiB/s

py=$(peer_python "$work/venv-pyarrow" "numpy, pyarrow" numpy "pyarrow>=26,<27")
peer="$PWD/bench/pyarrow_columnar.py"

echo "preparing a ${size_gib} GiB f64 tensor ${rows}x64x64 in $work ..." >&2
rm -rf "$work/t.zarr" "$work/t.arrow" "$work/t.parquet" "$work/t.npy" "$work/peer.arrow" "$work/peer.parquet"
"$bin" create "$work/t.zarr" --shape "$rows,64,64" --chunks 256,64,64 --codec none --fill normal --seed 1 -q >/dev/null
"$bin" export "$work/t.zarr" "$work/t.npy" -q >/dev/null

median_of() { local t=(); for _ in $(seq "$repeat"); do t+=("$(timed "$@")"); done; median "${t[@]}"; }
median_cold() { local t=(); for _ in $(seq "$repeat"); do drop; t+=("$(timed "$@")"); done; median "${t[@]}"; }

cat "$work/t.zarr"/c/*/*/* "$work/t.npy" >/dev/null 2>&1 || true
ours_ipc_w=$(median_of "$bin" export "$work/t.zarr" "$work/t.arrow" -q)
ours_pq_w=$(median_of "$bin" export "$work/t.zarr" "$work/t.parquet" -q)
peer_ipc_w=$(median_of "$py" "$peer" write-ipc "$work/t.npy" "$work/peer.arrow" 512)
peer_pq_w=$(median_of "$py" "$peer" write-parquet "$work/t.npy" "$work/peer.parquet" 512)
rm -rf "$work/peer.arrow" "$work/peer.parquet" "$work/t.zarr" "$work/t.npy"
pq_bytes=$(stat -c %s "$work/t.parquet")

reads=(
    "ipc|$bin reduce sum $work/t.arrow --memory-limit 256MiB -q|$py $peer read-ipc $work/t.arrow"
    "parquet|$bin reduce sum $work/t.parquet --memory-limit 256MiB -q|$py $peer read-parquet $work/t.parquet"
    "parquet (read_table)||$py $peer read-table $work/t.parquet"
)
echo
echo "Machine: $(machine); ${size_gib} GiB f64 tensor, ${rows} rows of 64x64 cells; Parquet zstd:1 is $(calc "$pq_bytes / 1048576" | xargs printf '%.0f') MiB; medians of $repeat."
echo
echo "| read | ours warm MiB/s | pyarrow warm MiB/s | ours/pyarrow | ours cold MiB/s | pyarrow cold MiB/s | ours/pyarrow |"
echo "|---|---|---|---|---|---|---|"
for r in "${reads[@]}"; do
    IFS='|' read -r name ours peer_cmd <<<"$r"
    cat "$work/t.arrow" "$work/t.parquet" >/dev/null
    pw=$(median_of $peer_cmd)
    ow=""; [ -n "$ours" ] && ow=$(median_of $ours)
    oc=""; pc=""
    if [ "$can_drop" = 1 ]; then
        pc=$(median_cold $peer_cmd)
        [ -n "$ours" ] && oc=$(median_cold $ours)
    fi
    f() { [ -n "$1" ] && printf '%.0f' "$(rate "$1")"; }
    rw=""; [ -n "$ow" ] && rw=$(ratio "$pw" "$ow")
    rc=""; [ -n "$oc" ] && [ -n "$pc" ] && rc=$(ratio "$pc" "$oc")
    echo "| $name | $(f "$ow") | $(f "$pw") | $rw | $(f "$oc") | $(f "$pc") | $rc |"
done
echo
echo "| export | ours MiB/s | pyarrow MiB/s | ours/pyarrow |"
echo "|---|---|---|---|"
echo "| IPC file, uncompressed | $(printf '%.0f' "$(rate "$ours_ipc_w")") | $(printf '%.0f' "$(rate "$peer_ipc_w")") | $(ratio "$peer_ipc_w" "$ours_ipc_w") |"
echo "| Parquet, zstd:1 | $(printf '%.0f' "$(rate "$ours_pq_w")") | $(printf '%.0f' "$(rate "$peer_pq_w")") | $(ratio "$peer_pq_w" "$ours_pq_w") |"
rm -f "$work/t.arrow" "$work/t.parquet"
