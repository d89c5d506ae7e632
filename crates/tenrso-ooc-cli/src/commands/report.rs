//! `tenrso-ooc report`: a run report drawn as an HTML page (or, from a
//! page, the JSON it carries).

use serde_json::{Value, json};
use tenrso_ooc::{ByteSize, Error, Result};

use crate::Outcome;
use crate::cli::ReportArgs;
use crate::report::{is_html, report_in_page, write};

/// Reads the report (JSON, or the page `--report RUN.html` wrote) and
/// writes it to `--out`: a page by default, next to a JSON input.
pub fn run(args: &ReportArgs) -> Result<Outcome> {
    let input = &args.input;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| input.with_extension("html"));
    if out == *input {
        return Err(Error::invalid(format!(
            "{}: the output would replace the report it is drawn from; name another with --out",
            out.display()
        )));
    }
    let bytes = std::fs::read(input).map_err(|e| Error::io(input, e))?;
    let not_a_report = |why: String| {
        Error::invalid(format!(
            "{}: not a run report (JSON, or a page --report RUN.html wrote): {why}",
            input.display()
        ))
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| not_a_report(e.to_string()))?;
    let json_text = report_in_page(text).unwrap_or(text);
    let report: Value = serde_json::from_str(json_text).map_err(|e| not_a_report(e.to_string()))?;
    write(&out, &report).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::invalid(format!("{}: {m}", input.display())),
        other => other,
    })?;
    let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    let hint = if is_html(&out) {
        "open it in a browser; it needs no network"
    } else {
        "the report as JSON"
    };
    Ok(Outcome {
        text: format!("wrote {} ({}): {hint}\n", out.display(), ByteSize(bytes)),
        json: json!({ "out": out.display().to_string(), "bytes": bytes }),
        failure: None,
    })
}
