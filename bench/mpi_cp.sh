#!/usr/bin/env bash
# CP-ALS under MPI on one machine: rank 16 on a 400^3 f64 tensor (512 MB),
# out of core (--stream: every iteration reads the tensor twice), 2 ranks x
# 1 thread against 1 process x 2 threads (the same cores, the same memory:
# 256 MiB for the process, 128 MiB per rank), random start, 6 iterations,
# page cache warm. Seconds per iteration are the run's own median (the
# start-up and the init excluded); the wall time includes MPI's start-up.
# Medians of REPEAT (default 3). Prints each rank's bytes read, sent and
# seconds in collectives from the merged --report of one more MPI run.
#
#   bench/mpi_cp.sh [WORKDIR]   (default bench/out; needs ~0.6 GiB free;
#   Open MPI and libclang to build the CLI with --features mpi)
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

x="$work/mpi-cp-400.zarr"
[ -e "$x/zarr.json" ] || "$bin" create "$x" --shape 400,400,400 --chunks 100,100,100 --fill lowrank:16:0.1 -q
cat "$x"/c/*/*/* > /dev/null
args=(cp "$x" --rank 16 --iters 6 --tol 0 --init random --stream -q --json)

# Seconds per iteration (the run's median) and wall seconds of one run.
run() {
    local out="$work/mpi-cp-out" t0 t1 json
    rm -rf "$out"
    t0=$(date +%s.%N)
    json=$("$@" -o "$out")
    t1=$(date +%s.%N)
    rm -rf "$out"
    echo "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds_per_iteration_median"])' "$json") $(calc "$t1 - $t0")"
}
serial_it=(); serial_wall=(); mpi_it=(); mpi_wall=()
for _ in $(seq "$repeat"); do
    read -r it wall < <(run "$bin" "${args[@]}" --threads 2 --memory-limit 256MiB)
    serial_it+=("$it"); serial_wall+=("$wall")
    read -r it wall < <(run mpirun -np 2 "$bin" "${args[@]}" --threads 1 --memory-limit 128MiB)
    mpi_it+=("$it"); mpi_wall+=("$wall")
done
s1=$(median "${serial_it[@]}"); s2=$(median "${mpi_it[@]}")
w1=$(median "${serial_wall[@]}"); w2=$(median "${mpi_wall[@]}")
echo "Machine: $(machine), $(isa); medians of $repeat; page cache warm; 256 MiB for the process, 128 MiB per rank"
echo
echo "| CP-ALS rank 16, 400^3 f64, streamed | 1 process x 2 threads | 2 ranks x 1 thread | ratio |"
echo "|---|---|---|---|"
echo "| seconds per iteration | $(fmt "$s1") s | $(fmt "$s2") s | $(ratio "$s2" "$s1") |"
echo "| wall, 6 iterations + init + start-up | $(fmt "$w1") s | $(fmt "$w2") s | $(ratio "$w2" "$w1") |"
echo
out="$work/mpi-cp-out"; rm -rf "$out"
mpirun -np 2 "$bin" "${args[@]}" --threads 1 --memory-limit 128MiB -o "$out" --report "$work/mpi-cp-report.json" > /dev/null
rm -rf "$out"
python3 - "$work/mpi-cp-report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print("| rank | read | sent | received | in tasks | in collectives | peak RSS |")
print("|---|---|---|---|---|---|---|")
for r in report["ranks"]:
    print(f"| {r['rank']} | {r['bytes_read'] / 2**20:.0f} MiB | {r['bytes_sent'] / 2**20:.1f} MiB | {r['bytes_received'] / 2**20:.1f} MiB"
          f" | {r['task_seconds']:.2f} s | {r['communication_seconds']:.2f} s | {r['peak_rss_bytes'] / 2**20:.0f} MiB |")
PY
