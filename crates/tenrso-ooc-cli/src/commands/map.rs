//! `tenrso-ooc map`.

use super::open_input;
use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::ops::{Expr, Map, OutputOptions};

use super::operation::{explained, outcome};
use crate::cli::MapArgs;
use crate::{Context, Outcome};

/// Evaluates the expression into a new array.
pub fn run(args: &MapArgs, ctx: &Context) -> Result<Outcome> {
    let expr = Expr::parse(&args.expr)?;
    let x = open_input(&args.input)?;
    let y = args.input2.as_ref().map(|p| open_input(p)).transpose()?;
    let opts = OutputOptions::default()
        .with_codec(args.codec)
        .with_resume(args.resume);
    let mut request = Map::new(expr.clone(), &x, &args.out).with_output_options(opts);
    if let Some(y) = &y {
        request = request.with_y(y);
    }
    let planned = request.plan(&ctx.session)?;
    let extra = json!({ "out": args.out.display().to_string(), "expr": expr.to_string() });
    if ctx.explain {
        return Ok(explained(planned.explain(), extra));
    }
    let report = planned.run_with(&ctx.progress)?;
    let mut headline = format!("map `{expr}` -> {}", args.out.display());
    if let Some(choice) = recorded_choice(&args.out) {
        headline.push_str(&format!(" ({choice})"));
    }
    Ok(outcome(&report, headline, extra))
}

/// `codec auto: lz4, ratio 3.10` from the attribute `--codec auto` records.
fn recorded_choice(out: &std::path::Path) -> Option<String> {
    let array = tenrso_ooc::store::ZarrArray::open(out).ok()?;
    let attributes = array.attributes();
    let choice = attributes.get(tenrso_ooc::store::CodecDecision::ATTRIBUTE)?;
    let chosen = choice.get("chosen")?.as_str()?;
    let ratio = choice
        .get("candidates")?
        .as_array()?
        .iter()
        .find(|c| c.get("codec").and_then(|n| n.as_str()) == Some(chosen))?
        .get("ratio")?
        .as_f64()?;
    Some(format!("codec auto: {chosen}, ratio {ratio:.2}"))
}
