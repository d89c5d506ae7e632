//! `tenrso-ooc report`: a JSON run report drawn as an HTML page.

use serde_json::{Value, json};
use tenrso_ooc::{ByteSize, Error, Result};

use crate::Outcome;
use crate::cli::ReportArgs;
use crate::report::render_html;

/// Reads the JSON report and writes its page next to it (or to `--out`).
pub fn run(args: &ReportArgs) -> Result<Outcome> {
    let input = &args.input;
    let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
    let report: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("{}: not a JSON run report: {e}", input.display())))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| input.with_extension("html"));
    if out == *input {
        return Err(Error::invalid(format!(
            "{}: the page would replace the report it is drawn from; name another with --out",
            out.display()
        )));
    }
    let page =
        render_html(&report).map_err(|e| Error::invalid(format!("{}: {e}", input.display())))?;
    tenrso_ooc::store::write_atomically(&out, page.as_bytes())?;
    Ok(Outcome {
        text: format!(
            "wrote {} ({}): open it in a browser; it needs no network\n",
            out.display(),
            ByteSize(page.len() as u64)
        ),
        json: json!({ "out": out.display().to_string(), "bytes": page.len() }),
        failure: None,
    })
}
