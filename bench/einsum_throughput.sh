#!/usr/bin/env bash
# Out-of-core contractions against the in-memory kernel and the peers, f64,
# in one run on this machine:
#   1. square matmul N x N (default N=16384: two 2 GiB operands) store to
#      store under --memory-limit 1GiB: GFLOP/s against faer's in-memory GEMM
#      of the same size (the kernel our tiles use) and dask
#      (../shared/peers/dask_matmul.py);
#   2. 'ijk,jl->ilk' with a 1024x1024x512 tensor (4 GiB) and a 1024x64 matrix
#      under 1 GiB: against numpy.einsum(optimize=True) in memory and dask
#      (../shared/peers/numpy_einsum.py, dask_einsum.py);
#   3. an MPS-style chain: a stored D^4 tensor (default D=128, 2 GiB) with four
#      bond-8 cores, 'ax,xby,ycz,zd,abcd->', path chosen vs. left to right,
#      under 512 MiB.
# Peak RSS of every run comes from /usr/bin/time. Heavy runs are timed once
# (REPEAT=1 by default; the machine is shared, so rerun for medians).
#
#   bench/einsum_throughput.sh [WORKDIR]   (default bench/out; needs ~15 GiB free)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
n="${N:-16384}"
d="${D:-128}"
repeat="${REPEAT:-1}"
peers="$PWD/../shared/peers"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
cargo build --release -q -p tenrso-ooc-cli
cargo build --release -q -p tenrso-ooc --example gemm_in_memory
bin="$PWD/target/release/tenrso-ooc"
gemm="$PWD/target/release/examples/gemm_in_memory"
source bench/common.sh
py=$(peer_python "$work/venv" "numpy, zarr, dask.array, threadpoolctl" numpy "zarr>=3,<4" "dask[array]" threadpoolctl)

# Runs "$@" REPEAT times under /usr/bin/time; prints "MEDIAN_SECONDS PEAK_MIB
# LAST_STDOUT_LINE_MATCHING $pattern".
measure() {
    local pattern="$1"; shift
    local secs=() peak=0 line=""
    for _ in $(seq "$repeat"); do
        local t0 t1 out
        t0=$(date +%s.%N)
        out=$(/usr/bin/time -f "RSS %M" "$@" 2>&1)
        t1=$(date +%s.%N)
        secs+=("$(calc "$t1 - $t0")")
        peak=$(echo "$out" | awk '/^RSS/ {print int($2/1024)}')
        line=$(echo "$out" | grep -E "$pattern" | tail -1 || true)
    done
    echo "$(median "${secs[@]}") $peak $line"
}
gflops_of() { echo "$1" | grep -oE '[0-9.]+ GFLOP/s' | head -1 | cut -d' ' -f1; }

a="$work/mm_a.zarr"; b="$work/mm_b.zarr"
if [ ! -d "$a" ] || [ ! -d "$b" ]; then
    rm -rf "$a" "$b"
    "$bin" create "$a" --shape "$n,$n" --chunks 1024,1024 --fill normal --seed 1 -q >/dev/null
    "$bin" create "$b" --shape "$n,$n" --chunks 1024,1024 --fill normal --seed 2 -q >/dev/null
fi
cat "$a"/c/*/* "$b"/c/*/* >/dev/null 2>&1 || true
flops_mm=$(calc "2 * $n * $n * $n")

rm -rf "$work/mm_c.zarr"
r_ours=$(measure "GFLOP" "$bin" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mm_c.zarr" --memory-limit 1GiB -q)
read -r t_ours rss_ours _ <<<"$r_ours"
r_faer=$(measure "GFLOP" "$gemm" "$n" "$(nproc)")
read -r t_faer rss_faer _ <<<"$r_faer"
g_faer=$(gflops_of "$r_faer")
rm -rf "$work/mm_dask.zarr"
r_dask=$(measure "GFLOP" "$py" "$peers/dask_matmul.py" "$a" "$b" "$work/mm_dask.zarr")
read -r t_dask rss_dask _ <<<"$r_dask"
g_dask=$(gflops_of "$r_dask")
rm -rf "$work/mm_c.zarr" "$work/mm_dask.zarr"
g_ours=$(calc "$flops_mm / $t_ours / 1e9")

# 2. ijk,jl->ilk on 4 GiB.
x="$work/x3.zarr"; m="$work/m.zarr"
if [ ! -d "$x" ]; then
    "$bin" create "$x" --shape 1024,1024,512 --chunks 32,1024,32 --fill normal --seed 3 -q >/dev/null
fi
rm -rf "$m"; "$bin" create "$m" --shape 1024,64 --chunks 1024,64 --fill normal --seed 4 -q >/dev/null
cat "$x"/c/*/*/* >/dev/null 2>&1 || true
flops_e=$(calc "2 * 1024 * 1024 * 512 * 64")
rm -rf "$work/e_out.zarr"
r_e=$(measure "GFLOP" "$bin" einsum 'ijk,jl->ilk' "$x" "$m" -o "$work/e_out.zarr" --memory-limit 1GiB -q)
read -r t_e rss_e _ <<<"$r_e"
r_np=$(measure "GFLOP" "$py" "$peers/numpy_einsum.py" einsum_opt 2)
t_np=$(echo "$r_np" | grep -oE '[0-9.]+s ' | head -1 | tr -d 's ')
rss_np=$(echo "$r_np" | awk '{print $2}')
rm -rf "$work/e_dask.zarr"
r_de=$(measure "GFLOP" "$py" "$peers/dask_einsum.py" "$x" tensordot "$work/e_dask.zarr")
t_de=$(echo "$r_de" | grep -oE '[0-9.]+s ' | head -1 | tr -d 's ')
rss_de=$(echo "$r_de" | awk '{print $2}')
rm -rf "$work/e_out.zarr" "$work/e_dask.zarr"

# 3. MPS-style chain.
t4="$work/t4.zarr"
if [ ! -d "$t4" ]; then
    "$bin" create "$t4" --shape "$d,$d,$d,$d" --fill normal --seed 5 -q >/dev/null
fi
for core in "c1 $d,8" "c2 8,$d,8" "c3 8,$d,8" "c4 8,$d"; do
    set -- $core
    rm -rf "$work/$1.zarr"; "$bin" create "$work/$1.zarr" --shape "$2" --fill normal --seed 6 -q >/dev/null
done
chain=(einsum 'ax,xby,ycz,zd,abcd->' "$work/c1.zarr" "$work/c2.zarr" "$work/c3.zarr" "$work/c4.zarr" "$t4" --memory-limit 512MiB -q --spill-dir "$work")
r_opt=$(measure "" "$bin" "${chain[@]}" --path optimal)
read -r t_opt rss_opt _ <<<"$r_opt"
r_seq=$(measure "" "$bin" "${chain[@]}" --path sequential)
read -r t_seq rss_seq _ <<<"$r_seq"

echo
echo "Machine: $(machine); f64; seconds are medians of $repeat run(s)."
echo
echo "| workload | ours | in-memory kernel | peer | ours vs kernel | ours vs peer | peak RSS ours / peer |"
echo "|---|---|---|---|---|---|---|"
echo "| matmul ${n}² store→store, 1 GiB limit | $(fmt "$g_ours") GFLOP/s ($(fmt "$t_ours") s) | faer $(fmt "$g_faer") GFLOP/s | dask $(fmt "$g_dask") GFLOP/s | $(ratio "$g_ours" "$g_faer") | $(ratio "$g_ours" "$g_dask") | ${rss_ours} / ${rss_dask} MiB (faer ${rss_faer}) |"
echo "| ijk,jl->ilk 4 GiB × 1024×64, 1 GiB limit | $(fmt "$t_e") s ($(fmt "$(calc "$flops_e / $t_e / 1e9")") GFLOP/s) | numpy einsum(optimize) in memory $(fmt "$t_np") s | dask tensordot $(fmt "$t_de") s | $(ratio "$t_np" "$t_e") | $(ratio "$t_de" "$t_e") | ${rss_e} / ${rss_de} MiB (numpy ${rss_np}) |"
echo "| MPS chain ${d}⁴ ⊗ 4 cores (bond 8), 512 MiB limit | optimal path $(fmt "$t_opt") s | — | left to right $(fmt "$t_seq") s | — | $(ratio "$t_seq" "$t_opt") | ${rss_opt} / ${rss_seq} MiB |"
