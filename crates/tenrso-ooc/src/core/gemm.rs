//! [`matmul_add`]: `C += A·B` on row-major blocks through faer's GEMM.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::core::{DType, Element};

/// A matrix stored in a slice: `rows × cols` in row-major order, or the
/// transpose of a row-major `cols × rows` matrix (so blocks whose axes come
/// in the other order multiply without being copied).
#[derive(Debug, Clone, Copy)]
pub struct MatView<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Rows of the matrix as used.
    pub rows: usize,
    /// Columns of the matrix as used.
    pub cols: usize,
    /// `data` holds the transpose (`cols × rows`, row-major).
    pub transposed: bool,
}

impl<'a, T> MatView<'a, T> {
    /// `rows × cols` stored row-major in `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// `rows × cols`, the transpose of the row-major `cols × rows` in `data`.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            transposed: true,
        }
    }
}

/// `c += a · b`, where `c` is `a.rows × b.cols` row-major, computed by faer
/// with `threads` threads (1: sequential). The order of the additions along
/// the inner dimension depends only on the shapes, so equal inputs give
/// bitwise-equal outputs.
///
/// ```
/// use tenrso_ooc::{MatView, matmul_add};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let b = [5.0, 6.0];           // [[5], [6]]
/// let mut c = [1.0, 1.0];
/// matmul_add(&mut c, MatView::row_major(&a, 2, 2), MatView::row_major(&b, 2, 1), 1);
/// assert_eq!(c, [18.0, 40.0]);
/// ```
///
/// # Panics
/// If the shapes do not agree or a slice is too short.
pub fn matmul_add<T: Element>(c: &mut [T], a: MatView<'_, T>, b: MatView<'_, T>, threads: usize) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!(c.len(), a.rows * b.cols, "output has the wrong length");
    assert!(a.data.len() >= a.rows * a.cols && b.data.len() >= b.rows * b.cols);
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    match T::DTYPE {
        DType::F64 => gemm::<f64>(bytemuck::cast_slice_mut(c), cast(a), cast(b), par),
        DType::F32 => gemm::<f32>(bytemuck::cast_slice_mut(c), cast(a), cast(b), par),
    }
}

fn cast<'a, T: Element, U: Element>(v: MatView<'a, T>) -> MatView<'a, U> {
    MatView {
        data: bytemuck::cast_slice(v.data),
        rows: v.rows,
        cols: v.cols,
        transposed: v.transposed,
    }
}

fn faer_ref<'a, T>(v: MatView<'a, T>) -> MatRef<'a, T> {
    if v.transposed {
        MatRef::from_row_major_slice(&v.data[..v.rows * v.cols], v.cols, v.rows).transpose()
    } else {
        MatRef::from_row_major_slice(&v.data[..v.rows * v.cols], v.rows, v.cols)
    }
}

fn gemm<T: faer::traits::ComplexField + Copy>(
    c: &mut [T],
    a: MatView<'_, T>,
    b: MatView<'_, T>,
    par: Par,
) {
    let (m, n) = (a.rows, b.cols);
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    matmul(
        dst,
        Accum::Add,
        faer_ref(a),
        faer_ref(b),
        T::one_impl(),
        par,
    );
}
