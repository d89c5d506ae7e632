//! [`MeteredRanks`]: a job's ranks whose collectives are counted in a
//! session's metrics (bytes sent and received, time waiting).

use std::sync::Arc;
use std::time::Instant;

use crate::distributed::Ranks;
use crate::telemetry::Metrics;

/// `inner`'s collectives, each timed into
/// [`Metrics::communication_seconds`] and its bytes counted into
/// [`Metrics::bytes_sent`] and [`Metrics::bytes_received`].
/// [`Session::with_ranks`](crate::exec::Session::with_ranks) wraps a job
/// of several ranks in it.
#[derive(Debug)]
pub struct MeteredRanks {
    inner: Arc<dyn Ranks>,
    metrics: Arc<Metrics>,
}

impl MeteredRanks {
    /// `inner`, counted into `metrics`.
    pub fn new(inner: Arc<dyn Ranks>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl Ranks for MeteredRanks {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn barrier(&self) {
        let started = Instant::now();
        self.inner.barrier();
        self.metrics
            .communication_seconds
            .observe(started.elapsed());
    }

    fn fetch(&self, from: usize, request: &[u8]) -> crate::Result<Vec<u8>> {
        let started = Instant::now();
        let answer = self.inner.fetch(from, request)?;
        self.metrics
            .communication_seconds
            .observe(started.elapsed());
        self.metrics.bytes_sent.add(request.len() as u64);
        self.metrics.bytes_received.add(answer.len() as u64);
        Ok(answer)
    }

    fn all_gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let started = Instant::now();
        let all = self.inner.all_gather(bytes);
        self.metrics
            .communication_seconds
            .observe(started.elapsed());
        let others = self.size().saturating_sub(1) as u64;
        self.metrics.bytes_sent.add(bytes.len() as u64 * others);
        let received: usize = all
            .iter()
            .enumerate()
            .filter(|(r, _)| *r != self.rank())
            .map(|(_, b)| b.len())
            .sum();
        self.metrics.bytes_received.add(received as u64);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::LocalRanks;

    #[test]
    fn collectives_are_counted() {
        let group = LocalRanks::group(3);
        let counted: Vec<(u64, u64, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .into_iter()
                .map(|r| {
                    s.spawn(move || {
                        let metrics = Arc::new(Metrics::default());
                        let ranks = MeteredRanks::new(Arc::new(r), metrics.clone());
                        ranks.all_gather(&vec![0u8; 10 * (ranks.rank() + 1)]);
                        ranks.barrier();
                        (
                            metrics.bytes_sent.get(),
                            metrics.bytes_received.get(),
                            metrics.communication_seconds.count(),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Rank r sends its 10(r+1) bytes to the two others and receives
        // theirs.
        assert_eq!(counted, vec![(20, 50, 2), (40, 40, 2), (60, 30, 2)]);
    }
}
