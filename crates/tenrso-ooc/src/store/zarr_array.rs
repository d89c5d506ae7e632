//! [`ZarrArray`]: a chunked array stored as a Zarr v3 directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use zarrs::array::CodecOptions;
use zarrs::array::{Array, ArrayError, ArrayMetadata, ArrayMetadataV3, CodecError};
use zarrs::storage::{ReadableStorageTraits, StorageError, WritableStorageTraits};

use crate::core::error::excerpt;
use crate::core::shape::join_dims;
use crate::core::{
    Block, ChunkGrid, ChunkSet, DType, Element, Elements, Error, Region, Result,
    physical_memory_cached,
};
use crate::dispatch_dtype;
use crate::io::{ReadableArray, SourceFormat, WritableArray, check_region_into};
use crate::store::array_spec::check_addressable;
use crate::store::zarr_metadata::{
    DirectLayout, MAX_METADATA_BYTES, METADATA_KEY, check_array_metadata, describe_codecs,
    direct_layout, json_dims, metadata_key, parse_fill_value,
};
use crate::store::{ArraySpec, AtomicFsStore, Durability};

mod direct_chunk;

use direct_chunk::DirectOpen;
pub(crate) use direct_chunk::zstd_stream_bytes;
mod listing;
mod resumable;

/// A chunked `f32`/`f64` array in a Zarr v3 directory store, readable and
/// writable by zarr-python ≥ 3.
///
/// The unit of I/O is the *stored chunk*: the chunk, or the shard when the
/// array is sharded. [`ZarrArray::chunk_grid`] is the grid of stored chunks;
/// reads and writes of a stored chunk are one file each, and writes are atomic
/// (see [`AtomicFsStore`]). Chunk data is exchanged as [`Block`]s clipped to
/// the array, so edge chunks are smaller than interior ones.
///
/// It is the [`ReadableArray`] and [`WritableArray`] of the store; files
/// read in place (`.npy`, raw, Arrow IPC, Parquet) are other readable
/// arrays, and [`open_array`](crate::store::open_array) opens either.
///
/// Reading a chunk that was never written gives the fill value. Reading a
/// chunk whose bytes fail to decode or whose checksum does not match gives
/// [`Error::Corrupt`], never numbers.
///
/// ```
/// use tenrso_ooc::{Block, DType};
/// use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.zarr");
/// let spec = ArraySpec::new(vec![5, 4], vec![2, 4], DType::F64)
///     .with_compression(Compression::Zstd { level: 1 });
/// let array = ZarrArray::create(&path, &spec)?;
/// // The last chunk row is clipped: rows 4..5.
/// array.write_chunk(&[2, 0], &Block::from_vec(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0])?)?;
/// let again = ZarrArray::open(&path)?;
/// assert_eq!(again.read_chunk::<f64>(&[2, 0])?.as_slice(), &[1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(again.read_chunk::<f64>(&[0, 0])?.as_slice(), &[0.0; 8]); // never written
/// assert_eq!(again.stored_chunks()?, vec![vec![2, 0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ZarrArray {
    path: PathBuf,
    store: Arc<AtomicFsStore>,
    array: Array<AtomicFsStore>,
    dtype: DType,
    grid: ChunkGrid,
    inner_chunk_shape: Option<Vec<u64>>,
    /// The fill value, as f64 (exact for both element types).
    fill: f64,
    /// Set when chunks are little-endian bytes, optionally zstd-compressed,
    /// optionally followed by a crc32c: they are then streamed from their
    /// file into one buffer (and, uncompressed, written directly), bypassing
    /// the generic codec pipeline and its copies.
    direct: Option<DirectLayout>,
    metadata: Value,
    codec_options: CodecOptions,
}

impl std::fmt::Debug for ZarrArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrArray")
            .field("path", &self.path)
            .field("dtype", &self.dtype)
            .field("shape", &self.grid.shape().dims())
            .field("chunk_shape", &self.grid.chunk_shape())
            .finish_non_exhaustive()
    }
}

impl ZarrArray {
    /// Whether [`create`](Self::create) may make an array at `path`:
    /// nothing there, or an empty directory. Reads only.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when `path` holds an array;
    /// [`Error::InvalidArgument`] when it holds anything else.
    pub fn check_creatable(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::invalid(format!(
                "{} is a symbolic link: a new array is created only at a path that does not exist (links are not followed)",
                path.display()
            )));
        }
        if path.join(METADATA_KEY).exists() {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        if path.exists() && fs::read_dir(path).map_or(true, |mut d| d.next().is_some()) {
            return Err(Error::invalid(format!(
                "{} exists and is not an empty directory: choose a new path for the array",
                path.display()
            )));
        }
        Ok(())
    }

    /// Creates an empty array at `path` (a directory, created if needed).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if `path` already holds an array, and
    /// [`Error::InvalidArgument`] if it is a file or a non-empty directory
    /// (nothing is touched then) or for an invalid spec;
    /// [`Error::Io`] when the directory cannot be written.
    pub fn create(path: impl AsRef<Path>, spec: &ArraySpec) -> Result<Self> {
        let path = path.as_ref();
        spec.validate()?;
        Self::check_creatable(path)?;
        let store = Arc::new(AtomicFsStore::new(path));
        let document = spec.metadata_json();
        let bytes = serde_json::to_vec_pretty(&document).expect("metadata serialises");
        store
            .set(&metadata_key(), bytes.into())
            .map_err(|e| storage_error(path, e))?;
        Self::from_document(path, store, document)
    }

    /// Opens the array at `path`.
    ///
    /// # Errors
    /// [`Error::NotAnArray`] when `zarr.json` is missing, malformed, not an
    /// array, or of a data type other than `float32`/`float64`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let not_array = |reason: String| Error::NotAnArray {
            path: path.to_path_buf(),
            reason,
        };
        if SourceFormat::of(path).is_some() && path.is_file() {
            return Err(not_array(
                "it is a file read in place (open it with store::open_array)".into(),
            ));
        }
        if !path.exists() {
            return Err(not_array("no such directory".into()));
        }
        // Memory follows from the document's size: bound it before reading.
        let document_len = fs::metadata(path.join(METADATA_KEY)).map_or(0, |m| m.len());
        if document_len > MAX_METADATA_BYTES {
            return Err(not_array(format!(
                "{METADATA_KEY} is {document_len} bytes, more than the {MAX_METADATA_BYTES} accepted"
            )));
        }
        let store = Arc::new(AtomicFsStore::new(path));
        let bytes = store
            .get(&metadata_key())
            .map_err(|e| storage_error(path, e))?
            .ok_or_else(|| not_array(format!("{METADATA_KEY} not found")))?;
        let document: Value = serde_json::from_slice(&bytes)
            .map_err(|e| not_array(format!("{METADATA_KEY} is not valid JSON: {e}")))?;
        Self::from_document(path, store, document)
    }

    /// Opens the array at `path` if it exists with exactly `spec`'s layout
    /// (shape, chunking, element type, codecs), else creates it. Used to
    /// resume a killed job: chunks already written are kept.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if an array exists with a different layout.
    pub fn create_or_resume(path: impl AsRef<Path>, spec: &ArraySpec) -> Result<Self> {
        let path = path.as_ref();
        if !path.join(METADATA_KEY).exists() {
            return Self::create(path, spec);
        }
        let existing = Self::open(path)?;
        let wanted = spec.metadata_json();
        let same_layout = [
            "shape",
            "data_type",
            "chunk_grid",
            "codecs",
            "chunk_key_encoding",
        ]
        .iter()
        .all(|k| existing.metadata[*k] == wanted[*k]);
        if !same_layout {
            return Err(Error::invalid(format!(
                "cannot resume into {}: it holds an array with another layout ({} {} chunks {}, codecs {})",
                path.display(),
                existing.dtype,
                join_dims(existing.shape()),
                join_dims(existing.grid.chunk_shape()),
                existing.codec_description()
            )));
        }
        Ok(existing)
    }

    fn from_document(path: &Path, store: Arc<AtomicFsStore>, document: Value) -> Result<Self> {
        let not_array = |reason: String| Error::NotAnArray {
            path: path.to_path_buf(),
            reason,
        };
        if document["node_type"] != "array" {
            return Err(not_array(format!(
                "{METADATA_KEY} describes a `{}`, not an array",
                excerpt(document["node_type"].as_str().unwrap_or("?"))
            )));
        }
        let type_name = excerpt(document["data_type"].as_str().unwrap_or("?"));
        let dtype = DType::from_zarr_name(&type_name).ok_or_else(|| {
            not_array(format!(
                "data type `{type_name}` is not supported (tenrso-ooc handles float32 and float64)"
            ))
        })?;
        if document["chunk_grid"]["name"] != "regular" {
            return Err(not_array("only regular chunk grids are supported".into()));
        }
        let shape = json_dims(&document["shape"])
            .ok_or_else(|| not_array("shape is not a list of non-negative integers".into()))?;
        let chunk_shape = json_dims(&document["chunk_grid"]["configuration"]["chunk_shape"])
            .ok_or_else(|| not_array("chunk_grid has no chunk_shape".into()))?;
        // Ranks that agree, at most 64 axes, chunk extents of at least 1.
        let grid = ChunkGrid::new(shape, chunk_shape).map_err(|e| not_array(e.to_string()))?;
        check_addressable(grid.shape().dims(), grid.chunk_shape(), dtype)
            .map_err(|e| not_array(e.to_string()))?;
        check_array_metadata(&document, grid.ndim())
            .map_err(|e| not_array(format!("invalid {METADATA_KEY}: {e}")))?;
        let metadata: ArrayMetadataV3 = serde_json::from_value(document.clone())
            .map_err(|e| not_array(format!("invalid {METADATA_KEY}: {e}")))?;
        let array = Array::new_with_metadata(store.clone(), "/", ArrayMetadata::V3(metadata))
            .map_err(|e| not_array(e.to_string()))?;
        let fill = parse_fill_value(&document["fill_value"], dtype).ok_or_else(|| {
            not_array(format!(
                "unsupported fill_value {}",
                excerpt(&document["fill_value"].to_string())
            ))
        })?;
        let direct = direct_layout(&document["codecs"]);
        let inner_chunk_shape = document["codecs"]
            .as_array()
            .and_then(|codecs| codecs.iter().find(|c| c["name"] == "sharding_indexed"))
            .and_then(|c| json_dims(&c["configuration"]["chunk_shape"]));
        let codec_options = CodecOptions::default()
            .with_store_empty_chunks(true)
            .with_validate_checksums(true)
            .with_concurrent_target(1);
        Ok(Self {
            path: path.to_path_buf(),
            store,
            array,
            dtype,
            grid,
            inner_chunk_shape,
            fill,
            direct,
            metadata: document,
            codec_options,
        })
    }

    /// The array directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The element type on disk.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The extent along each axis.
    pub fn shape(&self) -> &[u64] {
        self.grid.shape().dims()
    }

    /// The grid of stored chunks (shards when sharded).
    pub fn chunk_grid(&self) -> &ChunkGrid {
        &self.grid
    }

    /// The inner chunk shape when the array is sharded.
    pub fn inner_chunk_shape(&self) -> Option<&[u64]> {
        self.inner_chunk_shape.as_deref()
    }

    /// Uncompressed size of the whole array in bytes.
    pub fn nbytes(&self) -> u64 {
        self.grid.shape().num_elements() * self.dtype.size() as u64
    }

    /// Uncompressed size of one interior stored chunk in bytes.
    pub fn chunk_nbytes(&self) -> u64 {
        self.grid.chunk_elements() * self.dtype.size() as u64
    }

    /// Uncompressed size in bytes of the data of stored chunk `chunk`
    /// (smaller than [`ZarrArray::chunk_nbytes`] at the array's edges).
    ///
    /// # Panics
    /// If `chunk` is not in the grid.
    pub fn nbytes_of(&self, chunk: &[u64]) -> u64 {
        self.grid.chunk_region(chunk).num_elements() * self.dtype.size() as u64
    }

    /// Bytes held in memory while one stored chunk is read: the chunk
    /// itself for plain chunks (read straight into it, clipped in place at
    /// the edges), plus the streaming decoder's window and buffers for zstd
    /// chunks; four times the chunk for other codec chains, whose generic
    /// pipeline can hold the encoded bytes, a checksum-stripped copy, the
    /// decoded bytes and the typed block at once. (Writing is accounted by
    /// [`ArraySpec::chunk_working_set`].)
    pub fn chunk_working_set(&self) -> u64 {
        let chunk = self.chunk_nbytes();
        match self.direct {
            Some(DirectLayout { zstd: false, .. }) => chunk,
            Some(DirectLayout { zstd: true, .. }) => chunk + zstd_stream_bytes(chunk),
            None => working_set_of(chunk),
        }
    }

    /// Bytes held in memory while one stored chunk is written: plain chunks
    /// are written straight from the block (edge chunks padded from a fill
    /// buffer, or from a padded copy when clipped in an inner axis), other
    /// chains go through the generic pipeline (four times the chunk, as when
    /// reading).
    pub fn chunk_write_working_set(&self) -> u64 {
        let chunk = self.chunk_nbytes();
        match self.direct {
            Some(DirectLayout { zstd: false, .. }) => {
                plain_write_working_set(self.shape(), self.grid.chunk_shape(), chunk)
            }
            _ => working_set_of(chunk),
        }
    }

    /// The full `zarr.json` document.
    pub fn metadata(&self) -> &Value {
        &self.metadata
    }

    /// User attributes.
    pub fn attributes(&self) -> Map<String, Value> {
        self.metadata["attributes"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// Sets one user attribute and rewrites `zarr.json` atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the metadata cannot be written.
    pub fn set_attribute(&mut self, key: impl Into<String>, value: Value) -> Result<()> {
        let mut document = self.metadata.clone();
        if !document["attributes"].is_object() {
            document["attributes"] = Value::Object(Map::new());
        }
        document["attributes"][key.into()] = value;
        self.write_metadata(document)
    }

    /// Removes one user attribute (rewriting `zarr.json` atomically);
    /// false when there was none.
    ///
    /// # Errors
    /// [`Error::Io`] when the metadata cannot be written.
    pub fn remove_attribute(&mut self, key: &str) -> Result<bool> {
        let mut document = self.metadata.clone();
        let removed = document["attributes"]
            .as_object_mut()
            .and_then(|attributes| attributes.remove(key))
            .is_some();
        if removed {
            self.write_metadata(document)?;
        }
        Ok(removed)
    }

    fn write_metadata(&mut self, document: Value) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&document).expect("metadata serialises");
        self.store
            .set(&metadata_key(), bytes.into())
            .map_err(|e| storage_error(&self.path, e))?;
        self.metadata = document;
        Ok(())
    }

    /// The codec chain in words, e.g. `bytes → zstd:3 → crc32c`.
    pub fn codec_description(&self) -> String {
        describe_codecs(&self.metadata["codecs"])
    }

    /// True when every chunk (and every shard index) carries a `crc32c`
    /// checksum, so corruption is always detected (arrays written by other
    /// tools may lack one).
    pub fn has_checksum(&self) -> bool {
        fn chain_has_crc(codecs: &Value) -> bool {
            codecs.as_array().is_some_and(|list| {
                list.iter().any(|c| {
                    c["name"] == "crc32c"
                        || (c["name"] == "sharding_indexed"
                            && chain_has_crc(&c["configuration"]["codecs"])
                            && chain_has_crc(&c["configuration"]["index_codecs"]))
                })
            })
        }

        chain_has_crc(&self.metadata["codecs"])
    }

    /// The store key of a stored chunk, relative to the array directory
    /// (`c/0/3` with the default key encoding).
    pub fn chunk_key(&self, chunk: &[u64]) -> String {
        self.array.chunk_key(chunk).as_str().to_string()
    }

    /// The file holding a stored chunk.
    pub fn chunk_path(&self, chunk: &[u64]) -> PathBuf {
        self.store.key_path(&self.array.chunk_key(chunk))
    }

    fn check_chunk(&self, chunk: &[u64]) -> Result<()> {
        if self.grid.contains_chunk(chunk) {
            Ok(())
        } else {
            Err(Error::ChunkOutOfBounds {
                array: self.path.clone(),
                chunk: chunk.to_vec(),
                grid: self.grid.grid_shape().to_vec(),
            })
        }
    }

    fn check_dtype<T: Element>(&self) -> Result<()> {
        if T::DTYPE == self.dtype {
            Ok(())
        } else {
            Err(Error::DtypeMismatch {
                array: self.path.clone(),
                stored: self.dtype,
                requested: T::DTYPE,
            })
        }
    }

    /// Reads a stored chunk, clipped to the array; the fill value if it was
    /// never written.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if its bytes do not decode or fail the checksum;
    /// [`Error::DtypeMismatch`], [`Error::ChunkOutOfBounds`], [`Error::Io`].
    pub fn read_chunk<T: Element>(&self, chunk: &[u64]) -> Result<Block<T>> {
        self.read_chunk_as(chunk, false)
    }

    /// [`ZarrArray::read_chunk`], but an uncompressed chunk of
    /// [`MAP_MIN_BYTES`](crate::io::MAP_MIN_BYTES) or more inside the array
    /// is read in place: mapped read-only from the page cache and
    /// checksummed there, not copied ([`Block::is_mapped`]; writing to the
    /// block copies it first). Worth it for a chunk used later, whose copy
    /// would have left the CPU caches by then; a chunk used right away is
    /// better copied, in pieces that stay in the caches for the next step.
    ///
    /// ```
    /// use tenrso_ooc::exec::Session;
    /// use tenrso_ooc::ops::{Fill, Generate};
    /// use tenrso_ooc::store::ArraySpec;
    /// use tenrso_ooc::DType;
    /// let dir = tempfile::tempdir().unwrap();
    /// let spec = ArraySpec::new(vec![2048, 512], vec![1024, 512], DType::F64); // 4 MiB chunks
    /// let a = Generate::new(dir.path().join("a.zarr"), spec, Fill::Range)
    ///     .plan(&Session::default())?
    ///     .run()?
    ///     .array;
    /// let chunk = a.read_chunk_in_place::<f64>(&[1, 0])?;
    /// assert_eq!(chunk.is_mapped(), tenrso_ooc::io::chunk_maps_enabled());
    /// assert_eq!(chunk, a.read_chunk::<f64>(&[1, 0])?);
    /// # Ok::<(), tenrso_ooc::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ZarrArray::read_chunk`].
    pub fn read_chunk_in_place<T: Element>(&self, chunk: &[u64]) -> Result<Block<T>> {
        self.read_chunk_as(chunk, true)
    }

    fn read_chunk_as<T: Element>(&self, chunk: &[u64], in_place: bool) -> Result<Block<T>> {
        Ok(self.try_read_chunk_as(chunk, in_place)?.unwrap_or_else(|| {
            Block::filled(
                self.grid.chunk_region(chunk).shape().to_vec(),
                T::from_f64(self.fill),
            )
        }))
    }

    /// Reads a stored chunk, or `None` if it was never written.
    ///
    /// # Errors
    /// As [`ZarrArray::read_chunk`].
    pub fn try_read_chunk<T: Element>(&self, chunk: &[u64]) -> Result<Option<Block<T>>> {
        self.try_read_chunk_as(chunk, false)
    }

    fn try_read_chunk_as<T: Element>(
        &self,
        chunk: &[u64],
        in_place: bool,
    ) -> Result<Option<Block<T>>> {
        self.check_dtype::<T>()?;
        self.check_chunk(chunk)?;
        self.check_decodable(chunk)?;
        let direct = match self.direct {
            Some(layout) => self.open_direct(chunk, layout)?,
            None => DirectOpen::Generic,
        };
        let region = self.grid.chunk_region(chunk);
        // An edge chunk is compacted to its corner in its own buffer instead.
        let in_place = in_place && region.shape() == self.grid.chunk_shape();
        let full: Option<Elements<T>> = match direct {
            DirectOpen::Absent => None,
            DirectOpen::Stream(stream) => Some(stream.into_elements(self, chunk, in_place)?),
            DirectOpen::Generic => self
                .array
                .retrieve_chunk_if_exists_opt(chunk, &self.codec_options)
                .map_err(|e| self.chunk_error(chunk, e))?
                .map(Elements::Owned),
        };
        let Some(full) = full else {
            return Ok(None);
        };
        let full = Block::from_elements(self.grid.chunk_shape().to_vec(), full)
            .map_err(|e| self.corrupt(chunk, e.to_string()))?;
        Ok(Some(full.into_corner(region.shape())))
    }

    /// Refuses to decode a chunk that could never fit in this machine's
    /// memory (a hostile or mistaken chunk shape) instead of aborting on
    /// the allocation. Operations hold chunks to their memory limit first.
    fn check_decodable(&self, chunk: &[u64]) -> Result<()> {
        let machine = physical_memory_cached();
        let required = self.chunk_working_set();
        if required > machine {
            return Err(Error::MemoryLimit {
                remedy: crate::core::Remedy::SmallerChunks,
                limit: machine,
                required,
                what: format!(
                    "decoding chunk {chunk:?} of {} (chunk shape {}), more than this machine's memory",
                    self.path.display(),
                    join_dims(self.grid.chunk_shape())
                ),
            });
        }
        Ok(())
    }

    /// Encodes and writes a stored chunk atomically. `block` has the chunk's
    /// clipped shape ([`ChunkGrid::chunk_region`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the block has the wrong shape;
    /// [`Error::DtypeMismatch`], [`Error::ChunkOutOfBounds`], [`Error::Io`].
    pub fn write_chunk<T: Element>(&self, chunk: &[u64], block: &Block<T>) -> Result<()> {
        self.check_dtype::<T>()?;
        self.check_chunk(chunk)?;
        let region = self.grid.chunk_region(chunk);
        if block.shape() != region.shape() {
            return Err(Error::invalid(format!(
                "array {}: chunk {chunk:?} has shape {}, got a block of shape {}",
                self.path.display(),
                join_dims(region.shape()),
                join_dims(block.shape())
            )));
        }
        if let Some(DirectLayout { zstd: false, crc }) = self.direct {
            return if region.shape().get(1..) == self.grid.chunk_shape().get(1..) {
                // Whole, or clipped along the first axis only: the block is
                // a prefix of the stored chunk, the rest is fill.
                self.write_plain_chunk(chunk, block.as_slice(), crc)
            } else {
                let mut padded =
                    Block::<T>::filled(self.grid.chunk_shape().to_vec(), T::from_f64(self.fill));
                padded.insert(&vec![0; region.ndim()], block);
                self.write_plain_chunk(chunk, padded.as_slice(), crc)
            };
        }
        let result = if region.shape() == self.grid.chunk_shape() {
            self.array
                .store_chunk_opt(chunk, block.as_slice(), &self.codec_options)
        } else {
            // Edge chunk: zarr stores the full chunk shape, padded with the fill value.
            let mut padded =
                Block::<T>::filled(self.grid.chunk_shape().to_vec(), T::from_f64(self.fill));
            padded.insert(&vec![0; region.ndim()], block);
            self.array
                .store_chunk_opt(chunk, padded.as_slice(), &self.codec_options)
        };
        result.map_err(|e| self.chunk_error(chunk, e))
    }

    /// Reads an arbitrary region, assembling it from the chunks it touches.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the region is outside the array, and the
    /// errors of [`ZarrArray::read_chunk`].
    pub fn read_region<T: Element>(&self, region: &Region) -> Result<Block<T>> {
        self.check_dtype::<T>()?;
        region.check_within(self.shape())?;
        let mut out = Block::<T>::zeros(region.shape().to_vec());
        for chunk in ChunkGrid::iter_region(&self.grid.chunks_touching(region)) {
            let chunk_region = self.grid.chunk_region(&chunk);
            let overlap = chunk_region
                .intersect(region)
                .expect("touching chunks overlap");
            let data = self.read_chunk::<T>(&chunk)?;
            let part = data.extract(&overlap.relative_to(chunk_region.start()));
            out.insert(overlap.relative_to(region.start()).start(), &part);
        }
        Ok(out)
    }

    /// Writes an arbitrary region. Chunks only partly covered are read,
    /// patched and rewritten (each rewrite is atomic).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the region is outside the array or the
    /// block does not have its shape; the errors of
    /// [`ZarrArray::read_chunk`]/[`ZarrArray::write_chunk`].
    pub fn write_region<T: Element>(&self, region: &Region, block: &Block<T>) -> Result<()> {
        self.check_dtype::<T>()?;
        region.check_within(self.shape())?;
        if block.shape() != region.shape() {
            return Err(Error::invalid(format!(
                "region {region} has shape {}, got a block of shape {}",
                join_dims(region.shape()),
                join_dims(block.shape())
            )));
        }
        for chunk in ChunkGrid::iter_region(&self.grid.chunks_touching(region)) {
            let chunk_region = self.grid.chunk_region(&chunk);
            let overlap = chunk_region
                .intersect(region)
                .expect("touching chunks overlap");
            let part = block.extract(&overlap.relative_to(region.start()));
            let data = if overlap == chunk_region {
                part
            } else {
                let mut data = self.read_chunk::<T>(&chunk)?;
                data.insert(overlap.relative_to(chunk_region.start()).start(), &part);
                data
            };
            self.write_chunk(&chunk, &data)?;
        }
        Ok(())
    }

    /// Sets how chunk writes from now on reach the disk (see
    /// [`Durability`]; an array is opened or created with
    /// [`Durability::Chunk`]).
    pub fn set_durability(&self, durability: Durability) {
        self.store.set_durability(durability);
    }

    /// Waits until every chunk written so far is durable (see
    /// [`Durability::Batch`]); reads of this array see them before.
    ///
    /// # Errors
    /// [`Error::Io`] naming the array when a batch failed to commit: some
    /// chunks written since the last flush may be missing.
    pub fn flush(&self) -> Result<()> {
        self.store.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// How chunk writes through this array reach the disk now.
    pub fn durability(&self) -> Durability {
        self.store.durability()
    }

    /// Ends an operation's writes: waits until they are durable (see
    /// [`flush`](Self::flush)), then puts the array back to
    /// [`Durability::Chunk`] and buffered writes, so whoever writes through it next (a Python
    /// slice assignment, another operation) is synced per chunk unless
    /// told otherwise — nothing is left queued for a process that exits
    /// without dropping the array.
    ///
    /// # Errors
    /// As [`flush`](Self::flush) (the durability is reset anyway).
    pub fn end_writes(&self) -> Result<()> {
        let flushed = self.flush();
        self.set_durability(Durability::Chunk);
        self.set_uncached_writes(false);
        flushed
    }

    /// Whether chunks of [`UNCACHED_WRITE_MIN_BYTES`] or more written from
    /// now on go around the page cache (see
    /// [`AtomicFsStore::set_uncached_writes`]; off when an array is opened
    /// or created, and again after [`end_writes`](Self::end_writes)).
    ///
    /// [`UNCACHED_WRITE_MIN_BYTES`]: crate::store::UNCACHED_WRITE_MIN_BYTES
    pub fn set_uncached_writes(&self, on: bool) {
        self.store.set_uncached_writes(on);
    }

    /// True when the stored chunk has been written.
    ///
    /// # Errors
    /// [`Error::Io`] when the store cannot be queried.
    pub fn chunk_exists(&self, chunk: &[u64]) -> Result<bool> {
        self.check_chunk(chunk)?;
        let size = self
            .store
            .size_key(&self.array.chunk_key(chunk))
            .map_err(|e| storage_error(&self.path, e))?;
        Ok(size.is_some())
    }

    fn corrupt(&self, chunk: &[u64], reason: String) -> Error {
        Error::Corrupt {
            array: self.path.clone(),
            chunk: chunk.to_vec(),
            key: self.chunk_key(chunk),
            reason,
        }
    }

    /// Maps a zarrs error on `chunk` to ours: decoding problems are corruption.
    fn chunk_error(&self, chunk: &[u64], err: ArrayError) -> Error {
        match err {
            ArrayError::StorageError(StorageError::IOError(io))
            | ArrayError::CodecError(CodecError::StorageError(StorageError::IOError(io))) => {
                Error::io(
                    self.chunk_path(chunk),
                    std::io::Error::new(io.kind(), io.to_string()),
                )
            }
            // Decompressors report malformed input as I/O errors: that is a
            // corrupt chunk, not a failing disk (reads fail as StorageError).
            ArrayError::CodecError(CodecError::IOError(io)) => {
                self.corrupt(chunk, format!("cannot decode: {io}"))
            }

            ArrayError::CodecError(CodecError::InvalidChecksum) => {
                self.corrupt(chunk, "checksum mismatch".into())
            }
            ArrayError::CodecError(e) => self.corrupt(chunk, e.to_string()),
            e @ (ArrayError::UnexpectedChunkDecodedSize(..)
            | ArrayError::InvalidBytesInputSize(..)
            | ArrayError::UnexpectedChunkDecodedShape(..)) => self.corrupt(chunk, e.to_string()),
            other => Error::Store {
                array: self.path.clone(),
                message: format!("chunk {chunk:?}: {other}"),
            },
        }
    }
}

impl ReadableArray for ZarrArray {
    fn path(&self) -> &Path {
        &self.path
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn chunk_grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn chunk_working_set(&self) -> u64 {
        ZarrArray::chunk_working_set(self)
    }

    fn describe(&self) -> String {
        self.codec_description()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn stream_chunk_rows(
        &self,
        chunk: &[u64],
        slab_rows: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        ZarrArray::stream_chunk_rows(self, chunk, slab_rows, each)
    }

    fn stream_working_set(&self, slab_rows: u64) -> u64 {
        let chunk = self.chunk_nbytes();
        let row = crate::io::chunk_row_bytes(self);
        let slab = slab_rows.saturating_mul(row).min(chunk);
        match (self.direct, &self.inner_chunk_shape) {
            (Some(DirectLayout { zstd: false, .. }), _) => slab,
            (Some(DirectLayout { zstd: true, .. }), _) => slab + zstd_stream_bytes(chunk),
            // A band of whole inner chunks, decoded through the pipeline.
            (None, Some(inner)) => {
                let band = slab_rows
                    .next_multiple_of(inner[0].max(1))
                    .saturating_mul(row);
                working_set_of(band.min(chunk))
            }
            (None, None) => working_set_of(chunk),
        }
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        check_region_into(self, region, out)?;
        dispatch_dtype!(self.dtype, T => {
            let block = ZarrArray::read_region::<T>(self, region)?;
            out.copy_from_slice(bytemuck::cast_slice(block.as_slice()));
        });
        Ok(())
    }

    fn has_checksum(&self) -> bool {
        ZarrArray::has_checksum(self)
    }

    /// The `zarr.json` document: layout, and the attributes where
    /// generators and imports record what filled the array.
    fn fingerprint(&self) -> Value {
        self.metadata.clone()
    }

    fn stored_chunk_set(&self) -> Result<ChunkSet> {
        ZarrArray::stored_chunk_set(self)
    }

    fn fill_value(&self) -> f64 {
        self.fill
    }

    fn bytes_on_disk(&self) -> Result<u64> {
        ZarrArray::bytes_on_disk(self)
    }

    fn stale_temporaries(&self) -> Result<Vec<PathBuf>> {
        ZarrArray::stale_temporaries(self)
    }

    fn read_chunk_f32(&self, chunk: &[u64]) -> Result<Block<f32>> {
        ZarrArray::read_chunk(self, chunk)
    }

    fn read_chunk_f64(&self, chunk: &[u64]) -> Result<Block<f64>> {
        ZarrArray::read_chunk(self, chunk)
    }

    fn read_chunk_in_place_f32(&self, chunk: &[u64]) -> Result<Block<f32>> {
        ZarrArray::read_chunk_in_place(self, chunk)
    }

    fn read_chunk_in_place_f64(&self, chunk: &[u64]) -> Result<Block<f64>> {
        ZarrArray::read_chunk_in_place(self, chunk)
    }

    fn read_region_f32(&self, region: &Region) -> Result<Block<f32>> {
        ZarrArray::read_region(self, region)
    }

    fn read_region_f64(&self, region: &Region) -> Result<Block<f64>> {
        ZarrArray::read_region(self, region)
    }
}

impl WritableArray for ZarrArray {
    fn write_chunk_f32(&self, chunk: &[u64], block: &Block<f32>) -> Result<()> {
        ZarrArray::write_chunk(self, chunk, block)
    }

    fn write_chunk_f64(&self, chunk: &[u64], block: &Block<f64>) -> Result<()> {
        ZarrArray::write_chunk(self, chunk, block)
    }

    fn write_region_f32(&self, region: &Region, block: &Block<f32>) -> Result<()> {
        ZarrArray::write_region(self, region, block)
    }

    fn write_region_f64(&self, region: &Region, block: &Block<f64>) -> Result<()> {
        ZarrArray::write_region(self, region, block)
    }
}

/// The fill buffer a plain edge chunk clipped along its first axis only is
/// padded from when written (repeated as needed; at most a chunk).
pub(crate) const PAD_BYTES: u64 = 1 << 20;

/// Bytes held while a plain chunk of `chunk_bytes` of an array of `shape`
/// in chunks of `chunk_shape` is written: the block alone; a fill buffer
/// beside it when edge chunks are clipped along the first axis only; a
/// padded copy when they are clipped in another axis.
pub(crate) fn plain_write_working_set(shape: &[u64], chunk_shape: &[u64], chunk_bytes: u64) -> u64 {
    let clipped = |axis: usize| !shape[axis].is_multiple_of(chunk_shape[axis].max(1));
    if (1..shape.len()).any(clipped) {
        2 * chunk_bytes
    } else if !shape.is_empty() && clipped(0) {
        chunk_bytes + chunk_bytes.min(PAD_BYTES)
    } else {
        chunk_bytes
    }
}

/// Bytes in memory while a stored chunk of `chunk_bytes` is read or written.
pub(crate) fn working_set_of(chunk_bytes: u64) -> u64 {
    chunk_bytes.saturating_mul(4)
}

fn storage_error(path: &Path, err: StorageError) -> Error {
    match err {
        StorageError::IOError(io) => {
            Error::io(path, std::io::Error::new(io.kind(), io.to_string()))
        }
        other => Error::Store {
            array: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}
