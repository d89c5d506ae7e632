#!/usr/bin/env bash
# Spill tiers: a small /dev/shm tier in front of the disk, against the disk
# alone, against the same tiers with migration auto (only towards a tier
# measured faster), always and off (the default), and against /dev/shm
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
# With /dev/fuse, fusermount (Debian's fuse) and fusepy (pip, in a venv made
# here), the same runs again with the disk tier replaced by a slow one:
# bench/slow_fs.py, a FUSE pass-through throttled to SLOW_MIBS (default
# 200) MiB/s without the page cache, as a disk under memory pressure.
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
slow="$work/tiers-slow"; slow_backing="$work/tiers-slow-backing"
cleanup() {
    if mountpoint -q "$slow" 2>/dev/null; then fusermount -u "$slow" || true; fi
    rm -rf "$shm" "$disk" "$slow_backing" "$work/tiers-out.zarr"
    rmdir "$slow" 2>/dev/null || true
}
trap cleanup EXIT

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

# Both tables with `$1` as the second tier, named `$2`.
tables() {
    local back="$1" label="$2" k s sp down up d tier name
    local moves='r["bytes_spilled"]/2**20;r["spill_demotions"];r["spill_promotions"]'
    local placed='r["intermediates"][0]["tier"]'
    declare -A t e
    echo
    t[disk]=$(measure "$moves" "${transpose[@]}" --spill-dir "$back")
    t[auto]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm:128MiB" --spill-dir "$back" --spill-migration auto)
    t[always]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm:128MiB" --spill-dir "$back" --spill-migration always)
    t[off]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm:128MiB" --spill-dir "$back")
    t[shm]=$(measure "$moves" "${transpose[@]}" --spill-dir "$shm")
    echo "| transpose 8192^2 f64 under 128 MiB | seconds | vs $label alone | spilled | files moved down / up |"
    echo "|---|---|---|---|---|"
    read -r d _ <<< "${t[disk]}"
    for k in disk auto always off shm; do
        read -r s sp down up <<< "${t[$k]}"
        case $k in
            disk) name="$label alone" ;;
            auto) name="/dev/shm:128MiB + $label, migration auto" ;;
            always) name="/dev/shm:128MiB + $label, migration always" ;;
            off) name="/dev/shm:128MiB + $label, migration off (default)" ;;
            shm) name="/dev/shm alone (room for all)" ;;
        esac
        echo "| $name | $(fmt "$s") | $(ratio "$d" "$s")x | $(printf '%.0f' "$sp") MiB | $down / $up |"
    done
    echo
    e[disk]=$(measure "$placed" "${einsum[@]}" --spill-dir "$back")
    e[big]=$(measure "$placed" "${einsum[@]}" --spill-dir "$shm:1GiB" --spill-dir "$back")
    e[small]=$(measure "$placed" "${einsum[@]}" --spill-dir "$shm:256MiB" --spill-dir "$back")
    e[shm]=$(measure "$placed" "${einsum[@]}" --spill-dir "$shm")
    echo "| einsum chain, 512 MiB intermediate, under 128 MiB | seconds | vs $label alone | intermediate in tier |"
    echo "|---|---|---|---|"
    read -r d _ <<< "${e[disk]}"
    for k in disk big small shm; do
        read -r s tier <<< "${e[$k]}"
        case $k in
            disk) name="$label alone" ;;
            big) name="/dev/shm:1GiB + $label" ;;
            small) name="/dev/shm:256MiB + $label" ;;
            shm) name="/dev/shm alone" ;;
        esac
        echo "| $name | $(fmt "$s") | $(ratio "$d" "$s")x | $tier |"
    done
}

tables "$disk" "disk"

if [ -c /dev/fuse ] && command -v fusermount >/dev/null; then
    py=$(peer_python "$work/fuse-venv" fuse fusepy)
    mkdir -p "$slow" "$slow_backing"
    "$py" bench/slow_fs.py "$slow_backing" "$slow" "${SLOW_MIBS:-200}" &
    for _ in $(seq 50); do mountpoint -q "$slow" && break; sleep 0.1; done
    echo
    echo "Slow tier: bench/slow_fs.py at ${SLOW_MIBS:-200} MiB/s (dd: $(dd if=/dev/zero of="$slow/probe" bs=1M count=64 2>&1 | tail -1 | awk '{print $(NF-1), $NF}') written)"
    rm -f "$slow/probe"
    tables "$slow" "slow tier"
else
    echo
    echo "(no /dev/fuse or fusermount: the slow-tier tables were not run)"
fi
