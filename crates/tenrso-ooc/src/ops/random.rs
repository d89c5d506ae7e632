//! [`CounterRng`]: a counter-based random generator (Philox4x32-10).
//!
//! Each value is a pure function of `(seed, stream, index)`, so generated
//! arrays do not depend on chunk shape, thread count or processing order.

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
/// 3", SC 2011), keyed by a 64-bit seed.
///
/// ```
/// use tenrso_ooc::ops::CounterRng;
/// let rng = CounterRng::new(42);
/// // Same (stream, index), same value — in any order, on any thread.
/// assert_eq!(rng.uniform(0, 7), rng.uniform(0, 7));
/// assert!((0.0..1.0).contains(&rng.uniform(0, 7)));
/// assert_ne!(rng.uniform(0, 7), CounterRng::new(43).uniform(0, 7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterRng {
    key: [u32; 2],
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// The raw Philox4x32 bijection with 10 rounds.
fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for round in 0..10 {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, ctr[0]);
        let (hi1, lo1) = mulhilo(M1, ctr[2]);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

/// 53 random bits as a float in [0, 1).
fn unit_f64(hi: u32, lo: u32) -> f64 {
    let bits = ((u64::from(hi) << 32) | u64::from(lo)) >> 11;
    bits as f64 * (1.0 / (1u64 << 53) as f64)
}

impl CounterRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            key: [seed as u32, (seed >> 32) as u32],
        }
    }

    /// 128 random bits for `(stream, index)`.
    pub fn bits(&self, stream: u32, index: u64) -> [u32; 4] {
        philox4x32_10([index as u32, (index >> 32) as u32, stream, 0], self.key)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&self, stream: u32, index: u64) -> f64 {
        let b = self.bits(stream, index);
        unit_f64(b[0], b[1])
    }

    /// Standard normal (Box–Muller on the two 53-bit halves of one draw).
    pub fn normal(&self, stream: u32, index: u64) -> f64 {
        let b = self.bits(stream, index);
        let u1 = 1.0 - unit_f64(b[0], b[1]); // (0, 1]: the log is finite
        let u2 = unit_f64(b[2], b[3]);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from Random123's `tests/kat_vectors`.
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn moments_are_plausible() {
        let rng = CounterRng::new(7);
        let n = 200_000u64;
        let (mut su, mut sn, mut sn2) = (0.0, 0.0, 0.0);
        for i in 0..n {
            su += rng.uniform(0, i);
            let z = rng.normal(1, i);
            sn += z;
            sn2 += z * z;
        }
        let n = n as f64;
        assert!((su / n - 0.5).abs() < 0.005, "uniform mean {}", su / n);
        assert!((sn / n).abs() < 0.01, "normal mean {}", sn / n);
        assert!((sn2 / n - 1.0).abs() < 0.02, "normal variance {}", sn2 / n);
    }
}
