//! One conformance suite for every kind of readable array: Zarr stores
//! (plain, compressed, sharded) and the files read in place (`.npy`, Arrow
//! IPC file and stream, compressed or not, Parquet), plus raw binary read
//! through its region reader. Each must give the same values for the same
//! regions, cover the array exactly once with its chunks, refuse bad
//! coordinates and element types with typed errors (never a panic), serve
//! concurrent readers the same bits, and — for files — refuse writes.

use std::sync::Arc;

use tenrso_ooc::exec::Session;
use tenrso_ooc::io::{ColumnarCompression, ColumnarOptions, DenseFile};
use tenrso_ooc::ops::{Export, Fill, Generate};
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
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
fn cases(dir: &std::path::Path) -> Vec<(String, ZarrArray)> {
    let session = Session::default();
    let mut cases = Vec::new();
    let zarr = |name: &str, spec: ArraySpec| {
        let path = dir.join(name);
        Generate::new(&path, spec, Fill::Range)
            .plan(&session)
            .unwrap()
            .run()
            .unwrap();
        ZarrArray::open(&path).unwrap()
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
    let source = Arc::new(ZarrArray::open(dir.join("plain.zarr")).unwrap());
    let files: [(&str, Option<ColumnarCompression>, Option<u64>); 6] = [
        ("x.npy", None, None),
        ("x.arrow", None, Some(10)),
        ("x-lz4.arrow", Some(ColumnarCompression::Lz4), Some(10)),
        ("x.arrows", Some(ColumnarCompression::Zstd), Some(7)),
        ("x.parquet", Some(ColumnarCompression::Zstd), Some(10)),
        ("x-plain.parquet", Some(ColumnarCompression::None), None),
    ];
    for (name, compression, rows) in files {
        let path = dir.join(name);
        let mut export = Export::new(&source, &path);
        if name != "x.npy" {
            export = export.with_columnar(
                ColumnarOptions::default()
                    .with_compression(compression)
                    .with_row_group_rows(rows),
            );
        }
        export.plan(&session).unwrap().run().unwrap();
        cases.push((name.to_string(), ZarrArray::open(&path).unwrap()));
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
fn files_read_in_place_refuse_writes_and_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, array) in cases(dir.path()) {
        let block = array.read_chunk::<f64>(&[0, 0, 0]).unwrap();
        let written = array.write_chunk(&[0, 0, 0], &block);
        if name.starts_with("zarr") {
            written.unwrap();
        } else {
            let before = std::fs::read(array.path()).unwrap();
            assert!(written.is_err(), "{name}: a write to a file read in place");
            assert!(
                array
                    .write_region(
                        &Region::full(&[1, 1, 1]),
                        &Block::from_vec(vec![1, 1, 1], vec![0.0]).unwrap()
                    )
                    .is_err(),
                "{name}: a region write"
            );
            assert_eq!(std::fs::read(array.path()).unwrap(), before, "{name}");
        }
    }
}

/// Raw binary has no header: it is read through its region reader with the
/// shape and type given, and must agree with the same regions.
#[test]
fn raw_files_read_the_same_regions() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::default();
    let want = reference();
    let src = dir.path().join("x.zarr");
    let array = Generate::new(
        &src,
        ArraySpec::new(SHAPE.to_vec(), vec![8, 4, 5], DType::F64),
        Fill::Range,
    )
    .plan(&session)
    .unwrap()
    .run()
    .unwrap()
    .array;
    let raw = dir.path().join("x.bin");
    Export::new(&array, &raw)
        .plan(&session)
        .unwrap()
        .run()
        .unwrap();
    let file = DenseFile::open_raw(&raw, SHAPE.to_vec(), DType::F64).unwrap();
    for region in regions() {
        assert_eq!(
            file.read_region::<f64>(&region).unwrap(),
            want.extract(&region),
            "{region:?}"
        );
    }
    assert!(
        file.read_region::<f64>(&Region::new(vec![36, 0, 0], vec![2, 1, 1]))
            .is_err()
    );
    assert!(
        DenseFile::open_raw(&raw, vec![38, 6, 5], DType::F64).is_err(),
        "a shape larger than the file"
    );
}
