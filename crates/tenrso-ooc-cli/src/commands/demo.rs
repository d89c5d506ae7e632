//! `tenrso-ooc demo`: the engine at work on a tensor larger than its memory limit.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tenrso_ooc::decomp::{self, CpOptions, TuckerOptions};
use tenrso_ooc::ops::{
    Compare, Einsum, Export, Fill, Generate, Import, ImportOptions, Reduce, ReduceOp, Transpose,
    Verify,
};
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
use tenrso_ooc::{ByteSize, DType, Error, Result};

use super::decompose::median_seconds;
use super::{chunk_shape_or_auto, dims, rate};
use crate::cli::DemoArgs;
use crate::{Context, Outcome};
use tenrso_ooc::telemetry::peak_resident_bytes;

/// Slack above the memory limit allowed for the process itself (code,
/// stacks, allocator), per DESIGN.md's memory contract.
const RSS_SLACK: u64 = 64 << 20;

/// Removes the demo's temporary directory when dropped.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

struct Step {
    name: &'static str,
    bytes: u64,
    elapsed: Duration,
    note: String,
}

/// Generates a planted low-rank tensor 4x the memory limit, verifies it,
/// exports it to `.npy`, imports it back and checks the round trip, reduces
/// it, writes it as Parquet and sums that file in place, transposes it, multiplies its unfolding by its
/// transpose (checking the trace against the norm), decomposes it (CP-ALS
/// and Tucker, checking the fits), and reports peak memory against the limit.
pub fn run(args: &DemoArgs, ctx: &Context) -> Result<Outcome> {
    let limit = ctx.session.memory_limit();
    let (dir, _cleanup) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
            (d.clone(), TempDir(None))
        }
        None => {
            let d = std::env::temp_dir().join(format!("tenrso-ooc-demo-{}", std::process::id()));
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
            (d.clone(), TempDir(Some(d)))
        }
    };
    let size = args.size.map_or(4 * limit, |s| s.0);
    let n = ((size as f64 / 8.0).cbrt().ceil() as u64).max(2);
    let shape = vec![n, n, n];
    let fill = Fill::LowRank {
        rank: 8,
        noise: 0.01,
    };
    let spec = ArraySpec::new(
        shape.clone(),
        chunk_shape_or_auto(None, &shape, DType::F64, ctx.session.options()),
        DType::F64,
    )
    .with_compression(Compression::Zstd { level: 1 });

    let tensor = dir.join("tensor.zarr");
    let npy = dir.join("tensor.npy");
    let copy = dir.join("copy.zarr");
    let mut steps = Vec::new();
    let nbytes = shape.iter().product::<u64>() * DType::F64.size() as u64;
    eprintln!(
        "tenrso-ooc demo: {} f64 tensor {} ({:.1}x the {} memory limit), {} threads, in {}",
        dims(&shape),
        ByteSize(nbytes),
        nbytes as f64 / limit as f64,
        ByteSize(limit),
        ctx.session.threads(),
        dir.display()
    );

    let t = Instant::now();
    let g = Generate::new(&tensor, spec, fill)
        .with_seed(42)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let x = g.array.clone();
    let on_disk = x.bytes_on_disk()?;
    steps.push(Step {
        name: "generate",
        bytes: g.bytes_written,
        elapsed: t.elapsed(),
        note: format!("{fill}, {} on disk", ByteSize(on_disk)),
    });

    let t = Instant::now();
    let v = Verify::new(&x)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    steps.push(Step {
        name: "verify",
        bytes: v.bytes_checked,
        elapsed: t.elapsed(),
        note: format!("{} chunks, {} bad", v.chunks_stored, v.bad_chunks.len()),
    });

    let t = Instant::now();
    let e = Export::new(&x, &npy)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    steps.push(Step {
        name: "export",
        bytes: e.bytes,
        elapsed: t.elapsed(),
        note: "to .npy".into(),
    });

    let t = Instant::now();
    let opts = ImportOptions::default()
        .with_chunk_shape(x.chunk_grid().chunk_shape())
        .with_compression(Compression::Lz4);
    let i = Import::new(&npy, &copy)
        .with_options(opts)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    steps.push(Step {
        name: "import",
        bytes: i.bytes,
        elapsed: t.elapsed(),
        note: "from .npy, lz4".into(),
    });

    let t = Instant::now();
    let y = Arc::new(ZarrArray::open(&copy)?);
    let c = Compare::new(&x, &y)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    steps.push(Step {
        name: "compare",
        bytes: 2 * c.elements * 8,
        elapsed: t.elapsed(),
        note: if c.is_identical() {
            "bitwise identical".into()
        } else {
            format!("{} elements differ", c.elements_differing)
        },
    });
    if args.dir.is_none() {
        std::fs::remove_file(&npy).map_err(|e| Error::io(&npy, e))?;
    }

    // The engine: a reduction and a transpose, planned under the limit.
    let t = Instant::now();
    let sum = Reduce::new(ReduceOp::Sum, &x)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let norm = Reduce::new(ReduceOp::Norm, &x)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    steps.push(Step {
        name: "reduce",
        bytes: 2 * nbytes,
        elapsed: t.elapsed(),
        note: format!(
            "sum {:.6e}, norm {:.6e}",
            sum.value.unwrap_or(f64::NAN),
            norm.value.unwrap_or(f64::NAN)
        ),
    });
    // The columnar ecosystem: the tensor as Parquet (one fixed_shape_tensor
    // column, zstd), summed again reading the file in place.
    let t = Instant::now();
    let parquet = dir.join("tensor.parquet");
    let p = Export::new(&x, &parquet)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let from_file = Reduce::new(ReduceOp::Sum, &super::open_input(&parquet)?)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let parquet_bytes = std::fs::metadata(&parquet)
        .map_err(|e| Error::io(&parquet, e))?
        .len();
    // The two sums add the same values in another order: they agree to
    // rounding, at most eps·sqrt(N)·‖X‖ or so.
    let store_sum = sum.value.unwrap_or(f64::NAN);
    let file_sum = from_file.value.unwrap_or(f64::NAN);
    let scale = norm.value.unwrap_or(f64::NAN) * (x.shape().iter().product::<u64>() as f64).sqrt();
    let parquet_ok = (file_sum - store_sum).abs() <= 1e-10 * scale;
    steps.push(Step {
        name: "parquet",
        bytes: 2 * p.bytes,
        elapsed: t.elapsed(),
        note: format!(
            "to .parquet (zstd, {}), summed in place: {}",
            ByteSize(parquet_bytes),
            if parquet_ok {
                "same sum"
            } else {
                "SUM DIFFERS"
            }
        ),
    });
    if args.dir.is_none() {
        std::fs::remove_file(&parquet).map_err(|e| Error::io(&parquet, e))?;
    }

    let t = Instant::now();
    let transposed = dir.join("transposed.zarr");
    let tr = Transpose::new(&x, [2, 0, 1], &transposed)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let run = &tr.run;
    steps.push(Step {
        name: "transpose",
        bytes: run.bytes_read + run.bytes_written,
        elapsed: t.elapsed(),
        note: format!("axes [2, 0, 1], {} spilled", ByteSize(run.bytes_spilled)),
    });

    // A contraction with both operands 4x the limit: the Gram matrix of the
    // mode-0 unfolding, X(0)·X(0)ᵀ (what HOSVD needs). Its trace is ‖X‖²,
    // which the norm above measured independently.
    let t = Instant::now();
    let gram_path = dir.join("gram.zarr");
    let gram = Einsum::new("ijk,ljk->il", [&x, &x])
        .with_out(&gram_path)
        .plan(&ctx.session)?
        .run_with(&ctx.progress)?;
    let g = ZarrArray::open(&gram_path)?.read_region::<f64>(&tenrso_ooc::Region::full(&[n, n]))?;
    let trace: f64 = (0..n as usize)
        .map(|i| g.as_slice()[i * n as usize + i])
        .sum();
    let norm2 = norm.value.unwrap_or(f64::NAN).powi(2);
    let gram_ok = (trace - norm2).abs() <= 1e-9 * norm2;
    let gflops = gram.flops() / t.elapsed().as_secs_f64() / 1e9;
    steps.push(Step {
        name: "matmul",
        bytes: gram.bytes_read(),
        elapsed: t.elapsed(),
        note: format!(
            "X(0)·X(0)ᵀ: {:.1} GFLOP at {gflops:.1} GFLOP/s, pool peak {}; trace = ‖X‖²: {}",
            gram.flops() / 1e9,
            ByteSize(gram.pool_peak()),
            if gram_ok { "yes" } else { "NO" }
        ),
    });

    // Decompositions, streamed from the lz4 copy (the same values, faster to
    // decode) under the same limit: CP-ALS and Tucker of the planted rank-8
    // tensor.
    let t = Instant::now();
    let cp_opts = CpOptions::new(8)
        .with_n_iter_max(12)
        .with_tol(1e-6)
        .with_checkpoint(dir.join("cp"));
    let cp = decomp::cp_als(
        &ctx.session,
        &y,
        &cp_opts,
        &mut |i, _| {
            ctx.progress.line(&format!(
                "  CP-ALS iteration {:>2}: fit {:.6} in {:.2} s",
                i.iteration, i.fit, i.seconds
            ));
            ControlFlow::Continue(())
        },
        &ctx.progress,
    )?;
    let cp_fit = cp.fit().unwrap_or(f64::NAN);
    let cp_per_iter = median_seconds(&cp.run.iterations);
    steps.push(Step {
        name: "cp",
        bytes: cp.run.iterations.iter().map(|i| i.bytes_read).sum(),
        elapsed: t.elapsed(),
        note: format!(
            "rank 8: fit {cp_fit:.4} after {} iterations, {cp_per_iter:.2} s each ({} passes); init {:.1} s",
            cp.run.iterations.len(),
            cp.run.passes_per_iteration,
            cp.run.init_seconds
        ),
    });
    let t = Instant::now();
    let tk_opts = TuckerOptions::new(vec![8, 8, 8])
        .with_n_iter_max(5)
        .with_checkpoint(dir.join("tucker"));
    let tk = decomp::tucker(
        &ctx.session,
        &y,
        &tk_opts,
        &mut |i, _| {
            ctx.progress.line(&format!(
                "  Tucker iteration {}: fit {:.6} in {:.2} s",
                i.iteration, i.fit, i.seconds
            ));
            ControlFlow::Continue(())
        },
        &ctx.progress,
    )?;
    let tk_fit = tk.fit().unwrap_or(f64::NAN);
    let tk_per_iter = median_seconds(&tk.run.iterations);
    steps.push(Step {
        name: "tucker",
        bytes: tk.run.iterations.iter().map(|i| i.bytes_read).sum(),
        elapsed: t.elapsed(),
        note: format!(
            "ranks 8,8,8: fit {tk_fit:.4} after {} iterations, {tk_per_iter:.2} s each ({} passes); init {:.1} s",
            tk.run.iterations.len(),
            tk.run.passes_per_iteration,
            tk.run.init_seconds
        ),
    });
    // Noise of 1% caps the fit near 0.99; Tucker reaches it, CP-ALS on
    // collinear factors approaches it more slowly.
    let fits_ok = tk_fit > 0.98 && cp_fit > 0.9;

    let peak = peak_resident_bytes();
    let within = peak.is_some_and(|p| p <= limit + RSS_SLACK);
    let failed: Vec<&str> = [
        (v.is_ok(), "verify found bad chunks"),
        (c.is_identical(), "the export round trip differs"),
        (parquet_ok, "the Parquet sum differs"),
        (gram_ok, "the matmul trace differs from the norm"),
        (fits_ok, "a decomposition's fit is too low"),
        (within, "peak memory is above the limit + 64 MiB"),
    ]
    .into_iter()
    .filter_map(|(ok, what)| (!ok).then_some(what))
    .collect();
    let mut text = format!(
        "\n  {:<9} {:>12} {:>9} {:>14}  {}\n",
        "step", "data", "time", "rate", "notes"
    );
    for s in &steps {
        text.push_str(&format!(
            "  {:<9} {:>12} {:>7.2} s {:>14}  {}\n",
            s.name,
            ByteSize(s.bytes).to_string(),
            s.elapsed.as_secs_f64(),
            rate(s.bytes, s.elapsed),
            s.note
        ));
    }
    text.push_str(&format!(
        "\n  tensor {} = {:.1}x the memory limit; chunks {} ({})\n",
        ByteSize(nbytes),
        nbytes as f64 / limit as f64,
        dims(x.chunk_grid().chunk_shape()),
        x.codec_description()
    ));
    match peak {
        Some(p) => text.push_str(&format!(
            "  peak memory (VmHWM) {} = {:.2}x the {} limit: {}\n",
            ByteSize(p),
            p as f64 / limit as f64,
            ByteSize(limit),
            if within {
                "within bounds"
            } else {
                "ABOVE limit + 64 MiB"
            }
        )),
        None => text.push_str("  peak memory: unavailable (no /proc/self/status)\n"),
    }
    if args.dir.is_some() {
        text.push_str(&format!("  files kept in {}\n", dir.display()));
    }
    let json = json!({
        "dir": dir.display().to_string(),
        "shape": shape,
        "bytes": nbytes,
        "memory_limit_bytes": limit,
        "threads": ctx.session.threads(),
        "peak_rss_bytes": peak,
        "within_memory_bound": within,
        "bad_chunks": v.bad_chunks.len(),
        "round_trip_identical": c.is_identical(),
        "parquet_sum_matches": parquet_ok,
        "matmul_gflops_per_second": gflops,
        "matmul_trace_matches_norm": gram_ok,
        "cp_fit": cp_fit,
        "cp_seconds_per_iteration": cp_per_iter,
        "tucker_fit": tk_fit,
        "tucker_seconds_per_iteration": tk_per_iter,
        "steps": steps.iter().map(|s| json!({
            "name": s.name, "bytes": s.bytes, "seconds": s.elapsed.as_secs_f64(), "note": s.note,
        })).collect::<Vec<_>>(),
    });
    Ok(Outcome {
        text,
        json,
        failure: (!failed.is_empty()).then(|| format!("demo checks failed: {}", failed.join("; "))),
    })
}
