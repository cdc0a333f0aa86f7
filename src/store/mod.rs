//! The embedded store: the only module that names sled.
//!
//! The records file ([`records`]) holds every entry bundle's bytes, appended; four sled trees
//! hold the rest (FORMAT.md, "Storage layout"):
//! - `bundles`: entry bundle index (u64 big-endian) → where its bytes lie in the records file;
//! - `tiles`: (level u8, index u64 big-endian) → Merkle tile hashes;
//! - `meta`: `head` → the [`Head`] (log size, root, last chain hash), `batch` → the number of
//!   the last batch sled holds, `records` → the records file's committed length, `checkpoint`
//!   → the latest signed checkpoint;
//! - `derived`: indexes and snapshots that a replay of the log can rebuild.
//!
//! A small [`Batch`] (an `append`'s) is written to the journal ([`journal`]) and made durable by
//! one fdatasync of it; its writes are then held in memory ([`pending`]), where every read
//! looks first, and reach sled with the next large batch. A large one (an import's, or the
//! first that no longer fits in the journal) appends the bundles it and the pending writes
//! change to the records file and fdatasyncs it, then is one sled transaction with every
//! pending write before its own, then `flush()`, then an fdatasync of sled's data file (sled 0.34's flush ends in
//! `sync_file_range`, which does not make the file's metadata durable and does not survive a
//! power loss; fdatasync makes its data and the metadata needed to read it back, such as its
//! length, durable, but not its timestamps, so it can spare the inode's write), then an fsync
//! of any blob file sled wrote beside it; the journal then starts again. A failure anywhere in
//! either sequence poisons the handle: the in-memory view may no longer match the disk, so no
//! further write is allowed. Opening a store replays the journal's batches that sled lacks.

mod buffers;
mod delta;
mod journal;
mod pending;
mod records;

use std::collections::HashSet;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use sled::Transactional;

use crate::date::{Date, Instant};
use delta::DeltaBatch;
use journal::{Journal, Run};
use pending::{Merged, Pending, TREES, TreeId, Write};
use records::Records;

pub use buffers::BufferPool;
pub use journal::JOURNAL_FILE;

/// Version of the storage layout; `open` refuses any other.
pub const STORAGE_FORMAT: u32 = 6;

/// sled's segment size. Nodes larger than a quarter segment become blob files, which sled
/// writes without fsync; 4 MiB keeps a node of 64 KiB snapshot chunks inline (and, before
/// storage format 6, one of 256-record bundles; measured: no blobs for a 1,000,000-record
/// ledger), and blobs that do appear are fsynced by [`Store::commit`].
const SEGMENT_BYTES: usize = 4 << 20;

/// sled's page cache. Kept small: the ledger reads mostly sequentially, and import memory is
/// bounded (BENCHMARKS.md).
const CACHE_BYTES: u64 = 64 << 20;

/// How long `open` keeps trying a store that looks locked, and how often.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(300);
const LOCK_RETRY_STEP: std::time::Duration = std::time::Duration::from_millis(5);

/// The log's head, written in the same transaction as the records it describes.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Head {
    pub format: u32,
    /// Number of records.
    pub size: u64,
    /// RFC 6962 root of the records.
    pub root: [u8; 32],
    /// Chain hash of the last record.
    pub last_chain: [u8; 32],
    /// Recording time of the last record.
    pub last_recorded_at: Instant,
    /// The latest timeline date of any record (effective date; a void's target's date).
    pub max_date: Date,
    /// The fewest records between prefix snapshots (fixed when the ledger is created).
    pub snapshot_interval: u64,
    /// And at least one record per this many bytes of the last snapshot, so that snapshots
    /// stay a bounded fraction of the log however large the state grows; 0: by count only.
    pub snapshot_bytes_per_record: u64,
}

/// Why the store cannot serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No ledger at this path.
    Missing(PathBuf),
    /// Another process holds the ledger.
    InUse(PathBuf),
    /// `init` on a path that already holds a ledger.
    Exists(PathBuf),
    /// The stored bytes are damaged or inconsistent.
    Corrupt(String),
    /// The operating system refused a read or write.
    Io(String),
    /// An earlier write failed; this handle refuses further writes.
    Poisoned(String),
    /// The disk holding the store is full.
    DiskFull(PathBuf),
    /// The store is in another storage format (FORMAT.md, the version line), written by an
    /// earlier or a later chipledger: not damage, and not opened.
    OtherFormat { path: PathBuf, format: u32 },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Missing(path) => write!(
                f,
                "no ledger at {} (create one with `chipledger init`)",
                path.display()
            ),
            StoreError::InUse(path) => write!(
                f,
                "ledger is in use by another process ({})",
                path.display()
            ),
            StoreError::Exists(path) => write!(f, "a ledger already exists at {}", path.display()),
            StoreError::Corrupt(reason) => write!(
                f,
                "the ledger store is corrupt: {reason}; verify it against your last export or \
                 checkpoint"
            ),
            StoreError::Io(reason) => write!(f, "I/O error: {reason}"),
            StoreError::DiskFull(path) => write!(
                f,
                "the disk holding {} is full: what was being written was not recorded. Free \
                 some space, then run `chipledger verify` and the command again (events already \
                 recorded are skipped)",
                path.display()
            ),
            StoreError::OtherFormat { path, format } => write!(
                f,
                "the ledger at {} is in storage format {format}, written by {} chipledger; this \
                 one reads format {STORAGE_FORMAT} only. Nothing was recorded: open it with the \
                 chipledger that wrote it",
                path.display(),
                if *format < STORAGE_FORMAT {
                    "an earlier"
                } else {
                    "a later"
                }
            ),
            StoreError::Poisoned(reason) => write!(
                f,
                "an earlier write failed ({reason}); this ledger handle refuses further writes \
                 until it is reopened"
            ),
        }
    }
}

/// Whether an I/O error says the disk is full (sled sometimes wraps the OS error in text).
fn is_disk_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || error.raw_os_error() == Some(28)
        || error.to_string().contains("No space left on device")
        || error.to_string().contains("StorageFull")
}

/// An I/O error of the store at `path`, with what was being done.
fn io_error(doing: &str, error: std::io::Error, path: &Path) -> StoreError {
    if is_disk_full(&error) {
        StoreError::DiskFull(path.to_path_buf())
    } else {
        StoreError::Io(format!("{doing}: {error}"))
    }
}

fn sled_error(error: sled::Error, path: &Path) -> StoreError {
    match error {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::InUse(path.to_path_buf())
        }
        sled::Error::Io(io) if is_disk_full(&io) => StoreError::DiskFull(path.to_path_buf()),
        sled::Error::Io(io) => StoreError::Io(io.to_string()),
        sled::Error::Corruption { .. } => StoreError::Corrupt(error.to_string()),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// Bytes read from the store: sled's value, or an entry bundle read from the records file.
pub struct Bytes(Held);

enum Held {
    Sled(sled::IVec),
    Read(Vec<u8>),
}

impl Bytes {
    fn sled(value: sled::IVec) -> Bytes {
        Bytes(Held::Sled(value))
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Held::Sled(value) => value,
            Held::Read(bytes) => bytes,
        }
    }
}

/// Writes that become durable together.
#[derive(Default)]
pub struct Batch {
    pub bundles: Vec<(u64, Vec<u8>)>,
    pub tiles: Vec<(u8, u64, Vec<u8>)>,
    pub head: Option<Head>,
    pub derived_puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub derived_deletes: Vec<Vec<u8>>,
    /// The latest signed checkpoint (a C2SP signed note), when this batch signs one.
    pub checkpoint: Option<Vec<u8>>,
}

impl Batch {
    /// The bytes of its keys and values: what decides whether the journal takes it.
    fn value_bytes(&self) -> usize {
        self.bundles
            .iter()
            .map(|(_, bytes)| bytes.len())
            .sum::<usize>()
            + self
                .tiles
                .iter()
                .map(|(_, _, bytes)| bytes.len())
                .sum::<usize>()
            + self
                .derived_puts
                .iter()
                .map(|(key, bytes)| key.len() + bytes.len())
                .sum::<usize>()
            + self.derived_deletes.iter().map(Vec::len).sum::<usize>()
            + self.checkpoint.as_ref().map_or(0, Vec::len)
    }

    /// Every write of the batch numbered `seq`, in the order a sled transaction applies them:
    /// the one place that says which tree and key each part of a batch goes to (FORMAT.md,
    /// "Storage layout"), for sled's transaction and for the pending writes alike.
    fn writes(&self, seq: u64) -> Vec<Write> {
        let value = |bytes: &[u8]| Some(sled::IVec::from(bytes));
        let mut writes = Vec::with_capacity(
            self.bundles.len()
                + self.tiles.len()
                + self.derived_deletes.len()
                + self.derived_puts.len()
                + 3,
        );
        for (index, bytes) in &self.bundles {
            writes.push((TreeId::Bundles, index.to_be_bytes().to_vec(), value(bytes)));
        }
        for (level, index, bytes) in &self.tiles {
            writes.push((
                TreeId::Tiles,
                tile_key(*level, *index).to_vec(),
                value(bytes),
            ));
        }
        for key in &self.derived_deletes {
            writes.push((TreeId::Derived, key.clone(), None));
        }
        for (key, bytes) in &self.derived_puts {
            writes.push((TreeId::Derived, key.clone(), value(bytes)));
        }
        if let Some(head) = &self.head {
            writes.push((
                TreeId::Meta,
                b"head".to_vec(),
                value(&crate::codec::to_bytes(head)),
            ));
        }
        if let Some(checkpoint) = &self.checkpoint {
            writes.push((TreeId::Meta, b"checkpoint".to_vec(), value(checkpoint)));
        }
        writes.push((TreeId::Meta, b"batch".to_vec(), value(&seq.to_be_bytes())));
        writes
    }
}

impl delta::Before for Store {
    fn bundle(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        Store::bundle(self, index)
    }
    fn tile(&self, level: u8, index: u64) -> Result<Option<Bytes>, StoreError> {
        Store::tile(self, level, index)
    }
    fn derived(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Store::derived(self, key)
    }
}

/// Named points between the steps of a commit where a test can make the process fail
/// (`CHIPLEDGER_TEST_FAULT`): the crash harness of RELIABILITY.md uses them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultPoint {
    /// Before anything is written, on either path (FORMAT.md section 6).
    BeforeTransaction,
    /// A journaled batch: after its frame's write, before the journal's fdatasync (J2).
    AfterJournalWrite,
    /// A flushed batch: after its bundles' write and fdatasync to the records file, before
    /// sled's transaction (S2).
    AfterRecords,
    /// A flushed batch: after sled's transaction, before its flush (S2).
    AfterTransaction,
    /// A flushed batch: after sled's flush, before the fdatasync of its file (S3).
    AfterFlush,
    /// Either path: once the batch is durable, before it is acknowledged.
    AfterFsync,
}

impl FaultPoint {
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::BeforeTransaction => "before-transaction",
            FaultPoint::AfterJournalWrite => "after-journal-write",
            FaultPoint::AfterRecords => "after-records",
            FaultPoint::AfterTransaction => "after-transaction",
            FaultPoint::AfterFlush => "after-flush",
            FaultPoint::AfterFsync => "after-fsync",
        }
    }
}

/// The test-only fault hook: `CHIPLEDGER_TEST_FAULT=<point>:<action>[:<nth commit>]`, where
/// the action is `kill` (the process aborts, as under SIGKILL) or `fail` (the step reports an
/// I/O error). Unset in normal use.
fn fault(point: FaultPoint, commit_number: u64) -> Result<(), String> {
    let Ok(spec) = std::env::var("CHIPLEDGER_TEST_FAULT") else {
        return Ok(());
    };
    let mut parts = spec.split(':');
    let (Some(name), Some(action)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let nth: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    if name != point.name() || commit_number != nth {
        return Ok(());
    }
    match action {
        "kill" => std::process::abort(),
        "fail" => Err(format!("injected failure at {}", point.name())),
        _ => Ok(()),
    }
}

pub struct Store {
    path: PathBuf,
    db: sled::Db,
    bundles: sled::Tree,
    tiles: sled::Tree,
    meta: sled::Tree,
    derived: sled::Tree,
    data_file: File,
    records: Records,
    /// Locked for a whole commit: it also numbers the batches.
    journal: Mutex<Journal>,
    /// The writes of the batches the journal holds and sled does not.
    pending: RwLock<Pending>,
    poisoned: Mutex<Option<String>>,
    synced_blobs: Mutex<HashSet<std::ffi::OsString>>,
    commits: Mutex<u64>,
    /// Set by [`Store::leave_open_at_exit`]: dropping this handle does not close sled.
    leave_open: AtomicBool,
}

impl Store {
    /// Creates an empty store at `path`, which must not hold one.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        if path.join("db").exists() || path.join("conf").exists() {
            return Err(StoreError::Exists(path.to_path_buf()));
        }
        std::fs::create_dir_all(path).map_err(|error| StoreError::Io(error.to_string()))?;
        // Before the journal, whose creation syncs the directory that holds both.
        Records::create(path)?;
        Journal::create(path)?;
        let store = Store::open_sled(path)?;
        store.lock_journal().resume(&Run::default(), 0);
        Ok(store)
    }

    /// Opens the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if !path.join("db").exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let store = Store::open_sled(path)?;
        store.start_writeback_of_open();
        // Before the journal is read (another format's journal may differ too), and again on
        // the head the journal's batches leave, which is the one every reader sees.
        store.check_format()?;
        store.records.require(&store.path)?;
        store.recover()?;
        store.check_format()?;
        Ok(store)
    }

    /// Refuses a store whose head names another storage format, or that has no head.
    fn check_format(&self) -> Result<(), StoreError> {
        match self.head()? {
            Some(head) if head.format == STORAGE_FORMAT => Ok(()),
            Some(head) => Err(StoreError::OtherFormat {
                path: self.path.clone(),
                format: head.format,
            }),
            None => Err(StoreError::Corrupt("the store has no head record".into())),
        }
    }

    /// Takes the journal's batches that sled lacks (every batch journaled since sled was last
    /// flushed, unless a later process flushed them) as pending writes, in order, and sets
    /// where the journal goes on.
    fn recover(&self) -> Result<(), StoreError> {
        let mut stored = self.last_batch()?;
        let mut journal = self.lock_journal();
        let run = journal.read_run(stored, &self.path)?;
        if let Some(base) = run.base {
            if stored < base {
                return Err(StoreError::Corrupt(format!(
                    "sled holds batches through {stored}, but its journal records it durable \
                     through batch {base}"
                )));
            }
            for (seq, payload) in &run.frames {
                if *seq <= stored {
                    continue;
                }
                assert_eq!(*seq, stored + 1, "the run's numbers are consecutive");
                let delta: DeltaBatch = crate::codec::from_bytes(payload).map_err(|error| {
                    StoreError::Corrupt(format!("the journal's batch {seq} {error}"))
                })?;
                // The values it changes are the store's before it: sled's and the pending
                // batches' before it, as when it was written.
                let batch = delta.batch(self, *seq)?;
                self.pending_mut().add(batch.writes(*seq));
                stored = *seq;
            }
        }
        journal.resume(&run, stored);
        Ok(())
    }

    /// The number of the last batch sled holds (0 for a store not yet written).
    fn last_batch(&self) -> Result<u64, StoreError> {
        self.meta_number(b"batch", "the batch number")?
            .ok_or_else(|| StoreError::Corrupt("the store has no batch number".into()))
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().expect("not poisoned by a panic")
    }

    fn open_sled(path: &Path) -> Result<Store, StoreError> {
        {
            let left_open = LEFT_OPEN
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Nearly always empty: only then is the path resolved (a few system calls).
            assert!(
                left_open.is_empty() || !left_open.contains(&same_file(path)),
                "{}: this process left the store open for its exit and must not open it again",
                path.display()
            );
        }
        // No background flusher: every commit flushes and fsyncs itself (FORMAT.md section 6),
        // and without the flusher thread an open and a close cost less.
        let config = sled::Config::new()
            .path(path)
            .segment_size(SEGMENT_BYTES)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(None);
        // sled frees a closed database's file (and its lock) through deferred, epoch-based
        // reclamation, so a store closed a moment ago *in this process* can still look locked.
        // Retry briefly; another process holding the ledger still gets "in use" within a
        // fraction of a second.
        let mut waited = std::time::Duration::ZERO;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(error) => match sled_error(error, path) {
                    StoreError::InUse(_) if waited < LOCK_RETRY => {
                        std::thread::sleep(LOCK_RETRY_STEP);
                        waited += LOCK_RETRY_STEP;
                    }
                    other => return Err(other),
                },
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(|error| sled_error(error, path));
        let data_file =
            File::open(path.join("db")).map_err(|error| StoreError::Io(error.to_string()))?;
        let journal = Journal::open(path)?;
        let records = Records::open(path, 0)?;
        let store = Store {
            path: path.to_path_buf(),
            bundles: tree("bundles")?,
            tiles: tree("tiles")?,
            meta: tree("meta")?,
            derived: tree("derived")?,
            db,
            data_file,
            records,
            journal: Mutex::new(journal),
            pending: RwLock::new(Pending::default()),
            poisoned: Mutex::new(None),
            synced_blobs: Mutex::new(HashSet::new()),
            commits: Mutex::new(0),
            leave_open: AtomicBool::new(false),
        };
        store.records.set_end(store.records_end()?);
        Ok(store)
    }

    /// Starts writing back what sled's open wrote, without waiting for it. The open zeroes the
    /// rest of the active segment and fsyncs the file, then zeroes every free segment (4 MiB
    /// each; 21 to 24 of them on the benchmark's 10,000,000-record ledger) and leaves them
    /// dirty. Without this, the *next* open's fsync waits for their writeback: 40 to 80 ms on
    /// that ledger, by `strace -T`, one query after another (tools/bench/PROFILE.md, goal 4).
    /// Started here, the writeback runs while this process works. Only a hint to the kernel:
    /// durability never rests on it, so its result is ignored.
    fn start_writeback_of_open(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: sync_file_range(2) reads no memory of ours; the descriptor is this
            // store's open data file, and offset 0 with length 0 means the whole file.
            let _ = unsafe {
                libc::sync_file_range(
                    self.data_file.as_raw_fd(),
                    0,
                    0,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves sled open when this handle is dropped, for a process that only reads and is about
    /// to exit. sled's close flushes its buffers and fsyncs its file even after nothing but
    /// reads (its open rewrites the tail of the active segment and zeroes free segments), then
    /// frees its page table: 40 ms on a 1,000,000-record ledger and up to 150 ms on a
    /// 10,000,000-record one, more than most queries take. Durability does not depend on it:
    /// every commit is synced to disk before it returns, and sled recovers from a process that ends at
    /// any moment (the crash tests kill processes mid-write). The operating system releases
    /// the file lock when the process exits, so a process must never reopen a store it has
    /// left open (opening asserts that it does not).
    pub fn leave_open_at_exit(&self) {
        self.leave_open.store(true, Ordering::Relaxed);
    }

    fn tree(&self, id: TreeId) -> &sled::Tree {
        match id {
            TreeId::Bundles => &self.bundles,
            TreeId::Tiles => &self.tiles,
            TreeId::Meta => &self.meta,
            TreeId::Derived => &self.derived,
        }
    }

    fn pending(&self) -> std::sync::RwLockReadGuard<'_, Pending> {
        self.pending.read().expect("not poisoned by a panic")
    }

    /// Only a commit (or the open that replays the journal) changes the pending writes.
    fn pending_mut(&self) -> std::sync::RwLockWriteGuard<'_, Pending> {
        self.pending.write().expect("not poisoned by a panic")
    }

    fn read(&self, tree: TreeId, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if let Some(pending) = self.pending().get(tree, key) {
            return Ok(pending.map(Bytes::sled));
        }
        let value = self
            .tree(tree)
            .get(key)
            .map_err(|error| sled_error(error, &self.path))?;
        match (tree, value) {
            (TreeId::Bundles, Some(pointer)) => self.bundle_at(key, &pointer).map(Some),
            (_, value) => Ok(value.map(Bytes::sled)),
        }
    }

    /// The bytes of the bundle whose key is `key`, where sled's `pointer` says they lie.
    fn bundle_at(&self, key: &[u8], pointer: &[u8]) -> Result<Bytes, StoreError> {
        let index = bundle_index(key)?;
        let bytes = self.records.read(index, pointer, &self.path)?;
        Ok(Bytes(Held::Read(bytes)))
    }

    /// The records file's committed length (`meta/records`; 0 before the first flush).
    fn records_end(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta_number(RECORDS_KEY, "the records file's length")?
            .unwrap_or(0))
    }

    /// A `u64` big-endian number `meta` holds under `key`, if any; `what` names it in errors.
    fn meta_number(&self, key: &[u8], what: &str) -> Result<Option<u64>, StoreError> {
        self.read(TreeId::Meta, key)?
            .map(|bytes| {
                <[u8; 8]>::try_from(&bytes[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("{what} is not 8 bytes")))
            })
            .transpose()
    }

    pub fn head(&self) -> Result<Option<Head>, StoreError> {
        let Some(bytes) = self.read(TreeId::Meta, b"head")? else {
            return Ok(None);
        };
        crate::codec::from_bytes(&bytes)
            .map(Some)
            .map_err(|error| StoreError::Corrupt(format!("the head record {error}")))
    }

    /// The latest checkpoint this ledger signed.
    pub fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        match self.read(TreeId::Meta, b"checkpoint")? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| StoreError::Corrupt("the stored checkpoint is not text".into())),
        }
    }

    pub fn bundle(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        self.read(TreeId::Bundles, &index.to_be_bytes())
    }

    /// Bundles from `first` on, in order.
    pub fn bundles_from(
        &self,
        first: u64,
    ) -> impl Iterator<Item = Result<(u64, Bytes), StoreError>> + '_ {
        let start = first.to_be_bytes().to_vec();
        let pending = self
            .pending()
            .range(TreeId::Bundles, start.clone()..)
            .into_iter()
            .map(|(key, value)| (key, value.map(Bytes::sled)))
            .collect();
        // sled holds a pointer per bundle, the pending writes the bundle itself.
        let stored = self.bundles.range(start..).map(move |item| {
            let (key, pointer) = item.map_err(|error| sled_error(error, &self.path))?;
            let bytes = self.bundle_at(&key, &pointer)?;
            Ok((key, bytes))
        });
        Merged::new(stored, pending, false).map(|item| {
            let (key, bytes) = item?;
            Ok((bundle_index(&key)?, bytes))
        })
    }

    pub fn tile(&self, level: u8, index: u64) -> Result<Option<Bytes>, StoreError> {
        self.read(TreeId::Tiles, &tile_key(level, index))
    }

    /// Every stored tile, in key order: (level, index, hashes).
    pub fn tiles(&self) -> impl Iterator<Item = Result<(u8, u64, Bytes), StoreError>> + '_ {
        let pending = self.pending().range(TreeId::Tiles, ..);
        Merged::new(self.tiles.iter(), pending, false).map(move |item| {
            let (key, value) = item.map_err(|error| sled_error(error, &self.path))?;
            if key.len() != 9 {
                return Err(StoreError::Corrupt("a tile key is not 9 bytes".into()));
            }
            let index = u64::from_be_bytes(key[1..9].try_into().expect("checked length"));
            Ok((key[0], index, Bytes::sled(value)))
        })
    }

    pub fn derived(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.read(TreeId::Derived, key)
    }

    /// Derived entries whose keys start with `prefix`, from `start` (a full key) on.
    pub fn derived_from<'a>(
        &'a self,
        prefix: &'a [u8],
        start: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Bytes), StoreError>> + use<'a> {
        let pending = self.pending().range(TreeId::Derived, start.to_vec()..);
        Merged::new(self.derived.range(start.to_vec()..), pending, false)
            .take_while(move |item| match item {
                Ok((key, _)) => key.starts_with(prefix),
                Err(_) => true,
            })
            .map(move |item| {
                let (key, value) = item.map_err(|error| sled_error(error, &self.path))?;
                Ok((key.to_vec(), Bytes::sled(value)))
            })
    }

    /// The last derived entry with a key in `prefix` that is at most `key`.
    pub fn derived_at_or_before(
        &self,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<Option<(Vec<u8>, Bytes)>, StoreError> {
        let bounds = prefix.to_vec()..=key.to_vec();
        let mut pending = self.pending().range(TreeId::Derived, bounds.clone());
        pending.reverse();
        match Merged::new(self.derived.range(bounds).rev(), pending, true).next() {
            Some(item) => {
                let (key, value) = item.map_err(|error| sled_error(error, &self.path))?;
                Ok(Some((key.to_vec(), Bytes::sled(value))))
            }
            None => Ok(None),
        }
    }

    /// Makes a batch durable, or poisons the handle.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if let Some(reason) = self
            .poisoned
            .lock()
            .expect("not poisoned by a panic")
            .clone()
        {
            return Err(StoreError::Poisoned(reason));
        }
        let number = {
            let mut commits = self.commits.lock().expect("not poisoned by a panic");
            *commits += 1;
            *commits
        };
        let result = self.write(batch, number);
        if let Err(error) = &result {
            *self.poisoned.lock().expect("not poisoned by a panic") = Some(error.to_string());
            return result;
        }
        // Read the head back: what we acknowledge is what the store returns.
        if let Some(head) = &batch.head {
            let stored = self.head()?;
            if stored.as_ref() != Some(head) {
                let reason = "the head read back differs from the head written".to_string();
                *self.poisoned.lock().expect("not poisoned by a panic") = Some(reason.clone());
                return Err(StoreError::Corrupt(reason));
            }
        }
        Ok(())
    }

    fn write(&self, batch: &Batch, number: u64) -> Result<(), StoreError> {
        let io = |reason: String| StoreError::Io(reason);
        fault(FaultPoint::BeforeTransaction, number).map_err(io)?;
        let mut journal = self.lock_journal();
        let seq = journal.next_seq;
        let frame =
            if batch.value_bytes() <= journal::JOURNAL_BATCH_MAX_BYTES && journal.accepting() {
                let delta = DeltaBatch::of(batch, self)?;
                Some(crate::codec::journal_frame(
                    seq,
                    &crate::codec::to_bytes(&delta),
                ))
                .filter(|frame| journal.takes(frame.len()))
            } else {
                None
            };
        if let Some(frame) = frame {
            // FORMAT.md section 6.1: the frame and one fdatasync; sled is not touched.
            journal.write(&frame, &self.path)?;
            fault(FaultPoint::AfterJournalWrite, number).map_err(io)?;
            journal.sync(&self.path)?;
            self.pending_mut().add(batch.writes(seq));
        } else {
            // Section 6: one sled transaction with the pending writes and the batch's, flush
            // and sync; the journal then starts again.
            self.apply(batch, seq, number)?;
            fault(FaultPoint::AfterTransaction, number).map_err(io)?;
            self.db
                .flush()
                .map_err(|error| sled_error(error, &self.path))?;
            fault(FaultPoint::AfterFlush, number).map_err(io)?;
            self.data_file
                .sync_data()
                .map_err(|error| io_error("fdatasync of the store file", error, &self.path))?;
            self.sync_blobs()?;
            journal.restart(seq, &self.path)?;
        }
        journal.next_seq = seq + 1;
        fault(FaultPoint::AfterFsync, number).map_err(io)?;
        Ok(())
    }

    /// The bundles of the pending writes and the batch's, appended to the records file and
    /// synced (section 6, S2), then one sled transaction across the four trees: the pending
    /// writes, then the batch's, numbered `seq`, with pointers in place of the bundles and the
    /// records file's new length. sled then holds everything pending, which is dropped.
    fn apply(&self, batch: &Batch, seq: u64, number: u64) -> Result<(), StoreError> {
        // Readers keep reading the pending writes while sled takes them: the same values.
        let pending = self.pending();
        let writes = batch.writes(seq);
        // The latest value of every bundle written: a batch's write replaces a pending one.
        let mut bundles: std::collections::BTreeMap<&[u8], Option<&sled::IVec>> =
            pending.entries(TreeId::Bundles).collect();
        for (id, key, value) in &writes {
            if *id == TreeId::Bundles {
                bundles.insert(key, value.as_ref());
            }
        }
        let written: Vec<(&[u8], &sled::IVec)> = bundles
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?)))
            .collect();
        let (pointers, records_end) = self
            .records
            .append(written.iter().map(|(_, value)| value.as_ref()), &self.path)?;
        assert_eq!(
            pointers.len(),
            written.len(),
            "one pointer per bundle written"
        );
        let pointers: std::collections::BTreeMap<&[u8], sled::IVec> = written
            .iter()
            .zip(&pointers)
            .map(|((key, _), pointer)| (*key, sled::IVec::from(&pointer.encode()[..])))
            .collect();
        fault(FaultPoint::AfterRecords, number).map_err(StoreError::Io)?;
        let records_end = records_end.to_be_bytes();
        (&self.bundles, &self.tiles, &self.meta, &self.derived)
            .transaction(|(bundles, tiles, meta, derived)| {
                let trees = [bundles, tiles, meta, derived];
                let pending_writes = TREES.iter().flat_map(|id| {
                    pending
                        .entries(*id)
                        .map(move |(key, value)| (*id, key, value))
                });
                let batch_writes = writes
                    .iter()
                    .map(|(id, key, value)| (*id, key.as_slice(), value.as_ref()));
                for (id, key, value) in pending_writes.chain(batch_writes) {
                    let tree = trees[id as usize];
                    // A bundle's value in sled is where its bytes now lie.
                    let value = match (id, value) {
                        (TreeId::Bundles, Some(_)) => pointers.get(key),
                        (_, value) => value,
                    };
                    match value {
                        Some(value) => tree.insert(key, value.clone())?,
                        None => tree.remove(key)?,
                    };
                }
                meta.insert(RECORDS_KEY, &records_end[..])?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|error| match error {
                sled::transaction::TransactionError::Storage(error) => {
                    sled_error(error, &self.path)
                }
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::Io("the transaction was aborted".into())
                }
            })?;
        drop(pending);
        // Only a commit changes the pending writes, and commits hold the journal's lock.
        self.pending_mut().clear();
        Ok(())
    }

    /// fsyncs blob files sled wrote since the last commit (sled writes them without fsync).
    fn sync_blobs(&self) -> Result<(), StoreError> {
        let directory = self.path.join("blobs");
        let Ok(entries) = std::fs::read_dir(&directory) else {
            return Ok(());
        };
        let mut synced = self.synced_blobs.lock().expect("not poisoned by a panic");
        let mut any = false;
        for entry in entries {
            let entry = entry.map_err(|error| StoreError::Io(error.to_string()))?;
            if synced.contains(&entry.file_name()) {
                continue;
            }
            match File::open(entry.path()) {
                Ok(file) => file
                    .sync_all()
                    .map_err(|error| io_error("fsync of a blob", error, &self.path))?,
                // sled may delete a blob it no longer needs while we list the directory.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(StoreError::Io(error.to_string())),
            }
            synced.insert(entry.file_name());
            any = true;
        }
        if any {
            File::open(&directory)
                .and_then(|directory| directory.sync_all())
                .map_err(|error| io_error("fsync of the blob directory", error, &self.path))?;
        }
        Ok(())
    }

    /// The bytes the store occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => {
                        use std::os::unix::fs::MetadataExt;
                        meta.blocks() * 512
                    }
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.path)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.leave_open.load(Ordering::Relaxed) {
            // A reference to sled's shared state that is never released: its close never runs.
            std::mem::forget(self.db.clone());
            LEFT_OPEN
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(same_file(&self.path));
        }
    }
}

/// The stores this process left open for its exit ([`Store::leave_open_at_exit`]). sled's
/// lock on each is still held, so opening one again would wait for a lock that is never
/// released; `open_sled` asserts that no command does.
static LEFT_OPEN: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// One spelling per directory, so that two paths to the same store compare equal.
fn same_file(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// `meta`'s key for the records file's committed length.
const RECORDS_KEY: &[u8] = b"records";

/// The bundle index a `bundles` key spells.
fn bundle_index(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a bundle key is not 8 bytes".into()))
}

fn tile_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "must not open it again")]
    fn a_store_left_open_for_the_exit_is_never_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::create(&path).unwrap();
        store.leave_open_at_exit();
        drop(store);
        // Another spelling of the same directory.
        let _ = Store::open_sled(&dir.path().join(".").join("store"));
    }
}
