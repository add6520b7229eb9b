//! Rows bound for one metastore write, held on disk instead of in memory: a step that reads
//! millions of source rows (members, users) spools them as they come, in Arrow IPC batches,
//! then replays them a chunk at a time inside one transaction. Memory stays at one chunk
//! whatever the rows (a `Vec<Value>` row of an identity node took ~600 bytes).

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use c360_db::Value;
use c360_warehouse::arrow::array::{Array, ArrayRef, AsArray, Int64Builder, StringBuilder};
use c360_warehouse::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use c360_warehouse::arrow::ipc::reader::StreamReader;
use c360_warehouse::arrow::ipc::writer::StreamWriter;
use c360_warehouse::arrow::record_batch::RecordBatch;

use crate::error::{EtlError, Result};

/// Rows a chunk holds, in memory while spooling and per replayed write.
pub const CHUNK: usize = 8192;

/// What a spooled column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

pub struct Spool {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    path: std::path::PathBuf,
    pending: Vec<Vec<Value>>,
    out: Option<StreamWriter<BufWriter<File>>>,
    rows: u64,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> EtlError + '_ {
    move |e| EtlError::Spool(format!("{}: {e}", path.display()))
}

impl Spool {
    /// A spool of rows of `kinds`; its file (created at the first full chunk) is `path`.
    pub fn new(path: std::path::PathBuf, kinds: &[Kind]) -> Spool {
        let fields: Vec<Field> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let t = match k {
                    Kind::Int => DataType::Int64,
                    Kind::Text => DataType::Utf8,
                };
                Field::new(format!("c{i}"), t, true)
            })
            .collect();
        Spool {
            schema: Arc::new(Schema::new(fields)),
            kinds: kinds.to_vec(),
            path,
            pending: Vec::with_capacity(CHUNK),
            out: None,
            rows: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.rows
    }

    /// Adds a row; its values must be of the spool's kinds, in order.
    pub fn push(&mut self, row: Vec<Value>) -> Result<()> {
        debug_assert_eq!(row.len(), self.kinds.len());
        self.pending.push(row);
        self.rows += 1;
        if self.pending.len() >= CHUNK {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        let batch = to_batch(&self.schema, &self.kinds, &self.pending)?;
        self.pending.clear();
        if self.out.is_none() {
            let f = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&self.path)
                .map_err(io_err(&self.path))?;
            // Unlinked at once: the open handle keeps the data, and nothing is left behind
            // when the process dies.
            std::fs::remove_file(&self.path).map_err(io_err(&self.path))?;
            self.out = Some(StreamWriter::try_new(BufWriter::new(f), &self.schema)?);
        }
        self.out.as_mut().expect("opened above").write(&batch)?;
        Ok(())
    }

    /// The rows in the order they were pushed, a chunk at a time.
    pub fn replay(self) -> Result<Replay> {
        let reader = match self.out {
            None => None,
            Some(mut w) => {
                w.finish()?;
                let mut f = w
                    .into_inner()?
                    .into_inner()
                    .map_err(|e| EtlError::Spool(format!("{}: {e}", self.path.display())))?;
                f.seek(SeekFrom::Start(0)).map_err(io_err(&self.path))?;
                Some(StreamReader::try_new(BufReader::new(f), None)?)
            }
        };
        Ok(Replay {
            kinds: self.kinds,
            reader,
            tail: Some(self.pending),
        })
    }
}

/// The spooled rows, chunk by chunk.
pub struct Replay {
    kinds: Vec<Kind>,
    reader: Option<StreamReader<BufReader<File>>>,
    tail: Option<Vec<Vec<Value>>>,
}

impl Replay {
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Vec<Value>>>> {
        if let Some(r) = self.reader.as_mut() {
            match r.next() {
                Some(b) => return Ok(Some(from_batch(&self.kinds, &b?))),
                None => self.reader = None,
            }
        }
        Ok(self.tail.take().filter(|t| !t.is_empty()))
    }
}

fn to_batch(schema: &SchemaRef, kinds: &[Kind], rows: &[Vec<Value>]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = kinds
        .iter()
        .enumerate()
        .map(|(c, k)| -> ArrayRef {
            match k {
                Kind::Int => {
                    let mut b = Int64Builder::with_capacity(rows.len());
                    for r in rows {
                        b.append_option(match &r[c] {
                            Value::I(v) => Some(*v),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                Kind::Text => {
                    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                    for r in rows {
                        b.append_option(match &r[c] {
                            Value::S(v) => Some(v.as_str()),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

fn from_batch(kinds: &[Kind], b: &RecordBatch) -> Vec<Vec<Value>> {
    (0..b.num_rows())
        .map(|i| {
            kinds
                .iter()
                .enumerate()
                .map(|(c, k)| {
                    let a = b.column(c);
                    match k {
                        Kind::Int if a.is_null(i) => Value::NullI,
                        Kind::Int => Value::I(a.as_primitive::<Int64Type>().value(i)),
                        Kind::Text if a.is_null(i) => Value::NullS,
                        Kind::Text => Value::S(a.as_string::<i32>().value(i).to_string()),
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows come back as pushed, nulls and all, across spilled chunks and the tail; the file
    /// is gone from the directory as soon as it exists.
    #[test]
    fn replays_rows_as_pushed() {
        let dir = std::env::temp_dir().join(format!("c360-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in [0usize, 5, CHUNK, 2 * CHUNK + 17] {
            let path = dir.join(format!("s{n}"));
            let mut s = Spool::new(path.clone(), &[Kind::Text, Kind::Int]);
            let rows: Vec<Vec<Value>> = (0..n)
                .map(|i| {
                    vec![
                        if i % 7 == 0 {
                            Value::NullS
                        } else {
                            Value::S(format!("M:{i}·名"))
                        },
                        if i % 5 == 0 {
                            Value::NullI
                        } else {
                            Value::I(i as i64 - 3)
                        },
                    ]
                })
                .collect();
            for r in &rows {
                s.push(r.clone()).unwrap();
            }
            assert_eq!(s.len(), n as u64);
            assert!(!path.exists(), "the spool file is unlinked once open");
            let mut back = Vec::new();
            let mut r = s.replay().unwrap();
            while let Some(c) = r.next_chunk().unwrap() {
                assert!(c.len() <= CHUNK);
                back.extend(c);
            }
            assert_eq!(back, rows, "{n} rows");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
