//! [`ArrowTensor`]: how a tensor lies in Arrow record batches, shared by the
//! Arrow IPC and Parquet sources and writers — the layout found in a schema
//! or chosen for writing. Decoding rows is in `arrow_decode`, encoding
//! record batches in `arrow_encode`.
//!
//! Two layouts are understood:
//! - a tensor column: Arrow's canonical `arrow.fixed_shape_tensor` extension
//!   (storage `FixedSizeList<T>[prod(shape)]`, metadata
//!   `{"shape": [...], "dim_names": [...], "permutation": [...]}`), a plain
//!   fixed-size list, or a list whose rows all have the same length. A
//!   tensor of shape `(N, d1, …, dk)` is `N` rows of `(d1, …, dk)` cells, so
//!   record batches and row groups are slabs along axis 0;
//! - a table of numeric columns: `rows × columns` (a vector for one column).

use std::path::{Path, PathBuf};

use arrow_schema::{DataType, Field, Schema};
use serde_json::Value;

use crate::core::shape::join_dims;
use crate::core::{DType, Error, Result};

/// The canonical extension name of a fixed-shape tensor column.
pub const FIXED_SHAPE_TENSOR: &str = "arrow.fixed_shape_tensor";
pub(super) const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
pub(super) const EXTENSION_METADATA_KEY: &str = "ARROW:extension:metadata";

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
    /// The file, named in every error.
    pub(super) path: PathBuf,
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
                                "holds {} tensor columns ({}): name the one to read (SourceOptions::columns)",
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
                    "name the numeric columns to read (SourceOptions::columns)"
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
                    "{} column names (ColumnarOptions::columns) were given, but an array of shape {} is written as a table only when it is 2-d with that many columns (or 1-d with one)",
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

/// The Arrow type of elements of `dtype`.
pub(crate) fn arrow_type(dtype: DType) -> DataType {
    match dtype {
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest::proptest! {
        #![proptest_config(crate::fuzz_config::fuzz_config(2000))]

        /// Hostile metadata text: never a panic; what parses is consistent.
        #[test]
        fn extension_metadata_fuzzed(
            shape in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => (0u64..5).prop_map(serde_json::Value::from),
                    1 => proptest::strategy::Just(serde_json::json!(u64::MAX)),
                    1 => proptest::strategy::Just(serde_json::json!(-1)),
                    1 => proptest::strategy::Just(serde_json::json!("3")),
                ],
                0..5,
            ),
            perm in proptest::option::of(proptest::collection::vec(0u64..5, 0..5)),
            key in proptest::sample::select(vec!["permutation", "permutations", "dim_names"]),
            scalar_perm in proptest::prelude::any::<bool>(),
            exact_size in proptest::prelude::any::<bool>(),
            list_size in 0usize..200,
            noise in "\\PC{0,24}",
        ) {
            let mut doc = serde_json::json!({ "shape": shape });
            if let Some(p) = perm {
                doc[key] = if scalar_perm { serde_json::json!(p.len()) } else { serde_json::json!(p) };
            }
            // Often the list size the shape holds, so the permutation is checked.
            let list_size = match shape.iter().map(serde_json::Value::as_u64).collect::<Option<Vec<_>>>() {
                Some(dims) if exact_size => dims
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(list_size),
                _ => list_size,
            };
            for text in [doc.to_string(), noise.clone(), format!("{{\"shape\": {noise}}}")] {
                if let Ok((shape, perm)) = parse_extension_metadata(&text, list_size) {
                    proptest::prop_assert_eq!(shape.iter().product::<u64>(), list_size as u64);
                    if let Some(p) = perm {
                        let mut sorted = p.clone();
                        sorted.sort_unstable();
                        proptest::prop_assert_eq!(sorted, (0..shape.len()).collect::<Vec<_>>());
                    }
                }
            }
        }
    }
}
