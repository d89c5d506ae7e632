//! Operations on stored arrays: generators, verification, comparison, import
//! and export, elementwise maps, reductions, reorganisation and einsum.
//!
//! # The rule every operation follows
//!
//! An operation is a small **request value**, built from its required inputs
//! by `new` (or a named constructor such as [`Einsum::matmul`]) and refined
//! with `with_*` builder methods; nothing optional is a positional argument.
//! `plan(&session)` validates the request (shapes, axes, subscripts, files)
//! and models it for the session (threads, memory limit, policy), returning
//! a [`Planned`] operation without writing anything: [`Planned::explain`]
//! (or `Display`) is the plan report — also for a plan that does not fit,
//! so it can be shown — and [`Planned::run`] (or [`Planned::run_with`] and
//! a [`Progress`] observer) executes it and returns the operation's report.
//! Running refuses a plan that does not fit the memory limit or the spill
//! capacity before any I/O.
//!
//! - Inputs are readable arrays ([`ReadableArray`](crate::io::ReadableArray)):
//!   constructors take `&impl IntoArrayRef` (an `&Arc<ZarrArray>`, or an
//!   [`ArrayRef`](crate::io::ArrayRef) from
//!   [`open_array`](crate::store::open_array) for a store or a `.npy`, raw,
//!   IPC or Parquet file read in place) and the request keeps a handle;
//!   files to write, and new arrays, are paths. A required
//!   output is an argument of `new`; an optional one (a scalar result can
//!   also be written) is `with_out`.
//! - Output layout is [`OutputOptions`] (chunk shape, compression, resume).
//! - Plans over chunk graphs explain as a [`PlanReport`](crate::plan::PlanReport),
//!   einsum as an [`EinsumPlan`], independent chunk work as a [`ChunkPlan`].
//! - A cancelled run ([`crate::exec::CancelToken`]) ends with
//!   [`Error::Cancelled`](crate::Error::Cancelled); the output chunks it wrote
//!   stay, and `with_resume(true)` continues it: planning checks, reading
//!   only, that an existing output has the layout and the job record (the
//!   operation, its inputs' paths and metadata hashes) of this run, and the
//!   run skips every task whose output chunks are all on disk. A chain
//!   einsum recomputes its intermediates and resumes its last step. Without
//!   resume, an existing output is refused when planning.
//!
//! ```
//! use tenrso_ooc::exec::Session;
//! use tenrso_ooc::ops::{Fill, Generate, Reduce, ReduceOp};
//! use tenrso_ooc::store::ArraySpec;
//! use tenrso_ooc::DType;
//! # let dir = tempfile::tempdir()?;
//! let session = Session::default();
//! let spec = ArraySpec::new(vec![100, 100], vec![50, 50], DType::F64);
//! let x = Generate::new(dir.path().join("x"), spec, Fill::Ones).plan(&session)?.run()?.array;
//! let planned = Reduce::new(ReduceOp::Mean, &x).plan(&session)?;
//! println!("{planned}"); // tasks, bytes to read, memory against the limit
//! assert_eq!(planned.run()?.value, Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Progress`]: crate::exec::Progress

mod chunk_plan;
mod codec_auto;
mod compare;
mod contraction;
mod einsum;
mod expr;
mod generate;
mod map;
mod pairwise;
mod planned;
mod random;
mod reduce;
mod reduction_tree;
mod reorganize;
mod scalar_output;
mod streamed;
mod transfer;
mod verify;

pub use chunk_plan::ChunkPlan;
pub use compare::{Compare, CompareReport};
pub use einsum::{Einsum, EinsumPlan, EinsumReport, tensordot_subscripts};
pub use expr::Expr;
pub use generate::{Fill, Generate, GenerateReport, Generator};
pub use map::Map;
pub use planned::{OpReport, OutputOptions, Planned};
pub use random::CounterRng;
pub use reduce::{Reduce, ReduceOp, ReduceReport};
pub use reorganize::{Rechunk, Transpose};
pub use transfer::{Export, Import, ImportOptions, TransferReport, is_npy};
pub use verify::{BadChunk, Verify, VerifyReport};
