//! `tenrso-ooc einsum`.

use serde_json::Value;
use tenrso_ooc::ops::{self, EinsumOptions, EinsumReport, OutputOptions};
use tenrso_ooc::store::ZarrArray;
use tenrso_ooc::{ByteSize, Result};

use crate::cli::EinsumArgs;
use crate::process_memory::peak_rss_bytes;
use crate::{Context, Outcome};

/// Contracts; a scalar result is printed, an array result written.
pub fn run(args: &EinsumArgs, ctx: &Context) -> Result<Outcome> {
    // `.npy`, Arrow and Parquet operands (e.g. the cores of a tensor
    // network) are read in place.
    let inputs = args
        .inputs
        .iter()
        .map(|p| ZarrArray::open(p).map(std::sync::Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let opts = EinsumOptions {
        output: OutputOptions {
            chunk_shape: args.chunks.as_ref().map(|s| s.dims().to_vec()),
            compression: args.codec,
        },
        path: args.path,
    };
    let report = ops::einsum(
        &ctx.session,
        &args.subscripts,
        &inputs,
        args.out.as_deref(),
        &opts,
        ctx.explain,
        &ctx.progress,
    )?;
    Ok(outcome(&report, args, ctx))
}

fn outcome(report: &EinsumReport, args: &EinsumArgs, ctx: &Context) -> Outcome {
    let limit = ctx.session.memory_limit();
    let mut json = report.to_json();
    let peak = peak_rss_bytes();
    json["out"] = args
        .out
        .as_ref()
        .map_or(Value::Null, |p| Value::from(p.display().to_string()));
    json["peak_rss_bytes"] = peak.map_or(Value::Null, Value::from);
    let mut text = format!("einsum {} ({})\n", args.subscripts, report.subscripts);
    for (k, chunks) in &report.rechunked {
        text.push_str(&format!(
            "rechunk operand #{k} to chunks {chunks:?} first (its chunking makes every plan slow)\n"
        ));
    }
    text.push_str(&report.path.to_string());
    if ctx.explain {
        let least = report.path.min_task_bytes();
        text.push_str(&format!(
            "  memory: least {} per task, limit {}{}\n",
            ByteSize(least),
            ByteSize(limit),
            if least > limit {
                "  (DOES NOT FIT)"
            } else {
                ""
            }
        ));
        json["memory_limit_bytes"] = Value::from(limit);
        json["fits"] = Value::from(least <= limit);
        return Outcome {
            text,
            json,
            success: true,
        };
    }
    text.push_str(&format!(
        "  {:.2} s, {:.2} GFLOP/s; read {}, wrote {}\n  memory: pool peak {}, process peak {} (limit {})\n",
        report.seconds,
        if report.seconds > 0.0 { report.flops() / report.seconds / 1e9 } else { 0.0 },
        ByteSize(report.bytes_read()),
        ByteSize(report.bytes_written()),
        ByteSize(report.pool_peak()),
        peak.map_or("?".to_string(), |p| ByteSize(p).to_string()),
        ByteSize(limit),
    ));
    if let Some(value) = report.value {
        // The value alone on stdout (scriptable); the summary goes to stderr.
        eprint!("{text}");
        text = format!("{value}\n");
    } else if let Some(out) = &args.out {
        text.push_str(&format!("  -> {}\n", out.display()));
    }
    Outcome {
        text,
        json,
        success: true,
    }
}
