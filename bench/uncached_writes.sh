#!/usr/bin/env bash
# A contraction's result chunks written around the page cache (O_DIRECT,
# the default) against through it (TENRSO_OOC_NO_UNCACHED_WRITES=1): the
# same binary, alternating, on matmul N x N (default 8192, 1024 x 1024
# chunks, 512 MiB per operand) under 256 MiB. Wall and system seconds and
# the workers' read waits (`--report`), medians of REPEAT (default 3).
#
#   bench/uncached_writes.sh [WORKDIR]   (default bench/out; needs ~2 GiB free)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
n="${N:-8192}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh

cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
a="$work/uw${n}_a.zarr" b="$work/uw${n}_b.zarr"
[ -d "$a" ] || "$bin" create "$a" --shape "$n,$n" --chunks 1024,1024 --fill normal --seed 1 -q >/dev/null
[ -d "$b" ] || "$bin" create "$b" --shape "$n,$n" --chunks 1024,1024 --fill normal --seed 2 -q >/dev/null
cat "$a"/c/*/* "$b"/c/*/* >/dev/null

# One matmul: "wall system read_wait" seconds.
run() {
    rm -rf "$work/uw_c.zarr"
    local times
    times=$(/usr/bin/time -f "%e %S" "$@" "$bin" einsum 'ij,jk->ik' "$a" "$b" -o "$work/uw_c.zarr" \
        --memory-limit 256MiB -q --report "$work/uw_report.html" 2>&1 >/dev/null | tail -1)
    echo "$times $(grep -o '"read_wait_seconds":[0-9.]*' "$work/uw_report.html" | tail -1 | cut -d: -f2)"
}
w_on=(); s_on=(); r_on=(); w_off=(); s_off=(); r_off=()
for _ in $(seq "$repeat"); do
    read -r w s r <<<"$(run env)"; w_on+=("$w"); s_on+=("$s"); r_on+=("$r")
    read -r w s r <<<"$(run env TENRSO_OOC_NO_UNCACHED_WRITES=1)"; w_off+=("$w"); s_off+=("$s"); r_off+=("$r")
done
rm -rf "$work/uw_c.zarr" "$work/uw_report.html"

echo
echo "Machine: $(machine), $(isa); f64 matmul ${n}² store→store under 256 MiB, page cache warm; medians of $repeat alternating runs; $(date -u +%F)."
echo
echo "| result chunks written | wall | system time | read waits |"
echo "|---|---|---|---|"
echo "| around the page cache (O_DIRECT) | $(fmt "$(median "${w_on[@]}")") s | $(fmt "$(median "${s_on[@]}")") s | $(fmt "$(median "${r_on[@]}")") s |"
echo "| through it (\`TENRSO_OOC_NO_UNCACHED_WRITES=1\`) | $(fmt "$(median "${w_off[@]}")") s | $(fmt "$(median "${s_off[@]}")") s | $(fmt "$(median "${r_off[@]}")") s |"
