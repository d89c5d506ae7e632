//! [`ArrowTensor`]: how a tensor lies in Arrow record batches, shared by the
//! Arrow IPC and Parquet sources and writers.
//!
//! Two layouts are understood:
//! - a tensor column: Arrow's canonical `arrow.fixed_shape_tensor` extension
//!   (storage `FixedSizeList<T>[prod(shape)]`, metadata
//!   `{"shape": [...], "dim_names": [...], "permutation": [...]}`), a plain
//!   fixed-size list, or a list whose rows all have the same length. A
//!   tensor of shape `(N, d1, …, dk)` is `N` rows of `(d1, …, dk)` cells, so
//!   record batches and row groups are slabs along axis 0;
//! - a table of numeric columns: `rows × columns` (a vector for one column).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, GenericListArray, OffsetSizeTrait, PrimitiveArray,
    RecordBatch,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Value, json};

use crate::core::shape::join_dims;
use crate::core::{Block, DType, Element, Error, Result};

/// The canonical extension name of a fixed-shape tensor column.
pub const FIXED_SHAPE_TENSOR: &str = "arrow.fixed_shape_tensor";
const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
const EXTENSION_METADATA_KEY: &str = "ARROW:extension:metadata";

/// Where the values of a tensor are in a record batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArrowLayout {
    /// One list column; row `r` holds cell `r` in C order of its physical
    /// shape.
    Tensor {
        /// Column name.
        name: String,
        /// Logical shape of one cell.
        cell_shape: Vec<u64>,
        /// The extension's `shape`: the cell as stored, in C order.
        physical_shape: Vec<u64>,
        /// Logical axis `i` of a cell is physical axis `permutation[i]`
        /// (the cell is the stored one transposed by it); `None` for the
        /// identity.
        permutation: Option<Vec<usize>>,
        /// Values per row.
        list_size: usize,
        /// True for the canonical extension type (else a plain list).
        extension: bool,
    },
    /// Numeric columns, one tensor column each.
    Table {
        /// Column names, in tensor order.
        names: Vec<String>,
    },
}

/// A tensor stored in Arrow record batches: its layout, element type and
/// the file it comes from (named in every error).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArrowTensor {
    pub(crate) layout: ArrowLayout,
    pub(crate) dtype: DType,
    path: PathBuf,
}

/// Element type of values of Arrow type `t`: floats keep theirs, integers
/// are read as f64 (exact below 2^53); anything else is not numeric.
fn numeric_dtype(t: &DataType) -> Option<DType> {
    match t {
        DataType::Float32 => Some(DType::F32),
        DataType::Float64
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Some(DType::F64),
        _ => None,
    }
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_)
    )
}

impl ArrowTensor {
    /// Finds the tensor in `schema`: the columns named in `columns` (one list
    /// column, or numeric columns), else the only list column, else all
    /// columns as a numeric table. `first_row_len` gives the length of the
    /// first row of a variable-size list column (read from the file).
    pub(crate) fn from_schema(
        schema: &Schema,
        columns: Option<&[String]>,
        path: &Path,
        first_row_len: &mut dyn FnMut(&str) -> Result<usize>,
    ) -> Result<Self> {
        let available = || {
            schema
                .fields()
                .iter()
                .map(|f| format!("{} ({})", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let fields: Vec<&Field> = match columns {
            Some(names) => names
                .iter()
                .map(|n| {
                    schema.field_with_name(n).map_err(|_| {
                        Error::invalid_file(
                            path,
                            format!("has no column `{n}`; its columns are {}", available()),
                        )
                    })
                })
                .collect::<Result<_>>()?,
            None => {
                let lists: Vec<&Field> = schema
                    .fields()
                    .iter()
                    .filter(|f| is_list(f.data_type()))
                    .map(|f| f.as_ref())
                    .collect();
                match lists.len() {
                    0 => schema.fields().iter().map(|f| f.as_ref()).collect(),
                    1 => lists,
                    _ => {
                        return Err(Error::invalid_file(
                            path,
                            format!(
                                "holds {} tensor columns ({}): import the one to use with `import --columns`",
                                lists.len(),
                                lists
                                    .iter()
                                    .map(|f| f.name().as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        if fields.is_empty() {
            return Err(Error::invalid_file(path, "has no columns"));
        }
        for f in &fields {
            if schema
                .fields()
                .iter()
                .filter(|g| g.name() == f.name())
                .count()
                > 1
            {
                return Err(Error::invalid_file(
                    path,
                    format!(
                        "has more than one column named `{}`: columns are read by name",
                        f.name()
                    ),
                ));
            }
        }
        if fields.len() == 1 && is_list(fields[0].data_type()) {
            return Self::tensor_column(fields[0], path, first_row_len);
        }
        let mut dtype = DType::F32;
        for f in &fields {
            let t = numeric_dtype(f.data_type()).ok_or_else(|| {
                let hint = if is_list(f.data_type()) {
                    "a list column is read alone as a tensor"
                } else {
                    "import the numeric columns to use with `import --columns`"
                };
                Error::invalid_file(
                    path,
                    format!(
                        "column `{}` is of type {}, not numeric: {hint}",
                        f.name(),
                        f.data_type()
                    ),
                )
            })?;
            if t == DType::F64 {
                dtype = DType::F64;
            }
        }
        Ok(Self {
            layout: ArrowLayout::Table {
                names: fields.iter().map(|f| f.name().clone()).collect(),
            },
            dtype,
            path: path.to_path_buf(),
        })
    }

    fn tensor_column(
        field: &Field,
        path: &Path,
        first_row_len: &mut dyn FnMut(&str) -> Result<usize>,
    ) -> Result<Self> {
        let name = field.name();
        let (item, fixed) = match field.data_type() {
            DataType::FixedSizeList(item, n) => (
                item,
                Some(usize::try_from(*n).map_err(|_| {
                    Error::invalid_file(
                        path,
                        format!("column `{name}` declares a list size of {n}"),
                    )
                })?),
            ),
            DataType::List(item) | DataType::LargeList(item) => (item, None),
            _ => unreachable!("tensor_column is called on list columns"),
        };
        let dtype = match item.data_type() {
            DataType::Float32 => DType::F32,
            DataType::Float64 => DType::F64,
            other => {
                return Err(Error::invalid_file(
                    path,
                    format!(
                        "tensor column `{name}` holds {other} values; tenrso-ooc reads float32 and float64 tensors"
                    ),
                ));
            }
        };
        let list_size = match fixed {
            Some(n) => n,
            None => first_row_len(name)?,
        };
        if list_size == 0 {
            return Err(Error::invalid_file(
                path,
                format!("tensor column `{name}` has empty cells (or no rows to tell their size)"),
            ));
        }
        let extension = field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str)
            == Some(FIXED_SHAPE_TENSOR);
        let (physical_shape, permutation) = if extension {
            let text = field
                .metadata()
                .get(EXTENSION_METADATA_KEY)
                .map_or("{}", String::as_str);
            parse_extension_metadata(text, list_size).map_err(|e| {
                Error::invalid_file(path, format!("column `{name}` ({FIXED_SHAPE_TENSOR}): {e}"))
            })?
        } else {
            (vec![list_size as u64], None)
        };
        let cell_shape = match &permutation {
            Some(p) => p.iter().map(|&a| physical_shape[a]).collect(),
            None => physical_shape.clone(),
        };
        Ok(Self {
            layout: ArrowLayout::Tensor {
                name: name.clone(),
                cell_shape,
                physical_shape,
                permutation,
                list_size,
                extension,
            },
            dtype,
            path: path.to_path_buf(),
        })
    }

    /// The tensor's shape for `rows` rows.
    pub(crate) fn shape(&self, rows: u64) -> Vec<u64> {
        let mut shape = vec![rows];
        match &self.layout {
            ArrowLayout::Tensor { cell_shape, .. } => shape.extend(cell_shape),
            ArrowLayout::Table { names } if names.len() > 1 => shape.push(names.len() as u64),
            ArrowLayout::Table { .. } => {}
        }
        shape
    }

    /// True for a table of numeric columns (one value per column per row).
    pub(crate) fn is_table(&self) -> bool {
        matches!(&self.layout, ArrowLayout::Table { .. })
    }

    /// True when cells are stored in another axis order than they are read.
    pub(crate) fn is_permuted(&self) -> bool {
        matches!(
            &self.layout,
            ArrowLayout::Tensor {
                permutation: Some(_),
                ..
            }
        )
    }

    /// Elements per row.
    pub(crate) fn row_elements(&self) -> usize {
        match &self.layout {
            ArrowLayout::Tensor { list_size, .. } => *list_size,
            ArrowLayout::Table { names } => names.len(),
        }
    }

    /// Names of the columns read.
    pub(crate) fn column_names(&self) -> Vec<&str> {
        match &self.layout {
            ArrowLayout::Tensor { name, .. } => vec![name.as_str()],
            ArrowLayout::Table { names } => names.iter().map(String::as_str).collect(),
        }
    }

    /// One line: which columns hold the tensor.
    pub(crate) fn describe(&self) -> String {
        match &self.layout {
            ArrowLayout::Tensor {
                name,
                cell_shape,
                permutation,
                extension,
                ..
            } => {
                let kind = if *extension {
                    FIXED_SHAPE_TENSOR
                } else {
                    "list"
                };
                let perm = permutation
                    .as_ref()
                    .map(|p| format!(", permutation {p:?}"))
                    .unwrap_or_default();
                format!(
                    "column `{name}` ({kind}, cells {}{perm})",
                    join_dims(cell_shape)
                )
            }
            ArrowLayout::Table { names } => format!("numeric columns {}", names.join(",")),
        }
    }

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

    /// The layout written for an array of `shape`: numeric columns named
    /// `columns` (a 2-d array, one name per column, or a 1-d array and one
    /// name), else a `fixed_shape_tensor` column `tensor` of cells
    /// `shape[1..]`; a 1-d array without names is one column `values`.
    pub(crate) fn for_writing(
        dtype: DType,
        shape: &[u64],
        columns: Option<&[String]>,
        path: &Path,
    ) -> Result<Self> {
        let layout = match (columns, shape.len()) {
            (Some(names), n)
                if (n == 2 && names.len() as u64 == shape[1]) || (n == 1 && names.len() == 1) =>
            {
                ArrowLayout::Table {
                    names: names.to_vec(),
                }
            }
            (Some(names), _) => {
                return Err(Error::invalid(format!(
                    "--columns names {} columns, but an array of shape {} is written as a table only when it is 2-d with that many columns (or 1-d with one)",
                    names.len(),
                    join_dims(shape)
                )));
            }
            (None, 0) => return Err(Error::invalid("a 0-d array cannot be written as rows")),
            (None, 1) => ArrowLayout::Table {
                names: vec!["values".into()],
            },
            (None, _) => {
                let cells: u64 = shape[1..].iter().product();
                if cells == 0 {
                    return Err(Error::invalid(format!(
                        "an array of shape {} has empty cells, which Arrow cannot hold row by row",
                        join_dims(shape)
                    )));
                }
                let list_size = i32::try_from(cells).map_err(|_| {
                    Error::invalid(format!(
                        "cells of shape {} hold {cells} values, more than an Arrow list can",
                        join_dims(&shape[1..])
                    ))
                })?;
                ArrowLayout::Tensor {
                    name: "tensor".into(),
                    cell_shape: shape[1..].to_vec(),
                    physical_shape: shape[1..].to_vec(),
                    permutation: None,
                    list_size: list_size as usize,
                    extension: true,
                }
            }
        };
        Ok(Self {
            layout,
            dtype,
            path: path.to_path_buf(),
        })
    }

    /// The Arrow schema of [`ArrowTensor::for_writing`]'s layout, with the
    /// canonical extension metadata on a tensor column.
    pub(crate) fn schema(&self) -> Schema {
        let value = arrow_type(self.dtype);
        match &self.layout {
            ArrowLayout::Tensor {
                name,
                cell_shape,
                list_size,
                ..
            } => {
                let item = Arc::new(Field::new("item", value, true));
                let metadata = json!({ "shape": cell_shape }).to_string();
                let field = Field::new(
                    name,
                    DataType::FixedSizeList(item, *list_size as i32),
                    false,
                )
                .with_metadata(std::collections::HashMap::from([
                    (
                        EXTENSION_NAME_KEY.to_string(),
                        FIXED_SHAPE_TENSOR.to_string(),
                    ),
                    (EXTENSION_METADATA_KEY.to_string(), metadata),
                ]));
                Schema::new(vec![field])
            }
            ArrowLayout::Table { names } => Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(n, value.clone(), false))
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// A record batch of `rows` rows from their values in C order.
    pub(crate) fn batch_of<T: Element>(
        &self,
        schema: &Arc<Schema>,
        values: Vec<T>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let arrow =
            |e: arrow_schema::ArrowError| Error::invalid(format!("building a record batch: {e}"));
        let columns: Vec<ArrayRef> = match &self.layout {
            ArrowLayout::Tensor { list_size, .. } => {
                let DataType::FixedSizeList(item, _) = schema.field(0).data_type() else {
                    unreachable!("tensor schemas hold a fixed-size list")
                };
                let list = FixedSizeListArray::try_new(
                    item.clone(),
                    *list_size as i32,
                    values_array(values),
                    None,
                )
                .map_err(arrow)?;
                vec![Arc::new(list)]
            }
            ArrowLayout::Table { names } => (0..names.len())
                .map(|k| {
                    values_array(
                        values
                            .iter()
                            .skip(k)
                            .step_by(names.len())
                            .copied()
                            .collect(),
                    )
                })
                .collect(),
        };
        debug_assert!(columns.iter().all(|c| c.len() == rows));
        RecordBatch::try_new(schema.clone(), columns).map_err(arrow)
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

/// Parses fixed_shape_tensor metadata: the cell shape and the permutation
/// (spec key `permutation`; `permutations`, seen in some writers, too).
fn parse_extension_metadata(
    text: &str,
    list_size: usize,
) -> std::result::Result<(Vec<u64>, Option<Vec<usize>>), String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("metadata is not JSON ({e}): {text}"))?;
    let uints = |v: &Value, key: &str| -> std::result::Result<Option<Vec<u64>>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|x| {
                    x.as_u64()
                        .ok_or_else(|| format!("`{key}` holds {x}, not a count"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("`{key}` is {other}, not a list")),
        }
    };
    let shape = uints(&doc, "shape")?.ok_or("metadata has no `shape`")?;
    let size = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or("shape overflows")?;
    if size != list_size as u64 {
        return Err(format!(
            "shape [{}] holds {size} values but the list size is {list_size}",
            join_dims(&shape)
        ));
    }
    let perm = match uints(&doc, "permutation")? {
        Some(p) => Some(p),
        None => uints(&doc, "permutations")?,
    };
    let perm = match perm {
        None => None,
        Some(p) => {
            let p: Vec<usize> = p.iter().map(|&x| x as usize).collect();
            let mut seen = vec![false; shape.len()];
            if p.len() != shape.len()
                || p.iter()
                    .any(|&x| x >= seen.len() || std::mem::replace(&mut seen[x], true))
            {
                return Err(format!(
                    "permutation {p:?} is not a permutation of the {} cell axes",
                    shape.len()
                ));
            }
            (!p.iter().enumerate().all(|(i, &x)| i == x)).then_some(p)
        }
    };
    Ok((shape, perm))
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

/// An Arrow array of `values`, without copying them.
fn values_array<T: Element>(values: Vec<T>) -> ArrayRef {
    match T::DTYPE {
        DType::F64 => Arc::new(PrimitiveArray::<Float64Type>::new(
            ScalarBuffer::from(bytemuck::cast_vec::<T, f64>(values)),
            None,
        )),
        DType::F32 => Arc::new(PrimitiveArray::<Float32Type>::new(
            ScalarBuffer::from(bytemuck::cast_vec::<T, f32>(values)),
            None,
        )),
    }
}

/// The Arrow type of elements of `dtype`.
pub(crate) fn arrow_type(dtype: DType) -> DataType {
    match dtype {
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
    }
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

/// Reads `region` of an array of `shape` stored as rows into `out`:
/// `read_rows` reads whole rows (all inner axes); a region that covers only
/// part of the inner axes is cut out of whole rows.
pub(crate) fn read_region_by_rows<T: Element>(
    shape: &[u64],
    region: &crate::core::Region,
    out: &mut [T],
    read_rows: impl Fn(Range<u64>, &mut [T]) -> Result<()>,
) -> Result<()> {
    let rows = region.start()[0]..region.start()[0] + region.shape()[0];
    let whole = region.start()[1..].iter().all(|&s| s == 0) && region.shape()[1..] == shape[1..];
    if whole {
        return read_rows(rows, out);
    }
    let mut full_shape = shape.to_vec();
    full_shape[0] = region.shape()[0];
    let mut buffer = vec![T::ZERO; full_shape.iter().product::<u64>() as usize];
    read_rows(rows, &mut buffer)?;
    let block = Block::from_vec(full_shape, buffer)?;
    let mut start = region.start().to_vec();
    start[0] = 0;
    let part = block.extract(&crate::core::Region::new(start, region.shape().to_vec()));
    out.copy_from_slice(part.as_slice());
    Ok(())
}

/// The units (record batches, row groups; `first_rows[u]` is the first row
/// of unit `u`, `total` rows in all) overlapping `rows`, each with the rows
/// to read relative to the unit and the offset of those rows in `rows`.
pub(crate) fn units_overlapping(
    first_rows: &[u64],
    total: u64,
    rows: Range<u64>,
) -> Vec<(usize, Range<usize>, usize)> {
    let mut out = Vec::new();
    let mut unit = first_rows
        .partition_point(|&f| f <= rows.start)
        .saturating_sub(1);
    while unit < first_rows.len() && first_rows[unit] < rows.end {
        let unit_end = first_rows.get(unit + 1).copied().unwrap_or(total);
        let lo = rows.start.max(first_rows[unit]);
        let hi = rows.end.min(unit_end);
        if lo < hi {
            let base = first_rows[unit];
            out.push((
                unit,
                (lo - base) as usize..(hi - base) as usize,
                (lo - rows.start) as usize,
            ));
        }
        unit += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_metadata_reads_permutation_under_both_keys() {
        let (shape, perm) =
            parse_extension_metadata(r#"{"shape": [3, 4, 5], "permutation": [2, 0, 1]}"#, 60)
                .unwrap();
        assert_eq!((shape, perm), (vec![3, 4, 5], Some(vec![2, 0, 1])));
        let (_, perm) =
            parse_extension_metadata(r#"{"shape": [2, 3], "permutations": [1, 0]}"#, 6).unwrap();
        assert_eq!(perm, Some(vec![1, 0]));
        // The identity is no permutation; dim_names are ignored.
        let (_, perm) = parse_extension_metadata(
            r#"{"shape": [2, 3], "permutation": [0, 1], "dim_names": ["H", "W"]}"#,
            6,
        )
        .unwrap();
        assert_eq!(perm, None);
        let err = parse_extension_metadata(r#"{"shape": [3, 3]}"#, 10).unwrap_err();
        assert!(err.contains("list size is 10"), "{err}");
        let err =
            parse_extension_metadata(r#"{"shape": [2, 3], "permutation": [0, 0]}"#, 6).unwrap_err();
        assert!(err.contains("not a permutation"), "{err}");
        assert!(
            parse_extension_metadata("{}", 1)
                .unwrap_err()
                .contains("no `shape`")
        );
        assert!(
            parse_extension_metadata("[", 1)
                .unwrap_err()
                .contains("not JSON")
        );
    }

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

    #[test]
    fn rows_map_onto_units() {
        let first = [0, 10, 20, 25];
        assert_eq!(
            units_overlapping(&first, 40, 5..22),
            vec![(0, 5..10, 0), (1, 0..10, 5), (2, 0..2, 15)]
        );
        assert_eq!(units_overlapping(&first, 40, 25..40), vec![(3, 0..15, 0)]);
        assert_eq!(units_overlapping(&first, 40, 12..13), vec![(1, 2..3, 0)]);
    }

    #[test]
    fn a_table_and_a_tensor_round_trip_through_record_batches() {
        let path = Path::new("t.arrow");
        for (shape, columns) in [
            (vec![4u64, 2, 3], None),
            (
                vec![4, 3],
                Some(vec!["a".to_string(), "b".into(), "c".into()]),
            ),
            (vec![4], None),
        ] {
            let tensor =
                ArrowTensor::for_writing(DType::F64, &shape, columns.as_deref(), path).unwrap();
            let schema = Arc::new(tensor.schema());
            let values: Vec<f64> = (0..shape.iter().product::<u64>())
                .map(|v| v as f64)
                .collect();
            let batch = tensor.batch_of(&schema, values.clone(), 4).unwrap();
            let read = ArrowTensor::from_schema(&schema, None, path, &mut |_| Ok(0)).unwrap();
            assert_eq!(read.shape(4), shape);
            let mut out = vec![0.0f64; values.len() / 2];
            read.copy_rows(&batch, 1..3, 0, &mut out).unwrap();
            let row = values.len() / 4;
            assert_eq!(out, values[row..3 * row]);
        }
        let err =
            ArrowTensor::for_writing(DType::F32, &[4, 3], Some(&["a".into()]), path).unwrap_err();
        assert!(
            err.to_string().contains("--columns names 1 columns"),
            "{err}"
        );
    }
}
