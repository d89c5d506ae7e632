//! [`ArraySpec`]: everything needed to create a stored array.

use serde_json::{Map, Value, json};

use crate::core::shape::join_dims;
use crate::core::{ChunkGrid, DType, Error, Result};
use crate::store::Compression;

/// The description of an array to create: shape, chunking, element type, codec
/// chain, optional sharding and user attributes.
///
/// The codec chain is always `bytes` (little endian) → optional compressor →
/// `crc32c`, so that corrupt chunks are detected on read. With sharding, each
/// shard is one stored object made of inner chunks of `chunk_shape`, each
/// encoded with that chain, and the shard index is checksummed too.
///
/// ```
/// use tenrso_ooc::DType;
/// use tenrso_ooc::store::{ArraySpec, Compression};
/// let spec = ArraySpec::new(vec![4096, 4096], vec![512, 512], DType::F64)
///     .with_compression(Compression::Zstd { level: 1 })
///     .with_shards(vec![2048, 2048]);
/// assert!(spec.validate().is_ok());
/// assert_eq!(spec.storage_chunk_shape(), &[2048, 2048]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    /// Extent along each axis.
    pub shape: Vec<u64>,
    /// Shape of a chunk (the inner chunk when sharded).
    pub chunk_shape: Vec<u64>,
    /// Element type.
    pub dtype: DType,
    /// Compressor of each chunk.
    pub compression: Compression,
    /// Shape of a shard, a multiple of `chunk_shape`; `None` for no sharding.
    pub shard_shape: Option<Vec<u64>>,
    /// User attributes stored in `zarr.json`.
    pub attributes: Map<String, Value>,
    /// The value of every element of a chunk never written (0 unless set).
    pub fill_value: f64,
}

impl ArraySpec {
    /// An uncompressed, unsharded array.
    pub fn new(shape: Vec<u64>, chunk_shape: Vec<u64>, dtype: DType) -> Self {
        Self {
            shape,
            chunk_shape,
            dtype,
            compression: Compression::None,
            shard_shape: None,
            attributes: Map::new(),
            fill_value: 0.0,
        }
    }

    /// Sets the fill value: what chunks never written hold (rounded to the
    /// element type).
    pub fn with_fill_value(mut self, fill_value: f64) -> Self {
        self.fill_value = match self.dtype {
            DType::F32 => f64::from(fill_value as f32),
            DType::F64 => fill_value,
        };
        self
    }

    /// Sets the compressor.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Groups chunks into shards of `shard_shape`.
    pub fn with_shards(mut self, shard_shape: Vec<u64>) -> Self {
        self.shard_shape = Some(shard_shape);
        self
    }

    /// Adds a user attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: Value) -> Self {
        self.attributes.insert(key.into(), value);
        self
    }

    /// The shape of one stored object: the shard when sharded, else the chunk.
    /// This is the unit of I/O and of atomic writes.
    pub fn storage_chunk_shape(&self) -> &[u64] {
        self.shard_shape.as_deref().unwrap_or(&self.chunk_shape)
    }

    /// Bytes held in memory while one stored chunk of this array is read or
    /// written (see [`chunk_working_set`](crate::store::ZarrArray::chunk_working_set)).
    pub fn chunk_working_set(&self) -> u64 {
        let elements: u64 = self.storage_chunk_shape().iter().product();
        let bytes = elements * self.dtype.size() as u64;
        if self.compression == Compression::None && self.shard_shape.is_none() {
            // Plain chunks: read and written without codec buffers; an edge
            // chunk clipped in an inner axis is written from a padded copy.
            crate::store::zarr_array::plain_write_working_set(&self.shape, &self.chunk_shape, bytes)
        } else {
            crate::store::zarr_array::working_set_of(bytes)
        }
    }

    /// The most bytes the array takes on disk once `writers` threads have
    /// written every chunk: each chunk at its full (padded) size plus what
    /// a compressor or checksum may add (at most 1/128 and 64 bytes), one
    /// atomic-write temporary per writer, and 64 KiB of metadata.
    ///
    /// ```
    /// use tenrso_ooc::{DType, store::ArraySpec};
    /// let spec = ArraySpec::new(vec![1000, 1000], vec![500, 400], DType::F64);
    /// let chunk = 500 * 400 * 8;
    /// let raw = 6 * chunk; // 6 chunks, the edge ones padded
    /// let bound = spec.stored_bytes_bound(2);
    /// assert!(bound >= raw + 2 * chunk); // and a temporary per writer
    /// assert!(bound < (raw + 2 * chunk) * 101 / 100 + (64 << 10));
    /// ```
    pub fn stored_bytes_bound(&self, writers: u64) -> u64 {
        let itemsize = self.dtype.size() as u64;
        let chunks: u64 = self
            .shape
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&n, &c)| n.div_ceil(c.max(1)))
            .product();
        let chunk = self.chunk_shape.iter().product::<u64>() * itemsize;
        let storage = self.storage_chunk_shape().iter().product::<u64>() * itemsize;
        chunks.saturating_mul(chunk + chunk / 128 + 64)
            + writers.saturating_mul(storage + storage / 128 + 64)
            + (64 << 10)
    }

    /// Checks ranks, extents and the shard/chunk divisibility.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the offending shape.
    pub fn validate(&self) -> Result<()> {
        let grid = ChunkGrid::new(self.shape.clone(), self.chunk_shape.clone())?;
        if let Some(shard) = &self.shard_shape {
            ChunkGrid::new(self.shape.clone(), shard.clone())?;
            if shard.iter().zip(&self.chunk_shape).any(|(s, c)| s % c != 0) {
                return Err(Error::invalid(format!(
                    "shard shape {} is not a multiple of the chunk shape {}",
                    join_dims(shard),
                    join_dims(&self.chunk_shape)
                )));
            }
        }
        check_addressable(grid.shape().dims(), self.storage_chunk_shape(), self.dtype)
    }

    /// The `zarr.json` document of this array.
    pub(crate) fn metadata_json(&self) -> Value {
        let bytes = json!({ "name": "bytes", "configuration": { "endian": "little" } });
        let crc = json!({ "name": "crc32c" });
        let mut chunk_codecs = vec![bytes.clone()];
        chunk_codecs.extend(self.compression.codec_metadata(self.dtype));
        chunk_codecs.push(crc.clone());
        let (grid_chunk_shape, codecs) = match &self.shard_shape {
            None => (&self.chunk_shape, chunk_codecs),
            Some(shard) => (
                shard,
                vec![json!({
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": self.chunk_shape,
                        "codecs": chunk_codecs,
                        "index_codecs": [bytes, crc],
                        "index_location": "end"
                    }
                })],
            ),
        };
        json!({
            "zarr_format": 3,
            "node_type": "array",
            "shape": self.shape,
            "data_type": self.dtype.zarr_name(),
            "chunk_grid": {
                "name": "regular",
                "configuration": { "chunk_shape": grid_chunk_shape }
            },
            "chunk_key_encoding": { "name": "default", "configuration": { "separator": "/" } },
            "fill_value": fill_value_json(self.fill_value),
            "codecs": codecs,
            "attributes": self.attributes,
        })
    }
}

/// A fill value as Zarr v3 writes it: a number, or `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
fn fill_value_json(fill: f64) -> Value {
    match fill {
        f if f.is_nan() => json!("NaN"),
        f64::INFINITY => json!("Infinity"),
        f64::NEG_INFINITY => json!("-Infinity"),
        f => json!(f),
    }
}

/// Checks that the array's and one stored chunk's sizes in bytes can be
/// addressed (no overflow; a chunk fits in memory addressing).
pub(crate) fn check_addressable(shape: &[u64], chunk_shape: &[u64], dtype: DType) -> Result<()> {
    let itemsize = dtype.size() as u64;
    let bytes = |dims: &[u64]| dims.iter().try_fold(itemsize, |a, &d| a.checked_mul(d));
    match (bytes(shape), bytes(chunk_shape)) {
        (Some(_), Some(c)) if c <= isize::MAX as u64 => Ok(()),
        _ => Err(Error::invalid(format!(
            "array {} with chunks {} is too large to address",
            join_dims(shape),
            join_dims(chunk_shape)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let ok = ArraySpec::new(vec![10, 10], vec![4, 4], DType::F32);
        assert!(ok.validate().is_ok());
        let err = ok.clone().with_shards(vec![6, 8]).validate().unwrap_err();
        assert!(err.to_string().contains("not a multiple"), "{err}");
        let err = ArraySpec::new(vec![10, 10], vec![4], DType::F32)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("axes"), "{err}");
        let err = ArraySpec::new(vec![u64::MAX / 2, 4], vec![1, 1], DType::F64)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn metadata_has_checksummed_chain() {
        let spec = ArraySpec::new(vec![8], vec![4], DType::F64)
            .with_compression(Compression::Zstd { level: 7 });
        let m = spec.metadata_json();
        let names: Vec<&str> = m["codecs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["bytes", "zstd", "crc32c"]);
        assert_eq!(m["codecs"][1]["configuration"]["level"], 7);
        let sharded = spec.with_shards(vec![8]).metadata_json();
        assert_eq!(sharded["codecs"][0]["name"], "sharding_indexed");
        assert_eq!(
            sharded["chunk_grid"]["configuration"]["chunk_shape"],
            json!([8])
        );
    }
}
