//! `tenrso-ooc import` and `tenrso-ooc export`.

use std::time::Instant;

use super::open_input;
use serde_json::json;
use tenrso_ooc::io::ColumnarOptions;
use tenrso_ooc::ops::{Export, Import, ImportOptions, TransferReport};
use tenrso_ooc::{ByteSize, DType, Error, Result};

use super::{dims, rate};
use crate::cli::{ExportArgs, ImportArgs};
use crate::{Context, Outcome};

/// Imports a file into a new array.
pub fn import(args: &ImportArgs, ctx: &Context) -> Result<Outcome> {
    let mut opts = ImportOptions::default()
        .with_codec(args.layout.codec)
        .with_resume(args.layout.resume);
    opts.chunk_shape = args.layout.chunks.as_ref().map(|s| s.dims().to_vec());
    opts.shard_shape = args.layout.shard.as_ref().map(|s| s.dims().to_vec());
    opts.raw_shape = args.shape.as_ref().map(|s| s.dims().to_vec());
    opts.raw_dtype = args.dtype;
    opts.columns = args.columns.clone();
    let start = Instant::now();
    let raw_without_layout = tenrso_ooc::io::SourceFormat::of(&args.src).is_none()
        && (args.shape.is_none() || args.dtype.is_none());
    let report = Import::new(&args.src, &args.dst)
        .with_options(opts)
        .plan(&ctx.session)
        .map_err(|err| match err {
            Error::InvalidArgument(message) if raw_without_layout => {
                Error::invalid(format!("{message}; hint: give its --shape and --dtype"))
            }
            other => other,
        })?
        .run_with(&ctx.progress)?;
    Ok(outcome("imported", &args.src, &args.dst, &report, start))
}

/// Exports an array to a file.
pub fn export(args: &ExportArgs, ctx: &Context) -> Result<Outcome> {
    let start = Instant::now();
    let options = ColumnarOptions::default()
        .with_compression(args.compression)
        .with_row_group_rows(args.row_group_rows)
        .with_columns(args.columns.clone());
    let array = open_input(&args.src)?;
    let report = Export::new(&array, &args.dst)
        .with_columnar(options)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
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
    if report.chunks_absent > 0 {
        text.push_str(&format!(
            "  {} chunks were never written: exported as the fill value, not read\n",
            report.chunks_absent
        ));
    }
    if let Some(choice) = &report.codec_choice {
        text.push_str(&super::indent(&choice.summary()));
    }
    let json = json!({
        "src": src.display().to_string(),
        "dst": dst.display().to_string(),
        "shape": report.shape,
        "dtype": dtype,
        "chunks": report.chunks,
        "chunks_skipped": report.chunks_skipped,
        "chunks_absent": report.chunks_absent,
        "bytes": report.bytes,
        "codec_choice": report.codec_choice.as_ref().map(|c| c.to_json()),
        "seconds": elapsed.as_secs_f64(),
        "peak_rss_bytes": tenrso_ooc::telemetry::peak_resident_bytes(),
    });
    Outcome {
        text,
        json,
        failure: None,
    }
}
