//! `tenrso-ooc cp` and `tenrso-ooc tucker`.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use tenrso_ooc::decomp::{
    self, CpInit, CpModel, CpOptions, DecompositionRun, Iteration, Reconstruct, SweepStrategy,
    TuckerInit, TuckerModel, TuckerOptions,
};
use tenrso_ooc::io::ReadableArray;
use tenrso_ooc::store::ArraySpec;
use tenrso_ooc::{ByteSize, Error, Result};

use crate::cli::{CpArgs, ReconstructArgs, SweepArg, TuckerArgs};
use crate::commands::{chunk_shape_or_auto, dims, open_input, rate};
use crate::{Context, Outcome};
use tenrso_ooc::telemetry::peak_resident_bytes;

/// Refuses to write into a non-empty `out` unless resuming (never clobber
/// an earlier result), and creates it.
/// Checks OUTDIR before a decomposition: not an input (the tensor or an
/// init model), empty unless resuming a checkpointed run. Nothing is created
/// here: a refused run leaves no directory behind.
fn prepare_out(out: &Path, resume: bool, inputs: &[&Path]) -> Result<()> {
    tenrso_ooc::store::check_output_not_input(out, inputs)?;
    let non_empty = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !resume {
        return Err(Error::invalid(format!(
            "{} is not empty: give --resume to continue the run checkpointed there, or another -o",
            out.display()
        )));
    }
    if non_empty && resume && !out.join("checkpoint/state.json").exists() {
        return Err(Error::invalid(format!(
            "{} holds no checkpoint to resume (checkpoint/state.json is missing): give an empty or new -o",
            out.display()
        )));
    }
    Ok(())
}

/// What a decomposition reads: the tensor, and the init model's directory
/// when `init` names one.
fn inputs<'a>(input: &'a Path, init: &'a str) -> Vec<&'a Path> {
    let mut paths = vec![input];
    if !matches!(init, "svd" | "random") {
        paths.push(Path::new(init));
    }
    paths
}

fn print_iteration(ctx: &Context, what: &str, i: &Iteration) -> ControlFlow<()> {
    ctx.progress.line(&format!(
        "{what} iteration {:>3}: fit {:.8}  {:.2} s  read {}",
        i.iteration,
        i.fit,
        i.seconds,
        ByteSize(i.bytes_read)
    ));
    ControlFlow::Continue(())
}

/// The median of the iterations' seconds.
pub fn median_seconds(iterations: &[Iteration]) -> f64 {
    let mut s: Vec<f64> = iterations.iter().map(|i| i.seconds).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A finished decomposition, for [`summary`].
struct Decomposed<'a> {
    what: &'a str,
    input: &'a Path,
    x: &'a dyn ReadableArray,
    out: &'a Path,
    run: &'a DecompositionRun,
    seconds: f64,
}

fn summary(ctx: &Context, done: &Decomposed<'_>, mut json: Value) -> Result<Outcome> {
    let Decomposed {
        what,
        input,
        x,
        out,
        run,
        seconds,
    } = *done;
    let (iterations, converged, init_seconds, passes, resumed_after) = (
        &run.iterations[..],
        run.converged,
        run.init_seconds,
        run.passes_per_iteration,
        run.resumed_after,
    );
    let peak = peak_resident_bytes();
    let limit = ctx.session.memory_limit();
    let fit = iterations.last().map(|i| i.fit);
    let per_iter = median_seconds(iterations);
    let read_per_iter = iterations.last().map_or(0, |i| i.bytes_read);
    json["command"] = json!(what);
    json["input"] = json!(input.display().to_string());
    json["shape"] = json!(x.shape());
    json["tensor_bytes"] = json!(x.nbytes());
    json["iterations"] = Value::from(
        iterations
            .iter()
            .map(Iteration::to_json)
            .collect::<Vec<_>>(),
    );
    json["fit"] = json!(fit);
    json["converged"] = json!(converged);
    json["init_seconds"] = json!(init_seconds);
    json["seconds"] = json!(seconds);
    json["seconds_per_iteration_median"] = json!(per_iter);
    json["passes_per_iteration"] = json!(passes);
    json["bytes_read"] = json!(ctx.session.metrics().bytes_read.get());
    json["memory_limit_bytes"] = json!(limit);
    json["pool_peak_bytes"] = json!(ctx.session.pool().peak());
    json["peak_rss_bytes"] = json!(peak);
    json["resumed_after"] = json!(resumed_after);
    json["out"] = json!(out.display().to_string());
    if ctx.session.ranks().is_root() {
        let report =
            serde_json::to_string_pretty(&json).map_err(|e| Error::invalid(e.to_string()))?;
        decomp::write_atomically(&out.join("report.json"), report.as_bytes())?;
    }
    let text = format!(
        "{what} of {} ({}, {}): {} iterations{}{}, fit {}\n  {:.3} s per iteration (median), {} passes {}; init {:.2} s, total {:.2} s\n  memory: pool peak {}, process peak {} (limit {})\n  -> {}\n",
        input.display(),
        dims(x.shape()),
        ByteSize(x.nbytes()),
        iterations.len(),
        resumed_after.map_or(String::new(), |r| format!(" (resumed after {r})")),
        if converged { ", converged" } else { "" },
        fit.map_or("-".to_string(), |f| format!("{f:.8}")),
        per_iter,
        passes,
        if read_per_iter == 0 {
            "over the tensor held in memory".to_string()
        } else {
            format!(
                "reading {} each",
                ByteSize(read_per_iter / passes.max(1) as u64)
            )
        },
        init_seconds,
        seconds,
        ByteSize(ctx.session.pool().peak()),
        peak.map_or("?".to_string(), |p| ByteSize(p).to_string()),
        ByteSize(limit),
        out.display()
    );
    Ok(Outcome {
        text,
        json,
        failure: None,
    })
}

/// `cp`: CP-ALS; factors, weights and report.json into OUTDIR.
pub fn cp(args: &CpArgs, ctx: &Context) -> Result<Outcome> {
    let x = &open_input(&args.input)?;
    let init = match args.init.as_str() {
        "svd" => CpInit::Svd,
        "random" => CpInit::Random,
        dir => CpInit::Given(CpModel::load(Path::new(dir))?),
    };
    prepare_out(
        &args.out,
        args.resume,
        &inputs(args.input.as_path(), &args.init),
    )?;
    let opts = CpOptions::new(args.rank)
        .with_n_iter_max(args.iters)
        .with_tol(args.tol)
        .with_init(init)
        .with_seed(args.seed)
        .with_normalize_factors(args.normalize)
        .with_l2_reg(args.l2)
        .with_sweep(match args.sweep {
            SweepArg::Auto => SweepStrategy::Auto,
            SweepArg::TwoPass => SweepStrategy::TwoPass,
            SweepArg::PerMode => SweepStrategy::PerMode,
        })
        .with_checkpoint(args.out.clone())
        .with_resume(args.resume)
        .with_hold_in_memory(!args.stream);
    let started = Instant::now();
    let report = decomp::cp_als(
        &ctx.session,
        x,
        &opts,
        &mut |i, _| print_iteration(ctx, "CP-ALS", i),
        &ctx.progress,
    )?;
    if ctx.session.ranks().is_root() {
        report.model.save(&args.out)?;
    }
    let json = json!({
        "rank": args.rank,
        "tol": args.tol,
        "init": args.init,
        "seed": args.seed,
        "normalize": args.normalize,
        "l2": args.l2,
        "norm": report.run.norm,
        "weights": report.model.weights,
    });
    summary(
        ctx,
        &Decomposed {
            what: "cp",
            input: &args.input,
            x: &**x,
            out: &args.out,
            run: &report.run,
            seconds: started.elapsed().as_secs_f64(),
        },
        json,
    )
}

/// `tucker`: HOSVD + HOOI; factors, core and report.json into OUTDIR.
pub fn tucker(args: &TuckerArgs, ctx: &Context) -> Result<Outcome> {
    let x = &open_input(&args.input)?;
    let init = match args.init.as_str() {
        "svd" => TuckerInit::Svd,
        "random" => TuckerInit::Random,
        dir => TuckerInit::Given(TuckerModel::load(Path::new(dir))?),
    };
    prepare_out(
        &args.out,
        args.resume,
        &inputs(args.input.as_path(), &args.init),
    )?;
    let opts = TuckerOptions::new(args.ranks.clone())
        .with_n_iter_max(args.iters)
        .with_tol(args.tol)
        .with_init(init)
        .with_seed(args.seed)
        .with_checkpoint(args.out.clone())
        .with_resume(args.resume)
        .with_hold_in_memory(!args.stream);
    let started = Instant::now();
    let report = decomp::tucker(
        &ctx.session,
        x,
        &opts,
        &mut |i, _| print_iteration(ctx, "Tucker", i),
        &ctx.progress,
    )?;
    if ctx.session.ranks().is_root() {
        report.model.save(&args.out)?;
    }
    let json = json!({
        "ranks": args.ranks,
        "tol": args.tol,
        "init": args.init,
        "seed": args.seed,
        "norm": report.run.norm,
    });
    summary(
        ctx,
        &Decomposed {
            what: "tucker",
            input: &args.input,
            x: &**x,
            out: &args.out,
            run: &report.run,
            seconds: started.elapsed().as_secs_f64(),
        },
        json,
    )
}

/// `reconstruct`: a CP or Tucker model directory written out as a stored
/// tensor.
pub fn reconstruct(args: &ReconstructArgs, ctx: &Context) -> Result<Outcome> {
    let started = Instant::now();
    let tucker = args.model.join("core.npy").exists();
    let (kind, shape, factors) = if tucker {
        let m = TuckerModel::load(&args.model)?;
        let shape: Vec<u64> = m.factors.iter().map(|f| f.rows() as u64).collect();
        ("tucker", shape, Err(m))
    } else {
        let m = CpModel::load(&args.model)?;
        let shape: Vec<u64> = m.factors.iter().map(|f| f.rows() as u64).collect();
        ("cp", shape, Ok(m))
    };
    let chunks = chunk_shape_or_auto(
        args.chunks.as_ref().map(|s| s.dims()),
        &shape,
        args.dtype,
        ctx.session.options(),
    );
    let spec = ArraySpec::new(shape.clone(), chunks, args.dtype).with_compression(args.codec);
    let array = match &factors {
        Ok(cp) => Reconstruct::cp(cp, &args.out, spec),
        Err(tk) => Reconstruct::tucker(tk, &args.out, spec),
    }
    .with_resume(args.resume)
    .plan(&ctx.session)?
    .run_with(&ctx.progress)?;
    let elapsed = started.elapsed();
    let text = format!(
        "reconstructed the {kind} model in {} as {} ({} {}) in {:.2} s ({})\n",
        args.model.display(),
        args.out.display(),
        dims(&shape),
        ByteSize(array.nbytes()),
        elapsed.as_secs_f64(),
        rate(array.nbytes(), elapsed)
    );
    let json = json!({
        "model": args.model.display().to_string(),
        "kind": kind,
        "out": args.out.display().to_string(),
        "shape": shape,
        "bytes": array.nbytes(),
        "seconds": elapsed.as_secs_f64(),
        "peak_rss_bytes": peak_resident_bytes(),
    });
    Ok(Outcome {
        text,
        json,
        failure: None,
    })
}
