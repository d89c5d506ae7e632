//! Damaged stores give errors that name the array and chunk, never numbers.

use std::fs;
use std::path::Path;

use std::sync::Arc;

use tenrso_ooc::exec::Session;
use tenrso_ooc::ops::{Fill, Generate, Verify};
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
use tenrso_ooc::{DType, Error};

fn filled(dir: &Path, compression: Compression, shards: Option<Vec<u64>>) -> Arc<ZarrArray> {
    let mut spec =
        ArraySpec::new(vec![64, 48], vec![16, 16], DType::F64).with_compression(compression);
    spec.shard_shape = shards;
    Generate::new(dir.join("a.zarr"), spec, Fill::Normal)
        .with_seed(1)
        .plan(&Session::default())
        .unwrap()
        .run()
        .unwrap()
        .array
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_byte_is_reported_as_corrupt_chunk() {
    for (compression, shards) in [
        (Compression::None, None),
        (Compression::Zstd { level: 3 }, None),
        (Compression::Lz4, None),
        (Compression::None, Some(vec![32, 32])),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let array = filled(dir.path(), compression, shards.clone());
        let target = vec![1, 1];
        flip_byte(&array.chunk_path(&target), 100);
        match array.read_chunk::<f64>(&target) {
            Err(Error::Corrupt {
                array: a,
                chunk,
                key,
                ..
            }) => {
                assert_eq!(a, array.path());
                assert_eq!(chunk, target);
                assert_eq!(key, "c/1/1");
            }
            other => panic!("{compression} {shards:?}: expected Corrupt, got {other:?}"),
        }
        // Other chunks still read, and verify lists exactly the bad one.
        assert!(array.read_chunk::<f64>(&[0, 0]).is_ok());
        let report = Verify::new(&array)
            .plan(&Session::default())
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(report.bad_chunks.len(), 1, "{compression}");
        assert_eq!(report.bad_chunks[0].key, "c/1/1");
    }
}

#[test]
fn flipped_shard_index_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let array = filled(dir.path(), Compression::None, Some(vec![32, 32]));
    let path = array.chunk_path(&[0, 0]);
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len - 10); // inside the index at the end of the shard
    assert!(matches!(
        array.read_chunk::<f64>(&[0, 0]),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn truncated_chunk_is_corrupt() {
    for compression in [Compression::None, Compression::Zstd { level: 1 }] {
        let dir = tempfile::tempdir().unwrap();
        let array = filled(dir.path(), compression, None);
        let path = array.chunk_path(&[2, 1]);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = array.read_chunk::<f64>(&[2, 1]).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{compression}: {err}");
        assert!(err.to_string().contains("chunk [2, 1]"), "{err}");
        fs::write(&path, []).unwrap();
        assert!(matches!(
            array.read_chunk::<f64>(&[2, 1]),
            Err(Error::Corrupt { .. })
        ));
    }
}

#[test]
fn missing_or_foreign_metadata_is_not_an_array() {
    let dir = tempfile::tempdir().unwrap();
    let err = ZarrArray::open(dir.path().join("nowhere")).unwrap_err();
    assert!(matches!(err, Error::NotAnArray { .. }), "{err}");
    let array = filled(dir.path(), Compression::None, None);
    let meta = array.path().join("zarr.json");
    let original = fs::read_to_string(&meta).unwrap();

    fs::remove_file(&meta).unwrap();
    let err = ZarrArray::open(array.path()).unwrap_err().to_string();
    assert!(err.contains("zarr.json not found"), "{err}");

    fs::write(&meta, "{ not json").unwrap();
    let err = ZarrArray::open(array.path()).unwrap_err().to_string();
    assert!(err.contains("not valid JSON"), "{err}");

    fs::write(&meta, original.replace("float64", "int32")).unwrap();
    let err = ZarrArray::open(array.path()).unwrap_err().to_string();
    assert!(
        err.contains("int32") && err.contains("not supported"),
        "{err}"
    );

    fs::write(
        &meta,
        r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#,
    )
    .unwrap();
    let err = ZarrArray::open(array.path()).unwrap_err().to_string();
    assert!(err.contains("group"), "{err}");
}

#[test]
fn wrong_dtype_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let array = filled(dir.path(), Compression::None, None);
    match array.read_chunk::<f32>(&[0, 0]) {
        Err(Error::DtypeMismatch {
            stored, requested, ..
        }) => {
            assert_eq!((stored, requested), (DType::F64, DType::F32));
        }
        other => panic!("expected DtypeMismatch, got {other:?}"),
    }
    assert!(
        array
            .write_chunk(&[0, 0], &tenrso_ooc::Block::<f32>::zeros(vec![16, 16]))
            .is_err()
    );
}

/// Regression (review of #2): the array's fill value, not 0, fills chunks
/// never written and pads edge chunks.
#[test]
fn unwritten_chunks_read_as_the_declared_fill_value() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![10], vec![4], DType::F64);
    let array = ZarrArray::create(dir.path().join("f.zarr"), &spec).unwrap();
    let meta = array.path().join("zarr.json");
    for (fill, want) in [
        ("7.5", 7.5),
        ("\"-Infinity\"", f64::NEG_INFINITY),
        ("\"0x4000000000000000\"", 2.0),
    ] {
        let text = fs::read_to_string(&meta).unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["fill_value"] = serde_json::from_str(fill).unwrap();
        fs::write(&meta, doc.to_string()).unwrap();
        let a = ZarrArray::open(array.path()).unwrap();
        assert_eq!(
            a.read_chunk::<f64>(&[1]).unwrap().as_slice(),
            &[want; 4],
            "{fill}"
        );
    }
    let text = fs::read_to_string(&meta).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["fill_value"] = "NaN".into();
    fs::write(&meta, doc.to_string()).unwrap();
    let a = ZarrArray::open(array.path()).unwrap();
    assert!(
        a.read_chunk::<f64>(&[0])
            .unwrap()
            .as_slice()
            .iter()
            .all(|v| v.is_nan())
    );
    doc["fill_value"] = "lots".into();
    fs::write(&meta, doc.to_string()).unwrap();
    assert!(
        ZarrArray::open(array.path())
            .unwrap_err()
            .to_string()
            .contains("fill value")
    );
}

/// Regression (review of #2): a shard index without a checksum means
/// corruption can go unnoticed, and the array must say so.
#[test]
fn shard_index_without_crc_is_not_checksummed() {
    let dir = tempfile::tempdir().unwrap();
    let array = filled(dir.path(), Compression::None, Some(vec![32, 32]));
    assert!(array.has_checksum());
    let meta = array.path().join("zarr.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&meta).unwrap()).unwrap();
    doc["codecs"][0]["configuration"]["index_codecs"] =
        serde_json::json!([{ "name": "bytes", "configuration": { "endian": "little" } }]);
    fs::write(&meta, doc.to_string()).unwrap();
    assert!(!ZarrArray::open(array.path()).unwrap().has_checksum());
}

/// Regression (review of #2): sizes in `zarr.json` that overflow are refused
/// on open, and stored chunks come from the directory, not the grid.
#[test]
fn absurd_shapes_are_refused_and_sparse_grids_are_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let array = filled(dir.path(), Compression::None, None);
    let meta = array.path().join("zarr.json");
    let original = fs::read_to_string(&meta).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&original).unwrap();
    doc["shape"] = serde_json::json!([1u64 << 61, 1]);
    doc["chunk_grid"]["configuration"]["chunk_shape"] = serde_json::json!([1u64 << 61, 1]);
    fs::write(&meta, doc.to_string()).unwrap();
    let err = ZarrArray::open(array.path()).unwrap_err().to_string();
    assert!(err.contains("too large"), "{err}");

    // 10^13 one-element chunks, one written: listing is instant.
    let sparse = ZarrArray::create(
        dir.path().join("sparse"),
        &ArraySpec::new(vec![10_000_000_000_000], vec![1], DType::F32),
    )
    .unwrap();
    sparse
        .write_chunk(
            &[123_456_789_012],
            &tenrso_ooc::Block::filled(vec![1], 1.0f32),
        )
        .unwrap();
    let start = std::time::Instant::now();
    assert_eq!(sparse.stored_chunks().unwrap(), vec![vec![123_456_789_012]]);
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

/// Chunks of `MAP_MIN_BYTES` or more read in place (mapped from the page
/// cache, as the executor's loads ahead do): their values are the file's bytes and their checksums are
/// still checked; an edge chunk and a compressed chunk are copied; writing
/// to a block read in place copies it first and leaves the file as it was.
#[test]
fn large_chunks_are_read_in_place_and_still_checked() {
    use tenrso_ooc::io::{MAP_MIN_BYTES, chunk_maps_enabled};
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, compression| {
        let spec = ArraySpec::new(vec![2100, 512], vec![1024, 512], DType::F64)
            .with_compression(compression);
        Generate::new(dir.path().join(name), spec, Fill::Normal)
            .with_seed(3)
            .plan(&Session::default())
            .unwrap()
            .run()
            .unwrap()
            .array
    };
    let plain = make("plain.zarr", Compression::None);
    let packed = make("packed.zarr", Compression::Zstd { level: 1 });
    assert!(plain.chunk_nbytes() >= MAP_MIN_BYTES);
    let stored = |chunk: &[u64], rows: usize| -> Vec<f64> {
        let bytes = fs::read(plain.chunk_path(chunk)).unwrap();
        bytes[..rows * 512 * 8]
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    for (chunk, rows) in [([0, 0], 1024), ([1, 0], 1024), ([2, 0], 52)] {
        let mut block = plain.read_chunk_in_place::<f64>(&chunk).unwrap();
        assert!(!plain.read_chunk::<f64>(&chunk).unwrap().is_mapped());
        assert_eq!(block.shape(), &[rows as u64, 512]);
        assert_eq!(block.is_mapped(), rows == 1024 && chunk_maps_enabled());
        assert_eq!(block.as_slice(), stored(&chunk, rows));
        let other = packed.read_chunk_in_place::<f64>(&chunk).unwrap();
        assert!(!other.is_mapped());
        assert_eq!(other, block, "chunk {chunk:?}");
        let before = fs::read(plain.chunk_path(&chunk)).unwrap();
        block.as_mut_slice()[7] = f64::NAN;
        assert!(!block.is_mapped());
        assert_eq!(fs::read(plain.chunk_path(&chunk)).unwrap(), before);
        assert!(
            plain
                .read_chunk::<f64>(&chunk)
                .unwrap()
                .get(&[0, 7])
                .is_finite()
        );
    }
    flip_byte(&plain.chunk_path(&[1, 0]), 3 << 20);
    match plain.read_chunk_in_place::<f64>(&[1, 0]) {
        Err(Error::Corrupt { chunk, reason, .. }) => {
            assert_eq!(chunk, vec![1, 0]);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
