//! Reading Zarr v3 metadata documents: the codec chain (in words, and
//! whether it is the plain `bytes` [→ `crc32c`] layout read without the
//! codec pipeline), fill values, chunk key encodings.

use serde_json::Value;
use zarrs::storage::StoreKey;

use crate::core::DType;
use crate::core::shape::join_dims;

/// Name of the Zarr v3 metadata document in an array directory.
pub(crate) const METADATA_KEY: &str = "zarr.json";

/// The largest metadata document read (a valid one of 64 axes with long
/// attributes is a few KiB).
pub(crate) const MAX_METADATA_BYTES: u64 = 16 << 20;

/// The store key of the metadata document.
pub(crate) fn metadata_key() -> StoreKey {
    StoreKey::new(METADATA_KEY).expect("valid key")
}

/// Checks an array's `zarr.json` (of `ndim` axes, its shape and chunk grid
/// already checked by `ChunkGrid::new`) as the Zarr v3 specification states
/// it: `zarr_format` 3; `dimension_names` of the array's rank; a known chunk
/// key encoding; a codec chain of array→array codecs, then exactly one
/// array→bytes codec, then bytes→bytes codecs, each one known (sharding's
/// inner chains likewise).
///
/// # Errors
/// What is wrong, in the specification's words.
pub(crate) fn check_array_metadata(document: &Value, ndim: usize) -> Result<(), String> {
    if document["zarr_format"] != 3 {
        return Err(format!(
            "zarr_format is {}, not 3 (tenrso-ooc reads Zarr v3)",
            document["zarr_format"]
        ));
    }
    match &document["dimension_names"] {
        Value::Null => {}
        Value::Array(names) if names.len() == ndim => {
            if !names.iter().all(|n| n.is_string() || n.is_null()) {
                return Err("dimension_names holds something other than strings and nulls".into());
            }
        }
        Value::Array(names) => {
            return Err(format!(
                "dimension_names has {} entries but shape has {ndim} dimensions",
                names.len()
            ));
        }
        _ => return Err("dimension_names is not a list".into()),
    }
    let encoding = &document["chunk_key_encoding"];
    match encoding["name"].as_str() {
        Some("default" | "v2") => {}
        _ => {
            return Err(format!(
                "chunk_key_encoding {} is not `default` or `v2`",
                encoding["name"]
            ));
        }
    }
    match &encoding["configuration"]["separator"] {
        Value::Null => {}
        Value::String(s) if s == "/" || s == "." => {}
        other => return Err(format!("chunk key separator {other} is not \"/\" or \".\"")),
    }
    check_codec_chain(&document["codecs"], ndim, "codecs")
}

/// The class of a codec the specification (and zarrs, as built here) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CodecClass {
    ArrayToArray,
    ArrayToBytes,
    BytesToBytes,
}

fn check_codec_chain(codecs: &Value, ndim: usize, what: &str) -> Result<(), String> {
    let list = codecs
        .as_array()
        .ok_or_else(|| format!("{what} is not a list of codecs"))?;
    let mut previous = CodecClass::ArrayToArray;
    let mut array_to_bytes = 0;
    for (k, codec) in list.iter().enumerate() {
        let name = codec["name"]
            .as_str()
            .ok_or_else(|| format!("{what}[{k}] has no name"))?;
        let class = match name {
            "transpose" => CodecClass::ArrayToArray,
            "bytes" | "sharding_indexed" => CodecClass::ArrayToBytes,
            "crc32c" | "zstd" | "blosc" | "gzip" => CodecClass::BytesToBytes,
            other => return Err(format!("{what}[{k}] is the unknown codec `{other}`")),
        };
        if class < previous || (class == CodecClass::ArrayToBytes && array_to_bytes > 0) {
            return Err(format!(
                "{what} are out of order: `{name}` at position {k} comes after {}; the order is array→array codecs, one array→bytes codec (bytes or sharding_indexed), then bytes→bytes codecs",
                list[..k]
                    .iter()
                    .map(|c| format!("`{}`", c["name"].as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        previous = class;
        let config = &codec["configuration"];
        match name {
            "bytes" => {
                array_to_bytes += 1;
                match &config["endian"] {
                    Value::Null => {}
                    Value::String(e) if e == "little" || e == "big" => {}
                    other => {
                        return Err(format!(
                            "{what}[{k}]: bytes endian {other} is not \"little\" or \"big\""
                        ));
                    }
                }
            }
            "sharding_indexed" => {
                array_to_bytes += 1;
                let inner = json_dims(&config["chunk_shape"])
                    .ok_or_else(|| format!("{what}[{k}]: sharding_indexed has no chunk_shape"))?;
                if inner.len() != ndim || inner.contains(&0) {
                    return Err(format!(
                        "{what}[{k}]: sharding_indexed chunk_shape {} does not match the array's {ndim} dimensions",
                        join_dims(&inner)
                    ));
                }
                check_codec_chain(&config["codecs"], ndim, "sharding_indexed codecs")?;
                check_codec_chain(&config["index_codecs"], 1, "sharding_indexed index_codecs")?;
            }
            _ => {}
        }
    }
    if array_to_bytes != 1 {
        return Err(format!(
            "{what} need exactly one array→bytes codec (bytes or sharding_indexed), found {array_to_bytes}"
        ));
    }
    Ok(())
}

/// A codec chain the array reads (and, without zstd, writes) itself,
/// streaming the chunk file into one recycled buffer instead of going
/// through the generic pipeline's intermediate buffers: `bytes` (little
/// endian), then optionally `zstd`, then optionally `crc32c` — the chains
/// of this library's stores and of zarr-python's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirectLayout {
    /// The bytes are one zstd frame.
    pub zstd: bool,
    /// A crc32c of the (encoded) bytes follows them.
    pub crc: bool,
}

/// The [`DirectLayout`] of a codec chain, on a little-endian machine.
pub(crate) fn direct_layout(codecs: &Value) -> Option<DirectLayout> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let list = codecs.as_array()?;
    let bytes_le = |c: &Value| {
        c["name"] == "bytes"
            && (c["configuration"]["endian"] == "little" || c["configuration"]["endian"].is_null())
    };
    let zstd = |c: &Value| c["name"] == "zstd";
    let crc_end = |c: &Value| {
        c["name"] == "crc32c"
            && (c["configuration"].is_null()
                || c["configuration"]["location"].is_null()
                || c["configuration"]["location"] == "end")
    };
    let (zstd, crc) = match list.as_slice() {
        [b] if bytes_le(b) => (false, false),
        [b, c] if bytes_le(b) && crc_end(c) => (false, true),
        [b, z] if bytes_le(b) && zstd(z) => (true, false),
        [b, z, c] if bytes_le(b) && zstd(z) && crc_end(c) => (true, true),
        _ => return None,
    };
    Some(DirectLayout { zstd, crc })
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
    fn metadata_is_checked_as_the_spec_says() {
        let spec = ArraySpec::new(vec![8, 8], vec![2, 2], DType::F32)
            .with_compression(Compression::Zstd { level: 3 });
        let good = spec.clone().metadata_json();
        check_array_metadata(&good, 2).unwrap();
        check_array_metadata(&spec.with_shards(vec![4, 4]).metadata_json(), 2).unwrap();
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut d = good.clone();
            edit(&mut d);
            check_array_metadata(&d, 2).unwrap_err()
        };
        let e = broken(&|d| d["codecs"].as_array_mut().unwrap().reverse());
        assert!(e.contains("out of order"), "{e}");
        let e = broken(&|d| d["codecs"][1]["name"] = "lzma".into());
        assert!(e.contains("unknown codec `lzma`"), "{e}");
        let e = broken(&|d| {
            d["codecs"].as_array_mut().unwrap().remove(0);
        });
        assert!(e.contains("exactly one array→bytes"), "{e}");
        let e = broken(&|d| d["dimension_names"] = serde_json::json!(["x"]));
        assert!(e.contains("dimension_names has 1"), "{e}");
        let e = broken(&|d| d["zarr_format"] = 2.into());
        assert!(e.contains("zarr_format"), "{e}");
    }

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
