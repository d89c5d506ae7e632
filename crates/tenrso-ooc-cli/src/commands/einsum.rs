//! `tenrso-ooc einsum`.

use super::open_input;
use serde_json::Value;
use tenrso_ooc::ops::{Einsum, EinsumReport, OutputOptions};
use tenrso_ooc::{ByteSize, Result};

use crate::cli::EinsumArgs;
use crate::{Context, Outcome};
use tenrso_ooc::telemetry::peak_resident_bytes;

/// Contracts; a scalar result is printed, an array result written.
pub fn run(args: &EinsumArgs, ctx: &Context) -> Result<Outcome> {
    // `.npy`, Arrow and Parquet operands (e.g. the cores of a tensor
    // network) are read in place.
    let inputs = args
        .inputs
        .iter()
        .map(|p| open_input(p))
        .collect::<Result<Vec<_>>>()?;
    let mut output = OutputOptions::default()
        .with_compression(args.codec)
        .with_resume(args.resume);
    if let Some(chunks) = &args.chunks {
        output = output.with_chunk_shape(chunks.dims());
    }
    let mut request = Einsum::new(&args.subscripts, &inputs)
        .with_output_options(output)
        .with_path(args.path);
    if let Some(out) = &args.out {
        request = request.with_out(out);
    }
    let planned = request.plan(&ctx.session)?;
    if ctx.explain {
        let plan = planned.explain();
        let mut json = plan.to_json();
        json["out"] = out_json(args);
        if plan.multiplies() {
            json["gemm_gflops_per_thread"] = tenrso_ooc::gemm_gflops().into();
        }
        return Ok(Outcome {
            text: format!("einsum {} ({})\n{plan}", args.subscripts, plan.subscripts),
            json,
            failure: None,
        });
    }
    let report = planned.run_with(&ctx.progress)?;
    Ok(outcome(&report, args, ctx))
}

fn out_json(args: &EinsumArgs) -> Value {
    args.out
        .as_ref()
        .map_or(Value::Null, |p| Value::from(p.display().to_string()))
}

fn outcome(report: &EinsumReport, args: &EinsumArgs, ctx: &Context) -> Outcome {
    let limit = ctx.session.memory_limit();
    let mut json = report.to_json();
    let peak = peak_resident_bytes();
    json["out"] = out_json(args);
    json["peak_rss_bytes"] = peak.map_or(Value::Null, Value::from);
    let plan = &report.plan;
    let mut text = format!("einsum {} ({})\n", args.subscripts, plan.subscripts);
    for (k, chunks) in &plan.rechunked {
        text.push_str(&format!(
            "rechunk operand #{k} to chunks {chunks:?} first (its chunking makes every plan slow)\n"
        ));
    }
    text.push_str(&plan.path.to_string());
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
    for placed in &plan.intermediates {
        text.push_str(&format!("  intermediate: {placed}\n"));
    }
    if let Some(value) = report.value {
        // The value alone on stdout (scriptable); the summary goes to stderr.
        if ctx.session.ranks().is_root() {
            eprint!("{text}");
        }
        text = format!("{value}\n");
    } else if let Some(out) = &args.out {
        text.push_str(&format!("  -> {}\n", out.display()));
    }
    Outcome {
        text,
        json,
        failure: None,
    }
}
