//! `tenrso-ooc import` and `tenrso-ooc export`.

use std::time::Instant;

use serde_json::json;
use tenrso_ooc::io::ColumnarOptions;
use tenrso_ooc::ops::{self, ImportOptions, TransferReport};
use tenrso_ooc::{ByteSize, DType, Result};

use super::{dims, rate};
use crate::cli::{ExportArgs, ImportArgs};
use crate::{Context, Outcome};

/// Imports a file into a new array.
pub fn import(args: &ImportArgs, ctx: &Context) -> Result<Outcome> {
    let opts = ImportOptions {
        chunk_shape: args.layout.chunks.as_ref().map(|s| s.dims().to_vec()),
        compression: args.layout.codec,
        shard_shape: args.layout.shard.as_ref().map(|s| s.dims().to_vec()),
        raw_shape: args.shape.as_ref().map(|s| s.dims().to_vec()),
        raw_dtype: args.dtype,
        resume: args.layout.resume,
        columns: args.columns.clone(),
    };
    let start = Instant::now();
    let report = ops::import(&args.src, &args.dst, &opts, &ctx.session, &ctx.progress)?;
    Ok(outcome("imported", &args.src, &args.dst, &report, start))
}

/// Exports an array to a file.
pub fn export(args: &ExportArgs, ctx: &Context) -> Result<Outcome> {
    let start = Instant::now();
    let options = ColumnarOptions {
        compression: args.compression,
        row_group_rows: args.row_group_rows,
        columns: args.columns.clone(),
    };
    let report = ops::export_with(&args.src, &args.dst, &options, &ctx.session, &ctx.progress)?;
    Ok(outcome("exported", &args.src, &args.dst, &report, start))
}

fn outcome(
    verb: &str,
    src: &std::path::Path,
    dst: &std::path::Path,
    report: &TransferReport,
    start: Instant,
) -> Outcome {
    let elapsed = start.elapsed();
    let dtype = report.dtype.map_or("?", DType::short_name);
    let mut text = format!(
        "{verb} {} -> {}: {dtype} {}, {} in {} chunks, {:.2} s ({})\n",
        src.display(),
        dst.display(),
        dims(&report.shape),
        ByteSize(report.bytes),
        report.chunks,
        elapsed.as_secs_f64(),
        rate(report.bytes, elapsed),
    );
    if report.chunks_skipped > 0 {
        text.push_str(&format!(
            "  resumed: {} chunks were already written and kept\n",
            report.chunks_skipped
        ));
    }
    let json = json!({
        "src": src.display().to_string(),
        "dst": dst.display().to_string(),
        "shape": report.shape,
        "dtype": dtype,
        "chunks": report.chunks,
        "chunks_skipped": report.chunks_skipped,
        "bytes": report.bytes,
        "seconds": elapsed.as_secs_f64(),
        "peak_rss_bytes": crate::process_memory::peak_rss_bytes(),
    });
    Outcome {
        text,
        json,
        success: true,
    }
}
