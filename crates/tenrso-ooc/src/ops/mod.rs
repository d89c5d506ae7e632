//! Operations on stored arrays: generators, verification, comparison, import
//! and export, elementwise maps, reductions, reorganisation and einsum.

mod compare;
mod contraction;
pub(crate) mod einsum;
mod expr;
mod generate;
mod map;
mod random;
mod reduce;
mod reorganize;
pub(crate) mod run_plan;
mod transfer;
mod verify;

pub use compare::{CompareReport, compare};
pub use einsum::{EinsumOptions, EinsumReport, einsum, matmul, tensordot, tensordot_subscripts};
pub use expr::Expr;
pub use generate::{Fill, GenerateReport, Generator, generate};
pub use map::map;
pub use random::CounterRng;
pub use reduce::{ReduceOp, ReduceReport, reduce};
pub use reorganize::{rechunk, transpose};
pub use run_plan::{OpReport, OutputOptions};
pub use transfer::{ImportOptions, TransferReport, export, export_with, import, is_npy};
pub use verify::{BadChunk, VerifyReport, verify};
