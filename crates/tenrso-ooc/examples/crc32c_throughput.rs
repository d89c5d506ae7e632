//! The store's CRC32C ([`crc32c_append`]) against the `crc32c` crate, in
//! GB/s on one thread: buffers of 256 KiB (a piece of a chunk read, in L2)
//! and 8 MiB (a whole chunk), each checksummed for about 2 GiB, best of
//! three. Prints `bytes ours crate` per line (bench/checksum.sh).
//!
//! ```text
//! cargo run --release --example crc32c_throughput
//! ```

use std::time::Instant;

use tenrso_ooc::ops::CounterRng;
use tenrso_ooc::store::{crc32c_append, crc32c_kernel};

/// GB/s of `f` over `buf`, best of three passes of about 2 GiB.
fn speed(f: fn(u32, &[u8]) -> u32, buf: &[u8]) -> f64 {
    let repeats = (2usize << 30) / buf.len();
    let mut best = f64::INFINITY;
    let mut crc = 0;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..repeats {
            crc = f(crc, buf);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(crc);
    (repeats * buf.len()) as f64 / best / 1e9
}

fn main() {
    eprintln!("{}", crc32c_kernel());
    let rng = CounterRng::new(1);
    for bytes in [256usize << 10, 8 << 20] {
        let buf: Vec<u8> = (0..bytes as u64).map(|i| rng.bits(0, i)[0] as u8).collect();
        assert_eq!(crc32c_append(0, &buf), crc32c::crc32c(&buf));
        let ours = speed(crc32c_append, &buf);
        let theirs = speed(crc32c::crc32c_append, &buf);
        println!("{bytes} {ours:.1} {theirs:.1}");
    }
}
