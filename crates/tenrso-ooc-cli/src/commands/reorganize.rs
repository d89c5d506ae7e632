//! `tenrso-ooc transpose` and `tenrso-ooc rechunk`.

use super::open_input;
use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::ops::{OutputOptions, Rechunk, Transpose};

use super::operation::{explained, outcome};
use crate::cli::{RechunkArgs, TransposeArgs};
use crate::{Context, Outcome};

/// Permutes the axes.
pub fn transpose(args: &TransposeArgs, ctx: &Context) -> Result<Outcome> {
    let input = open_input(&args.input)?;
    let mut opts = OutputOptions::default()
        .with_compression(args.codec)
        .with_resume(args.resume);
    if let Some(chunks) = &args.chunks {
        opts = opts.with_chunk_shape(chunks.dims());
    }
    let planned = Transpose::new(&input, args.axes.clone(), &args.out)
        .with_output_options(opts)
        .plan(&ctx.session)?;
    let extra = json!({ "out": args.out.display().to_string() });
    if ctx.explain {
        return Ok(explained(planned.explain(), extra));
    }
    let report = planned.run_with(&ctx.progress)?;
    let headline = format!(
        "transpose {:?} -> {} ({})",
        args.axes,
        args.out.display(),
        report.plan.operation
    );
    Ok(outcome(&report, headline, extra))
}

/// Changes the chunk shape.
pub fn rechunk(args: &RechunkArgs, ctx: &Context) -> Result<Outcome> {
    let input = open_input(&args.input)?;
    let planned = Rechunk::new(&input, args.chunks.dims(), &args.out)
        .with_compression(args.codec)
        .with_resume(args.resume)
        .plan(&ctx.session)?;
    let extra = json!({ "out": args.out.display().to_string() });
    if ctx.explain {
        return Ok(explained(planned.explain(), extra));
    }
    let report = planned.run_with(&ctx.progress)?;
    let headline = format!(
        "rechunk -> {} ({})",
        args.out.display(),
        report.plan.operation
    );
    Ok(outcome(&report, headline, extra))
}
