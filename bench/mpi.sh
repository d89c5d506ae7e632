#!/usr/bin/env bash
# MPI on one machine: 2 ranks x 1 thread against 1 process x 2 threads (the
# same cores) for a sum over 4 GiB and a matmul 8192^2 (a 8192x8192 times a
# 8192x8192, 512 MiB each), page cache warm; and each rank's bytes read
# against the SUMMA model of `einsum --explain` (a row block of the left
# operand, a column block of the right, per rank). Medians of REPEAT
# (default 3). The same memory in all: the process under 1 GiB, each rank
# under 512 MiB. The ranks of the sum each stream their half; the matmul's
# output tiles are on a 2x1 or 1x2 grid of ranks.
#
#   bench/mpi.sh [WORKDIR]   (default bench/out; needs ~5.5 GiB free; Open
#   MPI and libclang to build the CLI with --features mpi)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh

cargo build --release -q -p tenrso-ooc-cli --features mpi
bin="$PWD/target/release/tenrso-ooc"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
limit=1GiB
rank_limit=512MiB

x="$work/mpi-sum-4g.zarr"
[ -e "$x/zarr.json" ] || "$bin" create "$x" --shape 16384,32768 --chunks 512,32768 --fill uniform -q
a="$work/mpi-a-8k.zarr"; b="$work/mpi-b-8k.zarr"
[ -e "$a/zarr.json" ] || "$bin" create "$a" --shape 8192,8192 --chunks 1024,1024 --fill uniform --seed 1 -q
[ -e "$b/zarr.json" ] || "$bin" create "$b" --shape 8192,8192 --chunks 1024,1024 --fill normal --seed 2 -q
cat "$x"/c/*/* > /dev/null; cat "$a"/c/*/* "$b"/c/*/* > /dev/null

# Seconds of one run (the command's own JSON "seconds" is not used: the
# wall time includes MPI's start-up, which a user pays).
one() { timed "$@"; }
serial_sum=(); mpi_sum=(); serial_mm=(); mpi_mm=()
for _ in $(seq "$repeat"); do
    serial_sum+=("$(one "$bin" reduce sum "$x" --threads 2 --memory-limit $limit -q)")
    mpi_sum+=("$(one mpirun -np 2 "$bin" reduce sum "$x" --threads 1 --memory-limit $rank_limit -q)")
    rm -rf "$work/mpi-c.zarr"
    serial_mm+=("$(one "$bin" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mpi-c.zarr" --threads 2 --memory-limit $limit -q)")
    rm -rf "$work/mpi-c.zarr"
    mpi_mm+=("$(one mpirun -np 2 "$bin" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mpi-c.zarr" --threads 1 --memory-limit $rank_limit -q)")
done
rm -rf "$work/mpi-c.zarr"
report=$(mpirun -np 2 "$bin" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mpi-c.zarr" --threads 1 --memory-limit $rank_limit -q --json)
explain=$(mpirun -np 2 "$bin" einsum 'ij,jk->ik' "$a" "$b" -o "$work/mpi-d.zarr" --threads 1 --memory-limit $rank_limit --explain --json)
rm -rf "$work/mpi-c.zarr"
s1=$(median "${serial_sum[@]}"); s2=$(median "${mpi_sum[@]}")
m1=$(median "${serial_mm[@]}"); m2=$(median "${mpi_mm[@]}")
echo "Machine: $(machine), $(isa); medians of $repeat; page cache warm; $limit for the process, $rank_limit per rank"
echo
echo "| workload | 1 process x 2 threads | 2 ranks x 1 thread | ratio |"
echo "|---|---|---|---|"
echo "| reduce sum, 4 GiB f64 | $(fmt "$s1") s | $(fmt "$s2") s | $(ratio "$s2" "$s1") |"
echo "| einsum ij,jk->ik, 8192^2 f64 | $(fmt "$m1") s | $(fmt "$m2") s | $(ratio "$m2" "$m1") |"
echo
python3 - "$report" "$explain" <<'PY'
import json, sys
run, plan = json.loads(sys.argv[1]), json.loads(sys.argv[2])
model = plan["ranks"][0]
ranks = run["steps"][-1]["ranks"]
print(f"matmul rank grid {model['rank_grid'][0]}x{model['rank_grid'][1]}; SUMMA model per rank {model['bytes_read_per_rank'] / 2**20:.0f} MiB")
print()
print("| rank | bytes read | model | ratio |")
print("|---|---|---|---|")
for r in ranks:
    m = model["bytes_read_per_rank"]
    print(f"| {r['rank']} | {r['bytes_read'] / 2**20:.0f} MiB | {m / 2**20:.0f} MiB | {r['bytes_read'] / m:.2f} |")
PY
