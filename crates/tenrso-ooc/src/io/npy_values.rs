//! Small `.npy` files read and written whole as `f64` values: factor
//! matrices, Tucker cores, weights and checkpoints.

use std::io::Write;
use std::path::Path;

use crate::core::{DType, Region, Result};
use crate::io::{DenseFile, npy_header_bytes};

/// Reads a whole (small) `f32`/`f64` `.npy` file as its shape and `f64`
/// values in C order (any byte order or memory order on disk).
///
/// # Errors
/// [`Error::InvalidFile`](crate::Error::InvalidFile) for a malformed or
/// truncated file; [`Error::Io`](crate::Error::Io).
pub fn read_npy_values(path: &Path) -> Result<(Vec<u64>, Vec<f64>)> {
    let file = DenseFile::open_npy(path)?;
    let shape = file.shape().to_vec();
    let region = Region::full(&shape);
    let data = match file.layout().dtype {
        DType::F64 => file.read_region::<f64>(&region)?.into_vec(),
        DType::F32 => file
            .read_region::<f32>(&region)?
            .into_vec()
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    Ok((shape, data))
}

/// Writes `values` (C order) of `shape` to `out` as an `f64` `.npy` file,
/// header included. To put it in place atomically, write into an
/// [`AtomicFile`](crate::store::AtomicFile).
///
/// # Errors
/// [`std::io::ErrorKind::InvalidInput`] when `values` does not hold the
/// elements of `shape`; the writer's errors.
pub fn encode_npy_values(
    mut out: impl Write,
    shape: &[u64],
    values: &[f64],
) -> std::io::Result<()> {
    let elements = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok());
    if elements != Some(values.len()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "shape {} does not hold {} values",
                crate::core::shape::join_dims(shape),
                values.len()
            ),
        ));
    }
    out.write_all(&npy_header_bytes(DType::F64, shape))?;
    for chunk in values.chunks(1 << 13) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_all(&bytes)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_widens_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        let mut bytes = Vec::new();
        encode_npy_values(&mut bytes, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            read_npy_values(&path).unwrap(),
            (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5])
        );
        let f32_path = dir.path().join("f.npy");
        let mut f32_bytes = npy_header_bytes(DType::F32, &[2]);
        f32_bytes.extend([0.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(&f32_path, &f32_bytes).unwrap();
        assert_eq!(
            read_npy_values(&f32_path).unwrap(),
            (vec![2], vec![0.5, -2.0])
        );
    }

    #[test]
    fn refuses_values_that_do_not_fill_the_shape() {
        let err = encode_npy_values(Vec::new(), &[2, 2], &[1.0]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "shape 2x2 does not hold 1 values");
        let overflow = encode_npy_values(Vec::new(), &[u64::MAX, 2], &[]).unwrap_err();
        assert_eq!(overflow.kind(), std::io::ErrorKind::InvalidInput);
    }
}
