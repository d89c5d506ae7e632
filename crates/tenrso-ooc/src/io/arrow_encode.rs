//! Encoding C-order tensor rows as record batches of an [`ArrowTensor`]'s
//! layout: the schema (with the canonical extension metadata) and one batch
//! per slab, the values moved in without a copy.

use std::sync::Arc;

use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{ArrayRef, FixedSizeListArray, PrimitiveArray, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema};
use serde_json::json;

use crate::core::{DType, Element, Error, Result};
use crate::io::arrow_layout::{
    ArrowLayout, ArrowTensor, EXTENSION_METADATA_KEY, EXTENSION_NAME_KEY, FIXED_SHAPE_TENSOR,
    arrow_type,
};

impl ArrowTensor {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
            err.to_string()
                .contains("1 column names (ColumnarOptions::columns) were given"),
            "{err}"
        );
    }
}
