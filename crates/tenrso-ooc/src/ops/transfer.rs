//! [`Import`] and [`Export`]: stream `.npy`, raw, Arrow IPC and Parquet
//! files into and out of stored arrays, chunk by chunk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::{Block, ChunkGrid, DType, Element, Error, Region, Result};
use crate::dispatch_dtype;
use crate::exec::{Progress, Session, TaskSet, for_each_task};
use crate::io::{ArrayRef, IntoArrayRef, ReadableArray};
use crate::io::{
    ColumnarOptions, ColumnarWriter, DenseFile, SourceFormat, SourceOptions, open_source,
};
use crate::ops::codec_auto::resolve_codec;
use crate::ops::planned::job_record;
use crate::ops::{ChunkPlan, Planned};
use crate::store::{
    ArraySpec, AtomicFile, CodecChoice, CodecDecision, CodecGoal, Compression, ZarrArray,
    check_output_not_input,
};

/// How to lay out an array created by [`Import`], and how to read its source.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Chunk shape; `None` picks chunks of
    /// [`ExecOptions::default_chunk_bytes`](crate::exec::ExecOptions::default_chunk_bytes).
    pub chunk_shape: Option<Vec<u64>>,
    /// Compressor of each chunk.
    pub compression: Compression,
    /// Measure the candidates on samples of the source and use the best for
    /// this goal instead of `compression` (see [`ImportOptions::with_codec`]).
    pub auto_codec: Option<CodecGoal>,
    /// Shard shape, a multiple of the chunk shape; `None` for no sharding.
    pub shard_shape: Option<Vec<u64>>,
    /// Shape of a raw source (required for raw, ignored for `.npy`).
    pub raw_shape: Option<Vec<u64>>,
    /// Element type of a raw source (required for raw, ignored for `.npy`).
    pub raw_dtype: Option<DType>,
    /// Keep chunks already written by an earlier, interrupted import into the
    /// same destination.
    pub resume: bool,
    /// Columns of an Arrow/Parquet source to import (see
    /// [`SourceOptions::columns`]).
    pub columns: Option<Vec<String>>,
}

impl ImportOptions {
    /// Sets the chunk shape.
    pub fn with_chunk_shape(mut self, chunks: impl Into<Vec<u64>>) -> Self {
        self.chunk_shape = Some(chunks.into());
        self
    }

    /// Sets the compressor.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self.auto_codec = None;
        self
    }

    /// Sets the compressor, or `auto` to measure the candidates on samples
    /// of the source (see [`select_codec`](crate::store::select_codec)).
    pub fn with_codec(mut self, codec: CodecChoice) -> Self {
        match codec {
            CodecChoice::Fixed(compression) => return self.with_compression(compression),
            CodecChoice::Auto(goal) => self.auto_codec = Some(goal),
        }
        self
    }

    /// Shards the array with shards of `shape` (a multiple of the chunks).
    pub fn with_shard_shape(mut self, shape: impl Into<Vec<u64>>) -> Self {
        self.shard_shape = Some(shape.into());
        self
    }

    /// Reads a raw source as `dtype` values of `shape`.
    pub fn with_raw(mut self, shape: impl Into<Vec<u64>>, dtype: DType) -> Self {
        self.raw_shape = Some(shape.into());
        self.raw_dtype = Some(dtype);
        self
    }

    /// Keeps chunks of an interrupted import into the same destination.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Imports only these columns of an Arrow/Parquet source.
    pub fn with_columns(mut self, columns: Vec<String>) -> Self {
        self.columns = Some(columns);
        self
    }
}

/// What an import or export moved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferReport {
    /// Shape of the array.
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: Option<DType>,
    /// Stored chunks transferred.
    pub chunks: u64,
    /// Stored chunks skipped because an earlier run had written them.
    pub chunks_skipped: u64,
    /// Chunks of the source never written: exported as its fill value
    /// without being read.
    pub chunks_absent: u64,
    /// Uncompressed bytes transferred.
    pub bytes: u64,
    /// How an import chose its codec, when it was `auto` (and not resumed).
    pub codec_choice: Option<CodecDecision>,
}

/// True when `path` names a `.npy` file (else it is raw binary).
pub fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

impl ImportOptions {
    /// How to read the source `src`: its columns, or its raw layout.
    /// The raw layout applies only to a file of no known format (for the
    /// others the file says its own, and the options are ignored).
    fn source_options(&self, src: &Path) -> Result<SourceOptions> {
        let format = SourceFormat::of(src);
        let mut options = SourceOptions::default();
        if let Some(columns) = &self.columns {
            if !matches!(format, Some(SourceFormat::ArrowIpc | SourceFormat::Parquet)) {
                return Err(Error::invalid(format!(
                    "{}: column names (ImportOptions::columns) apply to Arrow and Parquet files",
                    src.display()
                )));
            }
            options = options.with_columns(columns.clone());
        }
        if format.is_some() {
            return Ok(options);
        }
        match (&self.raw_shape, self.raw_dtype) {
            (Some(shape), Some(dtype)) => Ok(options.with_raw(shape.clone(), dtype)),
            _ => Err(Error::invalid(format!(
                "{} is read as raw binary (it is not .npy, .arrow/.arrows/.feather/.ipc or .parquet): give its shape and element type (ImportOptions::with_raw)",
                src.display()
            ))),
        }
    }
}

/// Imports a `.npy` (C or Fortran order, f32/f64, either endianness), raw,
/// Arrow IPC or Parquet file into a new stored array, one stored chunk at a
/// time: memory use is a few chunks per worker, whatever the file size.
///
/// ```
/// use tenrso_ooc::exec::Session;
/// use tenrso_ooc::ops::{Import, ImportOptions};
/// # let dir = tempfile::tempdir()?;
/// # let src = dir.path().join("x.npy");
/// # tenrso_ooc::io::DenseFile::create_npy(&src, tenrso_ooc::DType::F64, &[100, 10])?;
/// let opts = ImportOptions::default().with_chunk_shape([32, 10]);
/// let report = Import::new(&src, dir.path().join("x.zarr")).with_options(opts).plan(&Session::default())?.run()?;
/// assert_eq!(report.chunks, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Import {
    src: PathBuf,
    dst: PathBuf,
    options: ImportOptions,
}

impl Import {
    /// Imports the file `src` into a new array at `dst`.
    pub fn new(src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> Self {
        Self {
            src: src.into(),
            dst: dst.into(),
            options: ImportOptions::default(),
        }
    }

    /// Sets the layout of the array and how to read the source.
    pub fn with_options(mut self, options: ImportOptions) -> Self {
        self.options = options;
        self
    }

    /// Plans the import: opens the source and chooses the layout.
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for a malformed source. Running refuses with
    /// [`Error::MemoryLimit`], before creating anything, when a chunk cannot
    /// fit.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, ChunkPlan, TransferReport>> {
        crate::distributed::one_process_only(session.ranks(), "import")?;
        check_output_not_input(&self.dst, &[&self.src])?;
        let source = open_source(&self.src, &self.options.source_options(&self.src)?)?;
        let mut spec = import_spec(&source, &self.dst, &self.options, session)?;
        spec.validate()?;
        let codec_choice = match self.options.auto_codec {
            Some(goal) => dispatch_dtype!(spec.dtype, T => resolve_codec(
                CodecChoice::Auto(goal),
                &mut spec,
                &self.dst,
                self.options.resume,
                session,
                |region| source.read_region::<T>(region),
            ))?,
            None => None,
        };
        let grid = ChunkGrid::new(spec.shape.clone(), spec.chunk_shape.clone())?;
        let bytes = grid.shape().num_elements() * spec.dtype.size() as u64;
        let plan = ChunkPlan {
            operation: format!("import {} into {}", self.src.display(), self.dst.display()),
            tasks: grid.num_chunks(),
            bytes_read: bytes,
            bytes_written: bytes,
            task_bytes: ImportUnit::of(&source, &grid, &spec).task_bytes,
            memory_limit: session.memory_limit(),
        };
        let request = self.clone();
        Ok(Planned::new(plan, move |_: &ChunkPlan, progress| {
            let mut report = import_into(&source, &spec, &request, session, progress)?;
            report.codec_choice = codec_choice.clone();
            Ok(report)
        }))
    }
}

/// How [`Import`] lays out `dst`: the source's shape and type, the chunks
/// asked for, else those of an array being resumed, else automatic ones.
fn import_spec(
    source: &ArrayRef,
    dst: &Path,
    opts: &ImportOptions,
    session: &Session,
) -> Result<ArraySpec> {
    let (shape, dtype) = (source.shape().to_vec(), source.dtype());
    let itemsize = dtype.size() as u64;
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
            ChunkGrid::auto_chunk_shape(&shape, itemsize, session.options().default_chunk_bytes())
        });
    let mut spec =
        ArraySpec::new(shape.clone(), chunk_shape, dtype).with_compression(opts.compression);
    spec.shard_shape = opts.shard_shape.clone();
    Ok(spec)
}

/// A unit of import work: one chunk from a dense file; from rows, the
/// chunks of one chunk row, so each row of the source is read once.
struct ImportUnit {
    /// Units of the import.
    count: u64,
    /// Memory one unit holds: its chunks' working set, the rows read and
    /// the source's decoding buffers.
    task_bytes: u64,
}

impl ImportUnit {
    fn of(source: &ArrayRef, grid: &ChunkGrid, spec: &ArraySpec) -> Self {
        let chunk_working_set = spec.chunk_working_set();
        if source.reads_whole_rows() {
            let row_elements: u64 = spec.shape[1..].iter().product();
            let rows_bytes = grid.chunk_shape()[0] * row_elements * spec.dtype.size() as u64;
            Self {
                count: grid.grid_shape()[0],
                task_bytes: chunk_working_set + rows_bytes + source.chunk_working_set(),
            }
        } else {
            Self {
                count: grid.num_chunks(),
                task_bytes: chunk_working_set,
            }
        }
    }
}

fn import_into(
    source: &ArrayRef,
    spec: &ArraySpec,
    request: &Import,
    session: &Session,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let (dst, opts) = (&request.dst, &request.options);
    let (shape, dtype) = (source.shape().to_vec(), source.dtype());
    let grid = ChunkGrid::new(spec.shape.clone(), spec.chunk_shape.clone())?;
    let unit = ImportUnit::of(source, &grid, spec);
    session
        .options()
        .check_fits(unit.task_bytes, "importing one chunk")?;
    let (units, task_bytes) = (unit.count, unit.task_bytes);
    let mut array = if opts.resume {
        ZarrArray::create_or_resume(dst, spec)?
    } else {
        ZarrArray::create(dst, spec)?
    };
    array.record_job(
        "tenrso_import",
        job_record("import", &[&**source]),
        opts.resume,
    )?;
    let grid = array.chunk_grid();
    let unit_chunks = |u: u64| -> Vec<Vec<u64>> {
        if source.reads_whole_rows() {
            let mut row = grid.grid_shape().to_vec();
            row[0] = 1;
            let mut start = vec![0; row.len()];
            start[0] = u;
            ChunkGrid::iter_region(&Region::new(start, row)).collect()
        } else {
            vec![grid.chunk_coords(u)]
        }
    };
    let skipped = AtomicU64::new(0);
    let copied = AtomicU64::new(0);
    progress.start("import", array.nbytes());
    array.set_durability(session.options().durability);
    let result = dispatch_dtype!(dtype, T => for_each_task(session, TaskSet { count: units as usize, bytes_each: task_bytes, what: "importing one chunk" }, progress,
        |u| {
            let mut todo = Vec::new();
            let mut done_bytes = 0;
            for chunk in unit_chunks(u as u64) {
                if opts.resume && array.chunk_exists(&chunk)? {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    done_bytes += array.nbytes_of(&chunk);
                } else {
                    todo.push(chunk);
                }
            }
            let Some(first) = todo.first() else {
                return Ok(done_bytes);
            };
            let bounds = if source.reads_whole_rows() {
                let rows = grid.chunk_region(first);
                let mut extent = shape.clone();
                extent[0] = rows.shape()[0];
                let mut start = vec![0; shape.len()];
                start[0] = rows.start()[0];
                Region::new(start, extent)
            } else {
                grid.chunk_region(first)
            };
            let data = source.read_region::<T>(&bounds)?;
            for chunk in &todo {
                let region = grid.chunk_region(chunk);
                if region == bounds {
                    array.write_chunk(chunk, &data)?;
                } else {
                    array.write_chunk(chunk, &data.extract(&region.relative_to(bounds.start())))?;
                }
            }
            let bytes = data.byte_len() as u64;
            session.metrics().bytes_read.add(bytes);
            session.metrics().bytes_written.add(bytes);
            copied.fetch_add(bytes, Ordering::Relaxed);
            Ok(done_bytes + bytes)
        },
    ));
    // What was written is committed, also after a failure (for `--resume`).
    let flushed = array.end_writes();
    progress.finish();
    result?;
    flushed?;
    let chunks_skipped = skipped.into_inner();
    Ok(TransferReport {
        shape,
        dtype: Some(dtype),
        chunks: grid.num_chunks() - chunks_skipped,
        chunks_skipped,
        chunks_absent: 0,
        bytes: copied.into_inner(),
        codec_choice: None,
    })
}

/// Exports a stored array to a `.npy` (C order, little endian) or raw file,
/// or to Arrow IPC (`.arrow`/`.feather`/`.ipc` file, `.arrows` stream) or
/// Parquet (`.parquet`) with a `fixed_shape_tensor` column (or numeric
/// columns), one record batch or row group per slab of rows, written in
/// order while the next slab is read. The file is written under a
/// temporary name and renamed into place when complete, so a failed export
/// never leaves a partial file at the destination nor destroys one that was
/// there.
///
/// ```
/// use tenrso_ooc::exec::Session;
/// use tenrso_ooc::io::{ColumnarCompression, ColumnarOptions};
/// use tenrso_ooc::ops::{Export, Fill, Generate};
/// use tenrso_ooc::io::SourceOptions;
/// use tenrso_ooc::store::{ArraySpec, open_array};
/// # let dir = tempfile::tempdir()?;
/// let session = Session::default();
/// let spec = ArraySpec::new(vec![100, 4, 5], vec![10, 4, 5], tenrso_ooc::DType::F32);
/// let x = Generate::new(dir.path().join("x.zarr"), spec, Fill::Range).plan(&session)?.run()?.array;
/// let options = ColumnarOptions::default()
///     .with_compression(Some(ColumnarCompression::Zstd))
///     .with_row_group_rows(Some(25));
/// let parquet = dir.path().join("x.parquet");
/// Export::new(&x, &parquet).with_columnar(options).plan(&session)?.run()?;
/// // Read back in place: four row groups of 25 rows of 4x5 cells.
/// let back = open_array(&parquet, &SourceOptions::default())?;
/// assert_eq!(back.shape(), &[100, 4, 5]);
/// assert!(back.describe().contains("4 row groups"));
/// let row = back.read_region::<f32>(&tenrso_ooc::Region::new(vec![25, 0, 0], vec![1, 4, 5]))?;
/// assert_eq!(row.as_slice()[0], 500.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Export {
    array: ArrayRef,
    dst: PathBuf,
    columnar: ColumnarOptions,
}

impl Export {
    /// Exports `array` to the file `dst` (its format from its extension).
    pub fn new(array: &impl IntoArrayRef, dst: impl Into<PathBuf>) -> Self {
        Self {
            array: array.array_ref(),
            dst: dst.into(),
            columnar: ColumnarOptions::default(),
        }
    }

    /// Sets the options of Arrow IPC and Parquet destinations.
    pub fn with_columnar(mut self, options: ColumnarOptions) -> Self {
        self.columnar = options;
        self
    }

    /// Plans the export.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for options that do not apply to the
    /// destination.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, ChunkPlan, TransferReport>> {
        crate::distributed::one_process_only(session.ranks(), "export")?;
        let columnar = matches!(
            SourceFormat::of(&self.dst),
            Some(SourceFormat::ArrowIpc | SourceFormat::Parquet)
        );
        if !columnar && self.columnar != ColumnarOptions::default() {
            return Err(Error::invalid(format!(
                "{}: row-group rows, compression and columns apply to .arrow/.arrows/.feather/.ipc and .parquet files",
                self.dst.display()
            )));
        }
        let array = &self.array;
        check_output_not_input(&self.dst, &[array.path()])?;
        let plan = ChunkPlan {
            operation: format!(
                "export {} to {}",
                array.path().display(),
                self.dst.display()
            ),
            tasks: array.chunk_grid().num_chunks(),
            bytes_read: array.nbytes(),
            bytes_written: array.nbytes(),
            task_bytes: array.chunk_working_set(),
            memory_limit: session.memory_limit(),
        };
        let request = self.clone();
        Ok(Planned::new(plan, move |_: &ChunkPlan, progress| {
            export_to(
                &*request.array,
                &request.dst,
                &request.columnar,
                session,
                progress,
            )
        }))
    }
}

fn export_to(
    array: &dyn ReadableArray,
    dst: &Path,
    options: &ColumnarOptions,
    session: &Session,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let temp = AtomicFile::create(dst)?;
    let report = match SourceFormat::of(dst) {
        Some(SourceFormat::ArrowIpc | SourceFormat::Parquet) => {
            export_rows(array, dst, temp.path(), options, session, progress)
        }
        _ if *options != ColumnarOptions::default() => Err(Error::invalid(format!(
            "{}: rows per row group, compression and column names (ColumnarOptions) apply to .arrow/.arrows/.feather/.ipc and .parquet files",
            dst.display()
        ))),
        _ => export_dense(array, dst, temp.path(), session, progress),
    }?;
    temp.commit()?;
    Ok(report)
}

/// Writes `array` to `dst` in Arrow IPC or Parquet: a reader thread reads
/// slabs of rows while this thread encodes and writes the previous one.
fn export_rows(
    array: &dyn ReadableArray,
    dst: &Path,
    temp: &Path,
    options: &ColumnarOptions,
    session: &Session,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let shape = array.shape().to_vec();
    let dtype = array.dtype();
    if shape.is_empty() {
        return Err(Error::invalid(format!(
            "{}: a 0-d array cannot be written as rows",
            dst.display()
        )));
    }
    let row_bytes = shape[1..].iter().product::<u64>() * dtype.size() as u64;
    let limit = session.options().memory_limit;
    let slab_rows = match options.row_group_rows {
        Some(0) => return Err(Error::invalid("rows per record batch or row group (ColumnarOptions::row_group_rows) must be at least 1")),
        Some(rows) => rows,
        None => {
            // At most 16 MiB: slabs and the encoder's copies then stay
            // below glibc's mmap threshold and reuse heap pages instead of
            // faulting fresh ones in (a 64 MiB slab cost ~50k faults).
            let target = (limit / 16).clamp(1 << 20, 16 << 20);
            let rows = (target / row_bytes.max(1)).max(1);
            // Whole stored chunk rows where they fit, so slabs read whole chunks.
            let chunk_rows = array.chunk_grid().chunk_shape()[0];
            if rows >= chunk_rows {
                rows / chunk_rows * chunk_rows
            } else {
                rows
            }
        }
    }
    .min(shape[0].max(1));
    // A slab being read and one being written (handed over without a
    // queue), the encoder's copies of the one written (Arrow arrays; for
    // Parquet also its levels and the encoded row group until flushed), and
    // the chunks a slab read holds.
    let parquet = SourceFormat::of(dst) == Some(SourceFormat::Parquet);
    let slabs_held = if parquet { 5 } else { 3 };
    let working_set = array.chunk_working_set();
    // Chunks of whole rows go to the file as they are read, batch by batch
    // (no slab assembled from them), when a batch of the requested size
    // divides a chunk and three chunks fit easily.
    let chunk_rows = array.chunk_grid().chunk_shape()[0];
    let chunk_bytes = chunk_rows.min(shape[0]) * row_bytes;
    let whole_rows = shape
        .iter()
        .zip(array.chunk_grid().chunk_shape())
        .skip(1)
        .all(|(extent, chunk)| chunk >= extent);
    let from_chunks = whole_rows
        && options.columns.is_none()
        && match options.row_group_rows {
            None => chunk_bytes >= 1 << 20,
            Some(rows) => chunk_rows.is_multiple_of(rows),
        }
        && slabs_held * chunk_bytes + working_set <= limit / 2;
    let (read_rows, batch_rows) = if from_chunks {
        // (One chunk row when the chunks are taller than the array.)
        let rows = chunk_rows.min(shape[0]).max(1);
        (rows, options.row_group_rows.unwrap_or(rows))
    } else {
        (slab_rows, slab_rows)
    };
    let mut reservation = session.pool().reservation("export: slabs of rows");
    reservation.grow(slabs_held * read_rows * row_bytes + working_set)?;
    let mut writer = ColumnarWriter::create(temp, dst, dtype, &shape, options)?;
    let slabs = shape[0].div_ceil(read_rows);
    progress.start("export", array.nbytes());
    let result = dispatch_dtype!(dtype, T => std::thread::scope(|scope| -> Result<()> {
        let (send, receive) = std::sync::mpsc::sync_channel::<Result<(Vec<T>, usize)>>(0);
        let shape = &shape;
        scope.spawn(move || {
            for slab in 0..slabs {
                let start = slab * read_rows;
                let rows = read_rows.min(shape[0] - start);
                let block = session.cancel_token().check().and_then(|()| {
                    if from_chunks {
                        let mut chunk = vec![0; shape.len()];
                        chunk[0] = slab;
                        array.read_chunk::<T>(&chunk)
                    } else {
                        let mut origin = vec![0; shape.len()];
                        origin[0] = start;
                        let mut extent = shape.clone();
                        extent[0] = rows;
                        array.read_region::<T>(&Region::new(origin, extent))
                    }
                });
                let failed = block.is_err();
                if send.send(block.map(|b| (b.into_vec(), rows as usize))).is_err() || failed {
                    return;
                }
            }
        });
        for message in receive {
            session.cancel_token().check()?;
            let (values, rows) = message?;
            let bytes = (values.len() * dtype.size()) as u64;
            writer.write(values, rows, batch_rows as usize)?;
            session.metrics().bytes_read.add(bytes);
            session.metrics().bytes_written.add(bytes);
            progress.advance(bytes);
        }
        Ok(())
    }));
    progress.finish();
    result?;
    writer.finish(temp)?;
    Ok(TransferReport {
        shape,
        dtype: Some(dtype),
        chunks: slabs,
        chunks_skipped: 0,
        chunks_absent: 0,
        bytes: array.nbytes(),
        codec_choice: None,
    })
}

/// Writes `array` to a `.npy` or raw file at `temp`, chunks in parallel.
fn export_dense(
    array: &dyn ReadableArray,
    dst: &Path,
    temp: &Path,
    session: &Session,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let file = if is_npy(dst) {
        DenseFile::create_npy(temp, array.dtype(), array.shape())
    } else {
        DenseFile::create_raw(temp, array.dtype(), array.shape())
    }?;
    let bytes = array.nbytes();
    let grid = array.chunk_grid();
    // Chunks never written are the fill value: not read, and not written
    // either when it is 0 (the new file reads as zeros).
    let stored = array.stored_chunk_set()?;
    let fill = array.fill_value();
    progress.start("export", bytes);
    let result = dispatch_dtype!(array.dtype(), T => for_each_task(session, TaskSet { count: grid.num_chunks() as usize, bytes_each: array.chunk_working_set(), what: "exporting one chunk" }, progress,
        |i| {
            let chunk = grid.chunk_coords(i as u64);
            let region = grid.chunk_region(&chunk);
            if !stored.contains(i as u64) {
                if fill.to_bits() != 0 {
                    let block = Block::<T>::filled(region.shape().to_vec(), T::from_f64(fill));
                    file.write_region(&region, &block)?;
                    session.metrics().bytes_written.add(block.byte_len() as u64);
                }
                return Ok(region.num_elements() * array.dtype().size() as u64);
            }
            let block = array.read_chunk::<T>(&chunk)?;
            file.write_region(&region, &block)?;
            let bytes = block.byte_len() as u64;
            session.metrics().bytes_read.add(bytes);
            session.metrics().bytes_written.add(bytes);
            Ok(bytes)
        },
    ))
    .and_then(|()| file.sync());
    progress.finish();
    result?;
    Ok(TransferReport {
        shape: array.shape().to_vec(),
        dtype: Some(array.dtype()),
        chunks: grid.num_chunks(),
        chunks_skipped: 0,
        chunks_absent: stored.absent(),
        bytes,
        codec_choice: None,
    })
}
