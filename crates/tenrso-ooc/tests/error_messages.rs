//! The exact text of the library's main error messages, triggered through
//! the store, planning, memory and io layers (not through `ops`). The
//! messages name settings of the library (`ExecOptions::memory_limit`), never
//! flags of the CLI, and resource errors give the bytes asked for, held and
//! available. Temporary directories are written `TMP`.

use std::path::Path;

use tenrso_ooc::core::Block;
use tenrso_ooc::exec::ExecOptions;
use tenrso_ooc::io::{DenseFile, read_npy_values};
use tenrso_ooc::memory::{MemoryPool, SpillCodec, SpillDirSpec, SpillManager};
use tenrso_ooc::plan::EinsumSpec;
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{DType, Error};

/// `err`'s message with `dir` written `TMP`.
fn text(err: &Error, dir: &Path) -> String {
    err.to_string().replace(dir.to_str().unwrap(), "TMP")
}

#[test]
fn a_plan_over_the_limit_names_the_numbers_and_the_setting() {
    let options = ExecOptions::default().with_memory_limit(1 << 20);
    let err = options
        .check_fits(64 << 20, "one chunk of `x`")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "memory limit 1.00 MiB is too small: one chunk of `x` needs at least 64.00 MiB; \
         raise the limit (ExecOptions::memory_limit) or use smaller chunks"
    );
}

#[test]
fn pool_exhaustion_gives_requested_held_and_available_bytes() {
    let pool = MemoryPool::new(100 << 20);
    let mut cache = pool.reservation("chunk cache");
    cache.try_grow(60 << 20).unwrap();
    let mut worker = pool.reservation("worker 0");
    worker.try_grow(30 << 20).unwrap();
    let err = worker.try_grow(20 << 20).unwrap_err();
    assert_eq!(
        err.to_string(),
        "memory limit 100.00 MiB reached: `worker 0` asked for 20.00 MiB more while holding \
         30.00 MiB, and 10.00 MiB is available (not enough free memory); largest consumers: \
         chunk cache 60.00 MiB, worker 0 30.00 MiB; raise the limit \
         (ExecOptions::memory_limit) or use smaller chunks"
    );
    let err = worker.grow(200 << 20).unwrap_err();
    assert_eq!(
        err.to_string(),
        "memory limit 100.00 MiB reached: `worker 0` asked for 200.00 MiB more while holding \
         30.00 MiB, and 10.00 MiB is available (the request alone exceeds the limit); largest \
         consumers: chunk cache 60.00 MiB, worker 0 30.00 MiB; raise the limit \
         (ExecOptions::memory_limit) or use smaller chunks"
    );
}

#[test]
fn a_full_spill_directory_says_what_it_holds_and_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SpillDirSpec {
        path: dir.path().to_path_buf(),
        cap: Some(64 << 10),
    };
    let spill = SpillManager::new(&[spec], SpillCodec::None).unwrap();
    let kept = spill.write(&[7u8; 60 << 10]).unwrap();
    let err = spill.write(&[7u8; 60 << 10]).unwrap_err();
    let message = err
        .to_string()
        .replace(dir.path().to_str().unwrap(), "SPILL");
    assert_eq!(
        message,
        "cannot spill 60.00 KiB: every spill directory is full (cap reached: SPILL holds \
         60.02 KiB of its 64.00 KiB cap, 3.98 KiB free); add spill directories or raise their \
         caps (ExecOptions::spill_dirs)"
    );
    drop(kept);
}

#[test]
fn a_corrupt_chunk_names_the_array_chunk_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![4, 4], vec![2, 2], DType::F64);
    let array = ZarrArray::create(dir.path().join("a.zarr"), &spec).unwrap();
    let block = Block::from_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    array.write_chunk(&[1, 0], &block).unwrap();
    let path = array.chunk_path(&[1, 0]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let err = array.read_chunk::<f64>(&[1, 0]).unwrap_err();
    assert_eq!(
        text(&err, dir.path()),
        "array TMP/a.zarr: chunk [1, 0] (key `c/1/0`) is corrupt: checksum mismatch"
    );
}

#[test]
fn bad_einsum_subscripts_name_the_operand_and_index() {
    let err = EinsumSpec::parse("ij,jk->iz").unwrap_err();
    assert_eq!(
        err.to_string(),
        "einsum: output index `z` does not appear in any operand of `ij,jk->iz`"
    );
    let spec = EinsumSpec::parse("ij,jk->ik").unwrap();
    let err = spec.bind(&[&[3, 4], &[4, 5, 6]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "einsum: operand 1 has subscripts `jk` (2 indices) but the array has 3 axes (shape [4, 5, 6])"
    );
    let err = spec.bind(&[&[3, 4], &[5, 6]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "einsum: index `j` has size 5 in operand 1 (axis 0) but size 4 in operand 0"
    );
}

#[test]
fn a_chunk_shape_with_other_axes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![4, 4], vec![2], DType::F64);
    let err = ZarrArray::create(dir.path().join("a.zarr"), &spec).unwrap_err();
    assert_eq!(
        text(&err, dir.path()),
        "chunk shape 2 has 1 axes but the array shape 4x4 has 2"
    );
}

#[test]
fn opening_a_missing_array_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = ZarrArray::open(dir.path().join("nope.zarr")).unwrap_err();
    assert_eq!(
        text(&err, dir.path()),
        "TMP/nope.zarr: not a Zarr v3 array: no such directory"
    );
}

#[test]
fn damaged_npy_files_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.npy");
    std::fs::write(&junk, b"hello").unwrap();
    let err = DenseFile::open_npy(&junk).unwrap_err();
    assert_eq!(
        text(&err, dir.path()),
        "TMP/junk.npy: not a .npy file (bad magic string)"
    );
    // A valid header whose data was cut short.
    let short = dir.path().join("short.npy");
    let mut bytes = tenrso_ooc::io::npy_header_bytes(DType::F64, &[4]);
    bytes.extend(1.0f64.to_le_bytes());
    std::fs::write(&short, bytes).unwrap();
    let err = read_npy_values(&short).unwrap_err();
    assert_eq!(
        text(&err, dir.path()),
        "TMP/short.npy: file is 136 bytes but shape 4 of f64 needs 160 (truncated?)"
    );
}
