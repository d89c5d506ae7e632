//! `.npy` and raw import/export round trips, in every layout NumPy writes.

use std::io::Write;
use std::path::Path;

use std::sync::Arc;

use tenrso_ooc::exec::{ExecOptions, Session};
use tenrso_ooc::ops::{Compare, Export, Fill, Generate, Import, ImportOptions};
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
use tenrso_ooc::{DType, Element, Error, Region, Shape};

/// Writes a `.npy` by hand: `value(i)` at C-order index i, in the given order and endianness.
fn write_npy<T: Element>(
    path: &Path,
    shape: &[u64],
    fortran: bool,
    big_endian: bool,
    value: impl Fn(u64) -> f64,
) {
    let descr = format!(
        "{}{}",
        if big_endian { '>' } else { '<' },
        if T::DTYPE == DType::F32 { "f4" } else { "f8" }
    );
    let shape_text = if shape.len() == 1 {
        format!("({},)", shape[0])
    } else {
        format!(
            "({})",
            shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_text}, }}",
        if fortran { "True" } else { "False" }
    );
    let total = (10 + dict.len() + 1).next_multiple_of(64);
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.resize(total - 1, b' ');
    bytes.push(b'\n');
    let s = Shape::new(shape.to_vec());
    let n = s.num_elements();
    // File order: C order, or C order of the reversed shape for Fortran.
    let rev: Vec<u64> = shape.iter().rev().copied().collect();
    let fs = Shape::new(rev);
    for k in 0..n {
        let c_index = if fortran {
            let idx: Vec<u64> = fs.unravel(k).into_iter().rev().collect();
            s.linear_index(&idx)
        } else {
            k
        };
        let v = value(c_index);
        match (T::DTYPE, big_endian) {
            (DType::F32, false) => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
            (DType::F32, true) => bytes.extend_from_slice(&(v as f32).to_be_bytes()),
            (DType::F64, false) => bytes.extend_from_slice(&v.to_le_bytes()),
            (DType::F64, true) => bytes.extend_from_slice(&v.to_be_bytes()),
        }
    }
    std::fs::File::create(path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
}

fn check_import<T: Element>(fortran: bool, big_endian: bool) {
    let dir = tempfile::tempdir().unwrap();
    let shape = [7u64, 5, 6];
    let src = dir.path().join("x.npy");
    let value = |i: u64| i as f64 * 0.25 - 3.0;
    write_npy::<T>(&src, &shape, fortran, big_endian, value);
    let dst = dir.path().join("x.zarr");
    let opts = ImportOptions::default()
        .with_chunk_shape([3, 2, 4])
        .with_compression(Compression::Zstd { level: 2 });
    let exec = Session::new(ExecOptions::default().with_threads(2));
    Import::new(&src, &dst)
        .with_options(opts)
        .plan(&exec)
        .unwrap()
        .run()
        .unwrap();
    let a = ZarrArray::open(&dst).unwrap();
    assert_eq!(a.dtype(), T::DTYPE);
    let got = a.read_region::<T>(&Region::full(&shape)).unwrap();
    for (i, v) in got.as_slice().iter().enumerate() {
        assert_eq!(
            *v,
            T::from_f64(value(i as u64)),
            "fortran={fortran} big={big_endian} at {i}"
        );
    }
}

#[test]
fn imports_c_and_fortran_order_both_endians_f32_f64() {
    for fortran in [false, true] {
        for big in [false, true] {
            check_import::<f32>(fortran, big);
            check_import::<f64>(fortran, big);
        }
    }
}

#[test]
fn export_then_import_is_identity_for_npy_and_raw() {
    let dir = tempfile::tempdir().unwrap();
    let spec =
        ArraySpec::new(vec![33, 20, 7], vec![8, 6, 7], DType::F32).with_shards(vec![16, 12, 7]);
    let exec = Session::new(ExecOptions::default());
    let a = Generate::new(dir.path().join("a.zarr"), spec, Fill::Normal)
        .with_seed(9)
        .plan(&exec)
        .unwrap()
        .run()
        .unwrap()
        .array;
    let identical = |x: &Arc<ZarrArray>, y: &Arc<ZarrArray>| {
        Compare::new(x, y)
            .plan(&exec)
            .unwrap()
            .run()
            .unwrap()
            .is_identical()
    };

    let npy = dir.path().join("a.npy");
    Export::new(&a, &npy).plan(&exec).unwrap().run().unwrap();
    Import::new(&npy, dir.path().join("b.zarr"))
        .with_options(ImportOptions::default())
        .plan(&exec)
        .unwrap()
        .run()
        .unwrap();
    let b = Arc::new(ZarrArray::open(dir.path().join("b.zarr")).unwrap());
    assert!(identical(&a, &b));

    let raw = dir.path().join("a.f32");
    Export::new(&a, &raw).plan(&exec).unwrap().run().unwrap();
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 33 * 20 * 7 * 4);
    let opts = ImportOptions::default()
        .with_raw([33, 20, 7], DType::F32)
        .with_chunk_shape([5, 5, 5]);
    Import::new(&raw, dir.path().join("c.zarr"))
        .with_options(opts)
        .plan(&exec)
        .unwrap()
        .run()
        .unwrap();
    let c = Arc::new(ZarrArray::open(dir.path().join("c.zarr")).unwrap());
    assert!(identical(&a, &c));
}

#[test]
fn raw_without_shape_or_with_wrong_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("x.bin");
    std::fs::write(&raw, vec![0u8; 100]).unwrap();
    let exec = Session::new(ExecOptions::default());
    let err = Import::new(&raw, dir.path().join("y"))
        .with_options(ImportOptions::default())
        .plan(&exec)
        .and_then(|p| p.run())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("give its shape and element type (ImportOptions::with_raw)"),
        "{err}"
    );
    let opts = ImportOptions::default().with_raw([10, 10], DType::F64);
    let err = Import::new(&raw, dir.path().join("y"))
        .with_options(opts)
        .plan(&exec)
        .and_then(|p| p.run())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidFile { .. }), "{err}");
    assert!(
        !dir.path().join("y").exists(),
        "nothing is created for a bad source"
    );
}

#[test]
fn failed_export_leaves_an_existing_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let exec = Session::new(ExecOptions::default());
    let a = Generate::new(
        dir.path().join("a.zarr"),
        ArraySpec::new(vec![16], vec![4], DType::F64),
        Fill::Range,
    )
    .plan(&exec)
    .unwrap()
    .run()
    .unwrap()
    .array;
    // Corrupt one chunk so the export fails midway.
    let chunk = a.chunk_path(&[2]);
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[3] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();
    let dst = dir.path().join("out.npy");
    std::fs::write(&dst, b"precious").unwrap();
    let err = Export::new(&a, &dst)
        .plan(&exec)
        .and_then(|p| p.run())
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&dst).unwrap(), b"precious");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}
