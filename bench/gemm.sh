#!/usr/bin/env bash
# GEMM-bound work against the machine's in-memory BLAS and Dask, f64, in
# one run on this machine (issue 28):
#   1. in-memory GEMM N x N (default N=8192), all cores: faer (our default
#      kernel), Debian's OpenBLAS (our `blas` feature) and NumPy's OpenBLAS;
#      and the store-to-store plan's own GEMM calls (1024 x 1024 tiles,
#      one kernel call per tile pair on each worker's thread) on tiles held
#      in memory, with no I/O: the ceiling of the product in step 2;
#   2. matmul N x N store to store (1024 x 1024 chunks) under 256 MiB,
#      with each kernel, against NumPy in memory and Dask on the same stores
#      (../shared/peers/dask_matmul.py); with BIG=1 also 16384 x 16384
#      under 1 GiB, one run each;
#   3. 'ijk,jl->ilk' with a 1024x1024x512 tensor (4 GiB, 32x1024x32 chunks)
#      and a 1024x64 matrix under 1 GiB, against Dask's tensordot
#      (../shared/peers/dask_einsum.py);
#   4. CP-ALS rank 16 on 640³ (1.95 GiB) under 256 MiB against 3 passes x
#      the time to read the tensor once (`reduce sum` under the same limit);
#   5. with CEILING=1, bench/gemm_ceiling.py: NumPy's product cut into
#      blocks as an out-of-core plan cuts it, against one whole call (the
#      in-memory ceiling of any such plan; about 2.5 min more).
# Medians of REPEAT runs (default 3), page cache warm; within each
# repetition ours and the peers run one after the other, so that the drift
# of a shared machine falls on both sides of a ratio. NumPy runs with
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and reports its kernel
# (threadpoolctl); our OpenBLAS build gets OPENBLAS_CORETYPE for the CPU's
# ISA only when it passes over Debian's OpenBLAS without it (0.3.21 does not
# know recent CPUs, see `tenrso-ooc info`).
#
#   bench/gemm.sh [WORKDIR]   (default bench/out; needs ~12 GiB free, 20 with BIG=1)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
n="${N:-8192}"
repeat="${REPEAT:-3}"
peers="$PWD/../shared/peers"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh
threads=$(nproc)

cargo build --release -q -p tenrso-ooc-cli
cargo build --release -q -p tenrso-ooc --example gemm_in_memory --example gemm_tiles
cp target/release/tenrso-ooc "$work/tenrso-ooc-faer"
cp target/release/examples/gemm_in_memory "$work/gemm-faer"
cp target/release/examples/gemm_tiles "$work/tiles-faer"
cargo build --release -q -p tenrso-ooc-cli --features blas
cargo build --release -q -p tenrso-ooc --features blas --example gemm_in_memory --example gemm_tiles
cp target/release/tenrso-ooc "$work/tenrso-ooc-blas"
cp target/release/examples/gemm_in_memory "$work/gemm-blas"
cp target/release/examples/gemm_tiles "$work/tiles-blas"
cargo build --release -q -p tenrso-ooc-cli # leave the default build in target/
faer="$work/tenrso-ooc-faer"
blas="$work/tenrso-ooc-blas"
py=$(peer_python "$work/venv" "numpy, zarr, dask.array, threadpoolctl" numpy "zarr>=3,<4" "dask[array]" threadpoolctl)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && "$work/gemm-blas" 64 1 | grep -q faer; then
    case "$(isa)" in AVX-512) export OPENBLAS_CORETYPE=SkylakeX ;; AVX2) export OPENBLAS_CORETYPE=Haswell ;; esac
fi
# Our runs see OPENBLAS_CORETYPE if set (only the `blas` build reads it);
# NumPy and Dask run without it.
numpy() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" "$@"; }

# Peak RSS (MiB) of one run of "$@".
rss() { /usr/bin/time -f "RSS %M" "$@" 2>&1 >/dev/null | awk '/^RSS/ {print int($2/1024)}'; }
gflops() { calc "2 * $1 * $1 * $1 / $2 / 1e9"; }

numpy_gemm="$work/numpy_gemm.py"
cat >"$numpy_gemm" <<'PY'
import sys, time, numpy as np
from threadpoolctl import threadpool_info
n = int(sys.argv[1]); a = np.random.default_rng(1).standard_normal((n, n)); b = a.T.copy()
a @ b
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
ts.sort(); print(ts[len(ts) // 2])
i = [i for i in threadpool_info() if i["internal_api"] == "openblas"][0]
print("OpenBLAS {} {}, {} threads".format(i["version"], i["architecture"], i["num_threads"]), file=sys.stderr)
PY

# 1. In-memory GEMM: one product per run (after NumPy's warm-up product),
# alternating; GFLOP/s of the median run.
mem_seconds() { "$@" | sed -E 's/.*: ([0-9.]+)s .*/\1/'; }
s_faer=(); s_blas=(); s_np=(); s_tiles_faer=(); s_tiles_blas=()
for _ in $(seq "$repeat"); do
    s_faer+=("$(mem_seconds "$work/gemm-faer" "$n" "$threads" 1)")
    s_blas+=("$(mem_seconds "$work/gemm-blas" "$n" "$threads" 1)")
    s_np+=("$(numpy "$numpy_gemm" "$n" 1 2>"$work/numpy_kernel.txt")")
    s_tiles_faer+=("$(mem_seconds "$work/tiles-faer" "$n" 1024 "$threads" 1)")
    s_tiles_blas+=("$(mem_seconds "$work/tiles-blas" "$n" 1024 "$threads" 1)")
done
g_faer_mem=$(gflops "$n" "$(median "${s_faer[@]}")")
g_blas_mem=$(gflops "$n" "$(median "${s_blas[@]}")")
g_faer_tiles=$(gflops "$n" "$(median "${s_tiles_faer[@]}")")
g_blas_tiles=$(gflops "$n" "$(median "${s_tiles_blas[@]}")")
t_np=$(median "${s_np[@]}")
g_np=$(gflops "$n" "$t_np")
blas_kernel=$("$work/gemm-blas" 256 1 | sed -E 's/.*; (.*)\)$/\1/')
np_kernel=$(cat "$work/numpy_kernel.txt")

# 2. matmul store to store.
store_pair() { # N
    local a="$work/mm${1}_a.zarr" b="$work/mm${1}_b.zarr"
    if [ ! -d "$a" ] || [ ! -d "$b" ]; then
        rm -rf "$a" "$b"
        "$faer" create "$a" --shape "$1,$1" --chunks 1024,1024 --fill normal --seed 1 -q >/dev/null
        "$faer" create "$b" --shape "$1,$1" --chunks 1024,1024 --fill normal --seed 2 -q >/dev/null
    fi
    cat "$a"/c/*/* "$b"/c/*/* >/dev/null 2>&1 || true
    echo "$a $b"
}
read -r a b <<<"$(store_pair "$n")"
mm() { rm -rf "$work/mm_c.zarr"; "$@" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mm_c.zarr" --memory-limit "$limit" -q; }
limit=256MiB
dask_mm() { rm -rf "$work/mm_dask.zarr"; numpy "$peers/dask_matmul.py" "$a" "$b" "$work/mm_dask.zarr"; }
s_faer=(); s_blas=(); s_dask=()
for _ in $(seq "$repeat"); do
    s_faer+=("$(timed mm "$faer")"); s_blas+=("$(timed mm "$blas")"); s_dask+=("$(timed dask_mm)")
done
t_mm_faer=$(median "${s_faer[@]}"); t_mm_blas=$(median "${s_blas[@]}"); t_mm_dask=$(median "${s_dask[@]}")
rm -rf "$work/mm_c.zarr" "$work/mm_dask.zarr"
rss_mm_faer=$(rss "$faer" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mm_c.zarr" --memory-limit "$limit" -q)
rss_mm_dask=$(rss env -u OPENBLAS_CORETYPE "$py" "$peers/dask_matmul.py" "$a" "$b" "$work/mm_dask.zarr")
rm -rf "$work/mm_c.zarr" "$work/mm_dask.zarr"

if [ "${BIG:-0}" = 1 ]; then
    big=16384
    read -r a b <<<"$(store_pair "$big")"
    limit=1GiB
    t_big_faer=$(timed mm "$faer")
    t_big_blas=$(timed mm "$blas")
    t_big_dask=$(timed dask_mm)
    t_big_np=$(numpy "$numpy_gemm" "$big" 1 2>/dev/null)
    rm -rf "$work/mm_c.zarr" "$work/mm_dask.zarr"
fi

# 3. ijk,jl->ilk on 4 GiB.
x="$work/x3.zarr"; m="$work/m.zarr"
[ -d "$x" ] || "$faer" create "$x" --shape 1024,1024,512 --chunks 32,1024,32 --fill normal --seed 3 -q >/dev/null
[ -d "$m" ] || "$faer" create "$m" --shape 1024,64 --chunks 1024,64 --fill normal --seed 4 -q >/dev/null
cat "$x"/c/*/*/* >/dev/null 2>&1 || true
ttm() { rm -rf "$work/ttm.zarr"; "$@" einsum 'ijk,jl->ilk' "$x" "$m" -o "$work/ttm.zarr" --memory-limit 1GiB -q; }
dask_ttm() { rm -rf "$work/ttm_dask.zarr"; numpy "$peers/dask_einsum.py" "$x" tensordot "$work/ttm_dask.zarr"; }
s_faer=(); s_blas=(); s_dask=()
for _ in $(seq "$repeat"); do
    s_faer+=("$(timed ttm "$faer")"); s_blas+=("$(timed ttm "$blas")"); s_dask+=("$(timed dask_ttm)")
done
t_ttm=$(median "${s_faer[@]}"); t_ttm_blas=$(median "${s_blas[@]}"); t_ttm_dask=$(median "${s_dask[@]}")
rm -rf "$work/ttm.zarr" "$work/ttm_dask.zarr"
rss_ttm=$(rss "$faer" einsum 'ijk,jl->ilk' "$x" "$m" -o "$work/ttm.zarr" --memory-limit 1GiB -q)
rss_ttm_dask=$(rss env -u OPENBLAS_CORETYPE "$py" "$peers/dask_einsum.py" "$x" tensordot "$work/ttm_dask.zarr")
rm -rf "$work/ttm.zarr" "$work/ttm_dask.zarr"

# 4. CP-ALS out of core.
xb="$work/cp640.zarr"
[ -d "$xb" ] || "$faer" create "$xb" --shape 640,640,640 --fill normal --seed 6 -q >/dev/null
cat "$xb"/c/*/*/* >/dev/null 2>&1 || true
cp_iter() { # BIN
    rm -rf "$work/cp_out"
    "$@" cp "$xb" --rank 16 --iters 4 --tol 0 --init random -o "$work/cp_out" --memory-limit 256MiB -q >/dev/null
    python3 -c "import json; print(json.load(open('$work/cp_out/report.json'))['seconds_per_iteration_median'])"
}
s_read=(); s_cp=(); s_cp_blas=()
for _ in $(seq "$repeat"); do
    s_read+=("$(timed "$faer" reduce sum "$xb" --memory-limit 256MiB -q)")
    s_cp_blas+=("$(cp_iter "$blas")")
    s_cp+=("$(cp_iter "$faer")")
done
# Peak RSS of the last run (faer's), from its report.
rss_cp=$(python3 -c "import json; print(json.load(open('$work/cp_out/report.json'))['peak_rss_bytes'] >> 20)")
t_read=$(median "${s_read[@]}")
s_cp=$(median "${s_cp[@]}")
s_cp_blas=$(median "${s_cp_blas[@]}")
rm -rf "$work/cp_out"

gf() { printf '%.1f' "$1"; }
echo
echo "Machine: $(machine), $(isa); $threads threads; f64, page cache warm; medians of $repeat; $(date -u +%F)."
echo "Kernels: faer 0.24; $blas_kernel; NumPy: $np_kernel."
echo
echo "| workload | tenrso-ooc | reference | ratio | peak RSS ours / reference |"
echo "|---|---|---|---|---|"
echo "| in-memory GEMM ${n}², $threads threads | faer $(gf "$g_faer_mem") GFLOP/s; OpenBLAS (Debian) $(gf "$g_blas_mem") | NumPy $(gf "$g_np") GFLOP/s | $(ratio "$g_faer_mem" "$g_np") / $(ratio "$g_blas_mem" "$g_np") | — |"
echo "| the plan's GEMM calls for ${n}² (1024³ per tile pair, one thread each) on tiles in memory, no I/O | faer $(gf "$g_faer_tiles") GFLOP/s; OpenBLAS (Debian) $(gf "$g_blas_tiles") | NumPy $(gf "$g_np") GFLOP/s | $(ratio "$g_faer_tiles" "$g_np") / $(ratio "$g_blas_tiles" "$g_np") | — |"
echo "| matmul ${n}² store→store, 256 MiB limit, faer | $(fmt "$t_mm_faer") s ($(gf "$(gflops "$n" "$t_mm_faer")") GFLOP/s) | NumPy in memory $(fmt "$t_np") s; Dask $(fmt "$t_mm_dask") s | $(ratio "$t_np" "$t_mm_faer") of NumPy; $(ratio "$t_mm_dask" "$t_mm_faer")× Dask | $rss_mm_faer / $rss_mm_dask MiB |"
echo "| same, OpenBLAS (\`blas\`) | $(fmt "$t_mm_blas") s ($(gf "$(gflops "$n" "$t_mm_blas")") GFLOP/s) | same | $(ratio "$t_np" "$t_mm_blas") of NumPy; $(ratio "$t_mm_dask" "$t_mm_blas")× Dask | — |"
if [ "${BIG:-0}" = 1 ]; then
    echo "| matmul 16384² store→store, 1 GiB limit, faer (one run) | $(fmt "$t_big_faer") s ($(gf "$(gflops 16384 "$t_big_faer")") GFLOP/s) | NumPy in memory $(fmt "$t_big_np") s; Dask $(fmt "$t_big_dask") s | $(ratio "$t_big_np" "$t_big_faer") of NumPy; $(ratio "$t_big_dask" "$t_big_faer")× Dask | — |"
    echo "| same, OpenBLAS (\`blas\`) | $(fmt "$t_big_blas") s ($(gf "$(gflops 16384 "$t_big_blas")") GFLOP/s) | same | $(ratio "$t_big_np" "$t_big_blas") of NumPy; $(ratio "$t_big_dask" "$t_big_blas")× Dask | — |"
fi
echo "| \`ijk,jl->ilk\`, 4 GiB × 1024×64, 1 GiB limit, faer | $(fmt "$t_ttm") s | Dask tensordot $(fmt "$t_ttm_dask") s | $(ratio "$t_ttm_dask" "$t_ttm")× faster | $rss_ttm / $rss_ttm_dask MiB |"
echo "| same, OpenBLAS (\`blas\`) | $(fmt "$t_ttm_blas") s | same | $(ratio "$t_ttm_dask" "$t_ttm_blas")× faster | — |"
echo "| CP-ALS rank 16, 640³ (1.95 GiB) under 256 MiB, faer | $(fmt "$s_cp") s/iteration | 3 × read once ($(fmt "$t_read") s) = $(fmt "$(calc "3 * $t_read")") s | $(ratio "$s_cp" "$(calc "3 * $t_read")")× | $rss_cp MiB |"
echo "| same, OpenBLAS (\`blas\`) | $(fmt "$s_cp_blas") s/iteration | same | $(ratio "$s_cp_blas" "$(calc "3 * $t_read")")× | — |"
if [ "${CEILING:-0}" = 1 ]; then
    echo
    N="$n" REPEAT="$repeat" numpy bench/gemm_ceiling.py | grep -v '^#'
fi
