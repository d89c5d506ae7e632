#!/usr/bin/env bash
# Plans that scale: reduce sum and map 'x*2+1' over stores of 10^4, 10^5 and
# 10^6 small chunks (1 x 512 f64 = 4 KiB each), against Dask on the same
# stores (da.from_zarr(x).sum().compute(); (x*2+1).to_zarr(out)), threaded
# scheduler on every core: wall time, peak RSS, and our overhead per task
# (worker time outside task bodies and writes, from the run's JSON). Page
# cache warm. Medians of REPEAT (default 3); from 10^5 chunks on, Dask and
# the maps run BIG_REPEAT (default 1) time(s), Dask under a DASK_TIMEOUT
# (default 600 s) limit; maps run up to MAP_MAX chunks (default 10^5: every
# chunk write pays an fsync today, issue 29).
#
#   bench/many_chunks.sh [WORKDIR]   (default bench/out; needs ~5 GiB free;
#   VENV=DIR uses an existing virtualenv with numpy, zarr and dask;
#   SIZES="10000 100000" picks the chunk counts)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
repeat="${REPEAT:-3}"
big_repeat="${BIG_REPEAT:-1}"
dask_timeout="${DASK_TIMEOUT:-600}"
map_max="${MAP_MAX:-100000}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh

cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
py=$(peer_python "${VENV:-$work/venv}" "numpy, zarr, dask.array" numpy "zarr>=3,<4" "dask[array]")
limit=256MiB
threads=$(nproc)

# "seconds peak_KiB" of one run (or "timeout" past $2 seconds).
measure() {
    local limit_s="$1"; shift
    local out
    if out=$(timeout "$limit_s" /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1); then
        echo "$out"
    else
        echo "timeout"
    fi
}
# Medians over $1 runs of measure: "seconds peak_KiB".
med2() {
    local n="$1"; shift
    local ts=() ms=() i r
    for i in $(seq "$n"); do
        r=$(measure "$@")
        [ "$r" = timeout ] && { echo timeout; return; }
        ts+=("${r% *}"); ms+=("${r#* }")
    done
    echo "$(median "${ts[@]}") $(median "${ms[@]}")"
}
mib() { calc "int($1 / 1024)"; }
cell() { [ "$1" = timeout ] && echo "> ${dask_timeout} s | ? " && return; echo "$(fmt "${1% *}") s | $(mib "${1#* }") MiB"; }
rat() { { [ "$1" = timeout ] || [ "$2" = timeout ]; } && echo "≥ $(calc "int($dask_timeout / ${2% *})")" && return; ratio "${1% *}" "${2% *}"; }
ratm() { { [ "$1" = timeout ] || [ "$2" = timeout ]; } && echo "?" && return; ratio "${1#* }" "${2#* }"; }

dask_sum="import dask, dask.array as da, sys; dask.config.set(scheduler='threads', num_workers=$threads); da.from_zarr(sys.argv[1]).sum().compute()"
dask_map="import dask, dask.array as da, sys; dask.config.set(scheduler='threads', num_workers=$threads); (da.from_zarr(sys.argv[1])*2+1).to_zarr(sys.argv[2])"

echo "| chunks | ours sum | ours peak | µs/task overhead | Dask sum | Dask peak | Dask/ours time | Dask/ours memory |"
echo "|---|---|---|---|---|---|---|---|"
maps=()
for n in ${SIZES:-10000 100000 1000000}; do
    x="$work/many$n.zarr"
    [ -d "$x" ] || "$bin" create "$x" --shape "$n,512" --chunks 1,512 --fill uniform --seed 7 -q >/dev/null
    ours=$(med2 "$repeat" 600 "$bin" reduce sum "$x" --memory-limit "$limit" --threads "$threads" -q)
    over=$("$bin" reduce sum "$x" --memory-limit "$limit" --threads "$threads" --json | "$py" -c "import json,sys; print(round(json.load(sys.stdin)['overhead_per_task_us'], 2))")
    reps=$repeat; [ "$n" -ge 100000 ] && reps=$big_repeat
    d=$(med2 "$reps" "$dask_timeout" "$py" -c "$dask_sum" "$x")
    echo "| $n | $(cell "$ours") | $over | $(cell "$d") | $(rat "$d" "$ours") | $(ratm "$d" "$ours") |"
    if [ "$n" -le "$map_max" ]; then
        out="$work/many_out.zarr"
        mo=$(med2 "$reps" 900 bash -c "rm -rf '$out'; '$bin' map 'x*2+1' '$x' --out '$out' --memory-limit $limit --threads $threads -q")
        dm=$(med2 "$reps" "$dask_timeout" bash -c "rm -rf '$out'; '$py' -c \"$dask_map\" '$x' '$out'")
        maps+=("| $n | $(cell "$mo") | $(cell "$dm") | $(rat "$dm" "$mo") | $(ratm "$dm" "$mo") |")
    fi
done
echo
echo "| chunks | ours map | ours peak | Dask map | Dask peak | Dask/ours time | Dask/ours memory |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${maps[@]}"
echo
echo "$(machine), $(isa); limit $limit; medians of $repeat (of $big_repeat for Dask and maps from 10^5 chunks)"
rm -rf "$work/many_out.zarr"
