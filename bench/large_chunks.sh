#!/usr/bin/env bash
# Dask-sized chunks: reduce sum and map 'x*2+1' on the same SIZE_GIB (default
# 4) GiB of f64 stored in 8, 64 and 128 MiB chunks, against `cat` of the same
# chunk files (the page-cache read rate, as dd) and Dask on the same stores;
# minor page faults per GiB read; and the allocator below the buffer pool
# (system, jemalloc, mimalloc; "no recycling" = TENRSO_OOC_SYSTEM_MALLOC=1)
# on `verify` of the 64 MiB store (it decodes every chunk into a chunk
# buffer; sums stream slabs and hold none). Page cache warm; medians of
# REPEAT (default 3).
#
#   bench/large_chunks.sh [WORKDIR]   (default bench/out; needs ~4x SIZE_GIB free;
#   VENV=DIR uses an existing virtualenv with numpy, zarr and dask)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh

# One binary per allocator below the buffer pool; the default build last.
for f in jemalloc mimalloc; do
    cargo build --release -q -p tenrso-ooc-cli --features "$f"
    cp target/release/tenrso-ooc "$work/tenrso-ooc-$f"
done
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
py=$(peer_python "${VENV:-$work/venv}" "numpy, zarr, dask.array" numpy "zarr>=3,<4" "dask[array]")
limit=1GiB
cols=16384
rows=$((size_gib * 1024 * 1024 * 1024 / 8 / cols))
gbs() { calc "$size_gib * 1.073741824 / $1"; }
faults() { /usr/bin/time -f %R "$@" 2>&1 >/dev/null | tail -1; }
med() { local xs=() i; for i in $(seq "$repeat"); do xs+=("$("$@")"); done; median "${xs[@]}"; }

echo "| chunks | sum | sum GB/s | ×cat | Dask sum | ours/Dask | map | map GB/s | faults/GiB (sum) |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A sum_s
for mib in 8 64 128; do
    x="$work/lc$mib.zarr"
    rm -rf "$x" "$work/lc_out.zarr"
    "$bin" create "$x" --shape "$rows,$cols" --chunks "$((mib * 8)),$cols" --fill uniform --seed 3 -q >/dev/null
    cat_s=$(med timed sh -c "find '$x/c' -type f -exec cat {} + >/dev/null")
    s=$(med timed "$bin" reduce sum "$x" --memory-limit "$limit" -q)
    sum_s[$mib]=$s
    d=$(med timed "$py" -c "import dask.array as da; da.from_zarr('$x').sum().compute()")
    mapped() { rm -rf "$work/lc_out.zarr"; timed "$bin" map 'x*2+1' "$x" --out "$work/lc_out.zarr" --memory-limit "$limit" -q; }
    m=$(med mapped)
    f=$(faults "$bin" reduce sum "$x" --memory-limit "$limit" -q)
    echo "| $mib MiB | $(fmt "$s") s | $(fmt "$(gbs "$s")") | $(ratio "$cat_s" "$s") | $(fmt "$d") s | $(ratio "$d" "$s") | $(fmt "$m") s | $(fmt "$(gbs "$m")") | $(calc "int($f / $size_gib)") |"
done
echo
echo "64 and 128 MiB chunks against 8 MiB (sum time ratio): $(ratio "${sum_s[64]}" "${sum_s[8]}"), $(ratio "${sum_s[128]}" "${sum_s[8]}")"
echo
echo "| allocator below the buffer pool (verify, 64 MiB chunks) | time | faults/GiB | peak RSS |"
echo "|---|---|---|---|"
x="$work/lc64.zarr"
for a in system "system, no recycling" jemalloc mimalloc; do
    case "$a" in
        system) b="$bin"; env=() ;;
        "system, no recycling") b="$bin"; env=(TENRSO_OOC_SYSTEM_MALLOC=1) ;;
        *) b="$work/tenrso-ooc-$a"; env=() ;;
    esac
    s=$(med timed env "${env[@]}" "$b" verify "$x" --memory-limit "$limit" -q)
    f=$(faults env "${env[@]}" "$b" verify "$x" --memory-limit "$limit" -q)
    r=$(/usr/bin/time -f %M env "${env[@]}" "$b" verify "$x" --memory-limit "$limit" -q 2>&1 >/dev/null | tail -1)
    echo "| $a | $(fmt "$s") s | $(calc "int($f / $size_gib)") | $(calc "int($r / 1024)") MiB |"
done
rm -rf "$work"/lc*.zarr "$work/lc_out.zarr"
