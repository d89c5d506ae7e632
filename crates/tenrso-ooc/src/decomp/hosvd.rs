//! Leading left singular vectors of a stored tensor's unfoldings, streamed:
//! the HOSVD that initialises CP-ALS (`init = svd`) and Tucker.

use crate::DType;
use crate::core::{Error, Region, Result};
use crate::decomp::Matrix;
use crate::decomp::chunk_kernels::ModeMttkrp;
use crate::decomp::linalg::{leading_eigenvectors, leading_left_singular_vectors};
use crate::decomp::on_root::on_root;
use crate::decomp::stream::stream_accumulate;
use crate::exec::{Progress, Session};
use crate::io::{ArrayRef, IntoArrayRef};
use crate::ops::{CounterRng, Einsum};

/// Columns the randomized range finder draws beyond the ones asked for.
const OVERSAMPLING: usize = 10;

/// How the leading vectors of a mode were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSvdMethod {
    /// Eigenvectors of the exact Gram matrix `X₍ₙ₎X₍ₙ₎ᵀ`.
    Gram,
    /// A randomized range finder: `X₍ₙ₎·Ω` with a Khatri-Rao-structured
    /// Gaussian `Ω` (streamed as an MTTKRP), then its SVD. Approximate.
    Randomized,
}

/// Which leading singular vectors [`leading_mode_vectors`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeVectors {
    /// The mode whose unfolding is decomposed.
    pub mode: usize,
    /// How many leading vectors (`k`).
    pub count: usize,
    /// Seed of the randomized range finder.
    pub seed: u64,
}

/// The `k` leading left singular vectors of the mode-`mode` unfolding of `x`
/// (`I_n × min(k, I_n)`, signs as [`flip_signs`](super::linalg::flip_signs))
/// and the singular values, in one streamed pass.
///
/// When the `I_n × I_n` Gram matrix takes at most a quarter of the memory
/// limit it is computed exactly — the out-of-core contraction
/// `X₍ₙ₎X₍ₙ₎ᵀ` by [`Einsum`](crate::ops::Einsum) — and eigendecomposed. Otherwise a randomized
/// range finder sketches the unfolding with `k + 10` Khatri-Rao-structured
/// Gaussian columns; its singular values are then estimates.
///
/// # Errors
/// Memory-limit and store errors.
pub fn leading_mode_vectors(
    session: &Session,
    x: &impl IntoArrayRef,
    which: ModeVectors,
    progress: &dyn Progress,
) -> Result<(Matrix, Vec<f64>, ModeSvdMethod)> {
    let x = &x.array_ref();
    let ModeVectors {
        mode,
        count: k,
        seed,
    } = which;
    let extent = x.shape()[mode] as usize;
    let gram_bytes = (extent as u64)
        .saturating_mul(extent as u64)
        .saturating_mul(8);
    if gram_bytes <= session.memory_limit() / 4 {
        let gram = mode_gram(session, x, mode, progress)?;
        let (u, values) = decomposed_once(session, || leading_eigenvectors(&gram, k))?;
        let s = values.into_iter().map(|v| v.max(0.0).sqrt()).collect();
        return Ok((u, s, ModeSvdMethod::Gram));
    }
    let cols = (k + OVERSAMPLING).min(extent);
    let rng = CounterRng::new(seed);
    let factors: Vec<Matrix> = x
        .shape()
        .iter()
        .enumerate()
        .map(|(m, &i)| {
            let values = (0..i * cols as u64)
                .map(|e| rng.normal(1000 + m as u32, e))
                .collect();
            Matrix::from_vec(i as usize, cols, values).expect("sized to the mode")
        })
        .collect();
    let kernel = ModeMttkrp {
        factors: &factors,
        mode,
        rank: cols,
    };
    let label = format!("randomized range of mode {mode}");
    let sketch = stream_accumulate(session, x, None, &[mode], &kernel, &label, progress)?;
    let (u, s) = decomposed_once(session, || leading_left_singular_vectors(&sketch, k))?;
    // E[ΩΩᵀ] = cols·I, so the sketch's singular values are about √cols times
    // the unfolding's.
    let scale = (cols as f64).sqrt();
    Ok((
        u,
        s.into_iter().map(|v| v / scale).collect(),
        ModeSvdMethod::Randomized,
    ))
}

/// `X₍ₙ₎X₍ₙ₎ᵀ` by out-of-core einsum (e.g. `abc,azc->bz` for mode 1), through
/// a store in scratch (node-local under several ranks).
fn mode_gram(
    session: &Session,
    x: &ArrayRef,
    mode: usize,
    progress: &dyn Progress,
) -> Result<Matrix> {
    let letters: Vec<char> = ('a'..='y').take(x.shape().len()).collect();
    if letters.len() < x.shape().len() {
        return Err(Error::invalid("too many modes for a Gram matrix by einsum"));
    }
    let left: String = letters.iter().collect();
    let right: String = letters
        .iter()
        .enumerate()
        .map(|(m, c)| if m == mode { 'z' } else { *c })
        .collect();
    let spec = format!("{left},{right}->{}z", letters[mode]);
    // In scratch: under several ranks each holds the tiles it computed.
    let report = Einsum::new(spec, [x, x])
        .into_scratch()
        .plan(session)?
        .run_with(progress)?;
    let (gram, _store) = report
        .scratch
        .as_ref()
        .ok_or_else(|| Error::internal("the Gram einsum kept no result"))?;
    let extent = x.shape()[mode];
    let full = Region::full(&[extent, extent]);
    let values = match gram.dtype() {
        DType::F64 => gram.read_region::<f64>(&full)?.into_vec(),
        DType::F32 => gram
            .read_region::<f32>(&full)?
            .into_vec()
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    // Every rank has read every tile before any removes its own.
    if session.ranks().is_distributed() {
        session.ranks().barrier();
    }
    Matrix::from_vec(extent as usize, extent as usize, values)
}

/// Vectors and values decomposed by rank 0 alone and sent to every rank as
/// bits (see [`on_root`]).
fn decomposed_once(
    session: &Session,
    decompose: impl FnOnce() -> Result<(Matrix, Vec<f64>)>,
) -> Result<(Matrix, Vec<f64>)> {
    let sent = on_root(session.ranks(), || {
        let (u, values) = decompose()?;
        let n = values.len();
        Ok(vec![u, Matrix::from_vec(1, n, values)?])
    })?;
    match <[Matrix; 2]>::try_from(sent) {
        Ok([u, values]) => Ok((u, values.into_vec())),
        Err(_) => Err(Error::internal("rank 0 sent no vectors and values")),
    }
}
