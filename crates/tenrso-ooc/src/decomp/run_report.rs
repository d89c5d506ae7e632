//! [`Iteration`] and [`DecompositionRun`]: what an iterative decomposition
//! reports, shared by CP-ALS and Tucker.

use serde_json::{Value, json};

use crate::telemetry::span_int;

/// One completed iteration of an iterative decomposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Iteration {
    /// Its number, from 1.
    pub iteration: usize,
    /// `1 − ‖X − X̂‖/‖X‖`.
    pub fit: f64,
    /// `‖X − X̂‖/‖X‖`.
    pub rec_error: f64,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// Bytes read from the stored tensor.
    pub bytes_read: u64,
    /// Passes over the tensor.
    pub passes: usize,
}

/// The `operation` span of decomposition `name` of a tensor of `shape`
/// with `ranks`: its iterations and their passes are its children.
pub(crate) fn decomp_span(
    session: &crate::exec::Session,
    name: &str,
    shape: &[u64],
    ranks: &[usize],
) -> tracing::Span {
    tracing::info_span!(
        "operation",
        operation = name,
        shape = ?shape,
        ranks = ?ranks,
        memory_limit_bytes = span_int(session.memory_limit()),
        threads = span_int(session.threads()),
    )
}

/// The span of iteration `number` (from 1); its figures are recorded by
/// [`Iteration::record_in`] when it ends.
pub(crate) fn iteration_span(number: usize) -> tracing::Span {
    tracing::info_span!(
        "iteration",
        iteration = span_int(number),
        fit = tracing::field::Empty,
        rec_error = tracing::field::Empty,
        read_bytes = tracing::field::Empty,
        passes = tracing::field::Empty,
    )
}

impl Iteration {
    /// Records the iteration's figures in its span.
    pub(crate) fn record_in(&self, span: &tracing::Span) {
        span.record("fit", self.fit);
        span.record("rec_error", self.rec_error);
        span.record("read_bytes", span_int(self.bytes_read));
        span.record("passes", span_int(self.passes));
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "iteration": self.iteration,
            "fit": self.fit,
            "rec_error": self.rec_error,
            "seconds": self.seconds,
            "bytes_read": self.bytes_read,
            "passes": self.passes,
        })
    }

    /// From [`to_json`](Self::to_json)'s object (missing fields zero).
    pub fn from_json(v: &Value) -> Self {
        Self {
            iteration: v["iteration"].as_u64().unwrap_or(0) as usize,
            fit: v["fit"].as_f64().unwrap_or(0.0),
            rec_error: v["rec_error"].as_f64().unwrap_or(0.0),
            seconds: v["seconds"].as_f64().unwrap_or(0.0),
            bytes_read: v["bytes_read"].as_u64().unwrap_or(0),
            passes: v["passes"].as_u64().unwrap_or(0) as usize,
        }
    }
}

/// How an iterative decomposition ran: its iterations and why it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct DecompositionRun {
    /// One entry per iteration, including those before a resume.
    pub iterations: Vec<Iteration>,
    /// The run stopped because the error changed by less than `tol`.
    pub converged: bool,
    /// The iteration callback returned `Break` and the run stopped there.
    pub stopped_early: bool,
    /// `‖X‖`.
    pub norm: f64,
    /// Seconds spent initialising (norm and init passes).
    pub init_seconds: f64,
    /// Passes over the tensor per iteration.
    pub passes_per_iteration: usize,
    /// The iteration the run resumed after, if it did.
    pub resumed_after: Option<usize>,
}

impl DecompositionRun {
    /// The fit `1 − ‖X − X̂‖/‖X‖` after the last iteration.
    pub fn fit(&self) -> Option<f64> {
        self.iterations.last().map(|i| i.fit)
    }
}
