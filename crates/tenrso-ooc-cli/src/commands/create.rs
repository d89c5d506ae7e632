//! `tenrso-ooc create`.

use std::time::Instant;

use serde_json::json;
use tenrso_ooc::ops::Generate;
use tenrso_ooc::{ByteSize, Result};

use super::{dims, rate, spec_from_layout};
use crate::cli::CreateArgs;
use crate::{Context, Outcome};

/// Creates the array and fills it.
pub fn run(args: &CreateArgs, ctx: &Context) -> Result<Outcome> {
    let spec = spec_from_layout(
        &args.path,
        args.shape.dims(),
        args.dtype,
        &args.layout,
        ctx.session.options(),
    );
    let start = Instant::now();
    let report = Generate::new(&args.path, spec, args.fill)
        .with_seed(args.seed)
        .with_codec(args.layout.codec)
        .with_resume(args.layout.resume)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let array = &report.array;
    let elapsed = start.elapsed();
    let on_disk = array.bytes_on_disk()?;
    let mut text = format!(
        "created {}: {} {} in {} stored chunks of {} ({})\n  filled with {} (seed {}): {} in {:.2} s ({})\n  {} on disk\n",
        array.path().display(),
        array.dtype(),
        dims(array.shape()),
        array.chunk_grid().num_chunks(),
        dims(array.chunk_grid().chunk_shape()),
        array.codec_description(),
        args.fill,
        args.seed,
        ByteSize(report.bytes_written),
        elapsed.as_secs_f64(),
        rate(report.bytes_written, elapsed),
        ByteSize(on_disk),
    );
    if let Some(choice) = &report.codec_choice {
        text.push_str(&super::indent(&choice.summary()));
    }
    if report.chunks_skipped > 0 {
        text.push_str(&format!(
            "  resumed: {} chunks were already written and kept\n",
            report.chunks_skipped
        ));
    }
    let json = json!({
        "path": array.path().display().to_string(),
        "shape": array.shape(),
        "dtype": array.dtype().short_name(),
        "chunk_shape": array.chunk_grid().chunk_shape(),
        "codecs": array.codec_description(),
        "codec_choice": report.codec_choice.as_ref().map(|c| c.to_json()),
        "fill": args.fill.to_string(),
        "seed": args.seed,
        "chunks_written": report.chunks_written,
        "chunks_skipped": report.chunks_skipped,
        "bytes_written": report.bytes_written,
        "bytes_on_disk": on_disk,
        "seconds": elapsed.as_secs_f64(),
        "peak_rss_bytes": tenrso_ooc::telemetry::peak_resident_bytes(),
    });
    Ok(Outcome {
        text,
        json,
        failure: None,
    })
}
