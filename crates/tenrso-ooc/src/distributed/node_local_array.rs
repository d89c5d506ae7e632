//! [`NodeLocalArray`]: an intermediate stored array whose chunks live on
//! the node-local scratch of the rank that computed them, read by any rank:
//! its own chunks from its own copy, the others' fetched from their owner.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::core::{Block, ChunkGrid, ChunkSet, DType, Error, Region, Result};
use crate::distributed::chunk_server::{self, Serving};
use crate::distributed::{Ranks, all_gather_u64s};
use crate::exec::Session;
use crate::io::ReadableArray;
use crate::store::{ZarrArray, write_atomically};
use crate::telemetry::Metrics;

/// One rank's view of an array every rank wrote part of into its own copy
/// (same layout, each chunk in the copy of the rank that computed it). A
/// chunk this rank does not hold is fetched from its owner — the stored
/// bytes, checksum included — into this rank's copy, then read from there
/// as its own (decoded and checked like any chunk, under the session's
/// limit); each chunk is fetched at most once. The copy serves this rank's
/// chunks to the others while the view lives.
#[derive(Debug)]
pub struct NodeLocalArray {
    local: Arc<ZarrArray>,
    name: String,
    /// The rank holding each stored chunk (by linear index).
    owners: HashMap<u64, u32>,
    stored: ChunkSet,
    ranks: Arc<dyn Ranks>,
    metrics: Arc<Metrics>,
    _serving: Serving,
}

impl NodeLocalArray {
    /// Shares `local` (this rank's copy, written) among the ranks of
    /// `session` under `name`, the same on every rank: a collective, once
    /// every rank has written its chunks.
    ///
    /// # Errors
    /// [`Error::Io`] when this rank's copy cannot be listed.
    pub fn share(session: &Session, local: Arc<ZarrArray>, name: &str) -> Result<Self> {
        let ranks = session.shared_ranks();
        let serving =
            chunk_server::serve(ranks.rank(), name, local.path(), session.metrics().clone());
        let mine: Vec<u64> = local.stored_chunk_set()?.iter().collect();
        let mut owners = HashMap::new();
        for (rank, theirs) in all_gather_u64s(&*ranks, &mine).into_iter().enumerate() {
            for chunk in theirs {
                owners.entry(chunk).or_insert(rank as u32);
            }
        }
        let mut stored = ChunkSet::builder(local.chunk_grid().num_chunks());
        let mut held: Vec<u64> = owners.keys().copied().collect();
        held.sort_unstable();
        for chunk in held {
            stored.insert(chunk);
        }
        Ok(Self {
            local,
            name: name.to_string(),
            owners,
            stored: stored.finish(),
            ranks,
            metrics: session.metrics().clone(),
            _serving: serving,
        })
    }

    /// This rank's copy.
    pub fn local(&self) -> &Arc<ZarrArray> {
        &self.local
    }

    /// Makes chunk `chunk` readable from this rank's copy: fetched from its
    /// owner unless this rank holds it (or it was never written).
    fn ensure_local(&self, chunk: &[u64]) -> Result<()> {
        let grid = self.local.chunk_grid();
        if !grid.contains_chunk(chunk) {
            return Ok(()); // the copy's own read names the error
        }
        let Some(&owner) = self.owners.get(&grid.chunk_linear_index(chunk)) else {
            return Ok(());
        };
        let path = self.local.chunk_path(chunk);
        if owner as usize == self.ranks.rank() || path.exists() {
            return Ok(());
        }
        let request = chunk_server::chunk_request(&self.name, &self.local.chunk_key(chunk));
        let answer = self.ranks.fetch(owner as usize, &request)?;
        let bytes = chunk_server::parse_answer(owner as usize, answer)?.ok_or_else(|| {
            Error::internal(format!(
                "rank {owner} no longer holds chunk {chunk:?} of {}",
                self.name
            ))
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_atomically(&path, &bytes)?;
        self.metrics.bytes_fetched.add(bytes.len() as u64);
        Ok(())
    }

    fn ensure_region(&self, region: &Region) -> Result<()> {
        let grid = self.local.chunk_grid();
        for chunk in ChunkGrid::iter_region(&grid.chunks_touching(region)) {
            self.ensure_local(&chunk)?;
        }
        Ok(())
    }
}

impl ReadableArray for NodeLocalArray {
    fn path(&self) -> &Path {
        self.local.path()
    }

    fn dtype(&self) -> DType {
        ReadableArray::dtype(&*self.local)
    }

    fn chunk_grid(&self) -> &ChunkGrid {
        self.local.chunk_grid()
    }

    fn chunk_working_set(&self) -> u64 {
        ReadableArray::chunk_working_set(&*self.local)
    }

    fn describe(&self) -> String {
        format!(
            "{}, node-local on {} ranks",
            ReadableArray::describe(&*self.local),
            self.ranks.size()
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        self.ensure_region(region)?;
        self.local.read_region_into(region, out)
    }

    fn stream_chunk_rows(
        &self,
        chunk: &[u64],
        slab_rows: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.ensure_local(chunk)?;
        ReadableArray::stream_chunk_rows(&*self.local, chunk, slab_rows, each)
    }

    fn stream_working_set(&self, slab_rows: u64) -> u64 {
        self.local.stream_working_set(slab_rows)
    }

    fn has_checksum(&self) -> bool {
        ReadableArray::has_checksum(&*self.local)
    }

    fn fingerprint(&self) -> Value {
        self.local.fingerprint()
    }

    fn stored_chunk_set(&self) -> Result<ChunkSet> {
        Ok(self.stored.clone())
    }

    fn fill_value(&self) -> f64 {
        ReadableArray::fill_value(&*self.local)
    }

    fn bytes_on_disk(&self) -> Result<u64> {
        ReadableArray::bytes_on_disk(&*self.local)
    }

    fn read_chunk_f32(&self, chunk: &[u64]) -> Result<Block<f32>> {
        self.ensure_local(chunk)?;
        self.local.read_chunk_f32(chunk)
    }

    fn read_chunk_f64(&self, chunk: &[u64]) -> Result<Block<f64>> {
        self.ensure_local(chunk)?;
        self.local.read_chunk_f64(chunk)
    }

    fn read_chunk_in_place_f32(&self, chunk: &[u64]) -> Result<Block<f32>> {
        self.ensure_local(chunk)?;
        self.local.read_chunk_in_place_f32(chunk)
    }

    fn read_chunk_in_place_f64(&self, chunk: &[u64]) -> Result<Block<f64>> {
        self.ensure_local(chunk)?;
        self.local.read_chunk_in_place_f64(chunk)
    }

    fn read_region_f32(&self, region: &Region) -> Result<Block<f32>> {
        self.ensure_region(region)?;
        self.local.read_region_f32(region)
    }

    fn read_region_f64(&self, region: &Region) -> Result<Block<f64>> {
        self.ensure_region(region)?;
        self.local.read_region_f64(region)
    }
}
