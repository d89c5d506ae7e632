#!/usr/bin/env bash
# Store write and read throughput of a SIZE_GIB (default 4) GiB f64 array for
# each codec (none, lz4, zstd:1, zstd:3), against dd moving the same bytes on
# the same disk, page-cache warm and cold. Prints a Markdown table of medians.
#
#   bench/store_throughput.sh [WORKDIR]      (default bench/out; needs ~3x SIZE_GIB free)
#
# write = `tenrso-ooc import` of a page-cache-warm raw file (read + encode +
#         checksum + atomic fsync'd chunk writes) vs `dd if=raw of=file conv=fsync`;
# read  = `tenrso-ooc verify` (read + decode + checksum every chunk) vs `dd of=/dev/null`.
# Cold runs drop the page cache first (needs root; skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
size_gib="${SIZE_GIB:-4}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
rows=$((size_gib * 8192))
shape="$rows,16384"
chunks="1024,1024"

source bench/common.sh
rate() { calc "$size_gib * 1024 / $1"; }   # MiB/s

echo "preparing a ${size_gib} GiB f64 array (lowrank:8:0.01) in $work ..." >&2
rm -rf "$work/src.zarr" "$work/data.raw"
"$bin" create "$work/src.zarr" --shape "$shape" --chunks "$chunks" --fill lowrank:8:0.01 --seed 1 -q >/dev/null
"$bin" export "$work/src.zarr" "$work/data.raw" -q >/dev/null
rm -rf "$work/src.zarr"
cat "$work/data.raw" >/dev/null   # warm the source

w=(); for _ in $(seq "$repeat"); do rm -f "$work/dd.bin"; w+=("$(timed dd if="$work/data.raw" of="$work/dd.bin" bs=8M conv=fsync)"); done
dd_write=$(median "${w[@]}")
cat "$work/dd.bin" >/dev/null
r=(); for _ in $(seq "$repeat"); do r+=("$(timed dd if="$work/dd.bin" of=/dev/null bs=8M)"); done
dd_warm=$(median "${r[@]}")
dd_cold=""
if [ "$can_drop" = 1 ]; then
    r=(); for _ in $(seq "$repeat"); do drop; r+=("$(timed dd if="$work/dd.bin" of=/dev/null bs=8M)"); done
    dd_cold=$(median "${r[@]}")
fi
rm -f "$work/dd.bin"

fmt() { printf '%.0f' "$1"; }   # MiB/s without decimals
echo
echo "| codec | on-disk ratio | write MiB/s | vs dd | read warm MiB/s | vs dd | read cold MiB/s | vs dd |"
echo "|---|---|---|---|---|---|---|---|"
ddw=$(rate "$dd_write"); ddr=$(rate "$dd_warm")
ddc=""; [ -n "$dd_cold" ] && ddc=$(rate "$dd_cold")
echo "| dd (same bytes) | 1.00 | $(fmt "$ddw") | 1.00 | $(fmt "$ddr") | 1.00 | ${ddc:+$(fmt "$ddc")} | ${ddc:+1.00} |"
for codec in none lz4 zstd:1 zstd:3; do
    store="$work/bench.zarr"
    w=(); for _ in $(seq "$repeat"); do
        rm -rf "$store"
        w+=("$(timed "$bin" import "$work/data.raw" "$store" --shape "$shape" --dtype f64 --chunks "$chunks" --codec "$codec" -q)")
    done
    on_disk=$(du -sb "$store" | cut -f1)
    comp=$(calc "$size_gib * 1073741824 / $on_disk")
    "$bin" verify "$store" -q >/dev/null
    r=(); for _ in $(seq "$repeat"); do r+=("$(timed "$bin" verify "$store" -q)"); done
    warm=$(rate "$(median "${r[@]}")")
    cold=""
    if [ "$can_drop" = 1 ]; then
        r=(); for _ in $(seq "$repeat"); do drop; r+=("$(timed "$bin" verify "$store" -q)"); done
        cold=$(rate "$(median "${r[@]}")")
    fi
    wr=$(rate "$(median "${w[@]}")")
    echo "| $codec | $(printf '%.2f' "$comp") | $(fmt "$wr") | $(ratio "$wr" "$ddw") | $(fmt "$warm") | $(ratio "$warm" "$ddr") | ${cold:+$(fmt "$cold")} | ${cold:+$(ratio "$cold" "$ddc")} |"
    rm -rf "$store"
done
echo
echo "$(machine), ${size_gib} GiB f64 in 8 MiB chunks, median of $repeat, $(date -u +%Y-%m-%d)"
rm -f "$work/data.raw"
