//! Streaming upserts into keyed, month-partitioned tables, in memory bounded by the buffer and
//! one partition's deletions, not by the input (issue 15: the ETL at any size).
//!
//! Rows are pushed in batches of any size. Each partition's rows are buffered and written as a
//! Parquet file of the staged version whenever the buffers pass [`BUFFER_BYTES`], or once the
//! partition has had no rows for two pushes and holds [`IDLE_FLUSH_BYTES`] (sources read in key
//! order fill months one after another). Files are encoded and compressed on a writer thread of
//! the upsert's own, one file at a time in order, while the caller reads on; every row's key
//! goes into a ledger as a 128-bit fingerprint with the row's push order. At the end the ledger
//! finds the keys that occur more than once: among the new rows (the last one pushed wins) and
//! between new and existing rows (the new one wins, in whatever partition: an order whose time
//! was corrected moves month). Partitions where nothing is superseded keep their files and gain
//! the new ones; a partition with superseded rows, or with more than [`MAX_FILES`] files, is
//! rewritten into one file, streaming, a batch at a time.
//!
//! The ledger sorts its entries in memory up to [`RUN_ENTRIES`], and beyond that in sorted runs
//! on disk merged at the end. When the new rows fit in one run the existing keys are probed
//! against a hash set of the new fingerprints instead (an incremental load on a large history).
//! What a run supersedes is written per partition to scratch files and read back one partition
//! at a time. The scratch directory (`.upsert-*` under the warehouse root) is removed at the end,
//! and by the next writer if the process dies.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::{ArrowWriter, ProjectionMask};

use crate::error::{io, Result, WhError};
use crate::manifest::{each_batch, writer_props, FileEntry};
use crate::tables::TableDef;

/// Buffered new rows (Arrow memory, all partitions) before the largest buffer is written out.
pub const BUFFER_BYTES: usize = 256 << 20;
/// A partition that got no rows in the last two pushes is written out once it holds this much.
pub const IDLE_FLUSH_BYTES: usize = 4 << 20;
/// A partition with more files than this after an upsert is rewritten into one.
pub const MAX_FILES: usize = 24;
/// Ledger entries sorted in memory before a run goes to disk (32 bytes each: 128 MiB).
pub const RUN_ENTRIES: usize = 4 << 20;

/// Scratch directories of streaming upserts start with this (see `collect_garbage`).
pub const SCRATCH_PREFIX: &str = ".upsert-";

/// A key's fingerprint: SipHash-1-3 with 128-bit output under a fixed key. Fingerprints live
/// only for one upsert; two keys colliding has a probability near n²/2¹²⁹.
pub(crate) fn fingerprint(key: &str) -> u128 {
    fingerprint_bytes(key.as_bytes())
}

fn fingerprint_bytes(key: &[u8]) -> u128 {
    let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x6333_3630, 0x7570_7365_7274);
    h.write(key);
    siphasher::sip128::Hasher128::finish128(&h).as_u128()
}

/// One key occurrence. In an upsert's ledger existing rows have `seq` 0 and new rows their push
/// order from 1, and `part` is the row's partition; [`KeyGroups`] carries any value there.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Entry {
    fp: u128,
    seq: u64,
    part: u64,
}

const ENTRY_BYTES: usize = 32;

impl Entry {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.fp.to_le_bytes())?;
        w.write_all(&self.seq.to_le_bytes())?;
        w.write_all(&self.part.to_le_bytes())
    }
    fn read(r: &mut impl Read) -> std::io::Result<Option<Entry>> {
        let mut b = [0u8; ENTRY_BYTES];
        match r.read_exact(&mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let fp = u128::from_le_bytes(b[..16].try_into().expect("16 bytes"));
        let seq = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        let part = u64::from_le_bytes(b[24..].try_into().expect("8 bytes"));
        Ok(Some(Entry { fp, seq, part }))
    }
}

/// Key occurrences, sorted in memory and, past [`RUN_ENTRIES`], in runs on disk.
struct Ledger {
    dir: PathBuf,
    mem: Vec<Entry>,
    runs: Vec<PathBuf>,
    cap: usize,
}

impl Ledger {
    fn add(&mut self, e: Entry) -> Result<()> {
        if self.mem.capacity() == 0 {
            // A run's room at once (address space; pages are touched as entries arrive), so
            // the run is not built by doubling and copying.
            self.mem.reserve_exact(self.cap.min(RUN_ENTRIES));
        }
        self.mem.push(e);
        if self.mem.len() >= self.cap {
            self.spill()?;
        }
        Ok(())
    }
    fn spill(&mut self) -> Result<()> {
        if self.mem.is_empty() {
            return Ok(());
        }
        self.mem.sort_unstable();
        let p = self.dir.join(format!("run-{}.bin", self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&p).map_err(io(&p))?);
        for e in &self.mem {
            e.write(&mut w).map_err(io(&p))?;
        }
        w.flush().map_err(io(&p))?;
        self.runs.push(p);
        self.mem.clear();
        self.mem.shrink_to_fit();
        Ok(())
    }
    /// Whether every entry so far is still in memory.
    fn in_memory(&self) -> bool {
        self.runs.is_empty()
    }
    /// Every entry in (fp, seq) order, to `each`.
    fn merge(mut self, mut each: impl FnMut(Entry) -> Result<()>) -> Result<()> {
        if self.runs.is_empty() {
            self.mem.sort_unstable();
            for e in self.mem {
                each(e)?;
            }
            return Ok(());
        }
        self.spill()?;
        let mut readers = Vec::new();
        let mut heap = BinaryHeap::new();
        for (i, p) in self.runs.iter().enumerate() {
            let mut r = BufReader::with_capacity(256 << 10, File::open(p).map_err(io(p))?);
            if let Some(e) = Entry::read(&mut r).map_err(io(p))? {
                heap.push(Reverse((e, i)));
            }
            readers.push(r);
        }
        while let Some(Reverse((e, i))) = heap.pop() {
            each(e)?;
            let p = &self.runs[i];
            if let Some(n) = Entry::read(&mut readers[i]).map_err(io(p))? {
                heap.push(Reverse((n, i)));
            }
        }
        Ok(())
    }
}

/// What an upsert supersedes, written per partition and read back one partition at a time:
/// "old", existing rows whose key a new row carries (fingerprints); "new", new rows a later new
/// row of the same key supersedes (fingerprint, and which occurrence of that key within the
/// partition, counted in push order).
struct Dead {
    dir: PathBuf,
    files: HashMap<(&'static str, u32), BufWriter<File>>,
}

impl Dead {
    fn file(&self, kind: &str, part: u32) -> PathBuf {
        self.dir.join(format!("dead-{kind}-{part}.bin"))
    }
    fn add(&mut self, kind: &'static str, part: u32, fp: u128, occ: u32) -> Result<()> {
        let p = self.file(kind, part);
        if let std::collections::hash_map::Entry::Vacant(v) = self.files.entry((kind, part)) {
            v.insert(BufWriter::new(File::create(&p).map_err(io(&p))?));
        }
        let w = self.files.get_mut(&(kind, part)).expect("just inserted");
        w.write_all(&fp.to_le_bytes()).map_err(io(&p))?;
        w.write_all(&occ.to_le_bytes()).map_err(io(&p))
    }
    fn flush(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        for ((kind, part), w) in self.files.iter_mut() {
            let p = dir.join(format!("dead-{kind}-{part}.bin"));
            w.flush().map_err(io(&p))?;
        }
        Ok(())
    }
    fn load(&self, kind: &'static str, part: u32) -> Result<HashSet<(u128, u32)>> {
        let mut out = HashSet::new();
        if !self.files.contains_key(&(kind, part)) {
            return Ok(out);
        }
        let p = self.file(kind, part);
        let mut r = BufReader::new(File::open(&p).map_err(io(&p))?);
        let mut b = [0u8; 20];
        loop {
            match r.read_exact(&mut b) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io(&p)(e)),
            }
            out.insert((
                u128::from_le_bytes(b[..16].try_into().expect("16 bytes")),
                u32::from_le_bytes(b[16..].try_into().expect("4 bytes")),
            ));
        }
        Ok(out)
    }
}

/// What merging an upsert gives its transaction: the table's partitions, how many new rows
/// they hold, and the files it wrote.
pub(crate) type Merged = (BTreeMap<String, Vec<FileEntry>>, u64, Vec<PathBuf>);

/// A streaming upsert into one table of a transaction: [`crate::Txn::upsert_stream`] starts it,
/// [`Upsert::push`] takes rows, [`crate::Txn::finish_upsert`] merges them into the staged
/// version.
pub struct Upsert {
    pub(crate) def: &'static TableDef,
    schema: SchemaRef,
    root: PathBuf,
    /// `v<version>-u<stream>`: the stem of every file this upsert writes.
    stem: String,
    scratch: PathBuf,
    part_col: usize,
    key_col: usize,
    parts: BTreeMap<String, u32>,
    buf: BTreeMap<u32, (Vec<RecordBatch>, usize)>,
    buffered: usize,
    /// New files per partition, in the order written.
    pub(crate) files: BTreeMap<u32, Vec<FileEntry>>,
    pub(crate) written: Vec<PathBuf>,
    ledger: Ledger,
    /// Keys whose pushed rows are withdrawn ([`Upsert::retract`]).
    retracted: HashSet<u128>,
    /// Of those, the keys withdrawn before any file was written: none of their rows reaches a
    /// file (a flush leaves out every withdrawn key's rows), so the merge has nothing to remove.
    clean: HashSet<u128>,
    seq: u64,
    nfile: u64,
    buffer_bytes: usize,
    /// Pushes so far, and the push that last gave each buffered partition rows.
    pushes: u64,
    touched: HashMap<u32, u64>,
    writer: Writer,
}

/// One file for the writer thread: a partition's buffered rows, less the withdrawn keys'.
struct Job {
    part: u32,
    path: PathBuf,
    rel: String,
    batches: Vec<RecordBatch>,
    withdrawn: HashSet<u128>,
}

/// What the writer thread made of a job.
type Done = (u32, PathBuf, Result<Option<FileEntry>>);

/// The upsert's writer thread: jobs in, files out, in order. At most one job waits while one is
/// written, so a caller faster than the encoder waits rather than buffering without bound.
struct Writer {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    done: std::sync::mpsc::Receiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
    pending: usize,
}

impl Writer {
    fn start(schema: SchemaRef, def: &'static TableDef, key_col: usize) -> Result<Writer> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(1);
        let (tx, done) = std::sync::mpsc::channel::<Done>();
        let thread = std::thread::Builder::new()
            .name(format!("upsert-{}", def.name))
            .spawn(move || {
                for j in rx {
                    let r = write_file(&j.path, &j.rel, &schema, def, |w| {
                        write_batches(w, &j.batches, &j.withdrawn, key_col)
                    });
                    if tx.send((j.part, j.path, r)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| WhError::Io {
                path: "upsert writer thread".into(),
                source: e,
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            pending: 0,
        })
    }

    fn send(&mut self, j: Job) -> Result<()> {
        let jobs = self.jobs.as_ref().expect("the writer runs until the merge");
        if jobs.send(j).is_err() {
            // The thread ended: it panicked. Its files are orphans the collector removes.
            return Err(WhError::Io {
                path: "upsert writer thread".into(),
                source: std::io::Error::other("the writer thread stopped"),
            });
        }
        self.pending += 1;
        Ok(())
    }

    /// Files written so far (all of them, in order, when `wait`).
    fn collect(&mut self, wait: bool) -> Vec<Done> {
        let mut out = Vec::new();
        while self.pending > 0 {
            let d = if wait {
                match self.done.recv() {
                    Ok(d) => d,
                    Err(_) => break,
                }
            } else {
                match self.done.try_recv() {
                    Ok(d) => d,
                    Err(_) => break,
                }
            };
            self.pending -= 1;
            out.push(d);
        }
        out
    }

    /// Ends the thread once its jobs are written.
    fn stop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Upsert {
    pub(crate) fn new(
        def: &'static TableDef,
        root: &Path,
        version: u64,
        stream: u64,
    ) -> Result<Upsert> {
        let schema = (def.schema)();
        let part = def.partition.expect("upsert tables are partitioned");
        let part_col = schema.index_of(part).map_err(WhError::Arrow)?;
        let key_col = schema.index_of(def.key).map_err(WhError::Arrow)?;
        let scratch = root.join(format!(
            "{SCRATCH_PREFIX}v{version}-{stream}-{}",
            std::process::id()
        ));
        if scratch.exists() {
            fs::remove_dir_all(&scratch).map_err(io(&scratch))?;
        }
        fs::create_dir_all(&scratch).map_err(io(&scratch))?;
        Ok(Upsert {
            def,
            schema: schema.clone(),
            root: root.to_path_buf(),
            stem: format!("v{version}-u{stream}"),
            ledger: Ledger {
                dir: scratch.clone(),
                mem: Vec::new(),
                runs: Vec::new(),
                cap: RUN_ENTRIES,
            },
            scratch,
            part_col,
            key_col,
            retracted: HashSet::new(),
            clean: HashSet::new(),
            parts: BTreeMap::new(),
            buf: BTreeMap::new(),
            buffered: 0,
            files: BTreeMap::new(),
            written: Vec::new(),
            seq: 0,
            nfile: 0,
            buffer_bytes: BUFFER_BYTES,
            pushes: 0,
            touched: HashMap::new(),
            writer: Writer::start(schema, def, key_col)?,
        })
    }

    /// Test hook: smaller buffers and ledger runs, to exercise spilling on small inputs.
    #[doc(hidden)]
    pub fn with_limits(mut self, buffer_bytes: usize, run_entries: usize) -> Upsert {
        self.buffer_bytes = buffer_bytes;
        self.ledger.cap = run_entries.max(1);
        self
    }

    fn part_id(&mut self, p: &str) -> u32 {
        let n = self.parts.len() as u32;
        *self.parts.entry(p.to_string()).or_insert(n)
    }

    /// Withdraws every row pushed (or still to be pushed) with `key`: the table keeps whatever
    /// it held under that key. For rows found wrong only after they were pushed (a duplicate
    /// order number found once all orders are read).
    pub fn retract(&mut self, key: &str) {
        let fp = fingerprint(key);
        self.retracted.insert(fp);
        if self.nfile == 0 {
            self.clean.insert(fp);
        }
    }

    /// Takes new rows (in the table's schema). Within one upsert, the last row pushed with a
    /// key wins.
    pub fn push(&mut self, b: RecordBatch) -> Result<()> {
        if b.num_rows() == 0 {
            return Ok(());
        }
        let b = RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())?;
        let parts = as_str(&b, self.part_col)?;
        let keys = as_str(&b, self.key_col)?;
        // Rows by partition, as runs of consecutive rows (sources read in key order mostly
        // give each partition one run per batch: a slice, not a copy).
        let n = b.num_rows();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let p = if parts.is_null(i) { "" } else { parts.value(i) };
            ids.push(self.part_id(p));
        }
        for (i, part) in ids.iter().enumerate() {
            self.seq += 1;
            let k = if keys.is_null(i) { "" } else { keys.value(i) };
            self.ledger.add(Entry {
                fp: fingerprint(k),
                seq: self.seq,
                part: u64::from(*part),
            })?;
        }
        let mut runs: BTreeMap<u32, Vec<(usize, usize)>> = BTreeMap::new();
        let mut start = 0;
        for i in 1..=n {
            if i == n || ids[i] != ids[start] {
                runs.entry(ids[start]).or_default().push((start, i - start));
                start = i;
            }
        }
        let whole = b.get_array_memory_size();
        for (part, rs) in runs {
            let (sel, rows) = match rs.as_slice() {
                [(at, len)] => (b.slice(*at, *len), *len),
                _ => {
                    let mut mask = vec![false; n];
                    for (at, len) in &rs {
                        mask[*at..at + len].fill(true);
                    }
                    let sel = filter_record_batch(&b, &BooleanArray::from(mask))?;
                    let rows = sel.num_rows();
                    (sel, rows)
                }
            };
            // A slice shares its batch's buffers: counted by its share of the rows.
            let size = whole * rows / n;
            let e = self.buf.entry(part).or_insert((Vec::new(), 0));
            e.0.push(sel);
            e.1 += size;
            self.buffered += size;
            self.touched.insert(part, self.pushes);
        }
        self.pushes += 1;
        let idle: Vec<u32> = self
            .buf
            .iter()
            .filter(|(p, (_, size))| {
                *size >= IDLE_FLUSH_BYTES
                    && self.touched.get(p).is_some_and(|t| t + 2 < self.pushes)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in idle {
            self.flush_part(p)?;
        }
        while self.buffered > self.buffer_bytes {
            let Some((&largest, _)) = self.buf.iter().max_by_key(|(_, (_, s))| *s) else {
                break;
            };
            self.flush_part(largest)?;
        }
        Ok(())
    }

    /// Takes partition `part`'s buffered rows out as a file to write (None when none are
    /// buffered).
    fn take_job(&mut self, part: u32) -> Result<Option<Job>> {
        let Some((batches, size)) = self.buf.remove(&part) else {
            return Ok(None);
        };
        self.buffered -= size;
        let name = self.part_name(part).to_string();
        self.nfile += 1;
        let (path, rel) = self.file_path(&name, &format!("{}-{}", self.stem, self.nfile))?;
        Ok(Some(Job {
            part,
            path,
            rel,
            batches,
            withdrawn: self.retracted.clone(),
        }))
    }

    /// Writes partition `part`'s buffered rows on the writer thread.
    fn flush_part(&mut self, part: u32) -> Result<()> {
        let Some(job) = self.take_job(part)? else {
            return Ok(());
        };
        self.writer.send(job)?;
        let done = self.writer.collect(false);
        self.record(done)
    }

    /// Takes the writer thread's finished files into the upsert's lists.
    fn record(&mut self, done: Vec<Done>) -> Result<()> {
        let mut first_err = None;
        for (part, path, r) in done {
            match r {
                Ok(Some(e)) => {
                    self.files.entry(part).or_default().push(e);
                    self.written.push(path);
                }
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn part_name(&self, part: u32) -> &str {
        self.parts
            .iter()
            .find(|(_, v)| **v == part)
            .map(|(k, _)| k.as_str())
            .unwrap_or("")
    }

    /// Where a new file of partition `part` goes (its directory made): its path, and the path
    /// relative to the warehouse root the manifest records.
    fn file_path(&self, part: &str, stem: &str) -> Result<(PathBuf, String)> {
        let dir = if part.is_empty() {
            self.root.join(self.def.name)
        } else {
            self.root.join(self.def.name).join(format!("month={part}"))
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{stem}.parquet"));
        let rel = path
            .strip_prefix(&self.root)
            .expect("data files are written under the warehouse root")
            .to_string_lossy()
            .replace('\\', "/");
        Ok((path, rel))
    }

    /// Writes one Parquet file into partition `part` through `fill`, on this thread; None when
    /// it got no rows (the file is removed).
    fn write(
        &mut self,
        part: &str,
        stem: &str,
        fill: impl FnOnce(&mut ArrowWriter<File>) -> Result<u64>,
    ) -> Result<Option<FileEntry>> {
        let (path, rel) = self.file_path(part, stem)?;
        let e = write_file(&path, &rel, &self.schema, self.def, fill)?;
        if e.is_some() {
            self.written.push(path);
        }
        Ok(e)
    }

    /// Merges the pushed rows into `existing` (the staged table's partitions): the new table
    /// state's partitions, and how many new rows it holds.
    pub(crate) fn merge(mut self, existing: BTreeMap<String, Vec<FileEntry>>) -> Result<Merged> {
        // What is still buffered: every other partition to the writer thread, the rest written
        // here meanwhile (two cores, two encoders). A partition's file written here is recorded
        // after the thread's, so each partition's files stay in push order.
        let parts: Vec<u32> = self.buf.keys().copied().collect();
        let mut here = Vec::new();
        for (i, p) in parts.into_iter().enumerate() {
            if i % 2 == 0 {
                self.flush_part(p)?;
                continue;
            }
            let Some(j) = self.take_job(p)? else {
                continue;
            };
            let r = write_file(&j.path, &j.rel, &self.schema, self.def, |w| {
                write_batches(w, &j.batches, &j.withdrawn, self.key_col)
            });
            here.push((j.part, j.path, r));
        }
        let done = self.writer.collect(true);
        self.writer.stop();
        self.record(done)?;
        self.record(here)?;
        let existing_ids: Vec<(u32, Vec<FileEntry>)> = existing
            .into_iter()
            .map(|(name, files)| (self.part_id(&name), files))
            .collect();
        let mut dead = Dead {
            dir: self.scratch.clone(),
            files: HashMap::new(),
        };
        let key = self.def.key;
        let root = self.root.clone();
        let mut ledger = std::mem::replace(
            &mut self.ledger,
            Ledger {
                dir: self.scratch.clone(),
                mem: Vec::new(),
                runs: Vec::new(),
                cap: 1,
            },
        );
        let any_existing = existing_ids.iter().any(|(_, f)| !f.is_empty());
        if ledger.in_memory() && any_existing {
            // Existing keys are probed against the new ones, not sorted with them.
            let new_fps: HashSet<u128> = ledger
                .mem
                .iter()
                .map(|e| e.fp)
                .filter(|fp| !self.retracted.contains(fp))
                .collect();
            if !new_fps.is_empty() {
                for (part, files) in &existing_ids {
                    for f in files {
                        each_key(&root.join(&f.path), key, |k| {
                            let fp = fingerprint(k);
                            if new_fps.contains(&fp) {
                                dead.add("old", *part, fp, 0)?;
                            }
                            Ok(())
                        })?;
                    }
                }
            }
        } else if !ledger.in_memory() {
            for (part, files) in &existing_ids {
                for f in files {
                    each_key(&root.join(&f.path), key, |k| {
                        ledger.add(Entry {
                            fp: fingerprint(k),
                            seq: 0,
                            part: *part as u64,
                        })
                    })?;
                }
            }
        }
        // Groups of equal fingerprints, in push order: all but the last are superseded.
        let mut group: Vec<Entry> = Vec::new();
        let retracted = &self.retracted;
        let clean = &self.clean;
        let close = |group: &mut Vec<Entry>, dead: &mut Dead| -> Result<()> {
            if group.first().is_some_and(|e| clean.contains(&e.fp)) {
                // Withdrawn before any of its rows reached a file: nothing to remove.
                group.clear();
                return Ok(());
            }
            if group.first().is_some_and(|e| retracted.contains(&e.fp)) {
                // Withdrawn: every new row goes, the existing ones stay.
                let mut occ: HashMap<u32, u32> = HashMap::new();
                for e in group.iter().filter(|e| e.seq > 0) {
                    let part = e.part as u32;
                    let o = occ.entry(part).or_insert(0);
                    dead.add("new", part, e.fp, *o)?;
                    *o += 1;
                }
                group.clear();
                return Ok(());
            }
            // Superseded only by a new row: two existing rows are none of this upsert's business.
            if group.len() > 1 && group.iter().any(|e| e.seq > 0) {
                let mut occ: HashMap<u32, u32> = HashMap::new();
                let last = group.len() - 1;
                for (i, e) in group.iter().enumerate() {
                    let part = e.part as u32;
                    if e.seq == 0 {
                        if i != last {
                            dead.add("old", part, e.fp, 0)?;
                        }
                        continue;
                    }
                    let o = occ.entry(part).or_insert(0);
                    if i != last {
                        dead.add("new", part, e.fp, *o)?;
                    }
                    *o += 1;
                }
            }
            group.clear();
            Ok(())
        };
        ledger.merge(|e| {
            if group.last().is_some_and(|g| g.fp != e.fp) {
                close(&mut group, &mut dead)?;
            }
            group.push(e);
            Ok(())
        })?;
        close(&mut group, &mut dead)?;
        dead.flush()?;

        let mut out: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
        let mut existing_of: HashMap<u32, Vec<FileEntry>> = existing_ids.into_iter().collect();
        let mut obsolete: Vec<PathBuf> = Vec::new();
        let mut kept_new = 0u64;
        let names: Vec<(String, u32)> = self.parts.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (name, part) in names {
            let old = existing_of.remove(&part).unwrap_or_default();
            let new = self.files.remove(&part).unwrap_or_default();
            let dead_old = dead.load("old", part)?;
            let dead_new = dead.load("new", part)?;
            let new_rows: u64 = new.iter().map(|f| f.rows).sum();
            if dead_old.is_empty() && dead_new.is_empty() && old.len() + new.len() <= MAX_FILES {
                kept_new += new_rows;
                let mut files = old;
                files.extend(new);
                if !files.is_empty() {
                    out.insert(name, files);
                }
                continue;
            }
            kept_new += new_rows - dead_new.len() as u64;
            let old_fps: HashSet<u128> = dead_old.into_iter().map(|(f, _)| f).collect();
            self.nfile += 1;
            let stem = format!("{}-{}", self.stem, self.nfile);
            let key_col = self.key_col;
            let entry = self.write(&name, &stem, |w| {
                let mut rows = 0u64;
                for f in &old {
                    rows +=
                        copy_rows(&root.join(&f.path), key_col, w, !old_fps.is_empty(), |fp| {
                            old_fps.contains(&fp)
                        })?;
                }
                // The k-th row of a key in push order is superseded when (fp, k) is listed
                // (only keys listed are counted).
                let listed: HashSet<u128> = dead_new.iter().map(|(f, _)| *f).collect();
                let mut occ: HashMap<u128, u32> = HashMap::new();
                for f in &new {
                    rows += copy_rows(
                        &root.join(&f.path),
                        key_col,
                        w,
                        !dead_new.is_empty(),
                        |fp| {
                            if !listed.contains(&fp) {
                                return false;
                            }
                            let o = occ.entry(fp).or_insert(0);
                            let gone = dead_new.contains(&(fp, *o));
                            *o += 1;
                            gone
                        },
                    )?;
                }
                Ok(rows)
            })?;
            // This upsert's own files are now inside the rewritten one.
            for f in &new {
                obsolete.push(root.join(&f.path));
            }
            if let Some(e) = entry {
                out.insert(name, vec![e]);
            }
        }
        for p in &obsolete {
            fs::remove_file(p).map_err(io(p))?;
        }
        self.written.retain(|p| !obsolete.contains(p));
        let written = std::mem::take(&mut self.written);
        Ok((out, kept_new, written))
    }
}

impl Drop for Upsert {
    fn drop(&mut self) {
        self.writer.stop();
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

/// Writes `batches` less the rows of `withdrawn` keys (they never reach a file); the rows written.
fn write_batches(
    w: &mut ArrowWriter<File>,
    batches: &[RecordBatch],
    withdrawn: &HashSet<u128>,
    key_col: usize,
) -> Result<u64> {
    let mut rows = 0u64;
    for b in batches {
        let b = if withdrawn.is_empty() {
            b.clone()
        } else {
            let keys = as_str(b, key_col)?;
            let keep: BooleanArray = (0..b.num_rows())
                .map(|i| {
                    let k = if keys.is_null(i) { "" } else { keys.value(i) };
                    Some(!withdrawn.contains(&fingerprint(k)))
                })
                .collect();
            filter_record_batch(b, &keep)?
        };
        rows += b.num_rows() as u64;
        w.write(&b)?;
    }
    Ok(rows)
}

/// Writes one Parquet file at `path` (`rel` under the root) through `fill`, synced; None when it
/// got no rows (the file is removed).
fn write_file(
    path: &Path,
    rel: &str,
    schema: &SchemaRef,
    def: &TableDef,
    fill: impl FnOnce(&mut ArrowWriter<File>) -> Result<u64>,
) -> Result<Option<FileEntry>> {
    let file = File::create(path).map_err(io(path))?;
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(writer_props(Some(def.key))?))?;
    let rows = fill(&mut w)?;
    let file = w.into_inner()?;
    if rows == 0 {
        drop(file);
        fs::remove_file(path).map_err(io(path))?;
        return Ok(None);
    }
    file.sync_all().map_err(io(path))?;
    Ok(Some(FileEntry {
        path: rel.to_string(),
        rows,
    }))
}

fn as_str(b: &RecordBatch, col: usize) -> Result<&StringArray> {
    b.column(col)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| {
            WhError::Arrow(datafusion::arrow::error::ArrowError::SchemaError(format!(
                "column {} is not Utf8",
                b.schema().field(col).name()
            )))
        })
}

/// Appends a Parquet file's rows to `w`, a batch at a time; when `filter`, without the rows
/// whose key's fingerprint `gone` names. The rows written.
fn copy_rows(
    path: &Path,
    key_col: usize,
    w: &mut ArrowWriter<File>,
    filter: bool,
    mut gone: impl FnMut(u128) -> bool,
) -> Result<u64> {
    let mut rows = 0u64;
    each_batch(path, |b| {
        let b = if filter {
            let k = as_str(&b, key_col)?;
            let keep: BooleanArray = (0..b.num_rows())
                .map(|i| Some(!gone(fingerprint(k.value(i)))))
                .collect();
            filter_record_batch(&b, &keep)?
        } else {
            b
        };
        if b.num_rows() > 0 {
            rows += b.num_rows() as u64;
            w.write(&b)?;
        }
        Ok(())
    })?;
    Ok(rows)
}

/// Every value of a Parquet file's Utf8 key column, a batch at a time.
fn each_key(path: &Path, col: &str, mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let idx = builder.schema().index_of(col).map_err(WhError::Arrow)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()?;
    for b in reader {
        let b = b?;
        let k = as_str(&b, 0)?;
        for i in 0..k.len() {
            f(if k.is_null(i) { "" } else { k.value(i) })?;
        }
    }
    Ok(())
}

/// Groups of equal keys among many, in memory bounded by [`RUN_ENTRIES`] entries whatever their
/// number (sorted runs on disk past it): each key with a value (a row id), then every key seen
/// more than once with its values in the order added. For finding duplicates in inputs of any
/// size (the ETL's order numbers).
pub struct KeyGroups {
    ledger: Ledger,
    seq: u64,
}

impl KeyGroups {
    /// Scratch files go to a fresh directory under `dir`, removed when done.
    pub fn new(dir: &Path) -> Result<KeyGroups> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scratch = dir.join(format!("{SCRATCH_PREFIX}groups-{}-{n}", std::process::id()));
        fs::create_dir_all(&scratch).map_err(io(&scratch))?;
        Ok(KeyGroups {
            ledger: Ledger {
                dir: scratch,
                mem: Vec::new(),
                runs: Vec::new(),
                cap: RUN_ENTRIES,
            },
            seq: 0,
        })
    }

    /// Test hook: fewer entries per run, to exercise the runs on disk.
    #[doc(hidden)]
    pub fn with_run_entries(mut self, n: usize) -> KeyGroups {
        self.ledger.cap = n.max(1);
        self
    }

    pub fn add(&mut self, key: &[u8], value: u64) -> Result<()> {
        self.seq += 1;
        self.ledger.add(Entry {
            fp: fingerprint_bytes(key),
            seq: self.seq,
            part: value,
        })
    }

    /// Every key added more than once: its values in the order they were added.
    pub fn repeated(mut self, mut each: impl FnMut(&[u64]) -> Result<()>) -> Result<()> {
        let ledger = std::mem::replace(
            &mut self.ledger,
            Ledger {
                dir: PathBuf::new(),
                mem: Vec::new(),
                runs: Vec::new(),
                cap: 1,
            },
        );
        let dir = ledger.dir.clone();
        let mut fp = None;
        let mut vals: Vec<u64> = Vec::new();
        let r = ledger.merge(|e| {
            if fp != Some(e.fp) {
                if vals.len() > 1 {
                    each(&vals)?;
                }
                vals.clear();
                fp = Some(e.fp);
            }
            vals.push(e.part);
            Ok(())
        });
        let r = r.and_then(|()| if vals.len() > 1 { each(&vals) } else { Ok(()) });
        let _ = fs::remove_dir_all(&dir);
        r
    }
}

impl Drop for KeyGroups {
    fn drop(&mut self) {
        if !self.ledger.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.ledger.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Repeated keys with their values in the order added, whether the entries stay in memory
    /// or go to many runs on disk.
    #[test]
    fn key_groups_find_every_repeat_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for cap in [1usize, 3, 1 << 20] {
            let mut g = KeyGroups::new(dir.path()).unwrap().with_run_entries(cap);
            let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for i in 0..500u64 {
                let k = format!("store{}/no{}", i % 7, (i * 31) % 53);
                g.add(k.as_bytes(), i).unwrap();
                want.entry(k).or_default().push(i);
            }
            let mut want: Vec<Vec<u64>> = want.into_values().filter(|v| v.len() > 1).collect();
            want.sort();
            let mut got: Vec<Vec<u64>> = Vec::new();
            g.repeated(|v| {
                got.push(v.to_vec());
                Ok(())
            })
            .unwrap();
            got.sort();
            assert!(!want.is_empty());
            assert_eq!(got, want, "run size {cap}");
            assert_eq!(
                fs::read_dir(dir.path()).unwrap().count(),
                0,
                "scratch removed"
            );
        }
    }
}
