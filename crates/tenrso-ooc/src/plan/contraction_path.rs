//! [`ContractionPath`]: the order in which an einsum's operands are
//! contracted pairwise, chosen by modelled cost like opt_einsum's `optimal`
//! and `greedy`.

use std::fmt;
use std::str::FromStr;

use crate::core::{ByteSize, Error, Result};
use crate::plan::contraction_step::{ContractionStep, StepOperand, natural_output};
use crate::plan::einsum_spec::{EinsumProblem, Label};
use crate::plan::tiling_params::TilingParams;

/// How to choose the contraction order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathStrategy {
    /// `optimal` up to [`PathStrategy::AUTO_OPTIMAL_UP_TO`] operands,
    /// `greedy` beyond.
    #[default]
    Auto,
    /// Every order is costed; the cheapest wins (branch and bound).
    Optimal,
    /// At each step, the cheapest pair (among pairs sharing an index).
    Greedy,
    /// Left to right: `((A·B)·C)·D…`.
    Sequential,
}

impl PathStrategy {
    /// Operand counts up to which `auto` searches exhaustively.
    pub const AUTO_OPTIMAL_UP_TO: usize = 5;
    /// The most operands `optimal` accepts.
    pub const OPTIMAL_MAX: usize = 7;
}

impl FromStr for PathStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "optimal" => Ok(Self::Optimal),
            "greedy" => Ok(Self::Greedy),
            "sequential" | "left-to-right" => Ok(Self::Sequential),
            other => Err(Error::invalid(format!(
                "unknown contraction path `{other}` (expected auto, optimal, greedy or sequential)"
            ))),
        }
    }
}

impl fmt::Display for PathStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Optimal => "optimal",
            Self::Greedy => "greedy",
            Self::Sequential => "sequential",
        })
    }
}

/// A step of a path: which operands it contracts (inputs are numbered
/// `0..n`, the result of step `s` is `n + s`) and the planned step.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    /// The operands contracted (one for a single-operand einsum).
    pub operands: Vec<usize>,
    /// The step with its tiles and cost.
    pub step: ContractionStep,
}

/// An einsum as a sequence of contraction steps; the last one writes the
/// result.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractionPath {
    /// The strategy that chose the path.
    pub strategy: PathStrategy,
    /// The steps, in execution order.
    pub steps: Vec<PathStep>,
}

impl ContractionPath {
    /// Plans the contraction of `inputs` (the stored operands of `problem`,
    /// in order) with `strategy`, every step's tiles sized under
    /// `memory_limit`; the result is chunked as `output_chunks` (default: see
    /// [`ContractionStep::plan`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `optimal` is asked for more than
    /// [`PathStrategy::OPTIMAL_MAX`] operands.
    pub fn plan(
        problem: &EinsumProblem,
        inputs: &[StepOperand],
        params: &TilingParams,
        strategy: PathStrategy,
    ) -> Result<Self> {
        let planner = Planner {
            problem,
            params: params.clone(),
        };
        let live: Vec<(usize, StepOperand)> = inputs.iter().cloned().enumerate().collect();
        let n = inputs.len();
        let strategy_used = match strategy {
            PathStrategy::Auto if n <= PathStrategy::AUTO_OPTIMAL_UP_TO => PathStrategy::Optimal,
            PathStrategy::Auto => PathStrategy::Greedy,
            s => s,
        };
        if strategy_used == PathStrategy::Optimal && n > PathStrategy::OPTIMAL_MAX {
            return Err(Error::invalid(format!(
                "the optimal path search is limited to {} operands; use PathStrategy::Greedy for {n}",
                PathStrategy::OPTIMAL_MAX
            )));
        }
        let steps = if n == 1 {
            vec![PathStep {
                operands: vec![0],
                step: planner.step(vec![live[0].1.clone()], true, &[]),
            }]
        } else {
            match strategy_used {
                PathStrategy::Optimal => {
                    let mut best = (f64::INFINITY, Vec::new());
                    planner.search(live, n, Vec::new(), 0.0, &mut best);
                    best.1
                }
                PathStrategy::Greedy => planner.greedy(live, n),
                _ => planner.sequential(live, n),
            }
        };
        Ok(Self {
            strategy: strategy_used,
            steps,
        })
    }

    /// Total modelled seconds.
    pub fn seconds(&self) -> f64 {
        self.steps.iter().map(|s| s.step.cost.seconds).sum()
    }

    /// Total floating-point operations.
    pub fn flops(&self) -> f64 {
        self.steps.iter().map(|s| s.step.cost.flops).sum()
    }

    /// The most memory one task of any step needs at the least.
    pub fn min_task_bytes(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.step.min_task_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Bytes of intermediates (results of every step but the last).
    pub fn intermediate_bytes(&self) -> u64 {
        let n = self.steps.len();
        self.steps[..n.saturating_sub(1)]
            .iter()
            .map(|s| s.step.cost.bytes_written)
            .sum()
    }
}

impl fmt::Display for ContractionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "path ({}): {} step(s), {:.3} GFLOP, modelled {:.2} s",
            self.strategy,
            self.steps.len(),
            self.flops() / 1e9,
            self.seconds()
        )?;
        for (k, s) in self.steps.iter().enumerate() {
            let names: Vec<String> = s.operands.iter().map(|o| format!("#{o}")).collect();
            let c = &s.step.cost;
            writeln!(
                f,
                "  step {k}: {} {}  shape {:?}",
                names.join("·"),
                s.step,
                s.step.output_shape()
            )?;
            writeln!(
                f,
                "          {:.3} GFLOP, read {}, write {}, {} task(s) of {} (least {})",
                c.flops / 1e9,
                ByteSize(c.bytes_read),
                ByteSize(c.bytes_written),
                c.tasks,
                ByteSize(c.task_bytes),
                ByteSize(s.step.min_task_bytes)
            )?;
            if s.step.inputs.len() == 2 {
                writeln!(
                    f,
                    "          GEMM operands: {} {}, {} {}",
                    names[0],
                    s.step.layout_text(0),
                    names[1],
                    s.step.layout_text(1)
                )?;
            }
        }
        Ok(())
    }
}

/// Operands still to contract: their numbers and descriptions.
type Live = Vec<(usize, StepOperand)>;

struct Planner<'a> {
    problem: &'a EinsumProblem,
    params: TilingParams,
}

impl Planner<'_> {
    /// Plans one step over `inputs`; `last` steps write the einsum's output,
    /// others keep the indices `others` (the remaining operands) need.
    fn step(
        &self,
        inputs: Vec<StepOperand>,
        last: bool,
        others: &[&StepOperand],
    ) -> ContractionStep {
        let (output, chunks) = if last {
            (
                self.problem.output.clone(),
                self.params.output_chunks.clone(),
            )
        } else {
            let mut keep: Vec<Label> = self.problem.output.clone();
            for o in others {
                keep.extend(o.labels.iter().flatten());
            }
            let x = inputs[0].distinct_labels();
            let y = inputs[1].distinct_labels();
            (natural_output(&x, &y, &keep), None)
        };
        let params = TilingParams {
            output_chunks: chunks,
            ..self.params.clone()
        };
        ContractionStep::plan(inputs, output, &self.problem.sizes, &params)
    }

    /// Contracts live operands `i` and `j`: the step and the list after it.
    fn contract(
        &self,
        live: &[(usize, StepOperand)],
        i: usize,
        j: usize,
        id: usize,
    ) -> (PathStep, Vec<(usize, StepOperand)>) {
        let others: Vec<&StepOperand> = live
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i && *k != j)
            .map(|(_, (_, o))| o)
            .collect();
        let last = live.len() == 2;
        let step = self.step(vec![live[i].1.clone(), live[j].1.clone()], last, &others);
        // A scalar intermediate is stored as one element: an axis of size 1
        // without an index.
        let labels = if step.output.is_empty() {
            vec![None]
        } else {
            step.output.iter().map(|l| Some(*l)).collect()
        };
        let result = StepOperand {
            labels,
            shape: step.output_shape(),
            chunks: step.output_chunks.clone(),
            chunk_load_bytes: 2 * step.output_chunks.iter().product::<u64>() * self.params.itemsize,
        };
        let mut rest: Vec<(usize, StepOperand)> = live
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i && *k != j)
            .map(|(_, o)| o.clone())
            .collect();
        rest.insert(0, (id, result));
        (
            PathStep {
                operands: vec![live[i].0, live[j].0],
                step,
            },
            rest,
        )
    }

    fn search(
        &self,
        live: Vec<(usize, StepOperand)>,
        next_id: usize,
        done: Vec<PathStep>,
        spent: f64,
        best: &mut (f64, Vec<PathStep>),
    ) {
        if live.len() == 1 {
            if spent < best.0 {
                *best = (spent, done);
            }
            return;
        }
        for i in 0..live.len() {
            for j in i + 1..live.len() {
                let (step, rest) = self.contract(&live, i, j, next_id);
                let cost = spent + step.step.cost.seconds;
                if cost >= best.0 {
                    continue;
                }
                let mut path = done.clone();
                path.push(step);
                self.search(rest, next_id + 1, path, cost, best);
            }
        }
    }

    fn greedy(&self, mut live: Vec<(usize, StepOperand)>, mut next_id: usize) -> Vec<PathStep> {
        let mut steps = Vec::new();
        while live.len() > 1 {
            let shares = |a: &StepOperand, b: &StepOperand| {
                a.labels
                    .iter()
                    .flatten()
                    .any(|l| b.labels.contains(&Some(*l)))
            };
            let any_shared = (0..live.len())
                .any(|i| (i + 1..live.len()).any(|j| shares(&live[i].1, &live[j].1)));
            let mut best: Option<((f64, u64), PathStep, Live)> = None;
            for i in 0..live.len() {
                for j in i + 1..live.len() {
                    if any_shared && !shares(&live[i].1, &live[j].1) {
                        continue;
                    }
                    let (step, rest) = self.contract(&live, i, j, next_id);
                    let key = (step.step.cost.seconds, step.step.cost.bytes_written);
                    if best.as_ref().is_none_or(|b| key < b.0) {
                        best = Some((key, step, rest));
                    }
                }
            }
            let (_, step, rest) = best.expect("at least one pair");
            steps.push(step);
            live = rest;
            next_id += 1;
        }
        steps
    }

    fn sequential(&self, mut live: Vec<(usize, StepOperand)>, mut next_id: usize) -> Vec<PathStep> {
        let mut steps = Vec::new();
        while live.len() > 1 {
            let (step, rest) = self.contract(&live, 0, 1, next_id);
            steps.push(step);
            live = rest;
            next_id += 1;
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::EinsumSpec;

    fn operand(problem: &EinsumProblem, k: usize, shape: &[u64]) -> StepOperand {
        StepOperand {
            labels: problem.operands[k].clone(),
            shape: shape.to_vec(),
            chunks: shape.to_vec(),
            chunk_load_bytes: 16 * shape.iter().product::<u64>(),
        }
    }

    #[test]
    fn optimal_contracts_the_small_matrices_first() {
        // (A·B)·v costs n³; A·(B·v) costs n².
        let shapes: [&[u64]; 3] = [&[500, 500], &[500, 500], &[500]];
        let problem = EinsumSpec::parse("ij,jk,k->i")
            .unwrap()
            .bind(&shapes)
            .unwrap();
        let inputs: Vec<StepOperand> = (0..3).map(|k| operand(&problem, k, shapes[k])).collect();
        let plan = |s| {
            ContractionPath::plan(&problem, &inputs, &TilingParams::new(8, 1 << 30), s).unwrap()
        };
        let optimal = plan(PathStrategy::Optimal);
        assert_eq!(optimal.steps[0].operands, vec![1, 2]);
        let mut last = optimal.steps[1].operands.clone();
        last.sort_unstable();
        assert_eq!(last, vec![0, 3]);
        let sequential = plan(PathStrategy::Sequential);
        assert_eq!(sequential.steps[0].operands, vec![0, 1]);
        assert!(optimal.flops() < sequential.flops() / 100.0);
        assert_eq!(plan(PathStrategy::Greedy).steps[0].operands, vec![1, 2]);
        assert_eq!(plan(PathStrategy::Auto).strategy, PathStrategy::Optimal);
    }
}
