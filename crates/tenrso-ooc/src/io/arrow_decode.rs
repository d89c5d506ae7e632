//! Decoding record batches into C-order tensor rows: the values of an
//! [`ArrowTensor`]'s columns copied (and converted, and un-permuted) into
//! the caller's buffer, with errors naming the file, column and row.

use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, GenericListArray, OffsetSizeTrait, RecordBatch};
use arrow_schema::DataType;

use crate::core::{Block, Element, Error, Result};
use crate::io::arrow_layout::{ArrowLayout, ArrowTensor, arrow_type};

impl ArrowTensor {
    /// Copies rows `rows` of `batch` (whose first row is row `first_row` of
    /// the file) into `out`, C order, converting to `T`.
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for a missing column, null values, or a list
    /// row of another length than the first.
    pub(crate) fn copy_rows<T: Element>(
        &self,
        batch: &RecordBatch,
        rows: Range<usize>,
        first_row: u64,
        out: &mut [T],
    ) -> Result<()> {
        let n = rows.len();
        debug_assert_eq!(out.len(), n * self.row_elements());
        if n == 0 {
            return Ok(());
        }
        let column = |name: &str| -> Result<&ArrayRef> {
            batch.column_by_name(name).ok_or_else(|| {
                Error::invalid_file(&self.path, format!("a record batch has no column `{name}`"))
            })
        };
        // `range` indexes `array`, whose element `range.start + k * per_row`
        // starts row `rows.start + k` of the batch.
        let no_nulls =
            |array: &dyn Array, range: Range<usize>, per_row: usize, name: &str| -> Result<()> {
                if let Some(nulls) = array.logical_nulls()
                    && let Some(i) = range.clone().find(|&i| nulls.is_null(i))
                {
                    let row = first_row + (rows.start + (i - range.start) / per_row.max(1)) as u64;
                    return Err(Error::invalid_file(
                        &self.path,
                        format!(
                            "column `{name}` has a null at or in row {row}; tensors have no nulls"
                        ),
                    ));
                }
                Ok(())
            };
        match &self.layout {
            ArrowLayout::Tensor {
                name,
                physical_shape,
                permutation,
                list_size,
                ..
            } => {
                let array = column(name)?;
                no_nulls(array.as_ref(), rows.clone(), 1, name)?;
                let (values, start) = match array.data_type() {
                    DataType::FixedSizeList(..) => {
                        let list = array.as_fixed_size_list();
                        let start = if n == 0 {
                            0
                        } else {
                            list.value_offset_at(rows.start)
                        };
                        (list.values(), start)
                    }
                    DataType::List(_) => self.list_rows(
                        array.as_list::<i32>(),
                        rows.clone(),
                        *list_size,
                        first_row,
                        name,
                    )?,
                    DataType::LargeList(_) => self.list_rows(
                        array.as_list::<i64>(),
                        rows.clone(),
                        *list_size,
                        first_row,
                        name,
                    )?,
                    other => {
                        return Err(Error::invalid_file(
                            &self.path,
                            format!("column `{name}` changed type to {other} in a record batch"),
                        ));
                    }
                };
                let count = n * list_size;
                if start + count > values.len() {
                    return Err(Error::invalid_file(
                        &self.path,
                        format!("column `{name}` has fewer values than its rows need"),
                    ));
                }
                no_nulls(values.as_ref(), start..start + count, *list_size, name)?;
                copy_values(values.as_ref(), start, out, 1).map_err(|e| {
                    Error::invalid_file(&self.path, format!("column `{name}`: {e}"))
                })?;
                if let Some(perm) = permutation {
                    permute_cells(out, n, physical_shape, perm);
                }
                Ok(())
            }
            ArrowLayout::Table { names } => {
                let stride = names.len();
                for (k, name) in names.iter().enumerate() {
                    let array = column(name)?;
                    no_nulls(array.as_ref(), rows.clone(), 1, name)?;
                    copy_values(array.as_ref(), rows.start, &mut out[k..], stride).map_err(
                        |e| Error::invalid_file(&self.path, format!("column `{name}`: {e}")),
                    )?;
                }
                Ok(())
            }
        }
    }

    /// The values of a variable-size list and the index of the first value
    /// of `rows`, after checking that each of those rows (the batch's first
    /// is row `first_row` of the file) holds `list_size` values.
    fn list_rows<'a, O: OffsetSizeTrait>(
        &self,
        list: &'a GenericListArray<O>,
        rows: Range<usize>,
        list_size: usize,
        first_row: u64,
        name: &str,
    ) -> Result<(&'a ArrayRef, usize)> {
        let offsets = &list.value_offsets()[rows.start..=rows.end];
        for (r, pair) in offsets.windows(2).enumerate() {
            let len = pair[1].as_usize() - pair[0].as_usize();
            if len != list_size {
                return Err(Error::invalid_file(
                    &self.path,
                    format!(
                        "list column `{name}` is ragged: row {} has {len} values, the first row {list_size}; a tensor needs equal rows",
                        first_row + (rows.start + r) as u64
                    ),
                ));
            }
        }
        Ok((list.values(), offsets[0].as_usize()))
    }
}

/// Reorders each of the `n` cells in `out` from its stored layout (C order
/// of `physical_shape`) to the logical cell, the stored one transposed by
/// `perm` (logical axis `i` is physical axis `perm[i]`).
fn permute_cells<T: Element>(out: &mut [T], n: usize, physical_shape: &[u64], perm: &[usize]) {
    let physical: Vec<u64> = std::iter::once(n as u64)
        .chain(physical_shape.iter().copied())
        .collect();
    let axes: Vec<usize> = std::iter::once(0)
        .chain(perm.iter().map(|&p| p + 1))
        .collect();
    let block = Block::from_vec(physical, out.to_vec()).expect("cells fill the buffer");
    out.copy_from_slice(block.permuted(&axes).as_slice());
}

/// Copies `out.len() / stride` (rounded up) values of `values` from index
/// `start` to every `stride`-th element of `out`.
#[allow(clippy::unnecessary_cast)] // f64 values go through the same `as f64`
fn copy_values<T: Element>(
    values: &dyn Array,
    start: usize,
    out: &mut [T],
    stride: usize,
) -> std::result::Result<(), String> {
    let count = out.len().div_ceil(stride);
    if start + count > values.len() {
        return Err(format!(
            "needs values {start}..{} but has {}",
            start + count,
            values.len()
        ));
    }
    let same_type = stride == 1 && *values.data_type() == arrow_type(T::DTYPE);
    macro_rules! copy {
        ($t:ty) => {{
            let src = &values.as_primitive::<$t>().values()[start..start + count];
            if same_type {
                out.copy_from_slice(bytemuck::cast_slice(src));
            } else {
                for (o, &v) in out.iter_mut().step_by(stride).zip(src) {
                    *o = T::from_f64(v as f64);
                }
            }
        }};
    }
    match values.data_type() {
        DataType::Float64 => copy!(Float64Type),
        DataType::Float32 => copy!(Float32Type),
        DataType::Int8 => copy!(Int8Type),
        DataType::Int16 => copy!(Int16Type),
        DataType::Int32 => copy!(Int32Type),
        DataType::Int64 => copy!(Int64Type),
        DataType::UInt8 => copy!(UInt8Type),
        DataType::UInt16 => copy!(UInt16Type),
        DataType::UInt32 => copy!(UInt32Type),
        DataType::UInt64 => copy!(UInt64Type),
        other => return Err(format!("values of type {other} are not numeric")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_cells_are_the_stored_ones_transposed() {
        // Two stored cells of shape 2x3; permutation [1, 0] gives 3x2 cells.
        let mut cells: Vec<f64> = (0..12).map(f64::from).collect();
        permute_cells(&mut cells, 2, &[2, 3], &[1, 0]);
        assert_eq!(
            cells,
            vec![0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]
        );
    }
}
