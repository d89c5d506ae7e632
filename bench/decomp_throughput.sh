#!/usr/bin/env bash
# Decompositions against TensorLy (in memory) and against the cost of
# reading the tensor, f64, in one run on this machine:
#   1. CP-ALS rank 16 on 400³ (488 MiB, page cache): our seconds per
#      iteration — tensor held in memory (it fits half of the 2 GiB limit)
#      and streamed from the store on every pass (--stream) — against
#      TensorLy's parafac (../shared/peers/tensorly_decomp.py cp);
#   2. CP-ALS rank 16 on a tensor 8x the limit (default 640³ = 1.95 GiB under
#      256 MiB, page cache): seconds per iteration against N passes (N = 3
#      modes) x the time to read the tensor once (`reduce sum` under the same
#      limit), two-pass and per-mode sweeps;
#   3. Tucker [16,16,16] on 400³: HOSVD + 10 HOOI iterations against
#      TensorLy's tucker with the same count (../shared/peers/tucker_iters.py),
#      and both with their defaults (svd init, up to 100 iterations, tol 1e-4;
#      tensorly_decomp.py tucker).
# Peak RSS of every run comes from /usr/bin/time.
#
#   bench/decomp_throughput.sh [WORKDIR]   (default bench/out; needs ~3 GiB free)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
big="${BIG:-640}"
peers="$PWD/../shared/peers"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
source bench/common.sh
py=$(peer_python "$work/venv-tensorly" "numpy, tensorly" numpy "tensorly>=0.10,<0.11")

# Runs "$@" under /usr/bin/time; prints "SECONDS PEAK_MIB" then the output.
timed_rss() {
    local t0 t1 out
    t0=$(date +%s.%N)
    out=$(/usr/bin/time -f "RSS %M" "$@" 2>&1)
    t1=$(date +%s.%N)
    echo "$(calc "$t1 - $t0") $(echo "$out" | awk '/^RSS/ {print int($2/1024)}')"
    echo "$out"
}
# The field $2 of report.json in directory $1.
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1] + '/report.json'))[sys.argv[2]])" "$1" "$2"; }

x="$work/cp400.zarr"
[ -d "$x" ] || "$bin" create "$x" --shape 400,400,400 --fill normal --seed 5 -q >/dev/null
cat "$x"/c/*/*/* >/dev/null 2>&1 || true

# 1. CP-ALS on 400³, in page cache.
cp_run() { # OUT EXTRA...
    local out="$1"; shift
    rm -rf "$out"
    timed_rss "$bin" cp "$x" --rank 16 --iters 10 --tol 0 --init random -o "$out" --memory-limit 2GiB -q "$@" | head -1
}
# Three runs each, alternating ours and TensorLy's; medians.
mems=(); strs=(); tls=()
for _ in 1 2 3; do
    read -r _ rss_mem <<<"$(cp_run "$work/cp_mem")"
    mems+=("$(field "$work/cp_mem" seconds_per_iteration_median)")
    read -r _ rss_str <<<"$(cp_run "$work/cp_stream" --stream)"
    strs+=("$(field "$work/cp_stream" seconds_per_iteration_median)")
    out=$(timed_rss "$py" "$peers/tensorly_decomp.py" cp)
    rss_tl=$(echo "$out" | head -1 | cut -d' ' -f2)
    tls+=("$(echo "$out" | grep -oE '[0-9.]+s/iter' | tr -d 's/iter')")
done
s_mem=$(median "${mems[@]}"); s_str=$(median "${strs[@]}"); s_tl=$(median "${tls[@]}")

# 2. CP-ALS on a tensor 8x the limit.
xb="$work/cp${big}.zarr"
[ -d "$xb" ] || "$bin" create "$xb" --shape "$big,$big,$big" --fill normal --seed 6 -q >/dev/null
cat "$xb"/c/*/*/* >/dev/null 2>&1 || true
reads=()
for _ in 1 2 3; do reads+=("$(timed "$bin" reduce sum "$xb" --memory-limit 256MiB -q)"); done
t_read=$(median "${reads[@]}")
big_run() { # OUT SWEEP
    rm -rf "$1"
    timed_rss "$bin" cp "$xb" --rank 16 --iters 4 --tol 0 --init random -o "$1" --memory-limit 256MiB --sweep "$2" -q | head -1
}
read -r _ rss_big2 <<<"$(big_run "$work/cp_big2" two-pass)"
s_big2=$(field "$work/cp_big2" seconds_per_iteration_median)
read -r _ rss_big3 <<<"$(big_run "$work/cp_big3" per-mode)"
s_big3=$(field "$work/cp_big3" seconds_per_iteration_median)

# 3. Tucker [16,16,16] on 400³.
rm -rf "$work/tk10"
read -r t_tk10 rss_tk10 <<<"$(timed_rss "$bin" tucker "$x" --ranks 16,16,16 --iters 10 --tol 0 -o "$work/tk10" --memory-limit 2GiB -q | head -1)"
s_tk10=$(field "$work/tk10" seconds_per_iteration_median)
out=$(timed_rss "$py" "$peers/tucker_iters.py")
read -r t_tl10 rss_tl10 <<<"$(echo "$out" | head -1)"
s_tl10=$(echo "$out" | grep -oE '[0-9.]+s/iter' | tr -d 's/iter')
t_tl10_in=$(echo "$out" | sed -nE 's/.*tol=0: ([0-9.]+)s.*/\1/p')
rm -rf "$work/tkd"
read -r t_tkd rss_tkd <<<"$(timed_rss "$bin" tucker "$x" --ranks 16,16,16 -o "$work/tkd" --memory-limit 2GiB -q | head -1)"
it_tkd=$(python3 -c "import json; print(len(json.load(open('$work/tkd/report.json'))['iterations']))")
out=$(timed_rss "$py" "$peers/tensorly_decomp.py" tucker)
read -r _ rss_tld <<<"$(echo "$out" | head -1)"
t_tld=$(echo "$out" | grep -oE ': [0-9.]+s' | head -1 | grep -oE '[0-9.]+')

echo
echo "Machine: $(machine); f64, page-cache warm; CP on 400³ medians of 3 runs, the rest one run each (the machine is shared)."
echo
echo "| workload | tenrso-ooc | reference | ratio | peak RSS ours / reference |"
echo "|---|---|---|---|---|"
echo "| CP-ALS rank 16, 400³, tensor held in memory (2 GiB limit) | $(fmt "$s_mem") s/iteration | TensorLy parafac $(fmt "$s_tl") s/iteration | $(ratio "$s_tl" "$s_mem")× faster | ${rss_mem} / ${rss_tl} MiB |"
echo "| CP-ALS rank 16, 400³, streamed from the store every pass (--stream) | $(fmt "$s_str") s/iteration | TensorLy parafac $(fmt "$s_tl") s/iteration | $(ratio "$s_tl" "$s_str")× faster | ${rss_str} / ${rss_tl} MiB |"
echo "| CP-ALS rank 16, ${big}³ ($(calc "$big^3*8/2^30" | cut -c1-4) GiB) under 256 MiB, two-pass sweep | $(fmt "$s_big2") s/iteration | 3 passes × read once ($(fmt "$t_read") s) = $(fmt "$(calc "3 * $t_read")") s | $(ratio "$s_big2" "$(calc "3 * $t_read")")× | ${rss_big2} MiB |"
echo "| same, per-mode sweep (3 passes) | $(fmt "$s_big3") s/iteration | $(fmt "$(calc "3 * $t_read")") s | $(ratio "$s_big3" "$(calc "3 * $t_read")")× | ${rss_big3} MiB |"
echo "| Tucker [16,16,16], 400³, HOSVD + 10 HOOI iterations | $(fmt "$t_tk10") s ($(fmt "$s_tk10") s/iteration) | TensorLy tucker $(fmt "$t_tl10_in") s ($(fmt "$s_tl10") s/iteration) | $(ratio "$t_tl10_in" "$t_tk10")× faster ($(ratio "$s_tl10" "$s_tk10")× per iteration) | ${rss_tk10} / ${rss_tl10} MiB |"
echo "| Tucker [16,16,16], 400³, defaults (svd init, tol 1e-4) | $(fmt "$t_tkd") s (${it_tkd} iterations) | TensorLy tucker $(fmt "$t_tld") s | $(ratio "$t_tld" "$t_tkd")× faster | ${rss_tkd} / ${rss_tld} MiB |"
