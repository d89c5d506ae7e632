//! `tenrso-ooc replay`: recorded region traces through every cache policy.

use serde_json::json;
use tenrso_ooc::Result;
use tenrso_ooc::memory::{PolicyKind, RegionTrace};

use crate::Outcome;
use crate::cli::ReplayArgs;

/// Replays each trace at each capacity: every policy's hit ratio, then LRU
/// and ARC (the read cache's default) with prediction, and its accuracy.
pub fn run(args: &ReplayArgs) -> Result<Outcome> {
    let mut text = String::new();
    let mut rows = Vec::new();
    let names: Vec<String> = PolicyKind::ALL.iter().map(|k| k.to_string()).collect();
    text.push_str(&format!(
        "{:<18} {:>6} {:>6}  {}  {:>10} {:>14}  {:>9}\n",
        "trace",
        "reads",
        "cache",
        names.iter().map(|n| format!("{n:>8}")).collect::<String>(),
        "lru+pred",
        "arc+pred",
        "predicted"
    ));
    for path in &args.traces {
        let trace = RegionTrace::read(path)?;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        for &capacity in &args.capacity {
            let plain = trace.compare_policies(capacity);
            let lru = trace.replay(PolicyKind::Lru.build(&[]), capacity, args.prefetch);
            let arc = trace.replay(PolicyKind::Arc.build(&[]), capacity, args.prefetch);
            let accuracy = arc.correct_predictions as f64 / arc.predictions.max(1) as f64;
            text.push_str(&format!(
                "{name:<18} {:>6} {capacity:>6}  {}  {:>10.3} {:>14.3}  {:>8.1}%\n",
                trace.regions.len(),
                plain
                    .iter()
                    .map(|(_, r)| format!("{:>8.3}", r.hit_ratio()))
                    .collect::<String>(),
                lru.hit_ratio(),
                arc.hit_ratio(),
                100.0 * accuracy,
            ));
            rows.push(json!({
                "trace": name,
                "reads": trace.regions.len(),
                "capacity_chunks": capacity,
                "hit_ratio": plain.iter().map(|(k, r)| (k.to_string(), json!(r.hit_ratio()))).collect::<serde_json::Map<_, _>>(),
                "with_prediction": {
                    "lru": lru.hit_ratio(),
                    "arc": arc.hit_ratio(),
                    "prefetched": arc.prefetched,
                    "prefetches_used": arc.prefetches_used,
                    "predictions": arc.predictions,
                    "correct_predictions": arc.correct_predictions,
                },
            }));
        }
    }
    text.push_str("hit ratios of chunk reads; +pred: the predictor loads the next regions' chunks ahead; predicted: guesses of the next read that were right\n");
    Ok(Outcome {
        text,
        json: json!({ "replays": rows }),
        failure: None,
    })
}
