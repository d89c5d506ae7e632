//! Many processes, one answer: the ranks of an SPMD job ([`Ranks`]), which
//! rank owns which task ([`Ownership`]), and the transports: MPI with the
//! `mpi` feature (`MpiRanks`), or threads of one process ([`LocalRanks`]).
//!
//! Every rank plans the same graph; each runs the tasks it owns by a static
//! rule and writes only their output chunks; rank 0 creates the outputs.
//! Floating-point values that cross ranks are gathered as bytes and
//! combined in the plan's order, so results are bitwise those of one
//! process. See `docs/distributed.md`.

pub(crate) mod chunk_server;
mod local_ranks;
mod metered_ranks;
mod node_local_array;
mod ownership;
mod ranks;

#[cfg(feature = "mpi")]
mod mpi;

#[cfg(feature = "mpi")]
pub use self::mpi::{MpiEnvironment, MpiRanks, abort_job, init_mpi};
pub use local_ranks::LocalRanks;
pub use metered_ranks::MeteredRanks;
pub use node_local_array::NodeLocalArray;
pub(crate) use ownership::stage_ranges;
pub use ownership::{OwnedTasks, Ownership, RankShare, TileSplit, contiguous_share, shares};
pub(crate) use ranks::one_process_only;
pub use ranks::{Ranks, SingleProcess, all_gather_u64s, sum_over_ranks};
