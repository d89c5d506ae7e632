#!/usr/bin/env bash
# `--codec auto` against each fixed codec (issue 33), medians of REPEAT
# (default 3), one run.
#
#   bench/adaptive_codecs.sh [WORKDIR]   (default bench/out; needs ~8x SIZE_MIB free)
#
# Three kinds of data, SIZE_MIB (default 512) MiB of f64 each, as .npy files:
# random normal, a smooth field (products of sines) and mostly zeros (1 in
# 1000 non-zero). For each codec (none, lz4, zstd:1, zstd:3, zstd:9, auto):
# `import` into a store in 8 MiB chunks (synced, --durability batch), then
# `reduce sum` of it with the page cache dropped (cold, needs root): the
# workload auto optimises (write once, read once). Prints each codec's
# times, compression ratio and write+read throughput, and auto's time over
# the best fixed codec's (target: at most 1.10). KINDS and CODECS (space-
# separated) run a subset, e.g. KINDS=zeros CODECS="zstd:1 auto".
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-bench/out}/codecs"
size_mib="${SIZE_MIB:-512}"
repeat="${REPEAT:-3}"
kinds="${KINDS:-normal smooth zeros}"
codecs="${CODECS:-none lz4 zstd:1 zstd:3 zstd:9 auto}"
mkdir -p "$work"
cargo build --release -q -p tenrso-ooc-cli
bin="$PWD/target/release/tenrso-ooc"
source bench/common.sh
py=$(peer_python "bench/out/venv-numpy" "numpy" numpy)
rows=$((size_mib * 128))   # 1024 f64 columns: 128 rows per MiB

"$py" - "$work" "$rows" "$kinds" <<'PY'
import sys, numpy as np
work, rows, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rng = np.random.default_rng(0)
def save(name, make):
    if name not in kinds:
        return
    out = np.lib.format.open_memmap(f"{work}/{name}.npy", mode="w+", dtype="f8", shape=(rows, 1024))
    for r in range(0, rows, 8192):
        n = min(8192, rows - r)
        out[r:r + n] = make(r, n)
    out.flush()
cols = np.arange(1024) / 1024
save("normal", lambda r, n: rng.standard_normal((n, 1024)))
save("smooth", lambda r, n: np.sin(6.0 * ((r + np.arange(n)) / rows))[:, None] * np.cos(4.0 * cols)[None, :])
def sparse(r, n):
    block = np.zeros((n, 1024))
    hits = rng.random((n, 1024)) < 1e-3
    block[hits] = rng.standard_normal(hits.sum())
    return block
save("zeros", sparse)
PY

echo "# codec auto against fixed codecs: $(machine), $(isa); ${size_mib} MiB f64 per kind, 8 MiB chunks; medians of $repeat"
printf '%-7s %-7s %8s %8s %8s %7s %10s\n' kind codec import_s sum_s total_s ratio MiB/s
for kind in $kinds; do
    best=""
    for codec in $codecs; do
        imports=() sums=() totals=()
        for _ in $(seq "$repeat"); do
            rm -rf "$work/$kind.zarr"; drop
            i=$(timed "$bin" import "$work/$kind.npy" "$work/$kind.zarr" --chunks 1024,1024 --codec "$codec" -q)
            drop
            s=$(timed "$bin" reduce sum "$work/$kind.zarr" -q)
            imports+=("$i"); sums+=("$s"); totals+=("$(calc "$i + $s")")
        done
        i=$(median "${imports[@]}"); s=$(median "${sums[@]}"); t=$(median "${totals[@]}")
        stored=$(du -sb "$work/$kind.zarr" | cut -f1)
        r=$(calc "$size_mib * 1048576 / $stored")
        label="$codec"
        if [ "$codec" = auto ]; then
            label="auto=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['attributes']['tenrso_codec_choice']['chosen'])" "$work/$kind.zarr/zarr.json")"
        fi
        printf '%-7s %-7s %8s %8s %8s %7s %10s\n' "$kind" "$label" "$(fmt "$i")" "$(fmt "$s")" "$(fmt "$t")" "$(fmt "$r")" "$(fmt "$(calc "$size_mib * 2 / $t")")"
        if [ "$codec" = auto ]; then
            echo "$kind: auto / best fixed = $(ratio "$t" "$best") (target <= 1.10)"
        elif [ -z "$best" ] || awk "BEGIN { exit !($t < $best) }"; then
            best="$t"
        fi
    done
done
