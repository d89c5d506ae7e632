//! [`crc32c_append`]: the chunks' CRC32C (the Zarr `crc32c` codec), 1.4×
//! as fast as the `crc32` instruction alone where the CPU also multiplies
//! carry-less on 256-bit vectors.
//!
//! The `crc32` instruction checks 8 bytes per cycle at best (24 GB/s on a
//! 3 GHz AMD EPYC, one core): a sixth of the cycles of an out-of-core
//! CP-ALS iteration went there. With AVX2 and VPCLMULQDQ the data is cut
//! into stripes: while three streams run `crc32`, the vector units fold
//! the stripe's first part 128 bytes at a time by carry-less products (the
//! method of Intel's "Fast CRC Computation for Generic Polynomials Using
//! PCLMULQDQ"); the four states are then joined, each multiplied by the
//! power of `x` the bytes after it stand for. Other CPUs, and short inputs,
//! use the `crc32c` crate; the results are the same bits.

/// Bytes below which folding does not pay for its setup.
#[cfg(target_arch = "x86_64")]
const FOLD_MIN_BYTES: usize = 256;

/// The CRC32C of `data` continued from `crc`, the CRC32C of what came
/// before it (0 for none): equal to `crc32c::crc32c_append`, and the
/// checksum of the Zarr `crc32c` codec.
///
/// ```
/// use tenrso_ooc::store::crc32c_append;
/// assert_eq!(crc32c_append(0, b"123456789"), 0xe306_9283);
/// assert_eq!(crc32c_append(crc32c_append(0, b"1234"), b"56789"), 0xe306_9283);
/// ```
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= FOLD_MIN_BYTES && fold::available() {
        // SAFETY: `available` checked every feature `fold::append` uses.
        return unsafe { fold::append(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// How this machine computes [`crc32c_append`] on chunks: folded with
/// VPCLMULQDQ beside `crc32`, or by the `crc32c` crate.
///
/// ```
/// let kernel = tenrso_ooc::store::crc32c_kernel();
/// assert!(kernel.starts_with("CRC32C"));
/// ```
pub fn crc32c_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if fold::available() {
        return "CRC32C folded by VPCLMULQDQ beside crc32 (AVX2)";
    }
    "CRC32C by the crc32c crate"
}

#[cfg(target_arch = "x86_64")]
mod fold {
    use std::arch::x86_64::*;

    /// The CRC32C polynomial, bit-reflected (its `x^32` term implied).
    const POLY: u32 = 0x82f6_3b78;

    /// `x^n mod P`, bit-reflected: bit 31 holds `x^0`.
    const fn x_pow_mod_p(n: u32) -> u32 {
        let mut v = 1u32 << 31;
        let mut i = 0;
        while i < n {
            v = if v & 1 != 0 { (v >> 1) ^ POLY } else { v >> 1 };
            i += 1;
        }
        v
    }

    /// The two multipliers that move a 16-byte lane `bytes` further along
    /// the message: its first 8 bytes by `x^(8·bytes + 32)`, its last 8 by
    /// `x^(8·bytes − 32)`, each less one power for the carry-less product
    /// of reflected operands.
    const fn fold_by(bytes: u32) -> (i64, i64) {
        (
            x_pow_mod_p(8 * bytes + 31) as i64,
            x_pow_mod_p(8 * bytes - 33) as i64,
        )
    }

    const BY_128: (i64, i64) = fold_by(128);
    const BY_32: (i64, i64) = fold_by(32);
    const BY_16: (i64, i64) = fold_by(16);

    /// Whether this CPU has what [`append`] uses (std caches the answers).
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("sse4.2")
            && is_x86_feature_detected!("pclmulqdq")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("vpclmulqdq")
    }

    /// Each 128-bit lane of `x` moved along by the distance of `k`, added
    /// to `next`.
    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn fold256(x: __m256i, k: __m256i, next: __m256i) -> __m256i {
        let first = _mm256_clmulepi64_epi128(x, k, 0x00);
        let last = _mm256_clmulepi64_epi128(x, k, 0x11);
        _mm256_xor_si256(_mm256_xor_si256(first, last), next)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(bytes: &[u8]) -> __m256i {
        assert!(bytes.len() >= 32);
        // SAFETY: 32 bytes are readable at `bytes` (checked above);
        // unaligned loads are allowed.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn both_lanes(k: (i64, i64)) -> __m256i {
        _mm256_set_epi64x(k.1, k.0, k.1, k.0)
    }

    /// Iterations of a stripe: each folds 128 bytes of its vector part and
    /// runs `crc32` over [`STREAM_STEP`] bytes of each of three streams.
    const STRIPE_STEPS: usize = 32;
    /// Bytes each scalar stream takes per step: 4 × 3 `crc32` beside the
    /// 8 carry-less products of the vector part — the fastest of 16–64
    /// bytes on AMD EPYC (Zen 3): 33–36 GB/s on 256 KiB against 24 GB/s
    /// for `crc32` alone and 25 GB/s for folding alone.
    const STREAM_STEP: usize = 32;
    const VECTOR_BYTES: usize = 128 * STRIPE_STEPS;
    const STREAM_BYTES: usize = STREAM_STEP * STRIPE_STEPS;
    /// Bytes of one stripe: the vector part, then the three streams.
    const STRIPE_BYTES: usize = VECTOR_BYTES + 3 * STREAM_BYTES;
    /// Multiplies a state by `x^(8·STREAM_BYTES)` (see [`shift`]).
    const OVER_STREAM: i64 = x_pow_mod_p(8 * STREAM_BYTES as u32 - 33) as i64;

    /// `state · x^(8·bytes)` for the multiplier `x^(8·bytes − 33)`: the
    /// state of a message continued by `bytes` zero bytes.
    #[inline]
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    fn shift(state: u32, multiplier: i64) -> u32 {
        let product = _mm_clmulepi64_si128(
            _mm_cvtsi32_si128(state as i32),
            _mm_cvtsi64_si128(multiplier),
            0x00,
        );
        _mm_crc32_u64(0, _mm_cvtsi128_si64(product) as u64) as u32
    }

    #[inline]
    fn word(bytes: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
    }

    /// The first 128 bytes of a message as four lanes, the raw `crc32`
    /// state `state` added to its first four bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn start_lanes(state: u32, first: &[u8]) -> [__m256i; 4] {
        let start = _mm256_castsi128_si256(_mm_cvtsi32_si128(state as i32));
        [
            _mm256_xor_si256(load(first), start),
            load(&first[32..]),
            load(&first[64..]),
            load(&first[96..]),
        ]
    }

    /// The lanes moved 128 bytes along, the next 128 bytes added.
    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn fold_block(x: &mut [__m256i; 4], block: &[u8]) {
        let k = both_lanes(BY_128);
        for (i, x) in x.iter_mut().enumerate() {
            *x = fold256(*x, k, load(&block[32 * i..]));
        }
    }

    /// The raw `crc32` state after the message the lanes stand for.
    #[inline]
    #[target_feature(enable = "sse4.2,pclmulqdq,avx2,vpclmulqdq")]
    fn reduce(x: [__m256i; 4]) -> u32 {
        let k = both_lanes(BY_32);
        let mut y = fold256(x[0], k, x[1]);
        y = fold256(y, k, x[2]);
        y = fold256(y, k, x[3]);
        // The two 16-byte lanes of `y` into one.
        let (k0, k1) = BY_16;
        let k = _mm_set_epi64x(k1, k0);
        let lane0 = _mm256_castsi256_si128(y);
        let lane1 = _mm256_extracti128_si256(y, 1);
        let z = _mm_xor_si128(
            _mm_xor_si128(
                _mm_clmulepi64_si128(lane0, k, 0x00),
                _mm_clmulepi64_si128(lane0, k, 0x11),
            ),
            lane1,
        );
        // The 16 folded bytes as a message of their own.
        let state = _mm_crc32_u64(0, _mm_extract_epi64(z, 0) as u64);
        _mm_crc32_u64(state, _mm_extract_epi64(z, 1) as u64) as u32
    }

    /// One stripe ([`STRIPE_BYTES`]) from the raw state `state`: the
    /// vector part folded while three streams run `crc32` from zero, then
    /// the four states joined, each moved past the streams after it.
    #[target_feature(enable = "sse4.2,pclmulqdq,avx2,vpclmulqdq")]
    fn stripe(state: u32, stripe: &[u8]) -> u32 {
        let (vector, streams) = stripe.split_at(VECTOR_BYTES);
        let (a, rest) = streams.split_at(STREAM_BYTES);
        let (b, c) = rest.split_at(STREAM_BYTES);
        let mut x = start_lanes(state, vector);
        let mut s = [0u64; 3];
        for (step, at) in (0..STREAM_BYTES).step_by(STREAM_STEP).enumerate() {
            // Copies in registers: updated through the array, the three
            // chains would wait on stores.
            let [mut s0, mut s1, mut s2] = s;
            for w in at / 8..(at + STREAM_STEP) / 8 {
                s0 = _mm_crc32_u64(s0, word(a, w));
                s1 = _mm_crc32_u64(s1, word(b, w));
                s2 = _mm_crc32_u64(s2, word(c, w));
            }
            s = [s0, s1, s2];
            if step > 0 {
                fold_block(&mut x, &vector[128 * step..]);
            }
        }
        s.iter().fold(reduce(x), |joined, &stream| {
            shift(joined, OVER_STREAM) ^ stream as u32
        })
    }

    /// [`super::crc32c_append`] by folding (any length; below 128 bytes it
    /// is the crate's).
    ///
    /// # Safety
    /// The CPU has SSE4.2, PCLMULQDQ, AVX2 and VPCLMULQDQ ([`available`]).
    #[target_feature(enable = "sse4.2,pclmulqdq,avx2,vpclmulqdq")]
    pub(super) unsafe fn append(crc: u32, data: &[u8]) -> u32 {
        // The `crc32` instruction keeps the running CRC inverted.
        let mut state = !crc;
        let mut stripes = data.chunks_exact(STRIPE_BYTES);
        for part in &mut stripes {
            state = stripe(state, part);
        }
        let rest = stripes.remainder();
        let (vector, tail) = rest.split_at(rest.len() / 128 * 128);
        if !vector.is_empty() {
            let mut x = start_lanes(state, vector);
            for block in vector[128..].chunks_exact(128) {
                fold_block(&mut x, block);
            }
            state = reduce(x);
        }
        crc32c::crc32c_append(!state, tail)
    }
}

#[cfg(test)]
mod tests {
    use super::crc32c_append;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let rng = crate::ops::CounterRng::new(seed);
        (0..n as u64).map(|i| rng.bits(0, i)[0] as u8).collect()
    }

    #[test]
    fn equals_the_crc32c_crate_for_every_length_and_start() {
        let data = bytes(20_013, 7);
        for len in (0..1200).chain([2047, 2048, 2049, 4096, 4999, 8191, 8192, 8193, 19_999]) {
            for offset in [0, 1, 3, 8, 13] {
                let part = &data[offset..(offset + len).min(data.len())];
                for crc in [0, 0xdead_beef] {
                    assert_eq!(
                        crc32c_append(crc, part),
                        crc32c::crc32c_append(crc, part),
                        "{} bytes at {offset}, from {crc:#x}",
                        part.len()
                    );
                }
            }
        }
    }

    #[test]
    fn continues_across_pieces_like_one_pass() {
        let data = bytes(1 << 20, 11);
        let whole = crc32c::crc32c(&data);
        let pieces = data.chunks(100_003).fold(0, crc32c_append);
        assert_eq!(pieces, whole);
        // The check value of CRC-32C.
        assert_eq!(crc32c_append(0, b"123456789"), 0xe306_9283);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest::proptest! {
        /// Any bytes, cut anywhere into two pieces, from any start value.
        #[test]
        fn any_split_of_any_bytes_equals_the_crate(
            data in proptest::collection::vec(any::<u8>(), 0..40_000),
            cut in any::<prop::sample::Index>(),
            crc in any::<u32>(),
        ) {
            let cut = cut.index(data.len() + 1);
            let (a, b) = data.split_at(cut);
            let ours = super::crc32c_append(super::crc32c_append(crc, a), b);
            prop_assert_eq!(ours, crc32c::crc32c_append(crc, &data));
        }
    }
}
