//! `tenrso-ooc reduce`.

use std::sync::Arc;

use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::ops::{self, OutputOptions};
use tenrso_ooc::store::ZarrArray;

use super::operation::outcome;
use crate::cli::ReduceArgs;
use crate::{Context, Outcome};

/// Reduces; a value over all axes is printed, otherwise an array is written.
pub fn run(args: &ReduceArgs, ctx: &Context) -> Result<Outcome> {
    let input = Arc::new(ZarrArray::open(&args.input)?);
    let opts = OutputOptions {
        chunk_shape: None,
        compression: args.codec,
    };
    let report = ops::reduce(
        &ctx.session,
        args.op,
        input,
        args.axes.as_deref(),
        args.out.as_deref(),
        &opts,
        ctx.explain,
        &ctx.progress,
    )?;
    let headline = match (&args.out, report.value) {
        (Some(out), _) => format!(
            "{} over axes {:?} -> {}",
            args.op,
            args.axes.as_deref().unwrap_or(&[]),
            out.display()
        ),
        (None, _) => format!("{} of {}", args.op, args.input.display()),
    };
    let mut out = outcome(
        &report.op,
        headline,
        json!({
            "op": args.op.to_string(),
            "value": report.value,
            "out": args.out.as_ref().map(|p| p.display().to_string()),
        }),
    );
    if let Some(value) = report.value {
        // The value alone on stdout (scriptable); the summary goes to stderr.
        eprint!("{}", out.text);
        out.text = format!("{value}\n");
    }
    Ok(out)
}
