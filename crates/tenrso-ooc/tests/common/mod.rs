//! Helpers shared by the library's integration tests: sessions, generated
//! arrays, and whole arrays read back for comparison.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::sync::Arc;

use tenrso_ooc::exec::{ExecOptions, Session};
use tenrso_ooc::ops::{Fill, Generate};
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{Block, DType, Region};

/// A session with `threads` workers and a memory limit of `limit` bytes.
pub fn session(threads: usize, limit: u64) -> Session {
    Session::new(
        ExecOptions::default()
            .with_threads(threads)
            .with_memory_limit(limit),
    )
}

/// A new array `dir/name` of `spec`, filled by `fill` from `seed`.
pub fn generated(dir: &Path, name: &str, spec: ArraySpec, fill: Fill, seed: u64) -> Arc<ZarrArray> {
    Generate::new(dir.join(name), spec, fill)
        .with_seed(seed)
        .plan(&Session::default())
        .unwrap()
        .run()
        .unwrap()
        .array
}

/// The whole of an `f64` array.
pub fn all(a: &ZarrArray) -> Block<f64> {
    a.read_region(&Region::full(a.shape())).unwrap()
}

/// The whole of an array of either type, as `f64` values in C order.
pub fn values(a: &ZarrArray) -> Vec<f64> {
    match a.dtype() {
        DType::F64 => all(a).into_vec(),
        DType::F32 => a
            .read_region::<f32>(&Region::full(a.shape()))
            .unwrap()
            .into_vec()
            .into_iter()
            .map(f64::from)
            .collect(),
    }
}
