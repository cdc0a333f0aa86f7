//! Opening, appending to and querying a ledger: the orchestration between the rules, the codec,
//! the Merkle tree and the store.
//!
//! A write goes through a batch: [`Ledger::submit`] decides each event against the in-memory
//! state and stages its record; [`Ledger::commit`] makes the whole batch durable in one store
//! transaction; [`Ledger::rollback`] undoes every staged record in memory. Nothing reaches the
//! store before `commit`, so a refused or failed batch leaves the ledger as it was.

pub mod index;
pub mod reader;
mod staged;
pub mod window;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use staged::{SealedEnd, StagedBytes};

use crate::affinity::Helpers;
use crate::codec::{self, BUNDLE_RECORDS, Body, Event, Genesis, Outcome, Record, content_bytes};
use crate::date::{Date, Instant, RecordingDays};
use crate::error::Error;
use crate::input::Submission;
use crate::merkle::{TileWrite, Tree};
use crate::name::{Id, Text};
use crate::rules::{self, Code, Refusal, Rejection, State, TimelineKey, VoidTarget, snapshot};
use crate::store::{Batch, Head, STORAGE_FORMAT, Store, StoreError};

use index::{
    ID_CHUNK, IDS_PREFIX, IdIndex, LATE_PREFIX, POSITION_CHUNK, POSITIONS_PREFIX, Position,
    SNAPSHOT_CHUNK_BYTES, SNAPSHOT_INTERVAL,
};
pub use reader::{Links, Paths, Reader};
use reader::{PrefixSnapshot, decode_stored};

/// The id of the genesis record; ids beginning `chipledger:` are the ledger's own.
pub const GENESIS_ID: &str = "chipledger:genesis";

/// The id of the commitment record written when the log has `size` records.
pub fn commitment_id(size: u64) -> Id {
    Id::parse(&format!("chipledger:commitment:{size}")).expect("valid id")
}

/// A submission and its event id's hash in the id index. Only [`HashedSubmission::new`]
/// makes one, so the hash always belongs to the event: a wrong one would let a duplicate id
/// through.
pub struct HashedSubmission {
    submission: Submission,
    id_hash: u64,
}

impl HashedSubmission {
    pub fn new(submission: Submission) -> HashedSubmission {
        let id_hash = index::id_hash(&submission.event.id);
        HashedSubmission {
            submission,
            id_hash,
        }
    }

    pub fn submission(&self) -> &Submission {
        &self.submission
    }

    pub fn id_hash(&self) -> u64 {
        self.id_hash
    }
}

/// What became of a submitted event.
#[derive(Clone, Debug)]
pub enum Admitted {
    /// Staged as a new record; its `prev_chain` is still zeros ([`UNSEALED`]): it is written
    /// in when the record's batch is committed.
    Recorded(Arc<Record>),
    /// An event with this id and identical content is already record `seq`: nothing to do.
    AlreadyRecorded(u64),
}

/// What became of an event an import submitted ([`Ledger::submit_hashed`]): its sequence
/// number only. An import discards each record as soon as it is staged, and handing it back
/// on the heap (as [`Admitted`] does) was about 4% of the deciding thread
/// (tools/bench/PROFILE.md, goal 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staged {
    /// Staged as record `seq`.
    Recorded(u64),
    /// An event with this id and identical content is already record `seq`: nothing to do.
    AlreadyRecorded(u64),
}

/// What `init` created.
pub struct Created {
    pub origin: String,
    pub verifier_key: String,
}

/// The staged records of the open batch, and what undoes them.
struct Pending {
    /// The staged records' canonical bytes. Records are not kept decoded: each is dropped by
    /// whoever staged it, while it is fresh, instead of ten thousand at a time after the commit
    /// (8% of an import's time on this thread, most of it glibc merging the freed chunks).
    records: StagedBytes,
    positions_before: (usize, Option<Position>),
    /// The staged records dated before the latest date of the records before them, with their
    /// timeline dates: the late index holds their sealed bytes, which their commit gives.
    late: Vec<(u64, Date)>,
    snapshots: Vec<(u64, Vec<u8>)>,
    last_snapshot_before: (u64, u64),
}

/// A ledger open for writing.
pub struct Ledger {
    reader: Reader,
    /// The fold of every record, staged ones included.
    state: State,
    links: Links,
    /// The Merkle tree of the records in the store; while background commits run, the commit
    /// thread holds the current one, and this is the tree of the last batch seen durable.
    /// Staged records join it only when their batch is committed ([`with_tree`]): hashing them
    /// (SHA-256, leaves and nodes) was 9% of an import's deciding thread, which sets the
    /// import's pace, and the commit thread hashes them instead. After a failed commit the
    /// commit thread writes nothing more, and this handle must be dropped, as the doc of
    /// `commit_in_background` says.
    tree: Tree,
    ids: IdIndex,
    /// The head including staged records, but for its root and chain hash: those are the last
    /// commit's, as staged records join the tree and the chain only when committed.
    working: Head,
    positions: Vec<Position>,
    /// Where sealing the next batch starts (the last committed record's chain hash and its
    /// partial bundle): staged records carry zeros for `prev_chain`, and a batch's records are
    /// sealed into their bundles when it is committed ([`StagedBytes::seal`]), on the sealing
    /// thread for an import, which then keeps its own copy of this.
    sealed_end: SealedEnd,
    pending: Option<Pending>,
    /// The most recent records, as bytes and back-links, staged ones included.
    window: window::Window,
    /// The size and byte length of the latest prefix snapshot, staged ones included.
    last_snapshot: (u64, u64),
    /// The batches being made durable on the commit thread
    /// ([`Ledger::commit_in_background`]).
    committer: Option<Committer>,
    /// The processors the committer's sealing thread keeps to ([`Ledger::keep_helpers`]).
    helpers: Helpers,
    /// How long this handle has waited for background commits to finish (`--timings`).
    commit_wait: std::time::Duration,
    recording_days: RecordingDays,
    /// The buffer of a batch made durable, emptied, for the next batch to stage into: a new
    /// one of a batch's size (a few MB) was mapped and its pages faulted in afresh each time.
    spare_records: Option<StagedBytes>,
}

/// Batches an import may have handed to the commit threads and not yet seen durable. With one,
/// the deciding thread waited for about a tenth of a 1M import: a commit takes 29 ms on
/// average against about 37 ms to decide the next batch, but now and then longer (up to 67 ms
/// in one traced import), and a second batch absorbs those (tools/bench/PROFILE.md, goal 1).
/// Since sealing moved to the commit side, deciding a batch takes about as long as committing
/// one, and with two the deciding thread still waited 60 to 100 ms per 1M import; with three,
/// 20 to 30 ms. Once the sealing and commit threads kept off the deciding thread's processor
/// (affinity.rs), sharing the other one with the thread that reads the scratch files back,
/// they fell behind now and then, and with three the wait grew to 70 to 117 ms; with six,
/// 24 to 55 ms, and 1M imports took 3 to 7% less time (tools/bench/PROFILE.md, goal 1). Each
/// batch held costs its records' bytes, about 2 MB at 10,000 events, and their bundles while it
/// is being committed: the 1M import's peak went from 152 to 175 MB. The commit thread has
/// since been left free again (the wait 14 to 32 ms); three in flight was not measured again.
const BATCHES_IN_FLIGHT: usize = 6;

/// What a staged record holds for `prev_chain` until its batch is sealed ([`seal_batch`]): the
/// chain hash runs in log order, and computing it as each record was staged was a tenth of an
/// import's deciding thread, which sets the import's pace (tools/bench/PROFILE.md, goal 1).
/// The rules never read it, so the records this thread decodes from its own copies (staged,
/// in flight, in the window) may keep the zeros.
const UNSEALED: [u8; 32] = [0; 32];

/// A batch whose store commit runs on the commit thread.
struct InFlight {
    /// The head and positions the store has once the commit succeeds (but for the head's
    /// root, which the tree gives when the commit thread returns it).
    head: Head,
    positions: Vec<Position>,
    /// The records' canonical bytes, as in [`Pending`], shared with the commit thread.
    records: Arc<StagedBytes>,
}

/// A batch handed to the commit thread: the store batch but for what sealing its records
/// gives ([`seal_batch`]), which the thread completes.
struct Job {
    batch: Batch,
    first: u64,
    records: Arc<StagedBytes>,
    late: Vec<(u64, Date)>,
}

/// The threads that make the batches handed to them durable, one after the other in the order
/// given, and the batches they hold, oldest first. One seals each batch ([`seal_batch`]: CPU
/// work) while the other writes and syncs the batch before it (mostly waiting for the disk):
/// on one thread, the two in turn took longer per batch than deciding one, and the deciding
/// thread waited (tools/bench/PROFILE.md, goal 1).
struct Committer {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// One result per batch, in order: the tree with the batch's records once they are
    /// durable, and where the next batch's sealing starts.
    done: std::sync::mpsc::Receiver<Result<(Tree, SealedEnd), StoreError>>,
    threads: [std::thread::JoinHandle<()>; 2],
    batches: std::collections::VecDeque<InFlight>,
}

impl Committer {
    /// Starts the threads. The sealing one owns `tree` and `end` (the sealed end of the log)
    /// from then on. After a failed commit the writing one commits nothing more: a later batch
    /// written after a missing one would leave a hole in the log.
    fn start(
        store: Arc<Store>,
        mut tree: Tree,
        mut end: SealedEnd,
        helpers: Helpers,
    ) -> Result<Committer, Error> {
        let (jobs, receive_jobs) = std::sync::mpsc::sync_channel::<Job>(BATCHES_IN_FLIGHT);
        let (send_sealed, receive_sealed) =
            std::sync::mpsc::sync_channel::<(Batch, Tree, SealedEnd)>(1);
        let (send_done, done) = std::sync::mpsc::channel();
        let spawn = |name: &str, helpers: Helpers, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    helpers.keep_this_thread();
                    work()
                })
                .map_err(|error| {
                    Error::Store(StoreError::Io(format!("cannot start a thread: {error}")))
                })
        };
        let sealing = spawn(
            "chipledger-seal",
            helpers,
            Box::new(move || {
                for job in receive_jobs {
                    let Job {
                        mut batch,
                        first,
                        records,
                        late,
                    } = job;
                    end = seal_batch(&mut batch, &mut tree, &records, first, &end, &late);
                    // The tree is a few kilobytes (its right edge), the end at most a bundle.
                    if send_sealed
                        .send((batch, tree.clone(), end.clone()))
                        .is_err()
                    {
                        return;
                    }
                }
            }),
        )?;
        // The writing thread runs anywhere: its work is mostly the kernel's (copies into the
        // page cache, waits for the disk), and kept with the sealing and reading threads it fell
        // behind them (affinity.rs).
        let writing = spawn(
            "chipledger-commit",
            Helpers::anywhere(),
            Box::new(move || {
                let mut failed = false;
                for (batch, tree, end) in receive_sealed {
                    let result = if failed {
                        Err(StoreError::Io(
                            "not written: an earlier batch's commit failed".into(),
                        ))
                    } else {
                        store.commit(&batch).map(|()| (tree, end))
                    };
                    failed |= result.is_err();
                    if send_done.send(result).is_err() {
                        return;
                    }
                }
            }),
        )?;
        Ok(Committer {
            jobs,
            done,
            threads: [sealing, writing],
            batches: std::collections::VecDeque::with_capacity(BATCHES_IN_FLIGHT),
        })
    }

    /// Stops the threads once they have done what they were given.
    fn join(self) -> Result<(), Error> {
        drop(self.jobs);
        drop(self.done);
        let mut panicked = false;
        for thread in self.threads {
            panicked |= thread.join().is_err();
        }
        if panicked {
            return Err(Error::Store(StoreError::Io(
                "the commit thread panicked".into(),
            )));
        }
        Ok(())
    }
}

fn corrupt(message: String) -> Error {
    Error::Store(StoreError::Corrupt(message))
}

/// Whether `name` can be a checkpoint origin (a C2SP signed-note key name).
pub fn valid_origin(name: &str) -> Result<(), String> {
    if !signed_note::is_key_name_valid(name) || name.chars().any(char::is_control) {
        return Err(format!(
            "`{name}` cannot be an origin: use a non-empty name without spaces or `+`, such as \
             chipledger.example/exports"
        ));
    }
    if name.len() > 256 {
        return Err("an origin has at most 256 characters".into());
    }
    Ok(())
}

impl Ledger {
    /// Creates a ledger in `dir`: the signing key (mode 0600), the verifier key and the store
    /// with its genesis record.
    pub fn create(
        dir: &Path,
        origin: Option<&str>,
        now: Instant,
    ) -> Result<(Ledger, Created), Error> {
        Ledger::create_inner(
            dir,
            origin,
            now,
            SNAPSHOT_INTERVAL,
            index::SNAPSHOT_BYTES_PER_RECORD,
        )
    }

    /// [`Ledger::create`] with a prefix snapshot every `snapshot_interval` records, whatever
    /// the state's size (tests use small intervals to exercise snapshots on small logs).
    pub fn create_with(
        dir: &Path,
        origin: Option<&str>,
        now: Instant,
        snapshot_interval: u64,
    ) -> Result<(Ledger, Created), Error> {
        Ledger::create_inner(dir, origin, now, snapshot_interval, 0)
    }

    fn create_inner(
        dir: &Path,
        origin: Option<&str>,
        now: Instant,
        snapshot_interval: u64,
        snapshot_bytes_per_record: u64,
    ) -> Result<(Ledger, Created), Error> {
        if snapshot_interval == 0 {
            return Err(Error::Usage(
                "the snapshot interval must be at least 1".into(),
            ));
        }
        let paths = Paths::new(dir);
        if paths.store().exists() || paths.signing_key().exists() {
            return Err(Error::Store(StoreError::Exists(dir.to_path_buf())));
        }
        let origin = match origin {
            Some(origin) => origin.to_string(),
            None => {
                let mut random = [0u8; 4];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
                format!(
                    "chipledger.local/{:02x}{:02x}{:02x}{:02x}",
                    random[0], random[1], random[2], random[3]
                )
            }
        };
        valid_origin(&origin).map_err(Error::Usage)?;
        std::fs::create_dir_all(dir)
            .map_err(|error| Error::Store(StoreError::Io(error.to_string())))?;
        let (signer_key, verifier_key) = signed_note::generate_key(&mut rand_core::OsRng, &origin);
        crate::keys::write_new_secret(&paths.signing_key(), signer_key.as_bytes())?;
        crate::keys::write_public(
            &paths.verifier_key(),
            format!("{verifier_key}\n").as_bytes(),
        )?;

        let store = Store::create(&paths.store())?;
        let genesis = Record {
            seq: 0,
            recorded_at: now,
            effective: rules::state::beginning(),
            prev_chain: [0; 32],
            links: codec::BackLinks::default(),
            event: Event {
                id: Id::parse(GENESIS_ID).expect("valid id"),
                body: Body::Genesis(Box::new(Genesis {
                    origin: Text::parse(&origin).map_err(Error::Usage)?,
                    ruleset: rules::builtin::ruleset(),
                })),
            },
            outcome: Outcome::None,
        };
        let bytes = codec::encode_record(&genesis).map_err(|error| corrupt(error.to_string()))?;
        let mut tree = Tree::default();
        let mut completed = Vec::new();
        tree.push(codec::leaf_hash(&bytes), &mut completed);
        let mut ids = IdIndex::default();
        ids.push(index::id_hash(&genesis.event.id));
        let head = Head {
            format: STORAGE_FORMAT,
            size: 1,
            root: tree.root(),
            last_chain: codec::chain_hash(&bytes),
            last_recorded_at: now,
            max_date: genesis.effective,
            snapshot_interval,
            snapshot_bytes_per_record,
        };
        let mut positions = Vec::new();
        index::push_position(&mut positions, 0, genesis.effective, now, None);
        let mut bundle = Vec::new();
        codec::push_entry(&mut bundle, &bytes);
        let mut batch = Batch {
            bundles: vec![(0, bundle)],
            tiles: tree
                .edge_tiles()
                .into_iter()
                .map(|tile| (tile.level, tile.index, tile.data))
                .collect(),
            head: Some(head),
            ..Batch::default()
        };
        batch
            .derived_puts
            .push((index::key(IDS_PREFIX, 0), ids.chunk_bytes(0)));
        batch.derived_puts.push((
            index::key(POSITIONS_PREFIX, 0),
            index::positions_chunk_bytes(&positions, 0),
        ));
        store.commit(&batch)?;
        drop(store);
        let ledger = Ledger::open(dir)?;
        Ok((
            ledger,
            Created {
                origin,
                verifier_key,
            },
        ))
    }

    /// Opens a ledger for writing: the latest prefix snapshot plus a replay of the records after
    /// it, the Merkle tree's right edge, and the id index. Each is checked against the head.
    pub fn open(dir: &Path) -> Result<Ledger, Error> {
        let reader = Reader::open(dir)?;
        let head = reader.head().clone();
        let (state, links) = reader.prefix_state(head.size)?;
        let tree = reader.tree_at(head.size)?;
        if tree.root() != head.root {
            return Err(corrupt(
                "the Merkle tiles do not give the root recorded in the head".into(),
            ));
        }
        let ids = reader.load_ids()?;
        let (last_bytes, _) = reader.record_with_bytes(head.size - 1)?;
        if codec::chain_hash(&last_bytes) != head.last_chain {
            return Err(corrupt(
                "the last record's chain hash differs from the head's".into(),
            ));
        }
        let tail = if head.size % BUNDLE_RECORDS == 0 {
            Vec::new()
        } else {
            reader
                .store
                .bundle(head.size / BUNDLE_RECORDS)?
                .map(|bytes| bytes.to_vec())
                .ok_or_else(|| corrupt("the last entry bundle is missing".into()))?
        };
        let head_size = head.size;
        let head_chain = head.last_chain;
        let last_snapshot = reader.last_snapshot(head.size)?;
        Ok(Ledger {
            committer: None,
            helpers: Helpers::anywhere(),
            commit_wait: std::time::Duration::ZERO,
            spare_records: None,
            last_snapshot,
            positions: reader.positions.clone(),
            working: head,
            reader,
            state,
            links,
            tree,
            ids,
            sealed_end: SealedEnd {
                chain: head_chain,
                tail,
            },
            pending: None,
            window: window::Window::new(head_size),
            recording_days: RecordingDays::default(),
        })
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Keeps only the last `capacity` records in the window from now on, so that tests reach
    /// the walks that leave it without writing 32,768 records first. The window is a cache:
    /// what it does not hold is read from the store, so answers do not change.
    #[doc(hidden)]
    pub fn limit_window(&mut self, capacity: usize) {
        self.window = window::Window::with_capacity(self.working.size, capacity);
    }

    /// The fold of every record, staged ones included.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The head including staged records (its root is the last commit's).
    pub fn working_head(&self) -> &Head {
        &self.working
    }

    fn staged(&self) -> u64 {
        self.pending
            .as_ref()
            .map_or(0, |pending| pending.records.len() as u64)
    }

    /// A record by sequence number, staged or committed, for the rules: one read from this
    /// handle's own copies (staged, in flight or in the window) has zeros for `prev_chain`
    /// ([`UNSEALED`]).
    fn read(&self, seq: u64) -> Result<Arc<Record>, Error> {
        if let Some(record) = self.window.get(seq) {
            return Ok(record);
        }
        let mut committed = self.reader.size();
        for in_flight in self
            .committer
            .iter()
            .flat_map(|committer| &committer.batches)
        {
            if let Some(record) = seq
                .checked_sub(committed)
                .and_then(|offset| in_flight.records.get(usize::try_from(offset).ok()?))
            {
                return decode_stored(seq, record).map(Arc::new);
            }
            committed += in_flight.records.len() as u64;
        }
        if seq >= committed {
            let pending = self.pending.as_ref().expect("staged records exist");
            let bytes = usize::try_from(seq - committed)
                .ok()
                .and_then(|index| pending.records.get(index))
                .expect("a staged record");
            return decode_stored(seq, bytes).map(Arc::new);
        }
        // One entry, not its whole bundle: the records read here (void targets, the records a
        // late one may break) are scattered over many bundles.
        self.reader.record_alone(seq).map(Arc::new)
    }

    /// The record with this event id, if any.
    pub fn find(&self, id: &Id) -> Result<Option<Arc<Record>>, Error> {
        self.find_hashed(id, index::id_hash(id))
    }

    fn find_hashed(&self, id: &Id, id_hash: u64) -> Result<Option<Arc<Record>>, Error> {
        for seq in self.ids.candidates(id_hash) {
            let record = self.read(seq)?;
            if record.event.id == *id {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// The records, staged or committed, that sit after `key` in the timeline and concern
    /// `reads`, in timeline order: from the window of recent records, and from the store for
    /// any part of the range the window no longer holds.
    fn later_than(
        &self,
        key: TimelineKey,
        reads: &rules::Affected,
    ) -> Result<Vec<rules::Later>, Error> {
        // Every record before the first bundle whose latest date passes the day before `key`'s
        // is dated before it, so it cannot sit after `key`.
        let from = match key.date.previous_day() {
            Some(day) => {
                self.positions
                    .partition_point(|position| position.max_date <= day) as u64
                    * BUNDLE_RECORDS
            }
            None => 0,
        };
        let latest = |subject: &codec::Subject| self.links.last.get(subject).copied();
        let (mut later, beyond) = self.window.later(reads, key, from, latest);
        // Past the window, each subject's walk goes on through the store, one record at a time.
        window::walk_beyond(&mut later, beyond, reads, key, from, |seq| self.read(seq))?;
        if reads.all && from < self.window.first() {
            let mut consider = |record: Arc<Record>| {
                let subjects: Arc<[codec::Subject]> = record.subjects().into();
                if TimelineKey::of(&record) > key && reads.concerns(&record, &subjects) {
                    later.push(rules::Later { record, subjects });
                }
            };
            let committed_end = self.window.first().min(self.reader.size());
            self.reader.for_each(from, committed_end, |_, record| {
                consider(Arc::new(record.clone()));
                Ok(())
            })?;
            for seq in committed_end.max(from)..self.window.first() {
                consider(self.read(seq)?);
            }
            later.sort_by_key(|later| TimelineKey::of(&later.record));
        }
        Ok(later)
    }

    fn begin(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let bundles = self.positions.len();
        // A committed batch's buffer, or one sized by an import's batch still in flight.
        let records = self.spare_records.take().unwrap_or_else(|| {
            self.committer
                .as_ref()
                .and_then(|committer| committer.batches.back())
                .map_or_else(StagedBytes::default, |in_flight| {
                    StagedBytes::like(&in_flight.records)
                })
        });
        self.pending = Some(Pending {
            records,
            positions_before: (bundles, self.positions.last().copied()),
            late: Vec::new(),
            snapshots: Vec::new(),
            last_snapshot_before: self.last_snapshot,
        });
    }

    /// Decides one event and, if the rules accept it, stages its record in the open batch.
    ///
    /// The outer `Result` fails only when the ledger cannot be read; the inner one carries a
    /// rule's refusal, after which the state is as before the call.
    pub fn submit(
        &mut self,
        submission: &Submission,
        now: Instant,
    ) -> Result<Result<Admitted, Refusal>, Error> {
        self.submit_owned(submission.clone(), now)
    }

    /// [`Ledger::submit`], taking the submission: its event moves into the record instead of
    /// being copied (an import's events are used once).
    pub fn submit_owned(
        &mut self,
        submission: Submission,
        now: Instant,
    ) -> Result<Result<Admitted, Refusal>, Error> {
        Ok(
            match self.submit_hashed(HashedSubmission::new(submission), now)? {
                // The record just staged is the window's newest: decoded from its bytes, it
                // is the record as stored.
                Ok(Staged::Recorded(seq)) => Ok(Admitted::Recorded(self.read(seq)?)),
                Ok(Staged::AlreadyRecorded(seq)) => Ok(Admitted::AlreadyRecorded(seq)),
                Err(refusal) => Err(refusal),
            },
        )
    }

    /// Makes the thread that seals batches in the background, once it starts, keep to the
    /// processors of `helpers` (affinity.rs): an import's deciding thread leaves it the other
    /// processors. The thread that writes them runs anywhere.
    pub fn keep_helpers(&mut self, helpers: Helpers) {
        self.helpers = helpers;
    }

    /// Readies the duplicate-id probes of submissions about to come ([`IdIndex::warm`]): an
    /// import passes the next few events' hashes before deciding them.
    pub fn warm_ids(&self, hashes: impl Iterator<Item = u64>) {
        self.ids.warm(hashes);
    }

    /// [`Ledger::submit_owned`] for an import: the event id's index hash is already computed
    /// (on the thread that parsed the line), and only the record's sequence number comes back.
    pub fn submit_hashed(
        &mut self,
        submission: HashedSubmission,
        now: Instant,
    ) -> Result<Result<Staged, Refusal>, Error> {
        self.begin();
        let HashedSubmission {
            submission: Submission { effective, event },
            id_hash,
        } = submission;
        if let Some(existing) = self.find_hashed(&event.id, id_hash)? {
            if content_bytes(existing.effective, &existing.event)
                == content_bytes(effective, &event)
            {
                return Ok(Ok(Staged::AlreadyRecorded(existing.seq)));
            }
            return Ok(Err(Refusal {
                code: Code::DuplicateId,
                event_id: event.id.clone(),
                message: format!(
                    "event id {} is already record {} ({} effective {}) with different content",
                    event.id,
                    existing.seq,
                    existing.event.body.type_name(),
                    existing.effective
                ),
                figures: None,
                breaks: None,
            }));
        }
        let target = match &event.body {
            Body::Void(void) => self.find(&void.target)?,
            _ => None,
        };
        let seq = self.working.size;
        let recorded_at = now.max(self.working.last_recorded_at);
        let mut record = Record {
            seq,
            recorded_at,
            effective,
            prev_chain: UNSEALED,
            links: codec::BackLinks::default(),
            event,
            outcome: Outcome::None,
        };
        let key = TimelineKey::of_new(effective, seq, target.as_ref().map(|t| t.as_ref()));
        let reads = rules::reads(&record.event, target.as_deref(), &self.state.facts);
        // Nothing sits after a record dated after everything recorded (or on the last day, for
        // one that changes no facts): the common case needs no rechecks.
        let start = key.recheck_from(&record.event);
        let max_date = self.working.max_date;
        let later = if target.is_none()
            && (key.date > max_date || (key.date == max_date && start == key))
        {
            Vec::new()
        } else {
            self.later_than(start, &reads)?
        };
        let void_target = target.as_ref().map(|target| VoidTarget {
            record: target,
            voided: self.state.facts.voided.contains_key(&target.seq),
        });
        let today = self.recording_days.of(recorded_at);
        match rules::admit(
            &mut self.state,
            &mut record,
            today,
            void_target,
            &later,
            &reads,
        ) {
            Ok(_) => {}
            Err(Rejection::Refused(refusal)) => return Ok(Err(refusal)),
            Err(Rejection::Inconsistent(error)) => {
                return Err(corrupt(format!("the log does not fold: {error}")));
            }
        }
        self.stage(record, key, id_hash)
            .map(|seq| Ok(Staged::Recorded(seq)))
    }

    /// Signs a checkpoint of the log, after appending a commitment record to it (FORMAT.md,
    /// "Commitment"). If the last record already is a commitment with a signed checkpoint, that
    /// checkpoint is returned again: nothing happened since.
    ///
    /// The ledger never signs two checkpoints that disagree: the log's prefix at the size of the
    /// last signed checkpoint must still have that checkpoint's root.
    pub fn sign_checkpoint(
        &mut self,
        now: Instant,
    ) -> Result<crate::proof::checkpoint::Verified, Error> {
        use crate::proof::{checkpoint, commitment};
        self.commit()?;
        let vkey = self.reader.verifier_key()?;
        let last = match self.reader.last_checkpoint()? {
            Some(note) => Some(checkpoint::verify(&note, &vkey).map_err(|error| {
                corrupt(format!(
                    "the last signed checkpoint does not verify: {error}"
                ))
            })?),
            None => None,
        };
        if let Some(last) = &last {
            if last.size > self.working.size {
                return Err(corrupt(format!(
                    "the log has {} records but a checkpoint of {} was signed: it was rolled back",
                    self.working.size, last.size
                )));
            }
            if self.reader.root_at(last.size)? != last.root {
                return Err(corrupt(format!(
                    "the log's first {} records no longer have the root of the checkpoint signed for them",
                    last.size
                )));
            }
            let head = self.reader.record(self.working.size - 1)?;
            if last.size == self.working.size && matches!(head.event.body, Body::Commitment(_)) {
                return Ok(last.clone());
            }
        }
        let signer = crate::keys::read_secret(&self.reader.paths().signing_key())?;
        let size = self.working.size;
        let leaves = commitment::leaves(&self.state, &self.links);
        let event = Event {
            id: commitment_id(size),
            body: Body::Commitment(commitment::event(size, &leaves)),
        };
        self.begin();
        let max_date = self.working.max_date;
        let record = self.stage_unchecked(max_date, event, Outcome::None, now)?;
        let (mut batch, tree, end) = self.batch_with_tree();
        let signed =
            match checkpoint::sign(&signer, self.reader.origin(), record.seq + 1, tree.root()) {
                Ok(signed) => signed,
                Err(error) => {
                    self.rollback()?;
                    return Err(error);
                }
            };
        batch.checkpoint = Some(signed.note.clone().into_bytes());
        self.commit_batch(batch, tree, end)?;
        Ok(signed)
    }

    /// Stages a record with the given outcome *without deciding it*: the rules are not asked.
    ///
    /// The product stages only commitment records this way ([`Ledger::sign_checkpoint`]),
    /// which no rule decides; tests use it to build a ledger whose stored outcomes a replay
    /// contradicts, and check that `verify` names the record. The record returned has zeros
    /// for `prev_chain` ([`UNSEALED`]) until its batch is committed.
    #[doc(hidden)]
    pub fn stage_unchecked(
        &mut self,
        effective: Date,
        event: Event,
        outcome: Outcome,
        now: Instant,
    ) -> Result<Arc<Record>, Error> {
        self.begin();
        let record = Record {
            seq: self.working.size,
            recorded_at: now.max(self.working.last_recorded_at),
            effective,
            prev_chain: UNSEALED,
            links: codec::BackLinks::default(),
            event,
            outcome,
        };
        self.state
            .apply(&record)
            .map_err(|error| corrupt(format!("the unchecked record does not fold: {error}")))?;
        let key = TimelineKey::of(&record);
        let id_hash = index::id_hash(&record.event.id);
        let seq = self.stage(record, key, id_hash)?;
        self.read(seq)
    }

    /// Links, encodes and stages a decided record (unsealed: [`UNSEALED`]); returns its
    /// sequence number.
    fn stage(&mut self, mut record: Record, key: TimelineKey, id_hash: u64) -> Result<u64, Error> {
        debug_assert_eq!(id_hash, index::id_hash(&record.event.id));
        let pending = self.pending.as_mut().expect("a batch is open");
        let subjects = record.few_subjects();
        record.links = self.links.link_subjects(record.seq, &subjects);
        let bytes = match pending.records.push(&record, subjects.len()) {
            Ok(bytes) => bytes,
            Err(error) => {
                // Undo what this record changed so far, then report it as bad input.
                self.links.unlink_subjects(&subjects, &record.links);
                self.state
                    .unapply(&record)
                    .map_err(|error| corrupt(error.to_string()))?;
                return Err(Error::input(
                    format!("event {}", record.event.id),
                    format!("cannot be recorded: the record {error}"),
                ));
            }
        };
        let seq = record.seq;
        self.ids.push(id_hash);
        let late = key.date < self.working.max_date;
        if late {
            pending.late.push((seq, key.date));
        }
        self.working.max_date = self.working.max_date.max(key.date);
        self.working.size = seq + 1;
        self.working.last_recorded_at = record.recorded_at;
        index::push_position(
            &mut self.positions,
            seq,
            self.working.max_date,
            record.recorded_at,
            late.then_some(key.date),
        );
        let (snapshot_size, snapshot_bytes) = self.last_snapshot;
        if self.working.size % self.working.snapshot_interval == 0
            && self.working.size - snapshot_size
                >= index::snapshot_spacing(&self.working, snapshot_bytes)
        {
            let snapshot = PrefixSnapshot {
                state: snapshot::encode(&self.state),
                links: self.links.encode(),
            };
            let bytes = codec::to_bytes(&snapshot);
            self.last_snapshot = (self.working.size, bytes.len() as u64);
            pending.snapshots.push((self.working.size, bytes));
        }
        self.window
            .push(&record, &subjects, window::RecordBytes::Copy(bytes));
        Ok(seq)
    }

    /// Undoes every staged record (a batch already handed to a background commit is not
    /// staged any more: it is waited for first).
    pub fn rollback(&mut self) -> Result<(), Error> {
        self.finish_background()?;
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let first = self.working.size - pending.records.len() as u64;
        for (offset, bytes) in pending.records.iter().enumerate().rev() {
            let seq = first + offset as u64;
            let record = decode_stored(seq, bytes)?;
            self.state
                .unapply(&record)
                .map_err(|error| corrupt(format!("rolling back record {seq}: {error}")))?;
            self.ids.pop();
            // A record's back-links are what each of its subjects' latest record was before it.
            self.links
                .unlink_subjects(&record.subjects(), &record.links);
        }
        let (bundles, last) = pending.positions_before;
        self.positions.truncate(bundles);
        if let (Some(last), Some(slot)) = (last, self.positions.last_mut()) {
            *slot = last;
        }
        self.working = self.reader.head().clone();
        self.window.pop_to(self.working.size);
        self.last_snapshot = pending.last_snapshot_before;
        Ok(())
    }

    /// Makes every staged record durable in one store transaction (after the background
    /// commit, if one runs).
    pub fn commit(&mut self) -> Result<u64, Error> {
        self.finish_background()?;
        let Some(pending) = self.pending.as_ref() else {
            return Ok(0);
        };
        let count = pending.records.len() as u64;
        if count == 0 {
            self.pending = None;
            return Ok(0);
        }
        let (batch, tree, end) = self.batch_with_tree();
        self.commit_batch(batch, tree, end)?;
        Ok(count)
    }

    /// Hands the staged records to the commit thread, which makes them durable (the same store
    /// transaction, flush and fsync as [`Ledger::commit`]), and returns at once, so that the
    /// next batch is decided while the disk works. At most [`BATCHES_IN_FLIGHT`] batches are
    /// held: with that many, it first waits for the oldest. Returns the log sizes made durable
    /// since the last call, one per batch, oldest first, for the caller to acknowledge.
    ///
    /// Nothing is durable, or may be acknowledged, before this call or
    /// [`Ledger::finish_background`] says so. If a background commit fails, the store is
    /// poisoned and this ledger must be dropped: its memory holds records the disk may not.
    pub fn commit_in_background(&mut self) -> Result<Vec<u64>, Error> {
        let mut durable = self.durable_so_far()?;
        let Some(pending) = self.pending.as_ref() else {
            return Ok(durable);
        };
        if pending.records.is_empty() {
            self.pending = None;
            return Ok(durable);
        }
        while self
            .committer
            .as_ref()
            .is_some_and(|committer| committer.batches.len() >= BATCHES_IN_FLIGHT)
        {
            durable.push(self.finish_oldest()?);
        }
        if self.committer.is_none() {
            // The sealing thread seals each batch (chain hashes, bundles, leaf hashes and
            // tiles, the head's root and chain hash) and the writing thread commits it; the
            // tree and the sealed end come back with each batch made durable.
            let store = Arc::clone(&self.reader.store);
            self.committer = Some(Committer::start(
                store,
                self.tree.clone(),
                self.sealed_end.clone(),
                self.helpers,
            )?);
        }
        let batch = self.batch();
        let pending = self.pending.take().expect("a batch is open");
        let first = self.working.size - pending.records.len() as u64;
        let records = Arc::new(pending.records);
        let committer = self.committer.as_mut().expect("started above");
        committer
            .jobs
            .send(Job {
                batch,
                first,
                records: Arc::clone(&records),
                late: pending.late,
            })
            .map_err(|_| Error::Store(StoreError::Io("the commit thread has stopped".into())))?;
        committer.batches.push_back(InFlight {
            head: self.working.clone(),
            positions: self.positions.clone(),
            records,
        });
        Ok(durable)
    }

    /// How long this handle has waited for background commits ([`Ledger::commit_in_background`])
    /// to finish: the time the deciding thread spent idle behind the commit thread.
    pub fn commit_wait(&self) -> std::time::Duration {
        self.commit_wait
    }

    /// Waits for every background commit and stops the commit thread; the log sizes made
    /// durable, one per batch, oldest first.
    pub fn finish_background(&mut self) -> Result<Vec<u64>, Error> {
        let mut durable = Vec::new();
        while self
            .committer
            .as_ref()
            .is_some_and(|committer| !committer.batches.is_empty())
        {
            durable.push(self.finish_oldest()?);
        }
        if let Some(committer) = self.committer.take() {
            committer.join()?;
        }
        Ok(durable)
    }

    /// The batches made durable so far, without waiting for the others.
    fn durable_so_far(&mut self) -> Result<Vec<u64>, Error> {
        let mut durable = Vec::new();
        while let Some(committer) = &self.committer {
            let Ok(result) = committer.done.try_recv() else {
                break;
            };
            durable.push(self.complete_oldest(result)?);
        }
        Ok(durable)
    }

    /// Waits for the oldest batch in flight; the log size it made durable.
    fn finish_oldest(&mut self) -> Result<u64, Error> {
        let committer = self.committer.as_ref().expect("a batch is in flight");
        let waited = std::time::Instant::now();
        let result = committer
            .done
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Io("the commit thread panicked".into())));
        self.commit_wait += waited.elapsed();
        self.complete_oldest(result)
    }

    /// Makes the oldest batch in flight committed, given its commit's result.
    fn complete_oldest(
        &mut self,
        result: Result<(Tree, SealedEnd), StoreError>,
    ) -> Result<u64, Error> {
        let committer = self.committer.as_mut().expect("a batch is in flight");
        let in_flight = committer
            .batches
            .pop_front()
            .expect("one result per batch handed over");
        let (tree, end) = match result {
            Ok(done) => done,
            Err(error) => {
                // The threads commit nothing after a failure; they stop once their channels
                // close.
                if let Some(committer) = self.committer.take() {
                    let _ = committer.join();
                }
                return Err(Error::Store(error));
            }
        };
        self.tree = tree;
        let mut head = in_flight.head;
        assert_eq!(
            self.tree.size(),
            head.size,
            "the tree holds the committed records"
        );
        head.root = self.tree.root();
        head.last_chain = end.chain;
        self.working.root = head.root;
        self.working.last_chain = end.chain;
        self.sealed_end = end;
        let size = head.size;
        let first = size - in_flight.records.len() as u64;
        assert_eq!(
            first,
            self.reader.size(),
            "batches are made durable in order"
        );
        self.reader.invalidate_from(first / BUNDLE_RECORDS);
        self.reader.head = head;
        self.reader.positions = in_flight.positions;
        // The commit threads have let go of the batch's records once it is durable.
        if let Ok(mut records) = Arc::try_unwrap(in_flight.records) {
            records.clear();
            self.spare_records = Some(records);
        }
        Ok(size)
    }

    /// Writes a batch built from the staged records and, on success, makes them committed
    /// and `tree` (which holds them) the ledger's tree.
    fn commit_batch(&mut self, batch: Batch, tree: Tree, end: SealedEnd) -> Result<(), Error> {
        let head = batch.head.as_ref().expect("a batch has a head");
        self.working.root = head.root;
        self.working.last_chain = head.last_chain;
        if let Err(error) = self.reader.store.commit(&batch) {
            self.rollback()?;
            return Err(Error::Store(error));
        }
        self.tree = tree;
        self.sealed_end = end;
        let pending = self.pending.take().expect("a batch is open");
        let first = self.working.size - pending.records.len() as u64;
        self.reader.invalidate_from(first / BUNDLE_RECORDS);
        self.reader.head = self.working.clone();
        self.reader.positions.clone_from(&self.positions);
        Ok(())
    }

    /// [`Ledger::batch`] completed by sealing the staged records ([`seal_batch`]) into a copy
    /// of the tree, which the batch's tiles and head root come from; with where the next
    /// batch's sealing starts.
    fn batch_with_tree(&mut self) -> (Batch, Tree, SealedEnd) {
        assert!(
            self.committer.is_none(),
            "the tree lacks the records of commits still running"
        );
        let mut batch = self.batch();
        let mut tree = self.tree.clone();
        let pending = self.pending.as_ref().expect("a batch is open");
        let first = self.working.size - pending.records.len() as u64;
        let end = seal_batch(
            &mut batch,
            &mut tree,
            &pending.records,
            first,
            &self.sealed_end,
            &pending.late,
        );
        (batch, tree, end)
    }

    /// The store batch of the staged records but for what sealing them gives ([`seal_batch`]):
    /// no bundles, late-index values or tiles, and a head without its root and chain hash.
    fn batch(&self) -> Batch {
        let pending = self.pending.as_ref().expect("a batch is open");
        // The batches still in flight come before it.
        let end = self.working.size;
        let first = end - pending.records.len() as u64;
        let head = self.working.clone();
        let mut batch = Batch {
            head: Some(head),
            ..Batch::default()
        };
        for chunk in first / ID_CHUNK..=(end - 1) / ID_CHUNK {
            batch
                .derived_puts
                .push((index::key(IDS_PREFIX, chunk), self.ids.chunk_bytes(chunk)));
        }
        let first_bundle = first / BUNDLE_RECORDS;
        let last_bundle = (end - 1) / BUNDLE_RECORDS;
        for chunk in first_bundle / POSITION_CHUNK..=last_bundle / POSITION_CHUNK {
            batch.derived_puts.push((
                index::key(POSITIONS_PREFIX, chunk),
                index::positions_chunk_bytes(&self.positions, chunk),
            ));
        }
        for (size, bytes) in &pending.snapshots {
            for (number, chunk) in bytes.chunks(SNAPSHOT_CHUNK_BYTES).enumerate() {
                batch
                    .derived_puts
                    .push((index::snapshot_key(*size, number as u32), chunk.to_vec()));
            }
        }
        batch
    }

    /// Makes room in the id index for `records` more records (an import knows how many lines
    /// it will read), so that its table is not rebuilt each time it doubles.
    pub fn reserve(&mut self, records: u64) {
        self.ids
            .reserve(usize::try_from(records).unwrap_or(usize::MAX));
    }

    /// How many records the open batch has staged.
    pub fn staged_count(&self) -> u64 {
        self.staged()
    }
}

/// Seals `records`, the staged records of `batch` from log position `first` on, from `start`
/// ([`StagedBytes::seal`]), and completes `batch` with what that gives: their entry bundles,
/// the late index's values for `late` (the batch's late records), the head's chain hash, and
/// from `tree` (the tree of the records before them, which takes theirs) the tiles they change
/// and the root. Returns where the next batch's sealing starts.
fn seal_batch(
    batch: &mut Batch,
    tree: &mut Tree,
    records: &StagedBytes,
    first: u64,
    start: &SealedEnd,
    late: &[(u64, Date)],
) -> SealedEnd {
    let sealed = records.seal(first, start, late.iter().map(|(seq, _)| *seq));
    batch.bundles = sealed.bundles;
    for ((seq, date), bytes) in late.iter().zip(&sealed.copies) {
        batch.derived_puts.push((
            index::key(LATE_PREFIX, *seq),
            index::late_value(*date, bytes),
        ));
    }
    let head = batch.head.as_mut().expect("a batch has a head");
    head.last_chain = sealed.end.chain;
    assert_eq!(
        tree.size() + sealed.leaves.len() as u64,
        head.size,
        "the tree and the batch's records make the head's size"
    );
    let mut completed: Vec<TileWrite> = Vec::new();
    for leaf in sealed.leaves {
        tree.push(leaf, &mut completed);
    }
    head.root = tree.root();
    batch.tiles = completed
        .into_iter()
        .chain(tree.edge_tiles())
        .map(|tile| (tile.level, tile.index, tile.data))
        .collect();
    sealed.end
}

impl Reader {
    /// Forgets cached bundles from `first` on (they grew).
    pub(crate) fn invalidate_from(&self, first: u64) {
        self.forget_bundles(first);
    }
}

/// Writes text to a writer, mapping failures to [`Error::Output`].
pub fn write_out(out: &mut impl Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes()).map_err(Error::Output)
}
