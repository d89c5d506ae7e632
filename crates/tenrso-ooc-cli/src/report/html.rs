//! The HTML run report: one self-contained page (inline SVG and CSS, no
//! script to run, nothing fetched) drawn from a JSON run report.

use serde_json::Value;
use tenrso_ooc::{ByteSize, Error, Result};

use super::charts::{Axes, Limit, Line, bar_chart, line_chart};

const MIB: f64 = (1u64 << 20) as f64;

/// Bars of the time-per-phase chart at most (the last sums the rest).
const MOST_PHASES: usize = 24;

/// Text made safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A column of the report's timeline, as numbers.
fn column(report: &Value, name: &str) -> Vec<f64> {
    report["timeline"]["columns"][name]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// `(t, value / scale)` for a gauge column, `t` the seconds column.
fn gauge(t: &[f64], report: &Value, name: &str, scale: f64) -> Vec<(f64, f64)> {
    t.iter()
        .zip(column(report, name))
        .map(|(t, v)| (*t, v / scale))
        .collect()
}

/// The rate of a counter column between samples, `/ scale` per second,
/// at the end of each interval (`t` the seconds column).
fn rate(t: &[f64], report: &Value, name: &str, scale: f64) -> Vec<(f64, f64)> {
    let v = column(report, name);
    let mut points = vec![(t.first().copied().unwrap_or(0.0), 0.0)];
    for i in 1..t.len().min(v.len()) {
        let dt = t[i] - t[i - 1];
        // Two samples at the same (rounded) time — the final one may come
        // right after a periodic one — keep the rate before: one vertex per
        // sample.
        let rate = if dt > 0.0 {
            (v[i] - v[i - 1]).max(0.0) / dt / scale
        } else {
            points.last().map_or(0.0, |p| p.1)
        };
        points.push((t[i], rate));
    }
    points
}

fn bytes(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "–".to_string(), |b| ByteSize(b).to_string())
}

fn figure(title: &str, svg: Result<String>, note: &str) -> Result<String> {
    Ok(format!(
        "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
        svg?,
        escape(&format!("{title}. {note}"))
    ))
}

/// The merged job's table: one row per rank and the totals.
fn ranks_table(ranks: &[Value], total: &Value) -> String {
    let seconds = |v: &Value| format!("{:.2} s", v.as_f64().unwrap_or(0.0));
    let row = |label: String, r: &Value| {
        let cells = [
            bytes(&r["bytes_read"]),
            bytes(&r["bytes_written"]),
            bytes(&r["bytes_spilled"]),
            bytes(&r["bytes_sent"]),
            bytes(&r["bytes_received"]),
            bytes(&r["bytes_fetched"]),
            seconds(&r["task_seconds"]),
            seconds(&r["read_seconds"]),
            seconds(&r["communication_seconds"]),
            bytes(&r["peak_rss_bytes"]),
        ];
        let cells: String = cells
            .iter()
            .map(|c| format!("<td>{}</td>", escape(c)))
            .collect();
        format!("<tr><th>{}</th>{cells}</tr>\n", escape(&label))
    };
    let mut html = format!(
        "<h2>Ranks</h2>\n<p>{} ranks of one MPI job; times summed over each rank's threads.</p>\n<table class=\"figures\">\n<tr><th></th><th>read</th><th>written</th><th>spilled</th><th>sent</th><th>received</th><th>of which chunks fetched</th><th>in tasks</th><th>reading</th><th>in collectives</th><th>peak memory</th></tr>\n",
        ranks.len()
    );
    for r in ranks {
        html.push_str(&row(format!("rank {}", r["rank"]), r));
    }
    html.push_str(&row("total (memory: largest)".into(), total));
    html.push_str("</table>\n");
    html
}

/// The spill area's tiers at the end of the run: what each holds, its
/// cap and the speeds measured on its traffic.
fn tiers_table(tiers: &[Value]) -> String {
    let speed = |v: &Value| {
        v.as_f64()
            .map_or("–".into(), |b| format!("{}/s", ByteSize(b as u64)))
    };
    let mut html = String::from(
        "<h2>Spill tiers</h2>\n<p>Tried in order; chunks needed later move down when a tier fills, and up again ahead of their use.</p>\n<table class=\"figures\">\n<tr><th></th><th>directory</th><th>holds</th><th>cap</th><th>written</th><th>read</th><th>write speed</th><th>read speed</th></tr>\n",
    );
    for (k, t) in tiers.iter().enumerate() {
        let cells = [
            t["dir"].as_str().unwrap_or("?").to_string(),
            bytes(&t["bytes"]),
            t["cap"]
                .as_u64()
                .map_or("none".into(), |c| ByteSize(c).to_string()),
            bytes(&t["written_bytes"]),
            bytes(&t["read_bytes"]),
            speed(&t["write_bytes_per_second"]),
            speed(&t["read_bytes_per_second"]),
        ];
        let cells: String = cells
            .iter()
            .map(|c| format!("<td>{}</td>", escape(c)))
            .collect();
        html.push_str(&format!("<tr><th>tier {k}</th>{cells}</tr>\n"));
    }
    html.push_str("</table>\n");
    html
}

/// The page for a JSON run report (as `--report RUN.json` writes it).
///
/// # Errors
/// [`Error::InvalidArgument`] when `report` is not a run report or a chart
/// cannot be drawn.
pub fn render_html(report: &Value) -> Result<String> {
    let Some(command) = report["command"].as_array() else {
        return Err(Error::invalid(
            "not a run report: no `command` (write one with --report RUN.json)",
        ));
    };
    let command: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
    let metrics = &report["metrics"];
    let limit = report["memory_limit_bytes"].as_u64().unwrap_or(0);
    let limit_text = ByteSize(limit).to_string();
    let mut body = String::new();

    // What ran and how it ended.
    let status = if report["ok"].as_bool() == Some(true) {
        format!(
            "<p class=\"ok\">Completed in {:.2} s.</p>",
            report["seconds"].as_f64().unwrap_or(0.0)
        )
    } else {
        format!(
            "<p class=\"failed\">Failed after {:.2} s: {}</p>",
            report["seconds"].as_f64().unwrap_or(0.0),
            escape(report["error"].as_str().unwrap_or("unknown error"))
        )
    };
    body.push_str(&format!(
        "<h1>tenrso-ooc run report</h1>\n<pre class=\"command\">{}</pre>\n{status}\n",
        escape(&command.join(" "))
    ));

    // The figures.
    let rows = [
        ("memory limit", limit_text.clone()),
        ("memory pool peak", bytes(&metrics["pool_peak_bytes"])),
        ("process peak (VmHWM)", bytes(&report["peak_rss_bytes"])),
        (
            "threads",
            report["threads"]
                .as_u64()
                .map_or("–".into(), |t| t.to_string()),
        ),
        ("read", bytes(&metrics["read_bytes_total"])),
        ("written", bytes(&metrics["written_bytes_total"])),
        ("spilled (written / read back)", {
            format!(
                "{} / {}",
                bytes(&metrics["spill_written_bytes_total"]),
                bytes(&metrics["spill_read_bytes_total"])
            )
        }),
        (
            "spill files moved down / up a tier",
            format!(
                "{} / {}",
                metrics["spill_demotions_total"], metrics["spill_promotions_total"]
            ),
        ),
        (
            "tasks completed / planned",
            format!(
                "{} / {}",
                metrics["tasks_completed_total"], metrics["tasks_planned_total"]
            ),
        ),
        (
            "cache hits / misses / evictions",
            format!(
                "{} / {} / {}",
                metrics["cache_hits_total"],
                metrics["cache_misses_total"],
                metrics["cache_evictions_total"]
            ),
        ),
        ("time in tasks: computing / waiting for reads / writing", {
            let sum = |name: &str| metrics[name]["sum_seconds"].as_f64().unwrap_or(0.0);
            let (reads, writes) = (
                sum("read_wait_duration_seconds"),
                sum("chunk_write_duration_seconds"),
            );
            let computing = (sum("task_duration_seconds") - reads - writes).max(0.0);
            format!("{computing:.2} s / {reads:.2} s / {writes:.2} s")
        }),
        (
            "prefetch hits / waits",
            format!(
                "{} / {}",
                metrics["prefetch_hits_total"], metrics["prefetch_waits_total"]
            ),
        ),
    ];
    body.push_str("<table class=\"figures\">\n");
    for (name, value) in rows {
        body.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(name),
            escape(&value)
        ));
    }
    body.push_str("</table>\n");
    if let Some(tiers) = metrics["spill_tiers"].as_array().filter(|t| !t.is_empty()) {
        body.push_str(&tiers_table(tiers));
    }

    // Over time.
    let samples = report["timeline"]["samples"].as_u64().unwrap_or(0);
    if samples >= 2 {
        let t = column(report, "seconds");
        let every = report["timeline"]["interval_seconds"]
            .as_f64()
            .unwrap_or(0.0);
        let sampled = format!("{samples} samples, one every {:.1} s at the end", every);
        body.push_str("<h2>Over time</h2>\n");
        body.push_str(&figure(
            "Memory against the limit",
            line_chart(
                Axes {
                    title: "Memory against the limit",
                    x: "seconds",
                    y: &format!("MiB (limit {limit_text})"),
                },
                &[
                    Line {
                        label: "memory pool reserved".into(),
                        points: gauge(&t, report, "pool_reserved_bytes", MIB),
                    },
                    Line {
                        label: "process resident (RSS)".into(),
                        points: gauge(&t, report, "resident_bytes", MIB),
                    },
                ],
                Some(&Limit {
                    value: limit as f64 / MIB,
                    label: format!("limit {limit_text}"),
                }),
            ),
            &format!("The pool never reserves more than the limit; the process holds the pool, code and allocator slack besides; {sampled}"),
        )?);
        body.push_str(&figure(
            "Throughput",
            line_chart(
                Axes {
                    title: "Throughput",
                    x: "seconds",
                    y: "MiB/s",
                },
                &[
                    Line {
                        label: "read".into(),
                        points: rate(&t, report, "read_bytes_total", MIB),
                    },
                    Line {
                        label: "written".into(),
                        points: rate(&t, report, "written_bytes_total", MIB),
                    },
                    Line {
                        label: "spilled".into(),
                        points: rate(&t, report, "spill_written_bytes_total", MIB),
                    },
                    Line {
                        label: "read back from spill".into(),
                        points: rate(&t, report, "spill_read_bytes_total", MIB),
                    },
                ],
                None,
            ),
            "Uncompressed bytes of arrays and files; spill as stored",
        )?);
        let done = column(report, "tasks_completed_total");
        let planned = column(report, "tasks_planned_total");
        let progress: Vec<(f64, f64)> = t
            .iter()
            .zip(done.iter().zip(&planned))
            .map(|(t, (d, p))| (*t, if *p > 0.0 { 100.0 * d / p } else { 0.0 }))
            .collect();
        body.push_str(&figure(
            "Progress",
            line_chart(
                Axes {
                    title: "Progress",
                    x: "seconds",
                    y: "% of planned tasks",
                },
                &[Line {
                    label: "tasks completed".into(),
                    points: progress,
                }],
                None,
            ),
            "Tasks planned grow as each operation of a command is planned",
        )?);
        body.push_str(&figure(
            "Chunk cache",
            line_chart(
                Axes {
                    title: "Chunk cache",
                    x: "seconds",
                    y: "chunks per second",
                },
                &[
                    Line {
                        label: "hits".into(),
                        points: rate(&t, report, "cache_hits_total", 1.0),
                    },
                    Line {
                        label: "misses (loads)".into(),
                        points: rate(&t, report, "cache_misses_total", 1.0),
                    },
                    Line {
                        label: "evictions".into(),
                        points: rate(&t, report, "cache_evictions_total", 1.0),
                    },
                ],
                None,
            ),
            "Chunk requests served from memory, loaded, and chunks evicted",
        )?);
    } else {
        body.push_str("<p>No timeline was recorded for this run.</p>\n");
    }

    // Phases: a command's operations each plan and execute, so phases of
    // one name are summed, in the order they first ran.
    let mut phases: Vec<(String, f64)> = Vec::new();
    for phase in report["phases"].as_array().into_iter().flatten() {
        let (Some(name), Some(seconds)) = (phase["name"].as_str(), phase["seconds"].as_f64())
        else {
            continue;
        };
        match phases.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += seconds,
            None => phases.push((name.to_string(), seconds)),
        }
    }
    if phases.len() > MOST_PHASES {
        let rest: f64 = phases[MOST_PHASES - 1..].iter().map(|p| p.1).sum();
        let others = phases.len() - (MOST_PHASES - 1);
        phases.truncate(MOST_PHASES - 1);
        phases.push((format!("{others} other phases"), rest));
    }
    if !phases.is_empty() {
        body.push_str(&figure(
            "Time per phase",
            bar_chart(
                Axes {
                    title: "Time per phase",
                    x: "seconds",
                    y: "",
                },
                &phases,
            ),
            "Wall time of each phase of the command, summed over its operations, in the order they first ran",
        )?);
    }

    // Decompositions: the fit per iteration.
    let fits: Vec<(f64, f64)> = report["result"]["iterations"]
        .as_array()
        .map(|its| {
            its.iter()
                .enumerate()
                .filter_map(|(i, it)| Some(((i + 1) as f64, it["fit"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    if !fits.is_empty() {
        body.push_str("<h2>Decomposition</h2>\n");
        body.push_str(&figure(
            "Fit per iteration",
            line_chart(
                Axes {
                    title: "Fit per iteration",
                    x: "iteration",
                    y: "fit (1 - relative error)",
                },
                &[Line {
                    label: "fit".into(),
                    points: fits,
                }],
                None,
            ),
            "1 − ‖X − X̂‖ / ‖X‖ after each iteration",
        )?);
    }

    if let Some(ranks) = report["ranks"].as_array().filter(|r| !r.is_empty()) {
        body.push_str(&ranks_table(ranks, &report["ranks_total"]));
    }

    // The plans, the result and the data.
    if let Some(plans) = report["plans"].as_array().filter(|p| !p.is_empty()) {
        body.push_str("<h2>Plan</h2>\n");
        for plan in plans.iter().filter_map(Value::as_str) {
            body.push_str(&format!("<pre class=\"plan\">{}</pre>\n", escape(plan)));
        }
    }
    if !report["result"].is_null() {
        let result = serde_json::to_string_pretty(&report["result"])
            .map_err(|e| Error::invalid(e.to_string()))?;
        body.push_str(&format!(
            "<details><summary>Result (JSON)</summary><pre>{}</pre></details>\n",
            escape(&result)
        ));
    }
    // The report itself, for tools (a data block: never executed). Every
    // `<` (only ever inside a JSON string) is written `\u003c`, so no text in
    // it can end the element or open a comment.
    let data = serde_json::to_string(report)
        .map_err(|e| Error::invalid(e.to_string()))?
        .replace('<', "\\u003c");
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tenrso-ooc run report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}{DATA_BLOCK}{data}</script>\n</body>\n</html>\n",
        escape(
            command
                .get(1..)
                .map_or(String::new(), |c| c.join(" "))
                .as_str()
        )
    ))
}

/// The element holding a page's report, up to its data.
const DATA_BLOCK: &str = "<script type=\"application/json\" id=\"run-report\">";

/// The JSON report carried by a page [`render_html`] wrote, if `page` is one.
pub fn report_in_page(page: &str) -> Option<&str> {
    let start = page.find(DATA_BLOCK)? + DATA_BLOCK.len();
    let len = page[start..].find("</script>")?;
    Some(&page[start..start + len])
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}\
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:13px}\
pre.command{white-space:pre-wrap}\
.ok{color:#1a7f37}.failed{color:#c62828;font-weight:bold}\
table.figures{border-collapse:collapse;margin:1em 0}\
table.figures th{text-align:left;font-weight:normal;color:#555;padding:2px 1.5em 2px 0}\
table.figures td{font-variant-numeric:tabular-nums}\
figure{margin:1.5em 0}figcaption{color:#555;font-size:13px}";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Samples at the same rounded millisecond keep one vertex each.
    #[test]
    fn rates_keep_a_vertex_per_sample() {
        let report = json!({ "timeline": { "columns": { "n": [0, 10, 30, 30, 60] } } });
        let t = [0.0, 1.0, 2.0, 2.0, 3.0];
        let points = rate(&t, &report, "n", 1.0);
        assert_eq!(
            points,
            [
                (0.0, 0.0),
                (1.0, 10.0),
                (2.0, 20.0),
                (2.0, 20.0),
                (3.0, 30.0)
            ]
        );
    }

    #[test]
    fn hostile_text_is_escaped_and_the_data_block_cannot_be_closed() {
        let report = json!({
            "command": ["tenrso-ooc", "map", "<script>alert(1)</script>"],
            "ok": false,
            "error": "bad & worse",
            "seconds": 1.0,
            "memory_limit_bytes": 1 << 20,
            "metrics": {},
            "result": null,
        });
        let page = render_html(&report).unwrap();
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("bad &amp; worse"));
        assert_eq!(
            page.matches("</script>").count(),
            1,
            "only the data block ends"
        );
        assert!(page.contains("No timeline was recorded"));
        // The page carries its report, intact.
        let carried: Value = serde_json::from_str(report_in_page(&page).unwrap()).unwrap();
        assert_eq!(carried, report);
    }

    #[test]
    fn a_hand_made_report_with_odd_values_is_drawn() {
        let phases: Vec<Value> = (0..1000)
            .map(|i| json!({ "name": format!("<script>p{i}</script>"), "seconds": 1e300 }))
            .collect();
        let report = json!({
            "command": ["tenrso-ooc", "cp"],
            "ok": true,
            "seconds": -1.0,
            "memory_limit_bytes": u64::MAX,
            "metrics": { "read_bytes_total": "many" },
            "phases": phases,
            "timeline": {
                "samples": 3,
                "interval_seconds": 0.1,
                "columns": {
                    "seconds": [0.0, -1.0, 1e308],
                    "pool_reserved_bytes": [1, "x"],
                    "read_bytes_total": [5, 3, 1e308],
                }
            },
            "result": { "iterations": [{ "fit": 1e308 }, { "fit": "?" }] },
            "plans": ["a <b>", 7],
        });
        let page = render_html(&report).unwrap();
        assert!(page.contains("977 other phases"));
        // Names from the report are text in the SVG, never markup.
        assert!(!page.contains("<script>p"));
        assert!(page.contains("&lt;script&gt;p0"));
        assert!(page.contains("a &lt;b&gt;"));
    }

    #[test]
    fn not_a_report_is_an_error() {
        let err = render_html(&json!({ "a": 1 })).unwrap_err();
        assert!(err.to_string().contains("not a run report"), "{err}");
    }
}
