//! Memory: the session's [`MemoryPool`] with RAII [`Reservation`]s, the
//! eviction policies of the chunk cache (planned: MIN; unplanned: LRU, LFU,
//! ARC, learned) and their replay on recorded traces, the read cache with
//! access prediction for unplanned reads ([`CachedArray`]), the spill area's tiers (spill
//! files, intermediates placed before any I/O, migration), the buffer pool
//! ([`RecyclingAllocator`]) and the allocator tuning ([`tune_allocator`])
//! that keep resident memory near the pool's figures and page faults rare.

mod access_predictor;
mod allocator;
mod arc_policy;
mod buffer_pool;
mod cache;
mod learned_policy;
mod policy;
mod pool;
mod read_cache;
mod scratch_placement;
mod spill;
mod spill_migration;
mod temp_store;
mod tier;
mod trace_replay;

pub use access_predictor::{AccessPredictor, Pattern};
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
pub use read_cache::{CachedArray, ReadCacheOptions, ReadCacheStats};
pub use scratch_placement::{
    ScratchNeed, ScratchPlacement, TierRoom, effective_spill_dirs, place_scratch,
};
pub use spill::{
    SpillCodec, SpillDirSpec, SpillFile, SpillManager, choose_spill_codec, remove_all_spill_dirs,
};
pub use spill_migration::SpillMigration;
pub use temp_store::TempStore;
pub use tier::TierReservation;
pub use trace_replay::{RegionTrace, ReplayResult};
