//! Arrow column accessors: column `i` of a batch as optional values, cast as needed.

use c360_warehouse::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use c360_warehouse::arrow::compute::cast;
use c360_warehouse::arrow::datatypes::DataType;
use c360_warehouse::arrow::record_batch::RecordBatch;

use crate::CoreResult as Result;

/// Column `i` of a batch as optional i64 / f64 / String (casting as needed).
pub fn col_i64(b: &RecordBatch, i: usize) -> Result<Vec<Option<i64>>> {
    let a = cast(b.column(i), &DataType::Int64)?;
    let a = a
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("a cast to Int64 gives a Int64Array");
    Ok((0..a.len())
        .map(|r| (!a.is_null(r)).then(|| a.value(r)))
        .collect())
}
pub fn col_f64(b: &RecordBatch, i: usize) -> Result<Vec<Option<f64>>> {
    let a = cast(b.column(i), &DataType::Float64)?;
    let a = a
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("a cast to Float64 gives a Float64Array");
    Ok((0..a.len())
        .map(|r| (!a.is_null(r)).then(|| a.value(r)))
        .collect())
}
pub fn col_str(b: &RecordBatch, i: usize) -> Result<Vec<Option<String>>> {
    let a = cast(b.column(i), &DataType::Utf8)?;
    let a = a
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("a cast to String gives a StringArray");
    Ok((0..a.len())
        .map(|r| (!a.is_null(r)).then(|| a.value(r).to_string()))
        .collect())
}
