//! Arrow record batches to JSON rows (numbers stay numbers, dates and times become ISO text).

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

fn column_values(a: &ArrayRef) -> Result<Vec<Value>, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::compute::cast;
    let n = a.len();
    let out = match a.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let c = cast(a, &DataType::Int64)?;
            let c = c.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if c.is_null(i) {
                        Value::Null
                    } else {
                        c.value(i).into()
                    }
                })
                .collect()
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            let c = cast(a, &DataType::Float64)?;
            let c = c.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| {
                    let v = c.value(i);
                    if c.is_null(i) || !v.is_finite() {
                        Value::Null
                    } else {
                        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
                    }
                })
                .collect()
        }
        DataType::Boolean => {
            let c = a.as_boolean();
            (0..n)
                .map(|i| {
                    if c.is_null(i) {
                        Value::Null
                    } else {
                        c.value(i).into()
                    }
                })
                .collect()
        }
        DataType::Null => vec![Value::Null; n],
        _ => {
            let c = cast(a, &DataType::Utf8)?;
            let c = c.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if c.is_null(i) {
                        Value::Null
                    } else {
                        c.value(i).to_string().into()
                    }
                })
                .collect()
        }
    };
    Ok(out)
}

/// One JSON object per row, keyed by column name.
pub fn rows(batches: &[RecordBatch]) -> Result<Vec<Value>, datafusion::arrow::error::ArrowError> {
    let mut out = Vec::new();
    for b in batches {
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let cols: Vec<Vec<Value>> = b
            .columns()
            .iter()
            .map(column_values)
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let mut m = Map::with_capacity(names.len());
            for (name, col) in names.iter().zip(&cols) {
                m.insert(name.clone(), col[i].clone());
            }
            out.push(Value::Object(m));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn batches_become_typed_rows() {
        let s = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("t", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            s,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
                Arc::new(StringArray::from(vec![Some("a'b"), None])),
            ],
        )
        .unwrap();
        let r = rows(&[b]).unwrap();
        assert_eq!(r[0], serde_json::json!({"id": 1, "x": 0.5, "t": "a'b"}));
        assert_eq!(r[1], serde_json::json!({"id": 2, "x": null, "t": null}));
    }
}
