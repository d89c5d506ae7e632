//! [`import`] and [`export`]: stream `.npy` and raw files into and out of
//! stored arrays, chunk by chunk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::{ChunkGrid, DType, Error, Result};
use crate::dispatch_dtype;
use crate::exec::{Progress, Session, for_each_task};
use crate::io::DenseFile;
use crate::store::{ArraySpec, Compression, ZarrArray};

/// How to lay out an array created by [`import`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// Chunk shape; `None` picks chunks of
    /// [`ExecOptions::default_chunk_bytes`](crate::exec::ExecOptions::default_chunk_bytes).
    pub chunk_shape: Option<Vec<u64>>,
    /// Compressor of each chunk.
    pub compression: Compression,
    /// Shard shape, a multiple of the chunk shape; `None` for no sharding.
    pub shard_shape: Option<Vec<u64>>,
    /// Shape of a raw source (required for raw, ignored for `.npy`).
    pub raw_shape: Option<Vec<u64>>,
    /// Element type of a raw source (required for raw, ignored for `.npy`).
    pub raw_dtype: Option<DType>,
    /// Keep chunks already written by an earlier, interrupted import into the
    /// same destination.
    pub resume: bool,
}

/// What an import or export moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// Shape of the array.
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: Option<DType>,
    /// Stored chunks transferred.
    pub chunks: u64,
    /// Stored chunks skipped because an earlier run had written them.
    pub chunks_skipped: u64,
    /// Uncompressed bytes transferred.
    pub bytes: u64,
}

/// True when `path` names a `.npy` file (else it is raw binary).
pub fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

fn open_source(src: &Path, opts: &ImportOptions) -> Result<DenseFile> {
    if is_npy(src) {
        return DenseFile::open_npy(src);
    }
    match (&opts.raw_shape, opts.raw_dtype) {
        (Some(shape), Some(dtype)) => DenseFile::open_raw(src, shape.clone(), dtype),
        _ => Err(Error::invalid(format!(
            "{} is read as raw binary (it does not end in .npy): give its --shape and --dtype",
            src.display()
        ))),
    }
}

/// Imports a `.npy` (C or Fortran order, f32/f64, either endianness) or raw
/// file into a new Zarr array at `dst`, one stored chunk at a time: memory
/// use is a few chunks per worker, whatever the file size.
///
/// # Errors
/// [`Error::AlreadyExists`] if `dst` exists (unless resuming into the same
/// layout); [`Error::InvalidFile`] for a malformed source;
/// [`Error::MemoryLimit`] before any work if a chunk cannot fit.
///
/// ```
/// use tenrso_ooc::exec::{NoProgress, Session};
/// use tenrso_ooc::ops::{ImportOptions, import};
/// # let dir = tempfile::tempdir()?;
/// # let src = dir.path().join("x.npy");
/// # tenrso_ooc::io::DenseFile::create_npy(&src, tenrso_ooc::DType::F64, &[100, 10])?;
/// let opts = ImportOptions { chunk_shape: Some(vec![32, 10]), ..Default::default() };
/// let report = import(&src, &dir.path().join("x.zarr"), &opts, &Session::default(), &NoProgress)?;
/// assert_eq!(report.chunks, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import(
    src: &Path,
    dst: &Path,
    opts: &ImportOptions,
    session: &Session,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let source = open_source(src, opts)?;
    let layout = source.layout().clone();
    let itemsize = layout.dtype.size() as u64;
    // Resuming without a chunk shape keeps the existing array's (the
    // automatic choice depends on the memory limit, which may have changed).
    let existing_chunks = (opts.resume && opts.chunk_shape.is_none())
        .then(|| ZarrArray::open(dst).ok())
        .flatten()
        .map(|a| {
            a.inner_chunk_shape()
                .unwrap_or(a.chunk_grid().chunk_shape())
                .to_vec()
        });
    let chunk_shape = opts
        .chunk_shape
        .clone()
        .or(existing_chunks)
        .unwrap_or_else(|| {
            ChunkGrid::auto_chunk_shape(
                &layout.shape,
                itemsize,
                session.options().default_chunk_bytes(),
            )
        });
    let mut spec = ArraySpec::new(layout.shape.clone(), chunk_shape, layout.dtype)
        .with_compression(opts.compression);
    spec.shard_shape = opts.shard_shape.clone();
    let mut array = if opts.resume {
        ZarrArray::create_or_resume(dst, &spec)?
    } else {
        ZarrArray::create(dst, &spec)?
    };
    array.record_job("tenrso_import", source_record(src)?, opts.resume)?;
    let grid = array.chunk_grid();
    let skipped = AtomicU64::new(0);
    let copied = AtomicU64::new(0);
    progress.start("import", array.nbytes());
    let result = dispatch_dtype!(layout.dtype, T => for_each_task(
        session,
        array.chunk_working_set(),
        "importing one chunk",
        grid.num_chunks() as usize,
        progress,
        |i| {
            let chunk = grid.chunk_coords(i as u64);
            if opts.resume && array.chunk_exists(&chunk)? {
                skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(array.nbytes_of(&chunk));
            }
            let block = source.read_region::<T>(&grid.chunk_region(&chunk))?;
            array.write_chunk(&chunk, &block)?;
            let bytes = block.byte_len() as u64;
            session.metrics().bytes_read.add(bytes);
            session.metrics().bytes_written.add(bytes);
            copied.fetch_add(bytes, Ordering::Relaxed);
            Ok(bytes)
        },
    ));
    progress.finish();
    result?;
    let chunks_skipped = skipped.into_inner();
    Ok(TransferReport {
        shape: layout.shape,
        dtype: Some(layout.dtype),
        chunks: grid.num_chunks() - chunks_skipped,
        chunks_skipped,
        bytes: copied.into_inner(),
    })
}

/// What identifies an import's source: its canonical path, size and
/// modification time, so `--resume` refuses to mix two sources.
fn source_record(src: &Path) -> Result<serde_json::Value> {
    let meta = std::fs::metadata(src).map_err(|e| Error::io(src, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let canonical = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
    Ok(serde_json::json!({
        "source": canonical.to_string_lossy(),
        "bytes": meta.len(),
        "modified_ns": modified.to_string(),
    }))
}

/// Exports the array at `src` to a `.npy` (C order, little endian) or raw
/// file at `dst`, one stored chunk at a time. The file is written under a
/// temporary name and renamed into place when complete, so a failed export
/// never leaves a partial file at `dst` nor destroys one that was there.
///
/// # Errors
/// Store errors (a corrupt chunk aborts the export); [`Error::Io`].
pub fn export(
    src: &Path,
    dst: &Path,
    session: &Session,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let array = ZarrArray::open(src)?;
    let temp = temp_sibling(dst);
    let file = if is_npy(dst) {
        DenseFile::create_npy(&temp, array.dtype(), array.shape())
    } else {
        DenseFile::create_raw(&temp, array.dtype(), array.shape())
    }?;
    let bytes = array.nbytes();
    let grid = array.chunk_grid();
    progress.start("export", bytes);
    let result = dispatch_dtype!(array.dtype(), T => for_each_task(
        session,
        array.chunk_working_set(),
        "exporting one chunk",
        grid.num_chunks() as usize,
        progress,
        |i| {
            let chunk = grid.chunk_coords(i as u64);
            let block = array.read_chunk::<T>(&chunk)?;
            file.write_region(&grid.chunk_region(&chunk), &block)?;
            let bytes = block.byte_len() as u64;
            session.metrics().bytes_read.add(bytes);
            session.metrics().bytes_written.add(bytes);
            Ok(bytes)
        },
    ))
    .and_then(|()| file.sync())
    .and_then(|()| std::fs::rename(&temp, dst).map_err(|e| Error::io(dst, e)));
    progress.finish();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    if let Some(dir) = dst.parent() {
        crate::store::sync_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
    }
    Ok(TransferReport {
        shape: array.shape().to_vec(),
        dtype: Some(array.dtype()),
        chunks: grid.num_chunks(),
        chunks_skipped: 0,
        bytes,
    })
}

/// `dir/.name.tenrso-tmp.PID` next to `path`.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("export");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    path.with_file_name(format!(".{name}.tenrso-tmp.{}.{nanos}", std::process::id()))
}
