#!/usr/bin/env bash
# The store's CRC32C (store/checksum.rs) against the crc32c crate on one
# thread, GB/s on 256 KiB and 8 MiB buffers, medians of REPEAT runs
# (default 3) of examples/crc32c_throughput.rs (each the best of three
# passes of ~2 GiB).
#
#   bench/checksum.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repeat="${REPEAT:-3}"
source bench/common.sh

cargo build --release -q -p tenrso-ooc --example crc32c_throughput
kernel=$(target/release/examples/crc32c_throughput 2>&1 >/dev/null | head -1)
runs=()
for _ in $(seq "$repeat"); do runs+=("$(target/release/examples/crc32c_throughput 2>/dev/null)"); done

echo
echo "Machine: $(machine), $(isa); one thread; medians of $repeat; $(date +%F). Ours: $kernel."
echo
echo "| buffer | ours | crc32c crate | ratio |"
echo "|---|---|---|---|"
for bytes in 262144 8388608; do
    ours=$(median $(printf '%s\n' "${runs[@]}" | awk -v b="$bytes" '$1 == b {print $2}'))
    crate=$(median $(printf '%s\n' "${runs[@]}" | awk -v b="$bytes" '$1 == b {print $3}'))
    echo "| $((bytes / 1024)) KiB | $(fmt "$ours") GB/s | $(fmt "$crate") GB/s | $(ratio "$ours" "$crate")× |"
done
