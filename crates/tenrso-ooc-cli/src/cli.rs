//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tenrso_ooc::ops::Fill;
use tenrso_ooc::store::Compression;
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
    /// Memory limit for the run, e.g. 512MiB or 4GiB [default: 25% of RAM; 64MiB for demo]
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
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a stored array, filled by a generator
    Create(CreateArgs),
    /// Describe a stored array: shape, type, chunks, codecs, size on disk
    Info(InfoArgs),
    /// Decode every chunk and check its checksum; exit 1 listing bad chunks
    Verify(VerifyArgs),
    /// Import a .npy or raw file into a new stored array
    Import(ImportArgs),
    /// Export a stored array to a .npy or raw file
    Export(ExportArgs),
    /// Show the engine at work on a tensor larger than its memory limit
    Demo(DemoArgs),
}

/// Layout options shared by `create` and `import`.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Chunk shape, e.g. 512,512 [default: about 8 MiB per chunk]
    #[arg(long, value_name = "SHAPE")]
    pub chunks: Option<Shape>,
    /// Compressor: none, zstd[:LEVEL] (1-22) or lz4 (blosc)
    #[arg(long, default_value = "none", value_name = "CODEC")]
    pub codec: Compression,
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
    /// Array directory
    pub path: PathBuf,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Array directory
    pub path: PathBuf,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Source file: .npy, or raw binary (needs --shape and --dtype)
    pub src: PathBuf,
    /// Directory of the new array
    pub dst: PathBuf,
    /// Shape of a raw source
    #[arg(long, value_name = "SHAPE")]
    pub shape: Option<Shape>,
    /// Element type of a raw source (f64 or f32)
    #[arg(long)]
    pub dtype: Option<DType>,
    /// Chunking and codecs.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Array directory
    pub src: PathBuf,
    /// Destination: .npy, or anything else for raw C-order little-endian binary
    pub dst: PathBuf,
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
