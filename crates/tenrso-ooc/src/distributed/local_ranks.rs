//! [`LocalRanks`]: the ranks of a job as threads of one process.

use std::sync::{Arc, Barrier, Mutex};

use crate::distributed::Ranks;

/// Ranks that are threads of this process, each with its own session:
/// the distributed code paths (ownership, ordered combination, rank 0
/// creating outputs) without MPI, for tests and for trying a rank count
/// on one machine.
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::distributed::{LocalRanks, Ranks};
/// let ranks = LocalRanks::group(3);
/// let gathered: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
///     let handles: Vec<_> = ranks
///         .iter()
///         .map(|r| s.spawn(move || r.all_gather(&[r.rank() as u8])))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert!(gathered.iter().all(|g| g == &vec![vec![0], vec![1], vec![2]]));
/// ```
#[derive(Debug, Clone)]
pub struct LocalRanks {
    rank: usize,
    size: usize,
    group: Arc<Group>,
}

#[derive(Debug)]
struct Group {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

impl LocalRanks {
    /// The `size` ranks of a new group, by rank; give each to its own
    /// thread (every rank must take part in every collective).
    pub fn group(size: usize) -> Vec<Self> {
        let size = size.max(1);
        let group = Arc::new(Group {
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| Self {
                rank,
                size,
                group: Arc::clone(&group),
            })
            .collect()
    }
}

impl Ranks for LocalRanks {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn barrier(&self) {
        self.group.barrier.wait();
    }

    fn fetch(&self, from: usize, request: &[u8]) -> crate::core::Result<Vec<u8>> {
        // The owner is a thread of this process: its answer, at once.
        Ok(crate::distributed::chunk_server::answer(from, request))
    }

    fn all_gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let slots = || self.group.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots()[self.rank] = bytes.to_vec();
        // Every rank's bytes are in; then every rank has read them before
        // any writes its next ones.
        self.group.barrier.wait();
        let all = slots().clone();
        self.group.barrier.wait();
        all
    }
}
