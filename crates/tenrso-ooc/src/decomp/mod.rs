//! Decompositions of stored tensors, out of core: streaming MTTKRP
//! ([`mttkrp`]), CP-ALS ([`cp_als`]), Tucker by HOSVD and HOOI
//! ([`tucker`]), and models written back as stored tensors
//! ([`reconstruct_cp`], [`reconstruct_tucker`]).
//!
//! The tensor is streamed chunk by chunk through the executor, under the
//! session's memory limit; only the factors, Gram matrices and one partial
//! contraction (when it fits) stay in memory. Iterative methods write a
//! checkpoint after every iteration and resume from it bitwise-exactly.

mod checkpoint;
mod chunk_kernels;
mod cp_als;
mod hosvd;
pub mod linalg;
mod matrix;
mod mttkrp;
mod reconstruct;
mod stream;
mod tucker;

use std::sync::Arc;

use serde_json::{Value, json};

pub use crate::io::read_npy_values;
pub use crate::store::write_atomically;
pub use cp_als::{CpInit, CpModel, CpOptions, CpReport, SweepStrategy, cp_als};
pub use hosvd::{ModeSvdMethod, leading_mode_vectors};
pub use matrix::{Matrix, write_npy_values};
pub use mttkrp::mttkrp;
pub use reconstruct::{reconstruct_cp, reconstruct_tucker};
pub use tucker::{TuckerInit, TuckerModel, TuckerOptions, TuckerReport, tucker};

use crate::core::Result;
use crate::exec::{Progress, Session};
use crate::ops::{OutputOptions, ReduceOp};
use crate::store::ZarrArray;

/// One completed iteration of an iterative decomposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Iteration {
    /// Its number, from 1.
    pub iteration: usize,
    /// `1 − ‖X − X̂‖/‖X‖`.
    pub fit: f64,
    /// `‖X − X̂‖/‖X‖`.
    pub rec_error: f64,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// Bytes read from the stored tensor.
    pub bytes_read: u64,
    /// Passes over the tensor.
    pub passes: usize,
}

impl Iteration {
    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "iteration": self.iteration,
            "fit": self.fit,
            "rec_error": self.rec_error,
            "seconds": self.seconds,
            "bytes_read": self.bytes_read,
            "passes": self.passes,
        })
    }

    /// From [`to_json`](Self::to_json)'s object (missing fields zero).
    pub fn from_json(v: &Value) -> Self {
        Self {
            iteration: v["iteration"].as_u64().unwrap_or(0) as usize,
            fit: v["fit"].as_f64().unwrap_or(0.0),
            rec_error: v["rec_error"].as_f64().unwrap_or(0.0),
            seconds: v["seconds"].as_f64().unwrap_or(0.0),
            bytes_read: v["bytes_read"].as_u64().unwrap_or(0),
            passes: v["passes"].as_u64().unwrap_or(0) as usize,
        }
    }
}

/// `‖X‖`, in one streamed pass (compensated, order fixed by the chunks).
fn tensor_norm(session: &Session, x: &Arc<ZarrArray>, progress: &dyn Progress) -> Result<f64> {
    let report = crate::ops::reduce(
        session,
        ReduceOp::Norm,
        x.clone(),
        None,
        None,
        &OutputOptions::default(),
        false,
        &cp_als::NamedProgress::new(progress, "norm of the tensor"),
    )?;
    report
        .value
        .ok_or_else(|| crate::Error::internal("the norm pass returned no value"))
}
