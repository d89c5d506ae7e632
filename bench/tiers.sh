#!/usr/bin/env bash
# Spill tiers: a small /dev/shm tier in front of the disk, against the disk
# alone, against the same tiers with migration always and off (the default,
# auto, migrates only towards a tier measured faster), and against /dev/shm
# alone (room for everything).
#
#  - transpose of an 8192^2 f64 array (512 MiB, 4 MiB row chunks) to column
#    order under 128 MiB: planned through an intermediate that spills about
#    440 MiB; fast tier /dev/shm:128MiB.
#  - einsum ij,jk,kl->il left to right over 8192x32, 32x8192, 8192x16 under
#    128 MiB: its first step's result is a 512 MiB intermediate; fast tier
#    /dev/shm:1GiB (holds it) and /dev/shm:256MiB (does not: it goes to disk).
#
# Wall seconds, medians of REPEAT (default 3), page cache warm for inputs.
# The "disk" tier is WORKDIR's file system (written through the page cache:
# spill files are never synced, so on a machine with free memory the disk
# tier runs near memory speed too).
#
#   bench/tiers.sh [WORKDIR]   (default bench/out; needs ~2 GiB free there
#   and ~1.2 GiB in /dev/shm)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}"
repeat="${REPEAT:-3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
source bench/common.sh

cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
disk="$work/tiers-disk"
shm="/dev/shm/tenrso-bench-tiers-$$"
mkdir -p "$disk" "$shm"
trap 'rm -rf "$shm" "$disk" "$work/tiers-out.zarr"' EXIT

x="$work/tiers-x.zarr"
[ -e "$x/zarr.json" ] || "$bin" create "$x" --shape 8192,8192 --chunks 64,8192 --fill normal -q
a="$work/tiers-a.zarr"; b="$work/tiers-b.zarr"; c="$work/tiers-c.zarr"
[ -e "$a/zarr.json" ] || "$bin" create "$a" --shape 8192,32 --chunks 1024,32 --fill normal -q
[ -e "$b/zarr.json" ] || "$bin" create "$b" --shape 32,8192 --chunks 32,1024 --fill normal -q
[ -e "$c/zarr.json" ] || "$bin" create "$c" --shape 8192,16 --chunks 1024,16 --fill normal -q
cat "$x"/c/*/* "$a"/c/*/* "$b"/c/*/* "$c"/c/*/* > /dev/null

transpose=(transpose "$x" --axes 1,0 --chunks 64,8192 --memory-limit 128MiB)
einsum=(einsum "ij,jk,kl->il" "$a" "$b" "$c" --path sequential --memory-limit 128MiB)

# One run: wall seconds, then the JSON fields named after the command.
run() {
    local fields="$1" t0 t1 json; shift
    rm -rf "$work/tiers-out.zarr"
    t0=$(date +%s.%N)
    json=$("$bin" "$@" -o "$work/tiers-out.zarr" -q --json)
    t1=$(date +%s.%N)
    echo "$(calc "$t1 - $t0") $(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(' '.join(str(eval(f, {}, {'r': r})) for f in sys.argv[2].split(';')))" "$json" "$fields")"
}

# Medians of REPEAT runs: "seconds extra..." (extra fields from the last run).
measure() {
    local fields="$1"; shift
    local secs=() last
    for _ in $(seq "$repeat"); do
        last=$(run "$fields" "$@")
        secs+=("${last%% *}")
    done
    echo "$(median "${secs[@]}") ${last#* }"
}

echo "Machine: $(machine), $(isa); medians of $repeat; /dev/shm and $(df --output=source "$work" | tail -1) ($work)"
echo
moves='r["bytes_spilled"]/2**20;r["spill_demotions"];r["spill_promotions"]'
declare -A t
t[disk]=$(measure "$moves" "${transpose[@]}" --spill-dir "$disk")
t[auto]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm:128MiB" --spill-dir "$disk")
t[always]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm:128MiB" --spill-dir "$disk" --spill-migration always)
t[off]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm:128MiB" --spill-dir "$disk" --spill-migration off)
t[shm]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm")
echo "| transpose 8192^2 f64 under 128 MiB | seconds | vs disk alone | spilled | files moved down / up |"
echo "|---|---|---|---|---|"
for k in disk auto always off shm; do
    read -r s sp down up <<< "${t[$k]}"
    case $k in
        disk) name="disk alone" ;;
        auto) name="/dev/shm:128MiB + disk, migration auto (default)" ;;
        always) name="/dev/shm:128MiB + disk, migration always" ;;
        off) name="/dev/shm:128MiB + disk, migration off" ;;
        shm) name="/dev/shm alone (room for all)" ;;
    esac
    read -r d _ <<< "${t[disk]}"
    echo "| $name | $(fmt "$s") | $(ratio "$d" "$s")x | $(printf '%.0f' "$sp") MiB | $down / $up |"
done
echo
placed='r["intermediates"][0]["tier"]'
declare -A e
e[disk]=$(measure "$placed" "${einsum[@]}" --spill-dir "$disk")
e[big]=$(measure "$placed" "${einsum[@]}" --spill-dir "$shm:1GiB" --spill-dir "$disk")
e[small]=$(measure "$placed" "${einsum[@]}" --spill-dir "$shm:256MiB" --spill-dir "$disk")
e[shm]=$(measure "$placed" "${einsum[@]}" --spill-dir "$shm")
echo "| einsum chain, 512 MiB intermediate, under 128 MiB | seconds | vs disk alone | intermediate in tier |"
echo "|---|---|---|---|"
for k in disk big small shm; do
    read -r s tier <<< "${e[$k]}"
    case $k in
        disk) name="disk alone" ;;
        big) name="/dev/shm:1GiB + disk" ;;
        small) name="/dev/shm:256MiB + disk" ;;
        shm) name="/dev/shm alone" ;;
    esac
    read -r d _ <<< "${e[disk]}"
    echo "| $name | $(fmt "$s") | $(ratio "$d" "$s")x | $tier |"
done
