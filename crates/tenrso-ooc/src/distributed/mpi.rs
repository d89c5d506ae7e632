//! [`MpiRanks`]: [`Ranks`] over MPI's world communicator (feature `mpi`).

use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::core::{Error, Result};
use crate::distributed::Ranks;

/// The ranks of `MPI_COMM_WORLD`. Holds no communicator (MPI's handles are
/// not `Send`): each call takes the world communicator, so it may be used
/// from any thread once MPI runs with `MPI_THREAD_MULTIPLE`
/// ([`init_mpi`]).
#[derive(Debug, Clone, Copy)]
pub struct MpiRanks {
    rank: usize,
    size: usize,
}

/// MPI, initialised with `MPI_THREAD_MULTIPLE`: keep it alive for the whole
/// program (dropping it finalises MPI), and make sessions with its
/// [`ranks`](Self::ranks).
pub struct MpiEnvironment {
    ranks: MpiRanks,
    _universe: Universe,
}

impl std::fmt::Debug for MpiEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiEnvironment")
            .field("ranks", &self.ranks)
            .finish_non_exhaustive()
    }
}

impl MpiEnvironment {
    /// This job's ranks.
    pub fn ranks(&self) -> MpiRanks {
        self.ranks
    }

    /// The MPI library's version line.
    pub fn library_version() -> String {
        mpi::environment::library_version()
            .unwrap_or_default()
            .trim_end_matches('\0')
            .trim()
            .to_string()
    }
}

/// Initialises MPI for the whole process (once), with
/// `MPI_THREAD_MULTIPLE`: worker threads may take part in collectives.
/// Works without `mpirun` too (one rank).
///
/// # Errors
/// [`Error::Internal`] when MPI was initialised already or grants a lower
/// threading level.
pub fn init_mpi() -> Result<MpiEnvironment> {
    let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Multiple)
        .ok_or_else(|| Error::internal("MPI was initialised twice".to_string()))?;
    if threading != mpi::Threading::Multiple {
        return Err(Error::internal(format!(
            "MPI grants {threading:?} threading; tenrso-ooc needs Multiple"
        )));
    }
    let world = universe.world();
    let ranks = MpiRanks {
        rank: world.rank() as usize,
        size: world.size() as usize,
    };
    Ok(MpiEnvironment {
        ranks,
        _universe: universe,
    })
}

/// Ends every rank of the job with `code` (`MPI_Abort`): the fail-stop
/// answer to an error or a panic on one rank.
pub fn abort_job(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}

impl Ranks for MpiRanks {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn barrier(&self) {
        SimpleCommunicator::world().barrier();
    }

    fn all_gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let world = SimpleCommunicator::world();
        let len = i32::try_from(bytes.len()).unwrap_or_else(|_| {
            eprintln!("error: {} bytes to gather exceed MPI's count", bytes.len());
            world.abort(1)
        });
        let mut counts = vec![0i32; self.size];
        world.all_gather_into(&len, &mut counts[..]);
        let displs: Vec<i32> = counts
            .iter()
            .scan(0i32, |at, &c| {
                let start = *at;
                *at += c;
                Some(start)
            })
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut buffer = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut buffer[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(bytes, &mut partition);
        }
        counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| buffer[d as usize..(d + c) as usize].to_vec())
            .collect()
    }
}
