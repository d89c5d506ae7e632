//! One conformance suite for every implementation of
//! [`ReadableArray`]: Zarr stores (plain, compressed, sharded) and the files
//! read in place (`.npy`, raw binary, Arrow IPC file and stream, compressed
//! or not, Parquet), each opened by `store::open_array` as an `ArrayRef`.
//! Each must give the same values for the same regions, cover the array
//! exactly once with its chunks, refuse bad coordinates and element types
//! with typed errors (never a panic), serve concurrent readers the same
//! bits, leave its bytes untouched when read, and feed an operation.

use std::sync::Arc;

use tenrso_ooc::exec::Session;
use tenrso_ooc::io::{
    ArrayRef, ColumnarCompression, ColumnarOptions, SourceOptions, WritableArray,
};
use tenrso_ooc::ops::{Export, Fill, Generate, Reduce, ReduceOp};
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray, open_array};
use tenrso_ooc::{Block, DType, Error, Region};

const SHAPE: [u64; 3] = [37, 6, 5];

/// The reference values: the C-order index of each element.
fn reference() -> Block<f64> {
    let n: u64 = SHAPE.iter().product();
    Block::from_vec(SHAPE.to_vec(), (0..n).map(|v| v as f64).collect()).unwrap()
}

/// Regions inside, across chunk edges, at the corners, of one element.
fn regions() -> Vec<Region> {
    vec![
        Region::full(&SHAPE),
        Region::new(vec![0, 0, 0], vec![1, 1, 1]),
        Region::new(vec![36, 5, 4], vec![1, 1, 1]),
        Region::new(vec![3, 1, 2], vec![20, 4, 3]),
        Region::new(vec![15, 0, 0], vec![17, 6, 5]),
        Region::new(vec![0, 2, 0], vec![37, 1, 5]),
    ]
}

/// Every kind of readable array, holding [`reference`]: a name and the
/// array opened as the library opens it.
fn cases(dir: &std::path::Path) -> Vec<(String, ArrayRef)> {
    let session = Session::default();
    let mut cases = Vec::new();
    let zarr = |name: &str, spec: ArraySpec| {
        let path = dir.join(name);
        Generate::new(&path, spec, Fill::Range)
            .plan(&session)
            .unwrap()
            .run()
            .unwrap();
        open_array(&path, &SourceOptions::default()).unwrap()
    };
    let spec = || ArraySpec::new(SHAPE.to_vec(), vec![8, 4, 5], DType::F64);
    cases.push(("zarr plain".to_string(), zarr("plain.zarr", spec())));
    cases.push((
        "zarr zstd".to_string(),
        zarr(
            "zstd.zarr",
            spec().with_compression(Compression::Zstd { level: 3 }),
        ),
    ));
    cases.push((
        "zarr blosc-lz4".to_string(),
        zarr("lz4.zarr", spec().with_compression(Compression::Lz4)),
    ));
    cases.push((
        "zarr sharded".to_string(),
        zarr("sharded.zarr", spec().with_shards(vec![16, 4, 5])),
    ));
    let tiles = Arc::new(ZarrArray::open(dir.join("plain.zarr")).unwrap());
    // Chunks of whole rows: exported batch by batch straight from the
    // chunks (batches of 4 rows slice chunks of 8), not through slabs.
    zarr(
        "rows.zarr",
        ArraySpec::new(SHAPE.to_vec(), vec![8, SHAPE[1], SHAPE[2]], DType::F64),
    );
    let rows = Arc::new(ZarrArray::open(dir.join("rows.zarr")).unwrap());
    // One chunk taller than the array: one chunk row, sliced into batches.
    zarr(
        "tall.zarr",
        ArraySpec::new(SHAPE.to_vec(), vec![64, SHAPE[1], SHAPE[2]], DType::F64),
    );
    let tall = Arc::new(ZarrArray::open(dir.join("tall.zarr")).unwrap());
    let files: [(&str, Option<ColumnarCompression>, Option<u64>); 11] = [
        ("x.npy", None, None),
        ("x.bin", None, None),
        ("x.arrow", None, Some(10)),
        ("x-lz4.arrow", Some(ColumnarCompression::Lz4), Some(10)),
        ("x.arrows", Some(ColumnarCompression::Zstd), Some(7)),
        ("x.parquet", Some(ColumnarCompression::Zstd), Some(10)),
        ("x-plain.parquet", Some(ColumnarCompression::None), None),
        ("rows.arrow", None, Some(4)),
        ("rows.arrows", None, Some(8)),
        ("rows.parquet", Some(ColumnarCompression::Zstd), Some(4)),
        ("tall.arrow", None, Some(16)),
    ];
    for (name, compression, rows_per_batch) in files {
        let path = dir.join(name);
        let source = match name.split('.').next() {
            Some("rows") => &rows,
            Some("tall") => &tall,
            _ => &tiles,
        };
        let mut export = Export::new(source, &path);
        if !name.ends_with(".npy") && !name.ends_with(".bin") {
            export = export.with_columnar(
                ColumnarOptions::default()
                    .with_compression(compression)
                    .with_row_group_rows(rows_per_batch),
            );
        }
        export.plan(&session).unwrap().run().unwrap();
        let options = if name.ends_with(".bin") {
            SourceOptions::default().with_raw(SHAPE, DType::F64)
        } else {
            SourceOptions::default()
        };
        cases.push((name.to_string(), open_array(&path, &options).unwrap()));
    }
    cases
}

#[test]
fn every_readable_array_reads_the_same_regions() {
    let dir = tempfile::tempdir().unwrap();
    let want = reference();
    for (name, array) in cases(dir.path()) {
        assert_eq!(array.shape(), &SHAPE, "{name}");
        assert_eq!(array.dtype(), DType::F64, "{name}");
        assert_eq!(array.nbytes(), want.byte_len() as u64, "{name}");
        for region in regions() {
            let got = array.read_region::<f64>(&region).unwrap();
            assert_eq!(got, want.extract(&region), "{name}: {region:?}");
        }
    }
}

#[test]
fn every_readable_array_covers_itself_once_with_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let want = reference();
    for (name, array) in cases(dir.path()) {
        let grid = array.chunk_grid();
        let mut seen = vec![0u8; want.len()];
        for chunk in grid.iter() {
            let region = grid.chunk_region(&chunk);
            let block = array.read_chunk::<f64>(&chunk).unwrap();
            assert_eq!(block.shape(), region.shape(), "{name}: chunk {chunk:?}");
            assert_eq!(block, want.extract(&region), "{name}: chunk {chunk:?}");
            for v in block.as_slice() {
                seen[*v as usize] += 1;
            }
        }
        assert!(
            seen.iter().all(|s| *s == 1),
            "{name}: chunks overlap or miss"
        );
    }
}

#[test]
fn every_readable_array_refuses_bad_coordinates_and_types() {
    let dir = tempfile::tempdir().unwrap();
    for (name, array) in cases(dir.path()) {
        let grid = array.chunk_grid().grid_shape().to_vec();
        let past = vec![grid[0], 0, 0];
        assert!(
            matches!(
                array.read_chunk::<f64>(&past),
                Err(Error::ChunkOutOfBounds { .. })
            ),
            "{name}: chunk {past:?} of a {grid:?} grid"
        );
        assert!(
            array.read_chunk::<f64>(&[0, 0]).is_err(),
            "{name}: too few coordinates"
        );
        for bad in [
            Region::new(vec![30, 0, 0], vec![8, 1, 1]),
            Region::new(vec![0, 6, 0], vec![1, 1, 1]),
            Region::new(vec![0, 0], vec![1, 1]),
        ] {
            assert!(
                array.read_region::<f64>(&bad).is_err(),
                "{name}: {bad:?} is outside"
            );
        }
        assert!(
            matches!(
                array.read_chunk::<f32>(&[0, 0, 0]),
                Err(Error::DtypeMismatch { .. })
            ),
            "{name}: read as f32"
        );
    }
}

#[test]
fn every_readable_array_serves_concurrent_readers_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let want = reference();
    for (name, array) in cases(dir.path()) {
        let chunks: Vec<Vec<u64>> = array.chunk_grid().iter().collect();
        std::thread::scope(|scope| {
            for t in 0..4usize {
                let (array, chunks, want, name) = (&array, &chunks, &want, &name);
                scope.spawn(move || {
                    // Each reader walks the chunks from another start.
                    for k in 0..chunks.len() {
                        let chunk = &chunks[(k + t * 7) % chunks.len()];
                        let region = array.chunk_grid().chunk_region(chunk);
                        let got = array.read_chunk::<f64>(chunk).unwrap();
                        assert_eq!(got, want.extract(&region), "{name}: reader {t}");
                    }
                });
            }
        });
    }
}

#[test]
fn every_readable_array_describes_itself_and_lists_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    for (name, array) in cases(dir.path()) {
        assert!(!array.describe().is_empty(), "{name}");
        assert!(array.chunk_working_set() >= array.chunk_nbytes(), "{name}");
        let all: Vec<Vec<u64>> = array.chunk_grid().iter().collect();
        assert_eq!(
            array.stored_chunks().unwrap(),
            all,
            "{name}: every chunk holds data"
        );
        assert_eq!(array.fingerprint(), array.fingerprint(), "{name}: stable");
        assert!(array.bytes_on_disk().unwrap() > 0, "{name}");
        assert!(array.stale_temporaries().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn every_readable_array_feeds_an_operation() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::default();
    let n: u64 = SHAPE.iter().product();
    let want = (n * (n - 1) / 2) as f64;
    for (name, array) in cases(dir.path()) {
        let sum = Reduce::new(ReduceOp::Sum, &array)
            .plan(&session)
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(sum.value, Some(want), "{name}");
    }
}

#[test]
fn reading_leaves_files_untouched_and_only_stores_are_writable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, array) in cases(dir.path()) {
        let store = array.as_any().downcast_ref::<ZarrArray>();
        assert_eq!(store.is_some(), name.starts_with("zarr"), "{name}");
        if let Some(store) = store {
            let out: &dyn WritableArray = store;
            let block = Block::from_vec(vec![1, 1, 1], vec![-1.0]).unwrap();
            out.write_region(&Region::new(vec![9, 5, 4], vec![1, 1, 1]), &block)
                .unwrap();
            let back = array
                .read_region::<f64>(&Region::new(vec![9, 5, 4], vec![1, 1, 1]))
                .unwrap();
            assert_eq!(back.as_slice(), &[-1.0], "{name}");
            assert!(
                matches!(
                    out.write_chunk(&[0, 0, 0], &Block::<f32>::zeros(vec![8, 4, 5])),
                    Err(Error::DtypeMismatch { .. })
                ),
                "{name}: a write of the wrong type"
            );
        } else {
            let before = std::fs::read(array.path()).unwrap();
            for chunk in array.chunk_grid().iter() {
                array.read_chunk::<f64>(&chunk).unwrap();
            }
            assert_eq!(std::fs::read(array.path()).unwrap(), before, "{name}");
        }
    }
}

/// A raw file of the wrong size, or raw options on a file that has a
/// format, is refused when opened.
#[test]
fn raw_layouts_are_checked_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let case = cases(dir.path());
    let raw = dir.path().join("x.bin");
    let npy = dir.path().join("x.npy");
    drop(case);
    assert!(
        open_array(
            &raw,
            &SourceOptions::default().with_raw([38, 6, 5], DType::F64)
        )
        .is_err(),
        "a shape larger than the file"
    );
    assert!(
        open_array(&raw, &SourceOptions::default()).is_err(),
        "raw without its layout"
    );
    assert!(
        open_array(&npy, &SourceOptions::default().with_raw(SHAPE, DType::F64)).is_err(),
        "a raw layout for a .npy file"
    );
    assert!(
        open_array(
            &npy,
            &SourceOptions::default().with_columns(vec!["x".into()])
        )
        .is_err(),
        "columns for a .npy file"
    );
    // The same raw bytes read with another shape are another input.
    let as_3d = open_array(&raw, &SourceOptions::default().with_raw(SHAPE, DType::F64)).unwrap();
    let as_2d = open_array(
        &raw,
        &SourceOptions::default().with_raw([37, 30], DType::F64),
    )
    .unwrap();
    assert_ne!(as_3d.fingerprint(), as_2d.fingerprint());
}

/// Paths are dispatched by what they are: a missing `.npy` is a missing
/// file, a file of no known format needs a raw layout, a store takes no
/// file options, and a missing store is not an array.
#[test]
fn open_array_names_what_is_wrong_with_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let case = cases(dir.path());
    drop(case);
    let err = open_array(dir.path().join("missing.npy"), &SourceOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    std::fs::write(dir.path().join("x.dat"), [0u8; 16]).unwrap();
    let err = open_array(dir.path().join("x.dat"), &SourceOptions::default()).unwrap_err();
    assert!(err.to_string().contains("read as raw binary"), "{err}");
    let err = open_array(
        dir.path().join("plain.zarr"),
        &SourceOptions::default().with_raw([4], DType::F64),
    )
    .unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    let err = open_array(dir.path().join("missing.zarr"), &SourceOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotAnArray { .. }), "{err}");
}

/// The trait's own typed reads, called on a concrete file reader with bad
/// coordinates, return errors rather than panicking.
#[test]
fn unchecked_trait_reads_refuse_bad_coordinates() {
    let dir = tempfile::tempdir().unwrap();
    for (name, array) in cases(dir.path()) {
        assert!(
            matches!(
                array.read_chunk_f64(&[99, 0, 0]),
                Err(Error::ChunkOutOfBounds { .. })
            ),
            "{name}"
        );
        let outside = Region::new(vec![30, 0, 0], vec![8, 1, 1]);
        assert!(array.read_region_f64(&outside).is_err(), "{name}");
        let mut short = vec![0u8; 8];
        let region = Region::new(vec![0, 0, 0], vec![2, 1, 1]);
        assert!(
            array.read_region_into(&region, &mut short).is_err(),
            "{name}"
        );
    }
}
