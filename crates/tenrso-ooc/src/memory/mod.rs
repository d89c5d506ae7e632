//! Memory: the session's [`MemoryPool`] with RAII [`Reservation`]s, the
//! eviction policies of the chunk cache, spill files, and the allocator
//! tuning ([`tune_allocator`]) that keeps resident memory near the pool's
//! figures.

mod allocator;
mod cache;
mod policy;
mod pool;
mod spill;
mod temp_store;

pub use allocator::{MMAP_THRESHOLD_BYTES, SYSTEM_MALLOC_VAR, tune_allocator};
pub use cache::{CacheStats, ChunkCache, Loader, Pinned};
pub use policy::{
    BuildKeyHasher, ChunkKey, ChunkMap, EvictionPolicy, KeyHasher, Lfu, Lru, Min, PolicyKind,
    SimulationResult, simulate,
};
pub use pool::{MemoryPool, Reclaim, Reservation};
pub use spill::{SpillCodec, SpillDirSpec, SpillFile, SpillManager, remove_all_spill_dirs};
pub use temp_store::TempStore;
