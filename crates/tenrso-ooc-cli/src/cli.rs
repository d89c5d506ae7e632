//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tenrso_ooc::io::ColumnarCompression;
use tenrso_ooc::memory::{PolicyKind, SpillCodec, SpillDirSpec, SpillMigration};
use tenrso_ooc::ops::{Fill, ReduceOp};
use tenrso_ooc::plan::PathStrategy;
use tenrso_ooc::store::{CodecChoice, Compression, Durability};
use tenrso_ooc::{ByteSize, DType, Shape};

/// Out-of-core dense tensors: chunked Zarr v3 arrays processed under a memory limit.
#[derive(Debug, Parser)]
#[command(name = "tenrso-ooc", version, about, propagate_version = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Memory limit for the run, e.g. 512MiB or 4GiB; under mpirun, of each rank [default: 25% of RAM; 64MiB for demo]
    #[arg(long, global = true, value_name = "SIZE")]
    pub memory_limit: Option<ByteSize>,
    /// Worker threads [default: all cores]
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Print one JSON object on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Spill directory PATH or PATH:CAP, repeatable: tiers tried in order, fastest first, for spill files and intermediates [default: the system temp dir]
    #[arg(long = "spill-dir", global = true, value_name = "PATH[:CAP]", value_parser = spill_dir())]
    pub spill_dirs: Vec<SpillDirSpec>,
    /// Node-local scratch of this process (each rank's own under mpirun): its intermediates, and its spill ahead of --spill-dir [default: the first spill directory]
    #[arg(long = "local-dir", global = true, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,
    /// Move spill files between tiers by the schedule (down when the first fills, up ahead of use): off, auto (where the first tier is measured at least 1.5x faster) or always
    #[arg(long, global = true, default_value = "off", value_name = "WHEN")]
    pub spill_migration: SpillMigration,
    /// Reader threads loading chunks ahead of the workers in plan order (decoding and checking them); more than the cores can pay on a cold disk. Full reductions and the passes of cp and tucker read in their workers instead
    #[arg(long, global = true, default_value_t = tenrso_ooc::exec::DEFAULT_READERS as u16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub readers: u16,
    /// How output chunks reach the disk: chunk (an fsync per chunk), batch (synced in batches by a background thread; a killed run still leaves every chunk old or new) or none (written in place, never synced: a killed run can leave torn chunks, which `verify` names)
    #[arg(long, global = true, default_value = "batch", value_name = "MODE")]
    pub durability: Durability,
    /// Compression of spilled chunks: none, lz4, zstd[:LEVEL] or auto (measured on the first chunk spilled against the spill directory's bandwidth)
    #[arg(long, global = true, default_value = "lz4", value_name = "CODEC")]
    pub spill_codec: SpillCodec,
    /// Chunk cache eviction: min (Belady, from the plan), lru, lfu, arc or learned (LRU and LFU weighed online)
    #[arg(long, global = true, default_value = "min", value_name = "POLICY")]
    pub cache_policy: PolicyKind,
    /// Print the plan (memory, bytes to read/write/spill, tasks) and run nothing
    #[arg(long, global = true)]
    pub explain: bool,
    /// Write a run report to FILE: JSON (metrics, their timeline every 100 ms, time per phase, plans, peak memory), or an HTML page with plots when FILE ends in .html
    #[arg(long, global = true, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Serve Prometheus metrics on HOST:PORT (GET /metrics) while the command runs
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Send spans (command, operation, plan, stages, task batches, iterations, passes) and metrics to the OpenTelemetry collector at URL over OTLP/HTTP protobuf, e.g. http://127.0.0.1:4318 [default: $OTEL_EXPORTER_OTLP_ENDPOINT]; an unreachable collector is a warning
    #[arg(long, global = true, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Log format on stderr (filter with RUST_LOG, default warn)
    #[arg(long, global = true, default_value = "pretty", value_enum)]
    pub log_format: LogFormat,
}

/// `--spill-dir PATH[:CAP]` with PATH any bytes (not only UTF-8).
fn spill_dir() -> impl clap::builder::TypedValueParser<Value = SpillDirSpec> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|s| SpillDirSpec::parse_os(&s))
}

/// How logs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Multi-line, human-friendly.
    Pretty,
    /// One JSON object per event.
    Json,
    /// One line per event.
    Compact,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a stored array, filled by a generator
    Create(CreateArgs),
    /// Describe an array (a store, or a .npy, Arrow or Parquet file): shape, type, chunks, codecs, size on disk; without one, this machine: cores, memory, GEMM kernel and its measured speed
    Info(InfoArgs),
    /// Decode every chunk and check its checksum; exit 1 listing bad chunks
    Verify(VerifyArgs),
    /// Import a .npy, Arrow IPC, Parquet or raw file into a new stored array
    Import(ImportArgs),
    /// Export an array to a .npy, Arrow IPC, Parquet or raw file
    Export(ExportArgs),
    /// Evaluate an element-wise expression of x (and y) into a new array
    Map(MapArgs),
    /// Sum, mean, min, max or L2 norm over all or some axes
    Reduce(ReduceArgs),
    /// Permute the axes into a new array
    Transpose(TransposeArgs),
    /// Copy into a new array with another chunk shape
    Rechunk(RechunkArgs),
    /// Contract stored arrays with NumPy einsum subscripts (matmul, tensordot, traces, chains)
    Einsum(EinsumArgs),
    /// CP decomposition by alternating least squares (out of core, checkpointed)
    Cp(CpArgs),
    /// Tucker decomposition by HOSVD and HOOI (out of core, checkpointed)
    Tucker(TuckerArgs),
    /// Write the full tensor of a CP or Tucker model (an output directory of cp or tucker) chunk by chunk
    Reconstruct(ReconstructArgs),
    /// Show the engine at work on a tensor larger than its memory limit
    Demo(DemoArgs),
    /// Draw a JSON run report (from --report RUN.json) as one self-contained HTML page with plots; from such a page, `-o RUN.json` gives back its JSON
    Report(ReportArgs),
    /// Replay recorded region traces (unplanned reads, e.g. Python slicing) through every cache policy and the access predictor: hit ratios against Belady's MIN
    Replay(ReplayArgs),
}

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Info(_) => "info",
            Self::Verify(_) => "verify",
            Self::Import(_) => "import",
            Self::Export(_) => "export",
            Self::Map(_) => "map",
            Self::Reduce(_) => "reduce",
            Self::Transpose(_) => "transpose",
            Self::Rechunk(_) => "rechunk",
            Self::Einsum(_) => "einsum",
            Self::Cp(_) => "cp",
            Self::Tucker(_) => "tucker",
            Self::Reconstruct(_) => "reconstruct",
            Self::Demo(_) => "demo",
            Self::Report(_) => "report",
            Self::Replay(_) => "replay",
        }
    }

    /// True for commands that run SPMD under mpirun, each rank its share.
    pub fn runs_distributed(&self) -> bool {
        !matches!(
            self,
            Self::Import(_) | Self::Export(_) | Self::Demo(_) | Self::Report(_) | Self::Replay(_)
        )
    }
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Trace files (`array SHAPE`, `chunks SHAPE`, then one `START EXTENT` per read), as Python's `Array.cached()` records them
    #[arg(required = true, value_name = "TRACE")]
    pub traces: Vec<PathBuf>,
    /// Cache capacities to replay, in chunks
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "8,16,32",
        value_name = "CHUNKS"
    )]
    pub capacity: Vec<usize>,
    /// Regions the predictor loads ahead in the prediction columns
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub prefetch: usize,
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON run report, as `--report RUN.json` writes it (or a page `--report RUN.html` wrote)
    #[arg(value_name = "RUN.json")]
    pub input: PathBuf,
    /// The file to write: an HTML page, or JSON unless it ends in .html [default: the report's name ending in .html]
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,
}

/// `einsum`.
#[derive(Debug, Args)]
pub struct EinsumArgs {
    /// Subscripts in NumPy's syntax, e.g. 'ij,jk->ik', 'bij,bjk->bik', 'ii->i', 'ij,ij->', '...ij,...jk->...ik'
    pub subscripts: String,
    /// Input arrays, one per operand: Zarr stores, or .npy, Arrow IPC or Parquet files read in place (e.g. the cores of a tensor network)
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output array (required unless the result is a scalar, which is printed)
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Output chunk shape [default: the operands' chunks along each index, about 8 MiB]
    #[arg(long, value_name = "SHAPE")]
    pub chunks: Option<Shape>,
    /// Contraction order: auto (optimal up to 5 operands, else greedy), optimal, greedy or sequential (left to right)
    #[arg(long, default_value = "auto", value_name = "PATH")]
    pub path: PathStrategy,
    /// Compressor of the output: none, zstd[:LEVEL] or lz4
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: Compression,
    /// Continue an interrupted run of the same command into OUT: output chunks it completed are kept (an einsum recomputes its intermediates)
    #[arg(long)]
    pub resume: bool,
}

/// `cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Input tensor: a Zarr store, or a .npy, .arrow/.arrows/.feather/.ipc or .parquet file read in place
    pub input: PathBuf,
    /// Number of components
    #[arg(long, value_name = "R")]
    pub rank: usize,
    /// Most iterations
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub iters: usize,
    /// Stop when the relative error changes by less than this between iterations (0: run all)
    #[arg(long, default_value_t = 1e-8, value_name = "T")]
    pub tol: f64,
    /// Start: random, svd (streamed HOSVD), or a directory of factor_0.npy, factor_1.npy, … [weights.npy]
    #[arg(long, default_value = "svd", value_name = "INIT")]
    pub init: String,
    /// Seed of the random init
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Keep factor columns at unit norm, magnitudes in the weights
    #[arg(long)]
    pub normalize: bool,
    /// Ridge (L2) regularisation of the normal equations
    #[arg(long, default_value_t = 0.0, value_name = "L")]
    pub l2: f64,
    /// MTTKRPs of a sweep: auto, two-pass (2 passes per iteration) or per-mode (N passes)
    #[arg(long, default_value = "auto", value_enum)]
    pub sweep: SweepArg,
    /// Output directory: factor_K.npy, weights.npy, report.json, checkpoint/
    #[arg(short, long, value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Read the tensor from the store on every pass, even when it would fit in half the memory limit
    #[arg(long)]
    pub stream: bool,
    /// Continue from the last completed iteration checkpointed in OUTDIR
    #[arg(long)]
    pub resume: bool,
}

/// `reconstruct`.
#[derive(Debug, Args)]
pub struct ReconstructArgs {
    /// Model directory: factor_K.npy with weights.npy (CP) or core.npy (Tucker)
    pub model: PathBuf,
    /// Output array
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// Chunk shape [default: about 8 MiB chunks]
    #[arg(long, value_name = "SHAPE")]
    pub chunks: Option<Shape>,
    /// Element type: f64 or f32
    #[arg(long, default_value = "f64", value_name = "DTYPE")]
    pub dtype: DType,
    /// Compressor of the output: none, zstd[:LEVEL] or lz4
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: Compression,
    /// Continue an interrupted reconstruction of the same model into OUT: the chunks it completed are kept
    #[arg(long)]
    pub resume: bool,
}

/// How a CP-ALS sweep computes its MTTKRPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepArg {
    /// Two passes when the partial contraction fits a quarter of the limit.
    Auto,
    /// Two passes per iteration.
    TwoPass,
    /// One pass per mode.
    PerMode,
}

/// `tucker`.
#[derive(Debug, Args)]
pub struct TuckerArgs {
    /// Input tensor: a Zarr store, or a .npy, .arrow/.arrows/.feather/.ipc or .parquet file read in place
    pub input: PathBuf,
    /// Rank of each mode, e.g. 16,16,16
    #[arg(long, value_name = "R1,R2,…", value_delimiter = ',', required = true)]
    pub ranks: Vec<usize>,
    /// Most HOOI iterations
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub iters: usize,
    /// Stop when the relative error changes by less than this (from the third iteration; 0: run all)
    #[arg(long, default_value_t = 1e-4, value_name = "T")]
    pub tol: f64,
    /// Start: svd (streamed HOSVD), random, or a directory of factor_K.npy and core.npy
    #[arg(long, default_value = "svd", value_name = "INIT")]
    pub init: String,
    /// Seed of the random init
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Output directory: factor_K.npy, core.npy, report.json, checkpoint/
    #[arg(short, long, value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Read the tensor from the store on every pass, even when it would fit in half the memory limit
    #[arg(long)]
    pub stream: bool,
    /// Continue from the last completed iteration checkpointed in OUTDIR
    #[arg(long)]
    pub resume: bool,
}

/// `map`.
#[derive(Debug, Args)]
pub struct MapArgs {
    /// Expression in x (first input) and y (second), e.g. 'x*2+1', 'sqrt(abs(x))', 'clip(x,0,1)*y'
    pub expr: String,
    /// First input array (x): a Zarr store, or a .npy, .arrow/.arrows/.feather/.ipc or .parquet file read in place
    pub input: PathBuf,
    /// Second input array (y), same shape and type
    pub input2: Option<PathBuf>,
    /// Output array (chunked like x)
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// Compressor of the output: none, zstd[:LEVEL], lz4, or auto[:speed|:size] (measured on the expression of samples of the inputs)
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: CodecChoice,
    /// Continue an interrupted run of the same command into OUT: output chunks it completed are kept (an einsum recomputes its intermediates)
    #[arg(long)]
    pub resume: bool,
}

/// `reduce`.
#[derive(Debug, Args)]
pub struct ReduceArgs {
    /// sum, mean, min, max or norm
    pub op: ReduceOp,
    /// Input array: a Zarr store, or a .npy, .arrow/.arrows/.feather/.ipc or .parquet file read in place
    pub input: PathBuf,
    /// Axes to reduce, e.g. 0,2 [default: all, giving one value]
    #[arg(long, value_delimiter = ',', value_name = "AXES")]
    pub axes: Option<Vec<usize>>,
    /// Output array, when axes remain
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Compressor of the output: none, zstd[:LEVEL] or lz4
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: Compression,
    /// Continue an interrupted run of the same command into OUT: output chunks it completed are kept (an einsum recomputes its intermediates)
    #[arg(long)]
    pub resume: bool,
}

/// `transpose`.
#[derive(Debug, Args)]
pub struct TransposeArgs {
    /// Input array: a Zarr store, or a .npy, .arrow/.arrows/.feather/.ipc or .parquet file read in place
    pub input: PathBuf,
    /// New axis order: output axis k is input axis AXES[k], e.g. 2,0,1
    #[arg(long, value_delimiter = ',', value_name = "AXES")]
    pub axes: Vec<usize>,
    /// Output array
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// Output chunk shape [default: the input's chunks, permuted]
    #[arg(long, value_name = "SHAPE")]
    pub chunks: Option<Shape>,
    /// Compressor of the output: none, zstd[:LEVEL] or lz4
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: Compression,
    /// Continue an interrupted run of the same command into OUT: output chunks it completed are kept (an einsum recomputes its intermediates)
    #[arg(long)]
    pub resume: bool,
}

/// `rechunk`.
#[derive(Debug, Args)]
pub struct RechunkArgs {
    /// Input array: a Zarr store, or a .npy, .arrow/.arrows/.feather/.ipc or .parquet file read in place
    pub input: PathBuf,
    /// New chunk shape
    #[arg(long, value_name = "SHAPE")]
    pub chunks: Shape,
    /// Output array
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// Compressor of the output: none, zstd[:LEVEL] or lz4
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: Compression,
    /// Continue an interrupted run of the same command into OUT: output chunks it completed are kept (an einsum recomputes its intermediates)
    #[arg(long)]
    pub resume: bool,
}

/// Layout options shared by `create` and `import`.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Chunk shape, e.g. 512,512 [default: about 8 MiB per chunk]
    #[arg(long, value_name = "SHAPE")]
    pub chunks: Option<Shape>,
    /// Compressor: none, zstd[:LEVEL] (1-22), lz4 (blosc), or auto[:speed|:size] (measure the candidates on samples of the data and this disk's bandwidth, and record the choice in the array)
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: CodecChoice,
    /// Group chunks into shards of this shape (a multiple of --chunks)
    #[arg(long, value_name = "SHAPE")]
    pub shard: Option<Shape>,
    /// Keep chunks written by an earlier interrupted run into the same array
    #[arg(long)]
    pub resume: bool,
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Directory of the new array
    pub path: PathBuf,
    /// Array shape, e.g. 4096,4096
    #[arg(long, value_name = "SHAPE")]
    pub shape: Shape,
    /// Element type: f64 or f32
    #[arg(long, default_value = "f64")]
    pub dtype: DType,
    /// zeros, ones, range, normal, uniform or lowrank:R[:NOISE]
    #[arg(long, default_value = "zeros")]
    pub fill: Fill,
    /// Seed of the random fills
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Chunking and codecs.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Array: a store, or a .npy, Arrow IPC or Parquet file (none: describe this machine)
    pub path: Option<PathBuf>,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Array: a store (or a .npy, Arrow IPC or Parquet file, decoded in full)
    pub path: PathBuf,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Source file: .npy, .arrow/.arrows/.feather/.ipc (Arrow IPC file or
    /// stream), .parquet, or raw binary (needs --shape and --dtype)
    pub src: PathBuf,
    /// Directory of the new array
    pub dst: PathBuf,
    /// Shape of a raw source
    #[arg(long, value_name = "SHAPE")]
    pub shape: Option<Shape>,
    /// Element type of a raw source (f64 or f32)
    #[arg(long)]
    pub dtype: Option<DType>,
    /// Arrow/Parquet columns to import: one list (tensor) column, or numeric
    /// columns read as a rows x columns matrix [default: the only tensor
    /// column, else all columns]
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Chunking and codecs.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Array: a store, or a .npy, Arrow or Parquet file
    pub src: PathBuf,
    /// Destination: .npy; .arrow/.feather/.ipc (Arrow IPC file), .arrows
    /// (IPC stream) or .parquet with an arrow.fixed_shape_tensor column; or
    /// anything else for raw C-order little-endian binary
    pub dst: PathBuf,
    /// Rows per record batch (IPC) or row group (Parquet) [default: slabs
    /// of 1/16 of the memory limit, at most 16 MiB, whole chunk rows]
    #[arg(long, value_name = "ROWS")]
    pub row_group_rows: Option<u64>,
    /// Compression of IPC buffers (lz4, zstd, none) or Parquet pages (zstd,
    /// lz4, snappy, none) [default: none for IPC, zstd for Parquet]
    #[arg(long, value_name = "CODEC")]
    pub compression: Option<ColumnarCompression>,
    /// Write a 2-d array as numeric columns with these names (one per
    /// column) instead of a tensor column
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Work in this directory and keep its files [default: a temporary directory, removed afterwards]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Size of the demo tensor [default: 4x the memory limit]
    #[arg(long, value_name = "SIZE")]
    pub size: Option<ByteSize>,
}
