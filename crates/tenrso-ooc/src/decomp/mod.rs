//! Decompositions of stored tensors, out of core: streaming MTTKRP
//! ([`mttkrp`]), CP-ALS ([`cp_als`]), Tucker by HOSVD and HOOI
//! ([`tucker`]), and models written back as stored tensors
//! ([`Reconstruct`]).
//!
//! The tensor is streamed chunk by chunk through the executor, under the
//! session's memory limit; only the factors, Gram matrices and one partial
//! contraction (when it fits) stay in memory. Iterative methods write a
//! checkpoint after every iteration and resume from it bitwise-exactly.
//!
//! Both take TensorLy's parameter names ([`CpOptions`], [`TuckerOptions`]),
//! call back after every iteration — returning
//! [`ControlFlow::Break`](std::ops::ControlFlow::Break) stops the run there
//! with a valid model, as TensorLy's `callback` returning `True` does — and
//! report their run in one shared type, [`DecompositionRun`]. They stop
//! with [`Error::Cancelled`](crate::Error::Cancelled) between iterations
//! when the session's token is cancelled; the last checkpoint stays.

mod checkpoint;
mod chunk_kernels;
mod cp_als;
mod hosvd;
pub mod linalg;
mod matrix;
mod model_memory;
mod mttkrp;
mod on_root;
mod reconstruct;
mod run_report;
mod stream;
mod tucker;

pub use crate::io::read_npy_values;
pub use crate::store::write_atomically;
pub use cp_als::{CpInit, CpModel, CpOptions, CpReport, CvgCriterion, SweepStrategy, cp_als};
pub use hosvd::{ModeSvdMethod, ModeVectors, leading_mode_vectors};
pub use matrix::{Matrix, write_npy_values};
pub use mttkrp::mttkrp;
pub use reconstruct::{Model, Reconstruct};
pub use run_report::{DecompositionRun, Iteration};
use run_report::{decomp_span, iteration_span};
pub use tucker::{TuckerInit, TuckerModel, TuckerOptions, TuckerReport, tucker};

use crate::core::Result;
use crate::exec::{Progress, Session};
use crate::io::ArrayRef;
use crate::ops::{Reduce, ReduceOp};

/// `‖X‖`, in one streamed pass (compensated, order fixed by the chunks).
fn tensor_norm(session: &Session, x: &ArrayRef, progress: &dyn Progress) -> Result<f64> {
    let report = Reduce::new(ReduceOp::Norm, x)
        .plan(session)?
        .run_with(&cp_als::NamedProgress::new(progress, "norm of the tensor"))?;
    report
        .value
        .ok_or_else(|| crate::Error::internal("the norm pass returned no value"))
}
