#!/usr/bin/env bash
# The Python package against the CLI on the same stores (the binding's
# overhead) and against Dask Array, f64, in one run on this machine:
#   1. einsum 'ij,jk->ik' of two 1 GiB stores (1024 x 131072 and
#      131072 x 1024, 8 MiB chunks) into a 1024 x 1024 store, under a
#      256 MiB limit (each operand 4x the limit);
#   2. sum of a 4 GiB store (8 MiB chunks), warm, under 256 MiB.
# Each side is a whole process (interpreter start and import included for
# Python and Dask); for Python also the call alone, timed inside the
# process. REPEAT rounds (default 3) run the three in turn; medians
# reported; peak RSS from /usr/bin/time. Dask runs its threaded scheduler on
# every core.
#
#   bench/python_overhead.sh [WORKDIR]   (default bench/out; needs ~7 GiB free)
# Needs the package built into the test venv (scripts/test does it).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
repeat="${REPEAT:-3}"
limit="${LIMIT:-256MiB}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
py="${TENRSO_OOC_VENV:-$PWD/.venv}/bin/python"
"$py" -c "import tenrso_ooc, dask.array" || {
    echo "bench/python_overhead.sh: build the package first (scripts/test)" >&2
    exit 1
}
source bench/common.sh

# Runs "$@" once; prints "SECONDS PEAK_RSS_MIB IN_CALL_SECONDS" (the last
# from an "in-call S" line of the command's output, else the whole time).
once() {
    local t0 t1 out in_call
    t0=$(date +%s.%N)
    out=$(/usr/bin/time -f "RSS %M" "$@" 2>&1)
    t1=$(date +%s.%N)
    in_call=$(echo "$out" | awk '/^in-call/ {print $2}')
    echo "$(calc "$t1 - $t0") $(echo "$out" | awk '/^RSS/ {print int($2/1024)}') ${in_call:-$(calc "$t1 - $t0")}"
}

# REPEAT rounds, each running the CLI, Python and Dask once in turn (so that
# the machine's drift hits all three alike); sets t_<name> (median seconds),
# c_<name> (median in-call seconds) and rss_<name> (MiB, last run).
rounds() {
    local names=(cli py da) cmds=("$1" "$2" "$3") k r
    declare -A secs calls
    for r in $(seq "$repeat"); do
        for k in 0 1 2; do
            rm -rf "$c"
            read -r s m i <<<"$(once sh -c "${cmds[$k]}")"
            secs[$k]+="$s "; calls[$k]+="$i "
            printf -v "rss_${names[$k]}" '%s' "$m"
        done
    done
    for k in 0 1 2; do
        # shellcheck disable=SC2086
        printf -v "t_${names[$k]}" '%s' "$(median ${secs[$k]})"
        # shellcheck disable=SC2086
        printf -v "c_${names[$k]}" '%s' "$(median ${calls[$k]})"
    done
}

a="$work/py_a.zarr"; b="$work/py_b.zarr"; x="$work/py_x.zarr"; c="$work/py_c.zarr"
[ -d "$a" ] || "$bin" create "$a" --shape 1024,131072 --chunks 1024,1024 --fill normal --seed 1 -q >/dev/null
[ -d "$b" ] || "$bin" create "$b" --shape 131072,1024 --chunks 1024,1024 --fill normal --seed 2 -q >/dev/null
[ -d "$x" ] || "$bin" create "$x" --shape 65536,8192 --chunks 1024,1024 --fill uniform --seed 3 -q >/dev/null
cat "$a"/c/*/* "$b"/c/*/* "$x"/c/*/* >/dev/null

timed_py() { echo "import time, tenrso_ooc as ts; t = time.perf_counter(); $1; print('in-call', time.perf_counter() - t)"; }
rounds "exec '$bin' einsum 'ij,jk->ik' '$a' '$b' -o '$c' --memory-limit $limit -q" \
    "exec '$py' -c \"$(timed_py "ts.einsum('ij,jk->ik', '$a', '$b', out='$c', memory_limit='$limit')")\"" \
    "exec '$py' -c \"import dask.array as da; da.einsum('ij,jk->ik', da.from_zarr('$a'), da.from_zarr('$b')).to_zarr('$c')\""
t_cli_e=$t_cli; t_py_e=$t_py; c_py_e=$c_py; t_da_e=$t_da; rss_cli_e=$rss_cli; rss_py_e=$rss_py; rss_da_e=$rss_da
rounds "exec '$bin' reduce sum '$x' --memory-limit $limit -q" \
    "exec '$py' -c \"$(timed_py "ts.sum('$x', memory_limit='$limit')")\"" \
    "exec '$py' -c \"import dask.array as da; print(float(da.from_zarr('$x').sum().compute()))\""
t_cli_s=$t_cli; t_py_s=$t_py; c_py_s=$c_py; t_da_s=$t_da; rss_cli_s=$rss_cli; rss_py_s=$rss_py; rss_da_s=$rss_da
rm -rf "$c"

flops=$(calc "2 * 1024 * 131072 * 1024")
echo
echo "Machine: $(machine), $(isa); f64; whole processes, medians of $repeat runs; limit $limit."
echo
echo "| workload | CLI | Python (process / call) | Dask | Python / CLI (process / call) | Dask / Python | peak RSS CLI / Python / Dask |"
echo "|---|---|---|---|---|---|---|"
echo "| einsum ij,jk->ik, 2 × 1 GiB → 8 MiB | $(fmt "$t_cli_e") s ($(fmt "$(calc "$flops / $t_cli_e / 1e9")") GFLOP/s) | $(fmt "$t_py_e") / $(fmt "$c_py_e") s | $(fmt "$t_da_e") s | $(ratio "$t_py_e" "$t_cli_e") / $(ratio "$c_py_e" "$t_cli_e") | $(ratio "$t_da_e" "$t_py_e") | $rss_cli_e / $rss_py_e / $rss_da_e MiB |"
echo "| sum, 4 GiB warm | $(fmt "$t_cli_s") s ($(fmt "$(calc "4 * 1.073741824 / $t_cli_s")") GB/s) | $(fmt "$t_py_s") / $(fmt "$c_py_s") s | $(fmt "$t_da_s") s | $(ratio "$t_py_s" "$t_cli_s") / $(ratio "$c_py_s" "$t_cli_s") | $(ratio "$t_da_s" "$t_py_s") | $rss_cli_s / $rss_py_s / $rss_da_s MiB |"
