//! `tenrso-ooc transpose` and `tenrso-ooc rechunk`.

use std::sync::Arc;

use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::ops::{self, OutputOptions};
use tenrso_ooc::store::ZarrArray;

use super::operation::outcome;
use crate::cli::{RechunkArgs, TransposeArgs};
use crate::{Context, Outcome};

/// Permutes the axes.
pub fn transpose(args: &TransposeArgs, ctx: &Context) -> Result<Outcome> {
    let input = Arc::new(ZarrArray::open(&args.input)?);
    let opts = OutputOptions {
        chunk_shape: args.chunks.as_ref().map(|s| s.dims().to_vec()),
        compression: args.codec,
    };
    let report = ops::transpose(
        &ctx.session,
        input,
        &args.axes,
        &args.out,
        &opts,
        ctx.explain,
        &ctx.progress,
    )?;
    let headline = format!(
        "transpose {:?} -> {} ({})",
        args.axes,
        args.out.display(),
        report.plan.operation
    );
    Ok(outcome(
        &report,
        headline,
        json!({ "out": args.out.display().to_string() }),
    ))
}

/// Changes the chunk shape.
pub fn rechunk(args: &RechunkArgs, ctx: &Context) -> Result<Outcome> {
    let input = Arc::new(ZarrArray::open(&args.input)?);
    let opts = OutputOptions {
        chunk_shape: Some(args.chunks.dims().to_vec()),
        compression: args.codec,
    };
    let report = ops::rechunk(
        &ctx.session,
        input,
        &args.out,
        &opts,
        ctx.explain,
        &ctx.progress,
    )?;
    let headline = format!(
        "rechunk -> {} ({})",
        args.out.display(),
        report.plan.operation
    );
    Ok(outcome(
        &report,
        headline,
        json!({ "out": args.out.display().to_string() }),
    ))
}
