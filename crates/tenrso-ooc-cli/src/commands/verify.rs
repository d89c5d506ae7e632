//! `tenrso-ooc verify`.

use std::time::Instant;

use super::open_input;
use serde_json::json;
use tenrso_ooc::ops::Verify;
use tenrso_ooc::{ByteSize, Result};

use super::rate;
use crate::cli::VerifyArgs;
use crate::{Context, Outcome};

/// Decodes every stored chunk; fails listing the bad ones.
pub fn run(args: &VerifyArgs, ctx: &Context) -> Result<Outcome> {
    let array = open_input(&args.path)?;
    let start = Instant::now();
    let report = Verify::new(&array)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let elapsed = start.elapsed();
    let mut text = String::new();
    for bad in &report.bad_chunks {
        text.push_str(&format!(
            "bad chunk {} {:?}: {}\n",
            bad.key, bad.chunk, bad.reason
        ));
    }
    if report.is_ok() {
        text.push_str(&format!(
            "{}: all {} stored chunks OK ({} of {} chunks written; {} checked in {:.2} s, {})\n",
            array.path().display(),
            report.chunks_stored,
            report.chunks_stored,
            report.chunks_total,
            ByteSize(report.bytes_checked),
            elapsed.as_secs_f64(),
            rate(report.bytes_checked, elapsed),
        ));
    } else {
        text.push_str(&format!(
            "{}: {} of {} stored chunks are bad\n",
            array.path().display(),
            report.bad_chunks.len(),
            report.chunks_stored
        ));
    }
    if !report.has_checksum {
        text.push_str("note: the codec chain has no checksum, so only chunks that fail to decode can be detected\n");
    }
    if report.stale_temporaries > 0 {
        text.push_str(&format!(
            "note: {} temporary files of interrupted writes are in the directory (never read; safe to delete)\n",
            report.stale_temporaries
        ));
    }
    let json = json!({
        "path": array.path().display().to_string(),
        "ok": report.is_ok(),
        "chunks_total": report.chunks_total,
        "chunks_stored": report.chunks_stored,
        "bytes_checked": report.bytes_checked,
        "has_checksum": report.has_checksum,
        "stale_temporaries": report.stale_temporaries,
        "bad_chunks": report.bad_chunks.iter().map(|b| json!({
            "key": b.key, "chunk": b.chunk, "reason": b.reason,
        })).collect::<Vec<_>>(),
        "seconds": elapsed.as_secs_f64(),
    });
    Ok(Outcome {
        text,
        json,
        failure: (!report.is_ok()).then(|| {
            format!(
                "{}: {} of {} stored chunks are bad",
                array.path().display(),
                report.bad_chunks.len(),
                report.chunks_stored
            )
        }),
    })
}
