//! `tenrso-ooc map`.

use std::sync::Arc;

use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::ops::{self, Expr, OutputOptions};
use tenrso_ooc::store::ZarrArray;

use super::operation::outcome;
use crate::cli::MapArgs;
use crate::{Context, Outcome};

/// Evaluates the expression into a new array.
pub fn run(args: &MapArgs, ctx: &Context) -> Result<Outcome> {
    let expr = Expr::parse(&args.expr)?;
    let x = Arc::new(ZarrArray::open(&args.input)?);
    let y = args
        .input2
        .as_ref()
        .map(ZarrArray::open)
        .transpose()?
        .map(Arc::new);
    let opts = OutputOptions {
        chunk_shape: None,
        compression: args.codec,
    };
    let report = ops::map(
        &ctx.session,
        &expr,
        x,
        y,
        &args.out,
        &opts,
        ctx.explain,
        &ctx.progress,
    )?;
    let headline = format!("map `{expr}` -> {}", args.out.display());
    Ok(outcome(
        &report,
        headline,
        json!({ "out": args.out.display().to_string(), "expr": expr.to_string() }),
    ))
}
