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

/// The tag of chunk requests (the serving thread takes only these).
const REQUEST_TAG: i32 = 7;
/// Answers go back under a tag of their own per request, from this one on
/// (below MPI's guaranteed upper bound of 32767).
const FIRST_ANSWER_TAG: i32 = 1000;
const ANSWER_TAGS: i32 = 30_000;
/// The one-byte request that stops a serving thread (real requests have
/// a tag and a name: at least 8 bytes).
const STOP: [u8; 1] = [0xff];

static NEXT_ANSWER_TAG: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// MPI, initialised with `MPI_THREAD_MULTIPLE`: keep it alive for the whole
/// program (dropping it finalises MPI), and make sessions with its
/// [`ranks`](Self::ranks). Under several ranks, a thread of each rank
/// answers the others' requests for its node-local chunks until it drops
/// (every rank drops it together: the drop waits for every rank).
pub struct MpiEnvironment {
    ranks: MpiRanks,
    server: Option<std::thread::JoinHandle<()>>,
    _universe: Universe,
}

impl Drop for MpiEnvironment {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // No rank asks for a chunk any more once every rank is here.
            let world = SimpleCommunicator::world();
            world.barrier();
            world
                .process_at_rank(self.ranks.rank as i32)
                .send_with_tag(&STOP[..], REQUEST_TAG);
            let _ = server.join();
        }
    }
}

/// The longest a serving thread sleeps between looks for a request.
const MAX_IDLE: std::time::Duration = std::time::Duration::from_millis(2);

/// Answers chunk requests from the other ranks until told to stop. It
/// polls (a blocking probe would spin on a core the whole run: Open MPI
/// busy-waits), sleeping from 20 µs up to [`MAX_IDLE`] while no request
/// comes, so an idle server costs nothing and a busy one answers at once.
fn serve_chunks(rank: usize) {
    use mpi::point_to_point::MatchedReceiveVec;
    let world = SimpleCommunicator::world();
    let mut idle = crate::core::Nap::new(std::time::Duration::from_micros(20), MAX_IDLE);
    loop {
        let Some(probed) = world
            .any_process()
            .immediate_matched_probe_with_tag(REQUEST_TAG)
        else {
            idle.sleep();
            continue;
        };
        idle.reset();
        let (request, status) = probed.matched_receive_vec::<u8>();
        if request == STOP {
            return;
        }
        let Some((tag, request)) = request.split_first_chunk::<4>() else {
            continue;
        };
        let answer = crate::distributed::chunk_server::answer(rank, request);
        world
            .process_at_rank(status.source_rank())
            .send_with_tag(&answer[..], i32::from_le_bytes(*tag));
    }
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
    let server = (ranks.size > 1)
        .then(|| {
            std::thread::Builder::new()
                .name("tenrso-chunk-server".into())
                .spawn(move || serve_chunks(ranks.rank))
        })
        .transpose()
        .map_err(|e| Error::internal(format!("the chunk-serving thread did not start: {e}")))?;
    Ok(MpiEnvironment {
        ranks,
        server,
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

    fn fetch(&self, from: usize, request: &[u8]) -> Result<Vec<u8>> {
        let world = SimpleCommunicator::world();
        let n = NEXT_ANSWER_TAG.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = FIRST_ANSWER_TAG + n.rem_euclid(ANSWER_TAGS);
        let mut message = tag.to_le_bytes().to_vec();
        message.extend_from_slice(request);
        let owner = world.process_at_rank(from as i32);
        owner.send_with_tag(&message[..], REQUEST_TAG);
        let (answer, _) = owner.receive_vec_with_tag::<u8>(tag);
        Ok(answer)
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
