//! [`Ranks`]: the processes of one SPMD job and the few collective
//! operations the engine needs from them.

use std::fmt;

/// The processes (ranks) that run one operation together, SPMD: every rank
/// plans the same graph and runs the tasks it owns. The engine needs only
/// these collectives; floating-point values cross ranks as bytes and are
/// combined by the engine in the plan's order, never by the transport.
///
/// [`SingleProcess`] is the default (rank 0 of 1: every collective is the
/// identity); `MpiRanks` (feature `mpi`)
/// runs over MPI's world communicator.
///
/// ```
/// use tenrso_ooc::distributed::{Ranks, SingleProcess};
/// let ranks = SingleProcess;
/// assert_eq!((ranks.rank(), ranks.size()), (0, 1));
/// assert_eq!(ranks.all_gather(b"partial"), vec![b"partial".to_vec()]);
/// ```
pub trait Ranks: Send + Sync + fmt::Debug {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn size(&self) -> usize;

    /// Waits until every rank has called it.
    fn barrier(&self);

    /// Every rank's `bytes`, by rank, on every rank.
    fn all_gather(&self, bytes: &[u8]) -> Vec<Vec<u8>>;

    /// Rank 0's `bytes`, on every rank (`bytes` is ignored elsewhere).
    fn broadcast(&self, bytes: &[u8]) -> Vec<u8> {
        self.all_gather(bytes).swap_remove(0)
    }

    /// Rank `from`'s answer to a request for one of its node-local
    /// chunks (see `chunk_server`), while every rank may be computing: the
    /// owner answers from a serving thread (MPI) or at once (threads).
    ///
    /// # Errors
    /// [`Error::Internal`](crate::Error::Internal) from transports that
    /// cannot fetch ([`SingleProcess`] has no other rank).
    fn fetch(&self, from: usize, request: &[u8]) -> crate::core::Result<Vec<u8>> {
        let _ = request;
        Err(crate::core::Error::internal(format!(
            "rank {} cannot fetch chunks from rank {from} over this transport",
            self.rank()
        )))
    }

    /// True on the rank that prints, creates outputs and writes reports.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// True when more than one process runs the job.
    fn is_distributed(&self) -> bool {
        self.size() > 1
    }
}

/// One process: rank 0 of 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Ranks for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn barrier(&self) {}

    fn all_gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        vec![bytes.to_vec()]
    }
}

/// `u64`s as little-endian bytes, for [`Ranks::all_gather`].
fn u64s_to_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The `u64`s of [`u64s_to_bytes`].
fn u64s_from_bytes(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .collect()
}

/// Every rank's `values`, by rank, on every rank.
pub fn all_gather_u64s(ranks: &dyn Ranks, values: &[u64]) -> Vec<Vec<u64>> {
    ranks
        .all_gather(&u64s_to_bytes(values))
        .iter()
        .map(|b| u64s_from_bytes(b))
        .collect()
}

/// The element-wise sums of every rank's `counts` (integers only: sums of
/// floats would depend on the order).
pub fn sum_over_ranks(ranks: &dyn Ranks, counts: &[u64]) -> Vec<u64> {
    if !ranks.is_distributed() {
        return counts.to_vec();
    }
    let mut total = vec![0u64; counts.len()];
    for theirs in all_gather_u64s(ranks, counts) {
        for (t, v) in total.iter_mut().zip(theirs) {
            *t += v;
        }
    }
    total
}

/// Refuses `operation` in a session run by several ranks: operations that
/// do not share their work yet would run whole on every rank (and race to
/// create their outputs).
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the
/// operation and the rank count.
pub(crate) fn one_process_only(ranks: &dyn Ranks, operation: &str) -> crate::core::Result<()> {
    if ranks.is_distributed() {
        return Err(crate::core::Error::invalid(format!(
            "{operation} runs in one process (not yet under MPI), not on {} ranks",
            ranks.size()
        )));
    }
    Ok(())
}
