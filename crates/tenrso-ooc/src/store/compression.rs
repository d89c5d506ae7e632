//! [`Compression`]: the compressor in a stored array's codec chain.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::core::{DType, Error, Result};

/// The optional compressor between the `bytes` codec and the `crc32c`
/// checksum: `none`, `zstd[:LEVEL]` (levels 1–22, default 3) or `lz4` (Blosc
/// with the LZ4 compressor and byte shuffle, as zarr-python's `BloscCodec`).
///
/// ```
/// use tenrso_ooc::store::Compression;
/// assert_eq!("zstd:5".parse::<Compression>().unwrap(), Compression::Zstd { level: 5 });
/// assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd { level: 3 });
/// assert_eq!(Compression::Lz4.to_string(), "lz4");
/// assert!("zstd:40".parse::<Compression>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compressor: chunks are raw little-endian bytes plus a checksum.
    #[default]
    None,
    /// Zstandard at the given level (1–22).
    Zstd {
        /// Compression level, 1 (fastest) to 22 (smallest).
        level: u8,
    },
    /// Blosc with LZ4 and byte shuffle.
    Lz4,
}

impl Compression {
    /// The default zstd level when none is given.
    pub const DEFAULT_ZSTD_LEVEL: u8 = 3;

    /// The Zarr v3 codec metadata of the compressor, `None` for [`Compression::None`].
    pub(crate) fn codec_metadata(self, dtype: DType) -> Option<Value> {
        match self {
            Self::None => None,
            Self::Zstd { level } => Some(json!({
                "name": "zstd",
                "configuration": { "level": level, "checksum": false }
            })),
            Self::Lz4 => Some(json!({
                "name": "blosc",
                "configuration": {
                    "cname": "lz4",
                    "clevel": 5,
                    "shuffle": "shuffle",
                    "typesize": dtype.size(),
                    "blocksize": 0
                }
            })),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, level) = match lower.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (lower.as_str(), None),
        };
        match (name, level) {
            ("none", None) => Ok(Self::None),
            ("lz4" | "blosc-lz4", None) => Ok(Self::Lz4),
            ("zstd", None) => Ok(Self::Zstd {
                level: Self::DEFAULT_ZSTD_LEVEL,
            }),
            ("zstd", Some(level)) => match level.parse::<u8>() {
                Ok(level @ 1..=22) => Ok(Self::Zstd { level }),
                _ => Err(Error::invalid(format!(
                    "bad zstd level `{level}`: expected 1 to 22"
                ))),
            },
            _ => Err(Error::invalid(format!(
                "unknown codec `{s}`: expected none, zstd[:LEVEL] or lz4"
            ))),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Zstd { level } => write!(f, "zstd:{level}"),
            Self::Lz4 => f.write_str("lz4"),
        }
    }
}
