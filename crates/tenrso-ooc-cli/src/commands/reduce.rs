//! `tenrso-ooc reduce`.

use super::open_input;
use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::ops::{OutputOptions, Reduce};

use super::operation::{explained, outcome};
use crate::cli::ReduceArgs;
use crate::{Context, Outcome};

/// Reduces; a value over all axes is printed, otherwise an array is written.
pub fn run(args: &ReduceArgs, ctx: &Context) -> Result<Outcome> {
    let input = open_input(&args.input)?;
    let mut request = Reduce::new(args.op, &input).with_output_options(
        OutputOptions::default()
            .with_compression(args.codec)
            .with_resume(args.resume),
    );
    if let Some(axes) = &args.axes {
        request = request.with_axes(axes.clone());
    }
    if let Some(out) = &args.out {
        request = request.with_out(out);
    }
    let planned = request.plan(&ctx.session)?;
    let extra = json!({
        "op": args.op.to_string(),
        "out": args.out.as_ref().map(|p| p.display().to_string()),
    });
    if ctx.explain {
        return Ok(explained(planned.explain(), extra));
    }
    let report = planned.run_with(&ctx.progress)?;
    let headline = match (&args.out, report.value) {
        (Some(out), _) => format!(
            "{} over axes {:?} -> {}",
            args.op,
            args.axes.as_deref().unwrap_or(&[]),
            out.display()
        ),
        (None, _) => format!("{} of {}", args.op, args.input.display()),
    };
    let mut extra = extra;
    extra["value"] = json!(report.value);
    let mut out = outcome(&report.op, headline, extra);
    if let Some(value) = report.value {
        // The value alone on stdout (scriptable); the summary goes to stderr.
        if ctx.session.ranks().is_root() {
            eprint!("{}", out.text);
        }
        out.text = format!("{value}\n");
    }
    Ok(out)
}
