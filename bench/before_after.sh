#!/usr/bin/env bash
# Throughput of two builds of the CLI on the same data, runs interleaved
# (old, new, old, new, ...) so drift on a shared machine hits both alike:
# the "ours" rows of engine_throughput.sh, einsum_throughput.sh and the CP
# rows of decomp_throughput.sh, at sizes that fit a 2-core machine in about
# 15 minutes. For changes that must not cost throughput (API refactors).
#
#   bench/before_after.sh OLD_BIN NEW_BIN [WORKDIR]   (default bench/out; ~8 GiB free)
#
# Build OLD_BIN from the commit before the change, e.g.
#   git worktree add /tmp/before BASE && (cd /tmp/before && cargo build --release -p tenrso-ooc-cli)
# Sizes: SIZE_GIB (default 2) for sum/map/transpose, N (default 8192) for
# the matmul, CP (default 512) for CP-ALS's CP³ tensor; REPEAT (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"
new="$2"
work="${3:-bench/out}"
size_gib="${SIZE_GIB:-2}"
n="${N:-8192}"
cp="${CP:-512}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh

# Runs "$@" with BIN=old and BIN=new alternately REPEAT times; prints the
# two medians. `$BIN` in the arguments is replaced by the binary.
pair() {
    local o=() w=() args
    for _ in $(seq "$repeat"); do
        for which in old new; do
            local bin="${!which}"
            args=("${@//\$BIN/$bin}")
            [ -n "${CLEAN:-}" ] && rm -rf "$CLEAN"
            if [ "$which" = old ]; then o+=("$(timed "${args[@]}")"); else w+=("$(timed "${args[@]}")"); fi
        done
    done
    [ -n "${CLEAN:-}" ] && rm -rf "$CLEAN"
    echo "$(median "${o[@]}") $(median "${w[@]}")"
}
row() { printf '| %s | %s | %s | %s |\n' "$1" "$(fmt "$2")" "$(fmt "$3")" "$(ratio "$2" "$3")"; }

rows=$((size_gib * 2048))
x="$work/ba_x.zarr"; x3="$work/ba_x3.zarr"; a="$work/ba_a.zarr"; b="$work/ba_b.zarr"
t="$work/ba_t.zarr"; m="$work/ba_m.zarr"; xc="$work/ba_cp.zarr"
rm -rf "$x" "$x3" "$a" "$b" "$t" "$m" "$xc"
"$new" create "$x" --shape "$rows,65536" --chunks 256,4096 --fill uniform --seed 3 -q >/dev/null
"$new" create "$x3" --shape "$((size_gib * 256)),1024,512" --chunks 32,64,512 --fill uniform -q >/dev/null
"$new" create "$a" --shape "$n,$n" --chunks 1024,1024 --fill normal --seed 1 -q >/dev/null
"$new" create "$b" --shape "$n,$n" --chunks 1024,1024 --fill normal --seed 2 -q >/dev/null
"$new" create "$t" --shape "1024,1024,$((size_gib * 128))" --chunks 32,1024,32 --fill normal --seed 3 -q >/dev/null
"$new" create "$m" --shape 1024,64 --chunks 1024,64 --fill normal --seed 4 -q >/dev/null
"$new" create "$xc" --shape "$cp,$cp,$cp" --fill normal --seed 6 -q >/dev/null
for f in "$x" "$x3" "$a" "$b" "$t" "$xc"; do "$new" reduce sum "$f" -q >/dev/null; done  # warm the page cache

echo "| workload | before s | after s | before / after |"
echo "|---|---|---|---|"
read -r o w <<<"$(pair '$BIN' reduce sum "$x" -q --memory-limit 1GiB)"
row "sum ${size_gib} GiB, warm, 1 GiB limit" "$o" "$w"
read -r o w <<<"$(CLEAN="$work/ba_y.zarr" pair '$BIN' map 'x*2+1' "$x" -o "$work/ba_y.zarr" -q --memory-limit 1GiB)"
row "map x*2+1 ${size_gib} GiB → store, 1 GiB limit" "$o" "$w"
read -r o w <<<"$(CLEAN="$work/ba_t3.zarr" pair '$BIN' transpose "$x3" --axes 2,0,1 -o "$work/ba_t3.zarr" --memory-limit 256MiB -q)"
row "transpose ${size_gib} GiB 3-d (axes 2,0,1), 256 MiB limit" "$o" "$w"
read -r o w <<<"$(CLEAN="$work/ba_c.zarr" pair '$BIN' einsum 'ij,jk->ik' "$a" "$b" -o "$work/ba_c.zarr" --memory-limit 256MiB -q)"
row "matmul ${n}² store to store, 256 MiB limit" "$o" "$w"
read -r o w <<<"$(CLEAN="$work/ba_e.zarr" pair '$BIN' einsum 'ijk,jl->ilk' "$t" "$m" -o "$work/ba_e.zarr" --memory-limit 1GiB -q)"
row "ijk,jl->ilk ${size_gib} GiB, 1 GiB limit" "$o" "$w"
read -r o w <<<"$(CLEAN="$work/ba_cpo" pair '$BIN' cp "$xc" --rank 16 --iters 4 --tol 0 --init random -o "$work/ba_cpo" --memory-limit 256MiB --sweep two-pass -q)"
row "CP-ALS rank 16, ${cp}³ under 256 MiB, 4 iterations (two-pass)" "$o" "$w"
read -r o w <<<"$(CLEAN="$work/ba_cpo" pair '$BIN' cp "$xc" --rank 16 --iters 4 --tol 0 --init random -o "$work/ba_cpo" --memory-limit 256MiB --sweep per-mode -q)"
row "CP-ALS rank 16, ${cp}³ under 256 MiB, 4 iterations (per-mode)" "$o" "$w"
echo
echo "$(machine), $(isa), medians of $repeat interleaved runs, $(date -u +%Y-%m-%d)"
rm -rf "$x" "$x3" "$a" "$b" "$t" "$m" "$xc"
