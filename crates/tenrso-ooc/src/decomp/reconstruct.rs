//! CP and Tucker models written back as stored tensors, chunk by chunk.

use std::path::Path;

use crate::core::{Block, Element, Region, Result};
use crate::decomp::chunk_kernels::{khatri_rao_rows, mode_product};
use crate::decomp::{CpModel, Matrix, TuckerModel};
use crate::exec::{Progress, Session, for_each_task};
use crate::store::{ArraySpec, ZarrArray};
use crate::{MatView, matmul_add};

/// Writes the full tensor of a CP model into a new array at `out` with
/// `spec`'s chunking and codecs (its shape must be the model's), one chunk
/// per task: each chunk is `(F₀ block · diag w) · KR(other blocks)ᵀ`, one GEMM.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] when the shape disagrees; store errors.
pub fn reconstruct_cp(
    session: &Session,
    model: &CpModel,
    out: &Path,
    spec: &ArraySpec,
    progress: &dyn Progress,
) -> Result<ZarrArray> {
    let rank = model.rank();
    write_model(session, &model.factors, out, spec, progress, |region| {
        let d: Vec<usize> = region.shape().iter().map(|v| *v as usize).collect();
        let c0 = d[0];
        let rest: usize = d[1..].iter().product();
        let start0 = region.start()[0] as usize;
        let mut first =
            Matrix::from_vec(c0, rank, model.factors[0].row_block(start0, c0).to_vec())?;
        first.scale_columns(&model.weights);
        let kr = khatri_rao_rows(&model.factors, region, 1..d.len(), rank);
        let mut block = vec![0.0; c0 * rest];
        matmul_add(
            &mut block,
            first.view(),
            MatView::transposed(&kr, rank, rest),
            1,
        );
        Ok(block)
    })
}

/// Writes the full tensor of a Tucker model into a new array at `out` (see
/// [`reconstruct_cp`]): each chunk is the core multiplied on every mode by
/// the factors' row blocks.
///
/// # Errors
/// As [`reconstruct_cp`].
pub fn reconstruct_tucker(
    session: &Session,
    model: &TuckerModel,
    out: &Path,
    spec: &ArraySpec,
    progress: &dyn Progress,
) -> Result<ZarrArray> {
    write_model(session, &model.factors, out, spec, progress, |region| {
        let mut d = model.core_shape.clone();
        let mut y = model.core.clone();
        for m in 0..d.len() {
            let (start, len) = (region.start()[m] as usize, region.shape()[m] as usize);
            let u = model.factors[m].row_block(start, len);
            y = mode_product(&y, &d, m, MatView::row_major(u, len, d[m]));
            d[m] = len;
        }
        Ok(y)
    })
}

fn write_model<F>(
    session: &Session,
    factors: &[Matrix],
    out: &Path,
    spec: &ArraySpec,
    progress: &dyn Progress,
    block: F,
) -> Result<ZarrArray>
where
    F: Fn(&Region) -> Result<Vec<f64>> + Sync,
{
    let shape: Vec<u64> = factors.iter().map(|f| f.rows() as u64).collect();
    if spec.shape != shape {
        return Err(crate::Error::invalid(format!(
            "the model's shape is {shape:?}, the output's {:?}",
            spec.shape
        )));
    }
    let array = ZarrArray::create(out, spec)?;
    let grid = array.chunk_grid().clone();
    // A chunk in f64, its intermediates (at most two more of its size) and
    // the encoded copy.
    let per_task = 4 * grid.chunk_elements() * 8;
    progress.start("reconstruct", array.nbytes());
    let result = crate::dispatch_dtype!(array.dtype(), T => {
        for_each_task(session, per_task, "reconstructing one chunk", grid.num_chunks() as usize, progress, |i| {
            let coords = grid.chunk_coords(i as u64);
            let region = grid.chunk_region(&coords);
            let values = block(&region)?;
            let data: Vec<T> = values.into_iter().map(T::from_f64).collect();
            let b = Block::from_vec(region.shape().to_vec(), data)?;
            array.write_chunk(&coords, &b)?;
            session.metrics().bytes_written.add(b.byte_len() as u64);
            Ok(b.byte_len() as u64)
        })
    });
    progress.finish();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(out);
        return Err(e);
    }
    Ok(array)
}
