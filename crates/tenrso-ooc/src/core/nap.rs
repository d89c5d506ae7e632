//! [`Nap`]: how a thread that polls for work sleeps while it finds none.

use std::time::Duration;

/// How long a polling thread sleeps before it looks again: twice as long
/// each time it finds nothing to do, from `shortest` up to `longest`, and
/// `shortest` again once it finds work. An idle poller then costs little
/// and a busy one answers at once.
///
/// Used by the executor's readers (1 to 16 ms: four readers on two cores
/// busy with GEMMs that looked every millisecond preempted them 60,000
/// times in a 12 s matrix product of 8192², 11,000 times with naps) and by
/// the MPI chunk server (20 µs to 2 ms: a blocking probe would spin).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nap {
    next: Duration,
    shortest: Duration,
    longest: Duration,
}

impl Nap {
    /// Naps from `shortest` up to `longest`.
    pub(crate) fn new(shortest: Duration, longest: Duration) -> Self {
        Self {
            next: shortest,
            shortest,
            longest: longest.max(shortest),
        }
    }

    /// Found nothing to do: sleeps this nap; the next is twice as long.
    pub(crate) fn sleep(&mut self) {
        std::thread::sleep(self.take());
    }

    /// This nap's length; the next is twice as long, up to the longest.
    fn take(&mut self) -> Duration {
        let nap = self.next;
        self.next = (self.next * 2).min(self.longest);
        nap
    }

    /// Found work: the next nap is the shortest again.
    pub(crate) fn reset(&mut self) {
        self.next = self.shortest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naps_double_while_idle_and_restart_after_work() {
        let ms = Duration::from_millis;
        let mut nap = Nap::new(ms(1), ms(16));
        let naps: Vec<u128> = (0..7).map(|_| nap.take().as_millis()).collect();
        assert_eq!(naps, [1, 2, 4, 8, 16, 16, 16]);
        nap.reset();
        assert_eq!(nap.take(), ms(1));
    }
}
