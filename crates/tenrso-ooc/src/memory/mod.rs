//! Memory: the session's [`MemoryPool`] with RAII [`Reservation`]s, the
//! eviction policies of the chunk cache, the spill area's tiers (spill
//! files, intermediates placed before any I/O, migration), the buffer pool
//! ([`RecyclingAllocator`]) and the allocator tuning ([`tune_allocator`])
//! that keep resident memory near the pool's figures and page faults rare.

mod allocator;
mod arc_policy;
mod buffer_pool;
mod cache;
mod learned_policy;
mod policy;
mod pool;
mod scratch_placement;
mod spill;
mod spill_migration;
mod temp_store;
mod tier;

pub use allocator::{MMAP_THRESHOLD_BYTES, SYSTEM_MALLOC_VAR, tune_allocator};
pub use arc_policy::AdaptiveReplacement;
pub use buffer_pool::{
    BufferPoolStats, RECYCLE_MIN_BYTES, RecyclingAllocator, buffer_pool_stats, enable_recycling,
    size_class,
};
pub use cache::{CacheStats, ChunkCache, Loader, Pinned, SpilledPrefetch};
pub use learned_policy::Learned;
pub use policy::{
    BuildKeyHasher, ChunkKey, ChunkMap, EvictionPolicy, KeyHasher, Lfu, Lru, Min, PolicyKind,
    SimulationResult, simulate,
};
pub use pool::{MemoryPool, Reclaim, Reservation};
pub use scratch_placement::{
    ScratchNeed, ScratchPlacement, TierRoom, effective_spill_dirs, place_scratch,
};
pub use spill::{SpillCodec, SpillDirSpec, SpillFile, SpillManager, remove_all_spill_dirs};
pub use spill_migration::SpillMigration;
pub use temp_store::TempStore;
pub use tier::TierReservation;
