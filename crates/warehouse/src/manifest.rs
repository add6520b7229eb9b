//! Versioned manifests and atomic commits.
//!
//! Layout of a warehouse directory:
//! ```text
//! _manifests/00000007.json     one per committed version; the highest complete one is current
//! _lock                        held (flock) by the single writer
//! <table>/<partition>/v7-0.parquet
//! ```
//! A commit writes and fsyncs its Parquet files and every directory on their way to the root
//! (a new `month=` directory is only durable once its parent is synced), then writes the next
//! manifest to a temporary name, fsyncs it, renames it into place and fsyncs `_manifests`.
//! Readers only ever see whole versions, and open the newest manifest whose files all exist:
//! a damaged newest version (unreadable, or naming a missing file) is skipped with a warning,
//! and the next writer moves it aside (`NNNNNNNN.json.broken`). Files that no kept manifest
//! names (left by a crashed writer) and stray `.tmp` manifests are deleted by the next writer;
//! a superseded version is kept for [`Warehouse::retain_superseded`] after it was superseded
//! (besides the newest [`KEEP_VERSIONS`]), so a reader still on it keeps its files.
//!
//! One writer at a time: [`Warehouse::lock`] takes the `_lock` flock and a run holds it across
//! all its transactions (the ETL across load and refresh).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::tables::{self, Mode};
use crate::upsert::Upsert;
use crate::{error::io, error::Result, error::WhError};

/// The newest versions always kept.
pub const KEEP_VERSIONS: usize = 5;
/// How long a superseded version's files stay for readers still on it.
pub const RETAIN_SUPERSEDED: Duration = Duration::from_secs(15 * 60);

/// Where per-version serving indexes live under the warehouse root (`v<version>/`, written by
/// `c360_core::serving`); they are collected with the version they index.
pub const SERVING_DIR: &str = "_serving";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Relative to the warehouse root.
    pub path: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableState {
    /// partition value ("" when unpartitioned) -> files
    pub partitions: BTreeMap<String, Vec<FileEntry>>,
}

impl TableState {
    pub fn rows(&self) -> u64 {
        self.partitions.values().flatten().map(|f| f.rows).sum()
    }
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.partitions.values().flatten()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub committed_at: String,
    pub run_id: i64,
    pub tables: BTreeMap<String, TableState>,
    /// Source watermarks of the data this version holds, e.g. `pos.orders` -> max updated_at.
    pub watermarks: BTreeMap<String, String>,
    /// Free-form facts about the load (counts), for reports.
    pub notes: BTreeMap<String, serde_json::Value>,
}

/// A warehouse directory.
#[derive(Clone)]
pub struct Warehouse {
    pub root: PathBuf,
    /// How long a superseded version stays readable (default [`RETAIN_SUPERSEDED`]).
    pub retain_superseded: Duration,
}

/// The single writer's lock (an exclusive flock on `_lock`), held while any clone of it lives.
#[derive(Clone)]
pub struct WriterLock {
    /// Held, never read: the flock lives as long as the open file.
    _file: Arc<File>,
    root: PathBuf,
}

fn manifest_dir(root: &Path) -> PathBuf {
    root.join("_manifests")
}

impl Warehouse {
    pub fn open(root: impl Into<PathBuf>) -> Result<Warehouse> {
        let root = root.into();
        fs::create_dir_all(manifest_dir(&root)).map_err(io(&root))?;
        Ok(Warehouse {
            root,
            retain_superseded: RETAIN_SUPERSEDED,
        })
    }

    fn versions(&self) -> Result<Vec<u64>> {
        let dir = manifest_dir(&self.root);
        let mut v: Vec<u64> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.strip_suffix(".json").and_then(|s| s.parse().ok())
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// The highest version number on disk, damaged (set-aside) versions included.
    fn highest_version_ever(&self) -> Result<u64> {
        let dir = manifest_dir(&self.root);
        Ok(fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                let n = n.strip_suffix(".broken").unwrap_or(&n).to_string();
                n.strip_suffix(".json").and_then(|s| s.parse().ok())
            })
            .max()
            .unwrap_or(0))
    }

    /// Stores a fitted model (or another artefact a manifest note names) under
    /// `_artifacts/<name>`, durably: written to a temporary file, fsynced, renamed, the
    /// directory fsynced. Artefacts are versioned by name and never collected, so any manifest
    /// still readable can load the one it names.
    pub fn put_artifact(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.artifact_path(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        write_durably(&path.with_extension("tmp"), &path, bytes)
    }

    /// An artefact stored by [`Warehouse::put_artifact`], if there is one by that name.
    pub fn get_artifact(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.artifact_path(name)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn artifact_path(&self, name: &str) -> Result<PathBuf> {
        let ok = !name.is_empty()
            && name.split('/').all(|p| {
                !p.is_empty()
                    && p != "."
                    && p != ".."
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            });
        if !ok {
            return Err(WhError::Invalid(format!("artefact name {name:?}")));
        }
        Ok(self.root.join("_artifacts").join(name))
    }

    /// The current snapshot: the newest version that reads and whose files all exist (an
    /// empty manifest before the first commit). A newer damaged version is skipped with a
    /// warning; when no version is whole, the newest one's error is returned.
    pub fn current(&self) -> Result<Manifest> {
        let mut newest_err = None;
        for v in self.versions()?.into_iter().rev() {
            match self.whole_version(v) {
                Ok(m) => {
                    if newest_err.is_some() {
                        tracing::warn!(version = v, "opened an older warehouse version");
                    }
                    return Ok(m);
                }
                Err(e) => {
                    tracing::warn!(version = v, error = %e, "skipping a damaged warehouse version");
                    newest_err.get_or_insert(e);
                }
            }
        }
        match newest_err {
            None => Ok(Manifest::default()),
            Some(e) => Err(e),
        }
    }

    /// Version `v` if it reads and every file it names exists.
    fn whole_version(&self, v: u64) -> Result<Manifest> {
        let m = self.read_version(v)?;
        for t in m.tables.values() {
            for f in t.files() {
                let p = self.root.join(&f.path);
                if !p.is_file() {
                    return Err(WhError::Manifest {
                        path: manifest_dir(&self.root)
                            .join(format!("{v:08}.json"))
                            .display()
                            .to_string(),
                        reason: format!("names {}, which is missing", f.path),
                    });
                }
            }
        }
        Ok(m)
    }

    fn read_version(&self, v: u64) -> Result<Manifest> {
        let p = manifest_dir(&self.root).join(format!("{v:08}.json"));
        let bytes = fs::read(&p).map_err(io(&p))?;
        serde_json::from_slice(&bytes).map_err(|e| WhError::Manifest {
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Takes the writer lock, or answers [`WhError::Locked`] when another writer holds it.
    pub fn lock(&self) -> Result<WriterLock> {
        let lock_path = self.root.join("_lock");
        let file = File::create(&lock_path).map_err(io(&lock_path))?;
        file.try_lock()
            .map_err(|_| WhError::Locked(lock_path.display().to_string()))?;
        Ok(WriterLock {
            _file: Arc::new(file),
            root: self.root.clone(),
        })
    }

    /// Starts a write transaction on top of the current snapshot, taking the writer lock for
    /// as long as the transaction lives.
    pub fn begin(&self, run_id: i64) -> Result<Txn> {
        let lock = self.lock()?;
        self.begin_locked(&lock, run_id)
    }

    /// Starts a write transaction under a lock the caller already holds (and keeps holding
    /// after the commit, so no other writer comes between two transactions of one run).
    pub fn begin_locked(&self, lock: &WriterLock, run_id: i64) -> Result<Txn> {
        assert_eq!(lock.root, self.root, "the lock is this warehouse's");
        let base = self.set_aside_damaged()?;
        // Past every version on disk, set-aside ones included: a number a reader may have
        // seen is never reused for other contents.
        let version = self.highest_version_ever()?.max(base.version) + 1;
        let txn = Txn {
            wh: self.clone(),
            next: Manifest {
                version,
                run_id,
                ..base.clone()
            },
            base,
            _lock: lock.clone(),
            written: Vec::new(),
            seq: 0,
            abort_before_publish: false,
        };
        txn.collect_garbage()?;
        Ok(txn)
    }

    /// Renames versions newer than the current one that cannot be opened to
    /// `NNNNNNNN.json.broken` (the writer holds the lock): readers stop warning about them, and
    /// they stay for whoever investigates. Returns the current version.
    fn set_aside_damaged(&self) -> Result<Manifest> {
        // When no version is whole, every version is set aside and the base is empty.
        let base = self.current().ok();
        let current = base.as_ref().map_or(0, |m| m.version);
        for v in self.versions()?.into_iter().filter(|v| *v > current) {
            let p = manifest_dir(&self.root).join(format!("{v:08}.json"));
            let to = p.with_extension("json.broken");
            tracing::warn!(version = v, to = %to.display(), "setting aside a damaged warehouse version");
            fs::rename(&p, &to).map_err(io(&p))?;
        }
        Ok(base.unwrap_or_default())
    }

    /// Every batch of `table` in version `m`, one file at a time (memory holds one batch).
    pub fn each_batch_of(
        &self,
        m: &Manifest,
        table: &str,
        mut f: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        if let Some(t) = m.tables.get(table) {
            for e in t.files() {
                each_batch(&self.root.join(&e.path), &mut f)?;
            }
        }
        Ok(())
    }

    /// Drops every version but the current one at once, with its Parquet files and serving
    /// indexes, whatever their age: after an erasure no older snapshot may still hold the
    /// erased rows. A reader still on an older version loses it (it reopens the current one).
    pub fn purge_superseded(&self, _lock: &WriterLock) -> Result<u64> {
        let cur = self.current()?;
        let mdir = manifest_dir(&self.root);
        let mut dropped = 0;
        for v in self.versions()? {
            if v < cur.version {
                let p = mdir.join(format!("{v:08}.json"));
                fs::remove_file(&p).map_err(io(&p))?;
                dropped += 1;
            }
        }
        let live: HashSet<String> = cur
            .tables
            .values()
            .flat_map(|t| t.files().map(|f| f.path.clone()))
            .collect();
        sweep(&self.root, &live, &[], &HashSet::from([cur.version]))?;
        Ok(dropped)
    }

    pub fn read_table(&self, m: &Manifest, table: &str) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        if let Some(t) = m.tables.get(table) {
            for f in t.files() {
                out.extend(read_parquet(&self.root.join(&f.path))?);
            }
        }
        Ok(out)
    }
}

pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    each_batch(path, |b| {
        out.push(b);
        Ok(())
    })?;
    Ok(out)
}

/// Every batch of a Parquet file, one at a time.
pub(crate) fn each_batch(path: &Path, mut f: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(65_536)
        .build()?;
    for b in reader {
        f(b?)?;
    }
    Ok(())
}

/// One load: stage table changes, then `commit` publishes them all at once.
pub struct Txn {
    wh: Warehouse,
    base: Manifest,
    next: Manifest,
    _lock: WriterLock,
    written: Vec<PathBuf>,
    seq: u64,
    /// Test hook: abort the process in [`Txn::commit`] after the data files, before the
    /// manifest (what a kill at the worst moment leaves behind).
    pub abort_before_publish: bool,
}

/// A whole table being written a batch at a time ([`Txn::replace_start`]).
pub struct TableFile {
    table: String,
    w: ArrowWriter<File>,
    path: PathBuf,
    rows: u64,
}

impl TableFile {
    pub fn write(&mut self, b: &RecordBatch) -> Result<()> {
        self.rows += b.num_rows() as u64;
        self.w.write(b)?;
        Ok(())
    }
}

impl Txn {
    pub fn base(&self) -> &Manifest {
        &self.base
    }
    pub fn staged(&self) -> &Manifest {
        &self.next
    }
    /// A path for a scratch file of this writer's, under the warehouse root (on the data's
    /// disk, not a small `/tmp`). Whoever creates it removes it; scratch directories a killed
    /// writer left are removed by the next one.
    pub fn scratch_path(&mut self, name: &str) -> PathBuf {
        self.seq += 1;
        self.wh.root.join(format!(
            "{}{name}-{}-{}",
            crate::upsert::SCRATCH_PREFIX,
            std::process::id(),
            self.seq
        ))
    }
    pub fn set_watermark(&mut self, key: &str, value: String) {
        self.next.watermarks.insert(key.to_string(), value);
    }
    pub fn note(&mut self, key: &str, value: serde_json::Value) {
        self.next.notes.insert(key.to_string(), value);
    }

    fn create_file(
        &mut self,
        table: &str,
        partition: &str,
        schema: &SchemaRef,
    ) -> Result<TableFile> {
        let dir = if partition.is_empty() {
            self.wh.root.join(table)
        } else {
            self.wh.root.join(table).join(format!("month={partition}"))
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        self.seq += 1;
        let name = format!("v{}-{}.parquet", self.next.version, self.seq);
        let path = dir.join(&name);
        let file = File::create(&path).map_err(io(&path))?;
        // Listed at once, so an abandoned file is cleaned up like any other a run left.
        self.written.push(path.clone());
        let key = tables::def(table).map(|d| d.key);
        let w = ArrowWriter::try_new(file, schema.clone(), Some(writer_props(key)?))?;
        Ok(TableFile {
            table: table.to_string(),
            w,
            path,
            rows: 0,
        })
    }

    fn close_file(&mut self, f: TableFile) -> Result<FileEntry> {
        let TableFile { w, path, rows, .. } = f;
        let file = w.into_inner()?;
        file.sync_all().map_err(io(&path))?;
        let rel = path
            .strip_prefix(&self.wh.root)
            .expect("data files are written under the warehouse root")
            .to_string_lossy()
            .replace('\\', "/");
        Ok(FileEntry { path: rel, rows })
    }

    /// Rewrites the files of `table` (as staged) whose rows `edit` changes: `edit` sees each
    /// batch and returns None to leave it, or the batch to hold instead (rows removed or
    /// changed). A file with a changed batch is written anew in its partition under this version;
    /// the others stay as they are. Memory holds one batch (each file is read twice: once to
    /// find whether it changes, once to write it). Returns (files rewritten, rows removed).
    pub fn rewrite(
        &mut self,
        table: &str,
        mut edit: impl FnMut(&RecordBatch) -> Result<Option<RecordBatch>>,
    ) -> Result<(u64, u64)> {
        let def = tables::def(table).ok_or_else(|| WhError::UnknownTable(table.into()))?;
        let schema = (def.schema)();
        let Some(st) = self.next.tables.get(table).cloned() else {
            return Ok((0, 0));
        };
        let (mut files, mut removed) = (0u64, 0u64);
        let mut partitions = BTreeMap::new();
        for (part, entries) in st.partitions {
            let mut kept = Vec::with_capacity(entries.len());
            for e in entries {
                let path = self.wh.root.join(&e.path);
                let mut changes = false;
                each_batch(&path, |b| {
                    changes |= edit(&b)?.is_some();
                    Ok(())
                })?;
                if !changes {
                    kept.push(e);
                    continue;
                }
                let mut f = self.create_file(table, &part, &schema)?;
                each_batch(&path, |b| {
                    let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
                    match edit(&b)? {
                        Some(nb) => {
                            removed += (b.num_rows() - nb.num_rows()) as u64;
                            if nb.num_rows() > 0 {
                                f.write(&RecordBatch::try_new(
                                    schema.clone(),
                                    nb.columns().to_vec(),
                                )?)?;
                            }
                        }
                        None => f.write(&b)?,
                    }
                    Ok(())
                })?;
                kept.push(self.close_file(f)?);
                files += 1;
            }
            partitions.insert(part, kept);
        }
        self.next
            .tables
            .insert(table.to_string(), TableState { partitions });
        Ok((files, removed))
    }

    /// Replaces a whole table.
    pub fn replace(&mut self, table: &str, batches: Vec<RecordBatch>) -> Result<()> {
        let mut f = self.replace_start(table)?;
        for b in &batches {
            f.write(b)?;
        }
        self.replace_finish(f)
    }

    /// Starts replacing a whole table a batch at a time ([`TableFile::write`], then
    /// [`Txn::replace_finish`]): for a table too large to hold whole.
    pub fn replace_start(&mut self, table: &str) -> Result<TableFile> {
        let def = tables::def(table).ok_or_else(|| WhError::UnknownTable(table.into()))?;
        let schema = (def.schema)();
        self.create_file(table, "", &schema)
    }

    /// Stages the table `f` wrote in place of the table's rows before.
    pub fn replace_finish(&mut self, f: TableFile) -> Result<()> {
        let table = f.table.clone();
        let entry = self.close_file(f)?;
        let mut st = TableState::default();
        st.partitions.insert(String::new(), vec![entry]);
        self.next.tables.insert(table, st);
        Ok(())
    }

    /// Merges rows into a keyed, month-partitioned table: a new row replaces any row with the
    /// same key, in whatever partition; within `batches` the last occurrence of a key wins.
    pub fn upsert(&mut self, table: &str, batches: Vec<RecordBatch>) -> Result<u64> {
        let mut up = self.upsert_stream(table)?;
        for b in batches {
            up.push(b)?;
        }
        self.finish_upsert(up)
    }

    /// Starts a streaming upsert into `table` (see [`crate::upsert`]): push any number of
    /// batches, then [`Txn::finish_upsert`]. Memory stays bounded whatever the rows.
    pub fn upsert_stream(&mut self, table: &str) -> Result<Upsert> {
        let def = tables::def(table).ok_or_else(|| WhError::UnknownTable(table.into()))?;
        assert_eq!(def.mode, Mode::Upsert, "{table} is not an upsert table");
        self.seq += 1;
        Upsert::new(def, &self.wh.root, self.next.version, self.seq)
    }

    /// Merges a streaming upsert into the staged version: how many new rows it holds.
    pub fn finish_upsert(&mut self, up: Upsert) -> Result<u64> {
        let table = up.def.name;
        let st = self.next.tables.get(table).cloned().unwrap_or_default();
        let (partitions, rows, written) = up.merge(st.partitions)?;
        self.written.extend(written);
        self.next
            .tables
            .insert(table.to_string(), TableState { partitions });
        Ok(rows)
    }

    /// Publishes the staged version atomically. Before this returns, nothing is visible.
    pub fn commit(mut self) -> Result<Manifest> {
        if self.abort_before_publish {
            // Test hook: die like a killed process, after the data files, before the manifest.
            std::process::abort();
        }
        // The new files' directory entries: every directory from each file up to the root.
        let mut dirs = BTreeSet::new();
        for f in &self.written {
            let mut d = f.parent();
            while let Some(x) = d {
                dirs.insert(x.to_path_buf());
                if x == self.wh.root {
                    break;
                }
                d = x.parent();
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        self.next.committed_at = chrono::Utc::now().to_rfc3339();
        let dir = manifest_dir(&self.wh.root);
        let fin = dir.join(format!("{:08}.json", self.next.version));
        let tmp = dir.join(format!(".{:08}.json.tmp", self.next.version));
        write_durably(
            &tmp,
            &fin,
            &serde_json::to_vec_pretty(&self.next).expect("manifest serialises"),
        )?;
        self.written.clear();
        let m = self.next.clone();
        self.collect_garbage()?;
        Ok(m)
    }

    /// Removes the manifests no reader needs (older than the newest [`KEEP_VERSIONS`] and
    /// superseded longer than `retain_superseded` ago), every Parquet file no kept manifest
    /// names, and stray temporary manifests of crashed commits.
    fn collect_garbage(&self) -> Result<()> {
        let wh = &self.wh;
        let mdir = manifest_dir(&wh.root);
        for e in fs::read_dir(&mdir).map_err(io(&mdir))? {
            let p = e.map_err(io(&mdir))?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        let versions: Vec<(u64, Option<Manifest>)> = wh
            .versions()?
            .into_iter()
            .map(|v| (v, wh.read_version(v).ok()))
            .collect();
        let now = chrono::Utc::now();
        let mut live: HashSet<String> = HashSet::new();
        let mut kept: HashSet<u64> = HashSet::new();
        for (i, (v, m)) in versions.iter().enumerate() {
            let newest = i + KEEP_VERSIONS >= versions.len();
            let superseded_at = versions
                .get(i + 1)
                .and_then(|(_, m)| m.as_ref())
                .and_then(|m| chrono::DateTime::parse_from_rfc3339(&m.committed_at).ok());
            // A successor stamped in the future (clock skew) counts as recent.
            let recent = superseded_at.is_some_and(|t| {
                (now - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .map_or(true, |age| age < wh.retain_superseded)
            });
            if newest || recent {
                kept.insert(*v);
                if let Some(m) = m {
                    for t in m.tables.values() {
                        live.extend(t.files().map(|f| f.path.clone()));
                    }
                }
            } else {
                let p = mdir.join(format!("{v:08}.json"));
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        sweep(&self.wh.root, &live, &self.written, &kept)?;
        // Scratch of streaming upserts a killed writer left (the lock is held: none is running).
        for e in fs::read_dir(&self.wh.root).map_err(io(&self.wh.root))? {
            let p = e.map_err(io(&self.wh.root))?.path();
            let scratch = p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with(crate::upsert::SCRATCH_PREFIX)
            });
            if scratch && p.is_dir() {
                fs::remove_dir_all(&p).map_err(io(&p))?;
            }
        }
        Ok(())
    }
}

/// Removes every Parquet file no kept version lists (`live`) and this writer did not just write,
/// and the serving indexes of the versions not `kept`.
fn sweep(
    root: &Path,
    live: &HashSet<String>,
    written: &[PathBuf],
    kept: &HashSet<u64>,
) -> Result<()> {
    for t in tables::TABLES {
        let dir = root.join(t.name);
        if dir.exists() {
            remove_unlisted(root, &dir, live, written)?;
        }
    }
    remove_unkept_indexes(&root.join(SERVING_DIR), kept)
}

/// Removes the serving indexes (and unfinished builds) of versions no longer kept. A build of a
/// kept version, finished or under way, stays.
fn remove_unkept_indexes(dir: &Path, kept: &HashSet<u64>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let p = e.map_err(io(dir))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        // `v00000012` or `.v00000012.<pid>.<nonce>.tmp`
        let version = name
            .trim_start_matches('.')
            .strip_prefix('v')
            .and_then(|r| r.split('.').next())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(v) = version {
            if !kept.contains(&v) {
                fs::remove_dir_all(&p).map_err(io(&p))?;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `tmp`, fsyncs it, renames it to `fin` and fsyncs the directory: a reader
/// sees the old file or the whole new one, and the new one survives power loss.
fn write_durably(tmp: &Path, fin: &Path, bytes: &[u8]) -> Result<()> {
    {
        let mut f = File::create(tmp).map_err(io(tmp))?;
        f.write_all(bytes).map_err(io(tmp))?;
        f.sync_all().map_err(io(tmp))?;
    }
    fs::rename(tmp, fin).map_err(io(fin))?;
    sync_dir(fin.parent().unwrap_or(Path::new(".")))
}

/// Makes a directory's entries durable (a new file or rename in it survives power loss).
fn sync_dir(d: &Path) -> Result<()> {
    File::open(d).and_then(|f| f.sync_all()).map_err(io(d))
}

fn remove_unlisted(
    root: &Path,
    dir: &Path,
    live: &HashSet<String>,
    written: &[PathBuf],
) -> Result<()> {
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let p = e.path();
        if p.is_dir() {
            remove_unlisted(root, &p, live, written)?;
            let _ = fs::remove_dir(&p); // only succeeds when empty
        } else if p.extension().is_some_and(|x| x == "parquet") {
            let rel = p
                .strip_prefix(root)
                .expect("the walk starts at the warehouse root")
                .to_string_lossy()
                .replace('\\', "/");
            if !live.contains(&rel) && !written.contains(&p) {
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
    }
    Ok(())
}

pub fn str_col<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing"))
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("column {name} is not Utf8"))
}

/// How every warehouse Parquet file is written.
/// How table files are written. `key`: the table's unique key column, written without a
/// dictionary (every value differs, so the writer would hash each one into a dictionary only to
/// give it up past the dictionary page limit).
pub(crate) fn writer_props(key: Option<&str>) -> Result<WriterProperties> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(256 * 1024));
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        b = b.set_column_dictionary_enabled(
            datafusion::parquet::schema::types::ColumnPath::from(k),
            false,
        );
    }
    Ok(b.build())
}

/// Builds a batch from columns in schema order.
pub fn batch(schema: SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn quarantine_batch(keys: &[(&str, &str)], run: i64) -> RecordBatch {
        let n = keys.len();
        let s = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
        let def = tables::def("quarantine").unwrap();
        RecordBatch::try_new(
            (def.schema)(),
            vec![
                s(keys.iter().map(|k| k.0.to_string()).collect()),
                s(vec!["t".into(); n]),
                s(vec!["1".into(); n]),
                s(vec!["f".into(); n]),
                s(vec![format!("run {run}"); n]),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(Int64Array::from(vec![run; n])),
                s(keys.iter().map(|k| k.1.to_string()).collect()),
            ],
        )
        .unwrap()
    }

    fn rows(wh: &Warehouse) -> Vec<(String, String, i64)> {
        let m = wh.current().unwrap();
        let mut out = Vec::new();
        for b in wh.read_table(&m, "quarantine").unwrap() {
            let k = str_col(&b, "q_key");
            let p = str_col(&b, "month");
            let r = b
                .column_by_name("run_id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("a cast to Int64 gives a Int64Array");
            for i in 0..b.num_rows() {
                out.push((k.value(i).to_string(), p.value(i).to_string(), r.value(i)));
            }
        }
        out.sort();
        out
    }

    use std::sync::Arc;

    #[test]
    fn upsert_replaces_by_key_across_partitions_and_commit_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let mut t = wh.begin(1).unwrap();
        t.upsert(
            "quarantine",
            vec![quarantine_batch(
                &[("a", "2025-01"), ("b", "2025-01"), ("c", "2025-02")],
                1,
            )],
        )
        .unwrap();
        t.set_watermark("x", "1".into());
        t.commit().unwrap();
        // Key b moves to another month, c is replaced in place, d is new; duplicates in one batch: last wins.
        let mut t = wh.begin(2).unwrap();
        t.upsert(
            "quarantine",
            vec![quarantine_batch(
                &[
                    ("b", "2025-03"),
                    ("c", "2025-02"),
                    ("d", "2025-03"),
                    ("d", "2025-03"),
                ],
                2,
            )],
        )
        .unwrap();
        // Not committed yet: readers still see version 1.
        assert_eq!(wh.current().unwrap().version, 1);
        assert_eq!(rows(&wh).len(), 3);
        t.commit().unwrap();
        assert_eq!(
            rows(&wh),
            vec![
                ("a".into(), "2025-01".into(), 1),
                ("b".into(), "2025-03".into(), 2),
                ("c".into(), "2025-02".into(), 2),
                ("d".into(), "2025-03".into(), 2),
            ]
        );
        assert_eq!(wh.current().unwrap().watermarks["x"], "1");
    }

    /// Streaming upserts against a model (last pushed wins, across partitions and runs), with
    /// buffers and ledger runs small enough that every path runs: files flushed per push,
    /// the ledger merged from many runs on disk or probed in memory, partitions kept, appended
    /// to, rewritten and compacted.
    #[test]
    fn streaming_upserts_match_a_model_whatever_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let mut model: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut stamp = 0i64;
        for run in 1..=12i64 {
            let mut t = wh.begin(run).unwrap();
            // Odd runs spill the ledger to many runs on disk, even ones keep it in memory.
            let (buffer, entries) = if run % 2 == 1 {
                (1, 7)
            } else {
                (4096, 1 << 20)
            };
            let mut up = t
                .upsert_stream("quarantine")
                .unwrap()
                .with_limits(buffer, entries);
            let before = model.clone();
            let mut fresh: HashSet<String> = HashSet::new();
            for _ in 0..(1 + next(6)) {
                let n = 1 + next(40) as usize;
                let mut keys = Vec::new();
                let mut stamps = Vec::new();
                for _ in 0..n {
                    // A small key space: repeats within a batch, across batches and runs.
                    let k = format!("k{}", next(150));
                    let m = format!("2025-{:02}", 1 + next(4));
                    stamp += 1;
                    model.insert(k.clone(), (m.clone(), stamp));
                    fresh.insert(k.clone());
                    keys.push((k, m));
                    stamps.push(stamp);
                }
                let refs: Vec<(&str, &str)> =
                    keys.iter().map(|(k, m)| (k.as_str(), m.as_str())).collect();
                let b = quarantine_batch(&refs, 0);
                let mut cols = b.columns().to_vec();
                cols[6] = Arc::new(Int64Array::from(stamps));
                up.push(RecordBatch::try_new(b.schema(), cols).unwrap())
                    .unwrap();
            }
            // Withdrawn keys keep what they held before the run.
            for _ in 0..next(3) {
                let k = format!("k{}", next(150));
                up.retract(&k);
                fresh.remove(&k);
                match before.get(&k) {
                    Some(v) => model.insert(k, v.clone()),
                    None => model.remove(&k),
                };
            }
            assert_eq!(t.finish_upsert(up).unwrap(), fresh.len() as u64);
            t.commit().unwrap();
            let want: Vec<(String, String, i64)> = model
                .iter()
                .map(|(k, (m, s))| (k.clone(), m.clone(), *s))
                .collect();
            assert_eq!(rows(&wh), want, "after run {run}");
            let m = wh.current().unwrap();
            for files in m.tables["quarantine"].partitions.values() {
                assert!(files.len() <= crate::upsert::MAX_FILES);
            }
            let scratch = fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(crate::upsert::SCRATCH_PREFIX)
                })
                .count();
            assert_eq!(scratch, 0, "no scratch left after run {run}");
        }
    }

    #[test]
    fn abandoned_files_are_collected_and_old_versions_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut wh = Warehouse::open(dir.path()).unwrap();
        wh.retain_superseded = Duration::ZERO;
        for run in 1..=7 {
            let mut t = wh.begin(run).unwrap();
            t.upsert(
                "quarantine",
                vec![quarantine_batch(&[("k", "2025-01")], run)],
            )
            .unwrap();
            t.commit().unwrap();
        }
        // A writer that died after writing data: its file is never visible and is removed later.
        let mut t = wh.begin(8).unwrap();
        t.upsert("quarantine", vec![quarantine_batch(&[("k", "2025-01")], 8)])
            .unwrap();
        drop(t);
        assert_eq!(rows(&wh), vec![("k".into(), "2025-01".into(), 7)]);
        let count = |d: &Path| walk(d).len();
        let before = count(dir.path());
        drop(wh.begin(9).unwrap());
        assert_eq!(
            count(dir.path()),
            before - 1,
            "the abandoned file is collected"
        );
        let manifests = fs::read_dir(dir.path().join("_manifests")).unwrap().count();
        assert_eq!(manifests, KEEP_VERSIONS);
    }

    #[test]
    fn serving_indexes_are_collected_with_their_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut wh = Warehouse::open(dir.path()).unwrap();
        wh.retain_superseded = Duration::ZERO;
        let serving = dir.path().join(SERVING_DIR);
        let idx = |v: u64| serving.join(format!("v{v:08}"));
        let tmp = |v: u64| serving.join(format!(".v{v:08}.41.7.tmp"));
        let mut versions = Vec::new();
        for run in 1..=8 {
            let mut t = wh.begin(run).unwrap();
            t.upsert(
                "quarantine",
                vec![quarantine_batch(&[("k", "2025-01")], run)],
            )
            .unwrap();
            let v = t.commit().unwrap().version;
            if run < 8 {
                // A finished index and an unfinished build of this version.
                fs::create_dir_all(idx(v)).unwrap();
                fs::write(idx(v).join("v_customer_360.pix"), b"x").unwrap();
                fs::create_dir_all(tmp(v)).unwrap();
                versions.push(v);
            }
        }
        fs::write(serving.join("notes.txt"), b"not an index").unwrap();
        drop(wh.begin(9).unwrap().commit().unwrap());
        let kept: Vec<u64> = wh.versions().unwrap();
        assert_eq!(kept.len(), KEEP_VERSIONS);
        let mut removed = 0;
        for v in versions {
            assert_eq!(idx(v).exists(), kept.contains(&v), "index of version {v}");
            assert_eq!(tmp(v).exists(), kept.contains(&v), "build of version {v}");
            removed += usize::from(!kept.contains(&v));
        }
        assert!(removed >= 2, "old versions' indexes were removed");
        assert!(serving.join("notes.txt").exists(), "other files stay");
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let t = wh.begin(1).unwrap();
        assert!(matches!(wh.begin(2), Err(WhError::Locked(_))));
        assert!(matches!(wh.lock(), Err(WhError::Locked(_))));
        drop(t);
        // A run holds the lock across its transactions: nobody comes in between.
        let lock = wh.lock().unwrap();
        wh.begin_locked(&lock, 3).unwrap().commit().unwrap();
        assert!(matches!(wh.begin(4), Err(WhError::Locked(_))));
        wh.begin_locked(&lock, 3).unwrap().commit().unwrap();
        drop(lock);
        wh.begin(5).unwrap().commit().unwrap();
    }

    fn commit_run(wh: &Warehouse, run: i64) -> Manifest {
        let mut t = wh.begin(run).unwrap();
        t.upsert(
            "quarantine",
            vec![quarantine_batch(&[(&format!("k{run}"), "2025-01")], run)],
        )
        .unwrap();
        t.commit().unwrap()
    }

    #[test]
    fn superseded_versions_stay_while_recent() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let first = commit_run(&wh, 1);
        for run in 2..=8 {
            commit_run(&wh, run);
        }
        // Every version was superseded moments ago: all are kept, and a reader that opened
        // the first one still finds its files.
        assert_eq!(wh.versions().unwrap().len(), 8);
        for f in first.tables["quarantine"].files() {
            assert!(dir.path().join(&f.path).is_file(), "{} removed", f.path);
        }
    }

    #[test]
    fn a_damaged_newest_version_falls_back_and_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        commit_run(&wh, 1);
        let second = commit_run(&wh, 2);
        // The newest version names a file that is gone (a disk that lost it): its own file (a
        // partition that only gained rows keeps the older version's files and adds its own).
        let f = second.tables["quarantine"]
            .files()
            .last()
            .unwrap()
            .path
            .clone();
        fs::remove_file(dir.path().join(&f)).unwrap();
        let m = wh.current().unwrap();
        assert_eq!(m.version, 1, "the newest whole version is opened");
        assert_eq!(rows(&wh), vec![("k1".into(), "2025-01".into(), 1)]);
        // A manifest that does not parse is skipped the same way.
        let mdir = dir.path().join("_manifests");
        fs::write(mdir.join("00000003.json"), b"{ torn").unwrap();
        assert_eq!(wh.current().unwrap().version, 1);
        // A crashed commit's temporary manifest.
        fs::write(mdir.join(".00000004.json.tmp"), b"{").unwrap();
        // The next writer sets both damaged versions aside, removes the stray temp file and
        // commits past every version number on disk.
        let next = commit_run(&wh, 4);
        assert_eq!(next.version, 4);
        assert_eq!(wh.current().unwrap().version, 4);
        let mut names: Vec<String> = fs::read_dir(&mdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "00000001.json",
                "00000002.json.broken",
                "00000003.json.broken",
                "00000004.json"
            ]
        );
        // Nothing is whole: the newest error names the missing file.
        let empty = tempfile::tempdir().unwrap();
        let w2 = Warehouse::open(empty.path()).unwrap();
        let m = commit_run(&w2, 1);
        let f = m.tables["quarantine"].files().next().unwrap().path.clone();
        fs::remove_file(empty.path().join(&f)).unwrap();
        let err = w2.current().unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains(&f), "{err}");
    }
}
