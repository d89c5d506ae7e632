//! `tenrso-ooc info`.

use serde_json::{Value, json};
use tenrso_ooc::core::physical_memory;
use tenrso_ooc::store::ZarrArray;
use tenrso_ooc::{ByteSize, Result, gemm_gflops, gemm_kernel};

use super::{dims, open_input};
use crate::Outcome;
use crate::cli::InfoArgs;

/// Describes the array, or this machine when no array is named.
pub fn run(args: &InfoArgs) -> Result<Outcome> {
    let Some(path) = &args.path else {
        return Ok(machine());
    };
    let array = open_input(path)?;
    // Shards and attributes are a store's; a file read in place has neither.
    let store = array.as_any().downcast_ref::<ZarrArray>();
    let grid = array.chunk_grid();
    let stored = array.stored_chunk_set()?;
    let stored_bytes = array.stored_nbytes(&stored);
    let on_disk = array.bytes_on_disk()?;
    let ratio = if on_disk > 0 {
        stored_bytes as f64 / on_disk as f64
    } else {
        0.0
    };
    let (chunk_shape, shard_shape) = match store.and_then(ZarrArray::inner_chunk_shape) {
        Some(inner) => (inner.to_vec(), Some(grid.chunk_shape().to_vec())),
        None => (grid.chunk_shape().to_vec(), None),
    };
    let attributes = store.map(ZarrArray::attributes).unwrap_or_default();
    let unit = if shard_shape.is_some() {
        "shards"
    } else {
        "chunks"
    };
    let mut text = format!(
        "path:        {}\nshape:       {} ({}, {})\nchunks:      {}{} ({} grid, {} {unit})\ncodecs:      {}{}\nstored:      {} / {} {unit}\nsize:        {} uncompressed, {} on disk (compression ratio {:.2})\n",
        array.path().display(),
        dims(array.shape()),
        array.dtype(),
        ByteSize(array.nbytes()),
        dims(&chunk_shape),
        shard_shape
            .as_ref()
            .map_or(String::new(), |s| format!(", in shards of {}", dims(s))),
        dims(grid.grid_shape()),
        grid.num_chunks(),
        array.describe(),
        if array.has_checksum() {
            ""
        } else {
            "  (no checksum: corruption may go undetected)"
        },
        stored.len(),
        grid.num_chunks(),
        ByteSize(stored_bytes),
        ByteSize(on_disk),
        ratio,
    );
    if !attributes.is_empty() {
        text.push_str(&format!(
            "attributes:  {}\n",
            Value::Object(attributes.clone())
        ));
    }
    let json = json!({
        "path": array.path().display().to_string(),
        "shape": array.shape(),
        "dtype": array.dtype().short_name(),
        "chunk_shape": chunk_shape,
        "shard_shape": shard_shape,
        "grid_shape": grid.grid_shape(),
        "chunks_total": grid.num_chunks(),
        "chunks_stored": stored.len(),
        "codecs": array.describe(),
        "has_checksum": array.has_checksum(),
        "bytes": array.nbytes(),
        "bytes_stored": stored_bytes,
        "bytes_on_disk": on_disk,
        "compression_ratio": ratio,
        "attributes": attributes,
    });
    Ok(Outcome {
        text,
        json,
        failure: None,
    })
}

/// This machine as the engine sees it: cores, memory, the CPU's vector
/// ISA, the GEMM kernel of this build and its measured speed, how chunks'
/// checksums are computed and which chunks are read in place, and the
/// optional features built in.
fn machine() -> Outcome {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let isa = vector_isa();
    let memory = physical_memory();
    let kernel = gemm_kernel();
    let gflops = gemm_gflops();
    let checksum = tenrso_ooc::store::crc32c_kernel();
    let map_min = tenrso_ooc::io::chunk_maps_enabled().then_some(tenrso_ooc::io::MAP_MIN_BYTES);
    let reads = match map_min {
        Some(min) => format!(
            "uncompressed chunks of {} or more in place (mapped), smaller ones copied",
            ByteSize(min)
        ),
        None => format!(
            "every chunk copied ({} is set)",
            tenrso_ooc::io::NO_CHUNK_MAPS_VAR
        ),
    };
    let uncached_min = tenrso_ooc::store::uncached_writes_enabled()
        .then_some(tenrso_ooc::store::UNCACHED_WRITE_MIN_BYTES as u64);
    let writes = match uncached_min {
        Some(min) => format!(
            "contractions' result chunks of {} or more around the page cache (O_DIRECT), others through it",
            ByteSize(min)
        ),
        None => format!(
            "every chunk through the page cache ({} is set)",
            tenrso_ooc::store::NO_UNCACHED_WRITES_VAR
        ),
    };
    let features: Vec<&str> = [
        ("mpi", cfg!(feature = "mpi")),
        ("blas", cfg!(feature = "blas")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let text = format!(
        "machine:     {cores} cores ({cpu}, {isa}), {} of memory\ngemm:        {kernel}\n             {gflops:.1} GFLOP/s per thread (measured on 768³ f64)\nchecksum:    {checksum}\nreads:       {reads}\nwrites:      {writes}\nfeatures:    {}\n",
        memory.map_or("?".to_string(), |m| ByteSize(m).to_string()),
        if features.is_empty() {
            "none (mpi and blas are cargo features)".to_string()
        } else {
            features.join(", ")
        },
    );
    let json = json!({
        "cores": cores,
        "cpu": cpu,
        "isa": isa,
        "memory_bytes": memory,
        "gemm_kernel": kernel,
        "gemm_gflops_per_thread": gflops,
        "checksum_kernel": checksum,
        "chunk_map_min_bytes": map_min,
        "uncached_write_min_bytes": uncached_min,
        "features": features,
    });
    Outcome {
        text,
        json,
        failure: None,
    }
}

/// The widest vector instructions of the CPU the kernels can use.
fn vector_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
    }
    std::env::consts::ARCH
}
