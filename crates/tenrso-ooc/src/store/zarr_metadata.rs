//! Reading Zarr v3 metadata documents: the codec chain (in words, and
//! whether it is the plain `bytes` [→ `crc32c`] layout read without the
//! codec pipeline), fill values, chunk key encodings.

use serde_json::Value;
use zarrs::storage::StoreKey;

use crate::core::DType;
use crate::core::shape::join_dims;

/// Name of the Zarr v3 metadata document in an array directory.
pub(crate) const METADATA_KEY: &str = "zarr.json";

/// The store key of the metadata document.
pub(crate) fn metadata_key() -> StoreKey {
    StoreKey::new(METADATA_KEY).expect("valid key")
}

/// `Some(has_crc)` when the codec chain is just `bytes` (little endian) and
/// optionally `crc32c` at the end, on a little-endian machine.
pub(crate) fn plain_layout(codecs: &Value) -> Option<bool> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let list = codecs.as_array()?;
    let bytes_le = |c: &Value| {
        c["name"] == "bytes"
            && (c["configuration"]["endian"] == "little" || c["configuration"]["endian"].is_null())
    };
    let crc_end = |c: &Value| {
        c["name"] == "crc32c"
            && (c["configuration"].is_null()
                || c["configuration"]["location"].is_null()
                || c["configuration"]["location"] == "end")
    };
    match list.as_slice() {
        [b] if bytes_le(b) => Some(false),
        [b, c] if bytes_le(b) && crc_end(c) => Some(true),
        _ => None,
    }
}

/// The fill value as f64: a number, `"NaN"`, `"Infinity"`, `"-Infinity"`, or
/// a hexadecimal bit pattern (`"0x7fc00000"`) of the element type.
pub(crate) fn parse_fill_value(value: &Value, dtype: DType) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            hex => {
                let bits = u64::from_str_radix(hex.strip_prefix("0x")?, 16).ok()?;
                match dtype {
                    DType::F32 => Some(f64::from(f32::from_bits(u32::try_from(bits).ok()?))),
                    DType::F64 => Some(f64::from_bits(bits)),
                }
            }
        },
        _ => None,
    }
}

/// Turns store keys back into chunk coordinates, for the array's chunk key
/// encoding (`default`: `c/1/2`; `v2`: `1.2`).
pub(crate) struct ChunkKeyDecoder {
    prefix: Option<&'static str>,
    separator: char,
    ndim: usize,
}

impl ChunkKeyDecoder {
    pub(crate) fn of(metadata: &Value, ndim: usize) -> Self {
        let encoding = &metadata["chunk_key_encoding"];
        let v2 = encoding["name"] == "v2";
        let default_sep = if v2 { "." } else { "/" };
        let separator = encoding["configuration"]["separator"]
            .as_str()
            .unwrap_or(default_sep)
            .chars()
            .next()
            .unwrap_or('/');
        Self {
            prefix: (!v2).then_some("c"),
            separator,
            ndim,
        }
    }

    pub(crate) fn decode(&self, key: &str) -> Option<Vec<u64>> {
        let rest = match self.prefix {
            Some(p) => {
                let rest = key.strip_prefix(p)?;
                if rest.is_empty() {
                    return (self.ndim == 0).then(Vec::new);
                }
                rest.strip_prefix(self.separator)?
            }
            None if self.ndim == 0 => return (key == "0").then(Vec::new),
            None => key,
        };
        let coords: Vec<u64> = rest
            .split(self.separator)
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        (coords.len() == self.ndim).then_some(coords)
    }
}

pub(crate) fn json_dims(value: &Value) -> Option<Vec<u64>> {
    value.as_array()?.iter().map(Value::as_u64).collect()
}

/// Renders a codec list as `bytes → zstd:3 → crc32c`.
pub(crate) fn describe_codecs(codecs: &Value) -> String {
    let Some(list) = codecs.as_array() else {
        return "?".into();
    };
    list.iter()
        .map(|codec| {
            let name = codec["name"].as_str().unwrap_or("?");
            let config = &codec["configuration"];
            match name {
                "bytes" if config["endian"] == "big" => "bytes(big-endian)".to_string(),
                "zstd" | "gzip" => format!("{name}:{}", config["level"]),
                "blosc" => format!(
                    "blosc-{}:{}",
                    config["cname"].as_str().unwrap_or("?"),
                    config["clevel"]
                ),
                "sharding_indexed" => format!(
                    "sharding(inner chunks {}: {}; index: {})",
                    json_dims(&config["chunk_shape"]).map_or("?".into(), |d| join_dims(&d)),
                    describe_codecs(&config["codecs"]),
                    describe_codecs(&config["index_codecs"])
                ),
                other => other.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ArraySpec;
    use crate::store::Compression;

    #[test]
    fn describes_codec_chains() {
        let spec = ArraySpec::new(vec![8, 8], vec![2, 2], DType::F32)
            .with_compression(Compression::Zstd { level: 3 });
        assert_eq!(
            describe_codecs(&spec.metadata_json()["codecs"]),
            "bytes → zstd:3 → crc32c"
        );
        let sharded = spec.with_shards(vec![4, 4]).metadata_json();
        assert_eq!(
            describe_codecs(&sharded["codecs"]),
            "sharding(inner chunks 2x2: bytes → zstd:3 → crc32c; index: bytes → crc32c)"
        );
    }
}
