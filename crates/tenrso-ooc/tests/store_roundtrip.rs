//! Store round trips: every codec, sharded or not, f32 and f64, 1-d to 5-d,
//! shapes that the chunk shape does not divide.

use proptest::prelude::*;
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
use tenrso_ooc::{Block, ChunkGrid, DType, Element, Region, Shape};

/// Values that differ per element and are exact in f32.
fn pattern<T: Element>(region: &Region, shape: &[u64], salt: f64) -> Block<T> {
    let s = Shape::new(shape.to_vec());
    let local = Shape::new(region.shape().to_vec());
    let data = (0..region.num_elements())
        .map(|k| {
            let idx: Vec<u64> = local
                .unravel(k)
                .iter()
                .zip(region.start())
                .map(|(a, b)| a + b)
                .collect();
            T::from_f64((s.linear_index(&idx) % 65521) as f64 * 0.5 - 7.0 + salt)
        })
        .collect();
    Block::from_vec(region.shape().to_vec(), data).unwrap()
}

fn round_trip<T: Element>(
    shape: &[u64],
    chunks: &[u64],
    shards: Option<&[u64]>,
    compression: Compression,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let mut spec =
        ArraySpec::new(shape.to_vec(), chunks.to_vec(), T::DTYPE).with_compression(compression);
    spec.shard_shape = shards.map(<[u64]>::to_vec);
    let array = ZarrArray::create(&path, &spec).unwrap();
    for chunk in array.chunk_grid().iter() {
        let region = array.chunk_grid().chunk_region(&chunk);
        array
            .write_chunk(&chunk, &pattern::<T>(&region, shape, 0.0))
            .unwrap();
    }
    let array = ZarrArray::open(&path).unwrap();
    let label = format!(
        "{:?} {shape:?} chunks {chunks:?} shards {shards:?} {compression}",
        T::DTYPE
    );
    assert_eq!(array.dtype(), T::DTYPE);
    assert_eq!(array.shape(), shape);
    assert_eq!(
        array.stored_chunks().unwrap().len() as u64,
        array.chunk_grid().num_chunks(),
        "{label}"
    );
    for chunk in array.chunk_grid().iter() {
        let region = array.chunk_grid().chunk_region(&chunk);
        assert_eq!(
            array.read_chunk::<T>(&chunk).unwrap(),
            pattern::<T>(&region, shape, 0.0),
            "{label} chunk {chunk:?}"
        );
    }
    let full = Region::full(shape);
    assert_eq!(
        array.read_region::<T>(&full).unwrap(),
        pattern::<T>(&full, shape, 0.0),
        "{label}"
    );
    check_streamed_rows::<T>(&array, &label);
}

/// Streaming every chunk a slab of rows at a time gives its elements in
/// order, for slabs of any size.
fn check_streamed_rows<T: Element>(array: &ZarrArray, label: &str) {
    for chunk in array.chunk_grid().iter() {
        let expected = array.read_chunk::<T>(&chunk).unwrap();
        let rows = expected.shape()[0];
        let row_bytes = expected.byte_len() as u64 / rows;
        for slab_rows in [1, 2, 3, rows, rows + 5] {
            let mut got: Vec<u8> = Vec::new();
            array
                .stream_chunk_rows(&chunk, slab_rows, &mut |r0, bytes| {
                    assert_eq!(r0 * row_bytes, got.len() as u64, "{label}: slabs in order");
                    assert!(bytes.len() as u64 <= slab_rows * row_bytes);
                    got.extend_from_slice(bytes);
                    Ok(())
                })
                .unwrap();
            let expected_bytes: &[u8] = bytemuck::cast_slice(expected.as_slice());
            assert_eq!(
                got, expected_bytes,
                "{label} chunk {chunk:?} slabs of {slab_rows}"
            );
        }
    }
}

#[test]
fn streamed_rows_of_unwritten_and_damaged_chunks() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [Compression::None, Compression::Zstd { level: 3 }] {
        let path = dir.path().join(format!("{compression}.zarr"));
        let spec =
            ArraySpec::new(vec![9, 7, 5], vec![4, 3, 2], DType::F64).with_compression(compression);
        let array = ZarrArray::create(&path, &spec).unwrap();
        let region = array.chunk_grid().chunk_region(&[2, 2, 2]);
        array
            .write_chunk(&[2, 2, 2], &pattern::<f64>(&region, &[9, 7, 5], 0.0))
            .unwrap();
        // Never written: the fill value, slab by slab.
        let mut values = Vec::new();
        array
            .stream_chunk_rows(&[0, 1, 0], 3, &mut |_, bytes| {
                values.extend_from_slice(bytemuck::cast_slice::<u8, f64>(bytes));
                Ok(())
            })
            .unwrap();
        assert_eq!(values, vec![0.0; 4 * 3 * 2]);
        check_streamed_rows::<f64>(&array, &format!("{compression}"));
        // A flipped byte: an error naming the chunk, after the slabs.
        let file = array.chunk_path(&[2, 2, 2]);
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&file, bytes).unwrap();
        let err = array
            .stream_chunk_rows(&[2, 2, 2], 1, &mut |_, _| Ok(()))
            .unwrap_err();
        assert!(
            matches!(err, tenrso_ooc::Error::Corrupt { ref chunk, .. } if chunk == &[2, 2, 2]),
            "{compression}: {err}"
        );
        // What the callback returns stops the stream.
        let stop = array
            .stream_chunk_rows(&[0, 0, 0], 1, &mut |_, _| {
                Err(tenrso_ooc::Error::invalid("stop"))
            })
            .unwrap_err();
        assert!(stop.to_string().contains("stop"), "{stop}");
    }
}

fn all_cases<T: Element>() {
    let cases: [(&[u64], &[u64], &[u64]); 5] = [
        (&[37], &[8], &[16]),
        (&[13, 10], &[4, 3], &[8, 6]),
        (&[9, 7, 5], &[4, 3, 2], &[8, 6, 4]),
        (&[5, 6, 3, 7], &[2, 4, 2, 3], &[4, 4, 2, 6]),
        (&[3, 4, 5, 2, 3], &[2, 3, 2, 2, 2], &[2, 3, 4, 2, 2]),
    ];
    for compression in [
        Compression::None,
        Compression::Zstd { level: 1 },
        Compression::Zstd { level: 22 },
        Compression::Lz4,
    ] {
        for (shape, chunks, shards) in cases {
            round_trip::<T>(shape, chunks, None, compression);
            round_trip::<T>(shape, chunks, Some(shards), compression);
        }
    }
}

#[test]
fn f32_every_codec_sharded_or_not_1d_to_5d() {
    all_cases::<f32>();
}

#[test]
fn f64_every_codec_sharded_or_not_1d_to_5d() {
    all_cases::<f64>();
}

#[test]
fn unwritten_chunks_read_as_fill_value_and_are_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let array = ZarrArray::create(
        dir.path().join("a"),
        &ArraySpec::new(vec![10, 10], vec![4, 4], DType::F64),
    )
    .unwrap();
    assert!(array.stored_chunks().unwrap().is_empty());
    assert!(!array.chunk_exists(&[2, 2]).unwrap());
    assert_eq!(
        array.read_chunk::<f64>(&[2, 2]).unwrap(),
        Block::zeros(vec![2, 2])
    );
    assert_eq!(array.try_read_chunk::<f64>(&[0, 1]).unwrap(), None);
}

#[test]
fn attributes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let spec =
        ArraySpec::new(vec![4], vec![2], DType::F32).with_attribute("units", "kelvin".into());
    let mut array = ZarrArray::create(&path, &spec).unwrap();
    array.set_attribute("step", 3.into()).unwrap();
    let again = ZarrArray::open(&path).unwrap();
    assert_eq!(again.attributes()["units"], "kelvin");
    assert_eq!(again.attributes()["step"], 3);
    let mut again = again;
    assert!(again.remove_attribute("units").unwrap());
    assert!(!again.remove_attribute("units").unwrap());
    let reopened = ZarrArray::open(&path).unwrap();
    assert!(!reopened.attributes().contains_key("units"));
    assert_eq!(reopened.attributes()["step"], 3);
}

#[test]
fn resume_accepts_the_same_layout_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let spec = ArraySpec::new(vec![8, 8], vec![4, 4], DType::F32);
    let a = ZarrArray::create(&path, &spec).unwrap();
    a.write_chunk(&[0, 0], &Block::filled(vec![4, 4], 2.0f32))
        .unwrap();
    assert!(matches!(
        ZarrArray::create(&path, &spec),
        Err(tenrso_ooc::Error::AlreadyExists { .. })
    ));
    let resumed = ZarrArray::create_or_resume(&path, &spec).unwrap();
    assert_eq!(resumed.stored_chunks().unwrap(), vec![vec![0, 0]]);
    let other = spec.clone().with_compression(Compression::Lz4);
    let err = ZarrArray::create_or_resume(&path, &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another layout"), "{err}");
    // The refused resume left the chunk alone.
    assert_eq!(
        ZarrArray::open(&path)
            .unwrap()
            .read_chunk::<f32>(&[0, 0])
            .unwrap()
            .get(&[1, 1]),
        2.0
    );
}

#[test]
fn create_refuses_files_and_non_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![4], vec![2], DType::F64);
    std::fs::write(dir.path().join("notes.txt"), b"keep me").unwrap();
    let err = ZarrArray::create(dir.path(), &spec)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an empty directory"), "{err}");
    let err = ZarrArray::create(dir.path().join("notes.txt"), &spec)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an empty directory"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"keep me"
    );
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    assert!(ZarrArray::create(dir.path().join("empty"), &spec).is_ok());
}

#[test]
fn bad_blocks_and_chunks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let array = ZarrArray::create(
        dir.path().join("a"),
        &ArraySpec::new(vec![10], vec![4], DType::F64),
    )
    .unwrap();
    // The edge chunk holds 2 elements, not 4.
    let err = array
        .write_chunk(&[2], &Block::<f64>::zeros(vec![4]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("chunk [2] has shape 2"), "{err}");
    assert!(matches!(
        array.read_chunk::<f64>(&[3]),
        Err(tenrso_ooc::Error::ChunkOutOfBounds { .. })
    ));
    assert!(
        array
            .read_region::<f64>(&Region::new(vec![8], vec![3]))
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Writing arbitrary regions over arbitrary chunkings matches an in-memory array.
    #[test]
    fn region_writes_match_memory(
        (shape, chunks) in prop::collection::vec((1u64..9, 1u64..5), 1..4)
            .prop_map(|d| d.into_iter().unzip::<u64, u64, Vec<u64>, Vec<u64>>()),
        writes in prop::collection::vec((any::<u64>(), any::<u64>()), 1..5),
        sharded in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ArraySpec::new(shape.clone(), chunks.clone(), DType::F64);
        if sharded {
            spec.shard_shape = Some(chunks.iter().map(|c| c * 2).collect());
        }
        let array = ZarrArray::create(dir.path().join("a"), &spec).unwrap();
        let mut reference = Block::<f64>::zeros(shape.clone());
        for (w, (a, b)) in writes.into_iter().enumerate() {
            let start: Vec<u64> = shape.iter().enumerate().map(|(i, d)| (a >> (8 * i)) % d).collect();
            let ext: Vec<u64> = shape.iter().zip(&start).enumerate().map(|(i, (d, s))| 1 + (b >> (8 * i)) % (d - s)).collect();
            let region = Region::new(start, ext);
            let block = pattern::<f64>(&region, &shape, w as f64 * 1000.0);
            array.write_region(&region, &block).unwrap();
            reference.insert(region.start(), &block);
        }
        let full = Region::full(&shape);
        prop_assert_eq!(array.read_region::<f64>(&full).unwrap(), reference.clone());
        // Any sub-region reads back too.
        let grid = ChunkGrid::new(shape.clone(), chunks).unwrap();
        let sub = grid.chunk_region(&vec![0; shape.len()]);
        prop_assert_eq!(array.read_region::<f64>(&sub).unwrap(), reference.extract(&sub));
    }
}
