//! What the planned operations (map, reduce, transpose, rechunk) print.

use serde_json::{Value, json};
use tenrso_ooc::ByteSize;
use tenrso_ooc::exec::RunStats;
use tenrso_ooc::ops::OpReport;
use tenrso_ooc::plan::PlanReport;

use crate::Outcome;
use tenrso_ooc::telemetry::peak_resident_bytes;

/// The outcome of `--explain`: the plan alone. `extra` fields are merged
/// into the JSON.
pub fn explained(plan: &PlanReport, extra: Value) -> Outcome {
    let mut json = plan.to_json();
    merge(&mut json, extra);
    Outcome {
        text: plan.to_string(),
        json,
        failure: None,
    }
}

/// The outcome of `--explain` for a request its planning refused as too
/// large for the limit (before building what cannot fit): the numbers, as
/// a plan that does not fit.
pub fn refused_plan(limit: u64, required: u64, what: &str) -> Outcome {
    Outcome {
        text: format!(
            "plan: refused before it was built
  memory           {what} needs at least {}, limit {}  (DOES NOT FIT)
",
            ByteSize(required),
            ByteSize(limit)
        ),
        json: json!({
            "operation": what,
            "memory_limit_bytes": limit,
            "min_working_set_bytes": required,
            "fits": false,
        }),
        failure: None,
    }
}

/// The outcome of a planned operation that ran: a summary of the run.
/// `extra` fields are merged into the JSON.
pub fn outcome(report: &OpReport, headline: String, extra: Value) -> Outcome {
    let plan = &report.plan;
    let run = &report.run;
    let peak = peak_resident_bytes();
    let absent = if plan.absent_chunks > 0 {
        format!(" ({} absent chunks not read)", plan.absent_chunks)
    } else {
        String::new()
    };
    let migrations = if run.spill_demotions + run.spill_promotions > 0 {
        format!(
            " ({} spill files moved down a tier, {} up)",
            run.spill_demotions, run.spill_promotions
        )
    } else {
        String::new()
    };
    let text = format!(
        "{headline}\n  {} tasks in {:.2} s ({:.1} µs overhead per task); read {}{absent}, wrote {}, spilled {}{migrations}\n  {}\n  memory: pool peak {}, process peak {} (limit {})\n",
        plan.tasks,
        run.seconds,
        run.overhead_per_task_us,
        ByteSize(run.bytes_read),
        ByteSize(run.bytes_written),
        ByteSize(run.bytes_spilled),
        time_in_tasks(run),
        ByteSize(run.pool_peak),
        peak.map_or("?".to_string(), |p| ByteSize(p).to_string()),
        ByteSize(plan.memory_limit),
    );
    let mut json = run.to_json();
    merge(
        &mut json,
        json!({
        "plan": plan.to_json(),
        "peak_rss_bytes": peak,
        "cache": {
            "hits": run.cache.hits,
            "misses": run.cache.misses,
            "evictions": run.cache.evictions,
            "spills": run.cache.spills,
            "prefetch_hits": run.cache.prefetch_hits,
            "load_waits": run.cache.load_waits,
        },
        }),
    );
    merge(&mut json, extra);
    Outcome {
        text,
        json,
        failure: None,
    }
}

/// Where the workers' time went: computing, waiting for input chunks,
/// writing output chunks.
fn time_in_tasks(run: &RunStats) -> String {
    format!(
        "time in tasks: {:.2} s computing, {:.2} s waiting for reads, {:.2} s writing",
        run.compute_seconds(),
        run.read_wait_seconds,
        run.write_seconds
    )
}

fn merge(json: &mut Value, extra: Value) {
    if let (Some(map), Value::Object(extra)) = (json.as_object_mut(), extra) {
        map.extend(extra);
    }
}
