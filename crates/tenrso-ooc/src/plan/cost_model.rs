//! [`CostModel`]: the throughput figures that rank plans, the page-fault
//! model of large buffers and the share of the limit one task may hold.

/// Figures the planner ranks plans with: per-thread GEMM rate, stored read
/// and write rates, fixed costs per chunk read, per GEMM call and per run,
/// the page-fault cost of large buffers, and how much of the memory limit
/// one task may use. Rough on purpose: they rank plans, they do not predict
/// times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CostModel {
    /// GEMM flops per second of one thread.
    pub flops_per_thread: f64,
    /// Bytes per second read from stored arrays.
    pub read_bytes_per_sec: f64,
    /// Bytes per second written to stored arrays.
    pub write_bytes_per_sec: f64,
    /// Bytes per second copied in memory (tile assembly, packing).
    pub copy_bytes_per_sec: f64,
    /// Per chunk a contraction task reads: load, cache bookkeeping, assembly.
    pub seconds_per_chunk_read: f64,
    /// Planning and starting one more run (a rechunk before a contraction).
    pub seconds_per_run: f64,
    /// Per chunk a rechunk moves (measured lower: its tasks read few chunks
    /// each).
    pub seconds_per_chunk_moved: f64,
    /// Fixed cost of one GEMM call.
    pub seconds_per_gemm_call: f64,
    /// The fraction of the limit (numerator, denominator) one task may use,
    /// so that two run at once with room left for the chunk cache.
    pub task_share_of_limit: (u64, u64),
    /// Tasks assumed to run at once. Fixed (not the thread count) so that
    /// tiles — and with them the order of every partial sum — do not depend
    /// on how many threads run.
    pub planned_workers: f64,
    /// Buffers above this size come from fresh memory mappings (glibc's mmap
    /// threshold as [`tune_allocator`](crate::memory::tune_allocator) sets
    /// it), so each allocation page-faults all of its pages anew; smaller
    /// ones reuse heap memory.
    pub fresh_mapping_bytes: u64,
    /// Rate at which fresh pages are faulted in and zeroed (measured on 2
    /// cores with both workers allocating).
    pub fault_bytes_per_sec: f64,
    /// What the chunk graph holds per chunk read it lists (see
    /// `ChunkGraph::footprint`), with room for its per-chunk maps.
    pub plan_bytes_per_read: u64,
    /// What the chunk graph holds per task.
    pub plan_bytes_per_task: u64,
}

/// The work of a planned step, in the units the model prices.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StepWork {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes of buffers that fault in fresh pages (see
    /// [`CostModel::faulted_bytes`]).
    pub faulted_bytes: f64,
    /// Bytes read from the operands.
    pub bytes_read: u64,
    /// Bytes of the result written.
    pub bytes_written: u64,
    /// Bytes copied in memory.
    pub copied_bytes: f64,
    /// Chunk reads.
    pub chunk_reads: u64,
    /// GEMM calls.
    pub gemm_calls: u64,
    /// Tasks, of which up to `planned_workers` run at once.
    pub tasks: u64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl CostModel {
    /// The figures the planner uses.
    pub const DEFAULT: Self = Self {
        flops_per_thread: 20e9,
        read_bytes_per_sec: 2e9,
        write_bytes_per_sec: 1e9,
        copy_bytes_per_sec: 4e9,
        seconds_per_chunk_read: 100e-6,
        seconds_per_run: 0.05,
        seconds_per_chunk_moved: 30e-6,
        seconds_per_gemm_call: 5e-6,
        task_share_of_limit: (2, 5),
        planned_workers: 2.0,
        fresh_mapping_bytes: crate::memory::MMAP_THRESHOLD_BYTES,
        fault_bytes_per_sec: 1e9,
        plan_bytes_per_read: 144,
        plan_bytes_per_task: 128,
    };

    /// Modelled seconds of a step's `work`. Its tasks share the workers
    /// until the last ones, which leave the other workers idle for half a
    /// task on average: few large tasks pay that tail (measured: a matmul
    /// 8192² in two tasks ran 25 % slower than in sixteen, its second task
    /// alone for a third of the run).
    pub fn seconds(&self, work: &StepWork) -> f64 {
        let parallel = (work.tasks as f64).min(self.planned_workers);
        let task_seconds = work.flops / (work.tasks.max(1) as f64) / self.flops_per_thread;
        let tail = task_seconds * (1.0 - 1.0 / parallel.max(1.0)) / 2.0;
        work.flops / (self.flops_per_thread * parallel)
            + tail
            + work.faulted_bytes / (self.fault_bytes_per_sec * parallel)
            + work.bytes_read as f64 / self.read_bytes_per_sec
            + work.bytes_written as f64 / self.write_bytes_per_sec
            + work.copied_bytes / (self.copy_bytes_per_sec * parallel)
            + work.chunk_reads as f64 * self.seconds_per_chunk_read
            + work.gemm_calls as f64 * self.seconds_per_gemm_call / parallel
    }

    /// Modelled seconds to rechunk an operand of `bytes` stored in `chunks`
    /// chunks into `new_chunks`: plan and start a run, read it once, write
    /// it once.
    pub fn rechunk_seconds(&self, bytes: u64, chunks: u64, new_chunks: u64) -> f64 {
        self.seconds_per_run
            + bytes as f64 / self.read_bytes_per_sec
            + bytes as f64 / self.write_bytes_per_sec
            + (chunks + new_chunks) as f64 * self.seconds_per_chunk_moved
    }

    /// The page-fault model: the bytes of one allocation of `bytes` that
    /// fault in fresh pages — all of them for a buffer served by a fresh
    /// mapping (within 64 KiB of the threshold counts: the allocator adds a
    /// header), none for one the heap reuses.
    pub fn faulted_bytes(&self, bytes: u64) -> f64 {
        if bytes.saturating_add(64 << 10) >= self.fresh_mapping_bytes {
            bytes as f64
        } else {
            0.0
        }
    }

    /// The bytes one task may hold under `memory_limit`.
    pub fn task_budget(&self, memory_limit: u64) -> u64 {
        let (share, of) = self.task_share_of_limit;
        memory_limit / of * share
    }

    /// What the chunk graph itself holds for `chunk_reads` listed reads and
    /// `tasks` tasks.
    pub fn plan_bytes(&self, chunk_reads: u64, tasks: u64) -> u64 {
        chunk_reads
            .saturating_mul(self.plan_bytes_per_read)
            .saturating_add(tasks.saturating_mul(self.plan_bytes_per_task))
    }
}

/// Modelled seconds to rechunk an operand of `bytes` stored in `chunks`
/// chunks into `new_chunks` (the cost model's rechunk estimate with the
/// planner's figures).
pub fn rechunk_seconds(bytes: u64, chunks: u64, new_chunks: u64) -> f64 {
    CostModel::DEFAULT.rechunk_seconds(bytes, chunks, new_chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buffers_near_the_mapping_threshold_fault() {
        let model = CostModel::DEFAULT;
        assert_eq!(model.faulted_bytes(1 << 20), 0.0);
        assert_eq!(
            model.faulted_bytes((32 << 20) - (64 << 10)),
            (32 << 20) as f64 - 65536.0
        );
        assert_eq!(model.faulted_bytes(u64::MAX), u64::MAX as f64);
    }

    #[test]
    fn parallel_work_is_shared_by_the_planned_workers_only() {
        let model = CostModel::DEFAULT;
        let one = StepWork {
            flops: 40e9,
            tasks: 1,
            ..StepWork::default()
        };
        let many = StepWork { tasks: 100, ..one };
        assert_eq!(model.seconds(&one), 2.0);
        // Half of the last task's 0.02 s alone on one worker of two.
        assert!((model.seconds(&many) - 1.005).abs() < 1e-12);
        // Reads and writes do not get faster with more tasks.
        let io = StepWork {
            bytes_read: 2_000_000_000,
            bytes_written: 1_000_000_000,
            tasks: 100,
            ..StepWork::default()
        };
        assert_eq!(model.seconds(&io), 2.0);
    }

    #[test]
    fn few_large_tasks_pay_for_the_workers_they_leave_idle() {
        let model = CostModel::DEFAULT;
        let two = StepWork {
            flops: 40e9,
            tasks: 2,
            ..StepWork::default()
        };
        let sixteen = StepWork { tasks: 16, ..two };
        assert!((model.seconds(&two) - 1.25).abs() < 1e-12);
        assert!((model.seconds(&sixteen) - 1.03125).abs() < 1e-12);
    }

    #[test]
    fn budgets_and_rechunks() {
        let model = CostModel::DEFAULT;
        assert_eq!(model.task_budget(1000), 400);
        assert_eq!(model.plan_bytes(2, 1), 2 * 144 + 128);
        assert_eq!(model.plan_bytes(u64::MAX, 1), u64::MAX);
        let secs = rechunk_seconds(2_000_000_000, 10, 20);
        assert!(
            (secs - (0.05 + 1.0 + 2.0 + 30.0 * 30e-6)).abs() < 1e-12,
            "{secs}"
        );
    }
}
