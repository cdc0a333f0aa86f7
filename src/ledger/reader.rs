//! Reading a ledger: records by position, the log at any size, state at any date.

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::{self, BUNDLE_RECORDS, Body, Genesis, Record, Subject};
use crate::date::{Date, Instant};
use crate::error::Error;
use crate::merkle::{TileSource, Tree};
use crate::rules::{FoldError, Params, State, TimelineKey, snapshot};
use crate::store::{Bytes, Head, Store, StoreError};

use super::index::{
    self, LATE_PREFIX, POSITION_CHUNK, POSITIONS_PREFIX, Position, SNAPSHOT_PREFIX,
};

/// How many decoded bundles a reader keeps.
const CACHED_BUNDLES: usize = 64;

/// The last sequence number of every subject: the source of each new record's back-links.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Links {
    pub last: std::collections::HashMap<Subject, u64, foldhash::fast::RandomState>,
}

impl Links {
    /// Records `record` as the latest of each of its subjects; returns its back-links.
    pub fn link(&mut self, record: &Record) -> codec::BackLinks {
        self.link_subjects(record.seq, &record.subjects())
    }

    /// [`Links::link`] for a record whose subjects the caller has at hand.
    pub fn link_subjects(&mut self, seq: u64, subjects: &[Subject]) -> codec::BackLinks {
        // A subject seen before (nearly every one) is updated in place: inserting would clone
        // its key only to drop the clone again.
        subjects
            .iter()
            .map(|subject| match self.last.get_mut(subject) {
                Some(last) => Some(std::mem::replace(last, seq)),
                None => self.last.insert(subject.clone(), seq),
            })
            .collect()
    }

    /// Undoes [`Links::link_subjects`] for a record whose sorted subjects are `subjects` and
    /// whose back-links are `links`: each subject's latest record is again the one the record
    /// links back to. Records are unlinked newest first.
    pub fn unlink_subjects(&mut self, subjects: &[Subject], links: &[Option<u64>]) {
        assert_eq!(subjects.len(), links.len(), "one back-link per subject");
        for (subject, previous) in subjects.iter().zip(links) {
            match previous {
                Some(seq) => self.last.insert(subject.clone(), *seq),
                None => self.last.remove(subject),
            };
        }
    }

    pub fn encode(&self) -> Vec<(Subject, u64)> {
        let mut list: Vec<(Subject, u64)> = self
            .last
            .iter()
            .map(|(subject, seq)| (subject.clone(), *seq))
            .collect();
        // The subjects are a map's keys, so an unstable sort gives the one order.
        list.sort_unstable();
        list
    }
}

/// A prefix snapshot: the state and links of the first `size` records.
#[derive(bincode::Encode, bincode::Decode)]
pub(crate) struct PrefixSnapshot {
    pub state: Vec<u8>,
    pub links: Vec<(Subject, u64)>,
}

impl PrefixSnapshot {
    /// The state's bytes and the links' bytes of an encoded prefix snapshot, in place: its
    /// encoding is the state's length (a `u64`, little-endian) and bytes, then the links.
    pub fn split(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
        let length = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let end = usize::try_from(length).ok()?.checked_add(8)?;
        Some((bytes.get(8..end)?, &bytes[end..]))
    }
}

/// The paths inside a ledger directory.
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Paths {
        Paths {
            dir: dir.to_path_buf(),
        }
    }
    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.dir.join("signing.key")
    }
    pub fn verifier_key(&self) -> PathBuf {
        self.dir.join("verifier.key")
    }
}

/// A stored entry bundle with its records decoded. Each record's bytes are a range of the
/// bundle's own bytes, not a copy: a replay, which never reads them, then allocates nothing for
/// them.
pub(crate) struct DecodedBundle {
    bytes: Bytes,
    records: Vec<(Range<usize>, Record)>,
}

impl DecodedBundle {
    /// The record at `offset` in the bundle, with its bytes.
    pub(crate) fn get(&self, offset: usize) -> Option<(&[u8], &Record)> {
        self.records
            .get(offset)
            .map(|(range, record)| (&self.bytes[range.clone()], record))
    }

    /// The records at `offsets` in the bundle (as many of them as it holds), with their bytes.
    fn entries(&self, offsets: Range<usize>) -> impl DoubleEndedIterator<Item = (&[u8], &Record)> {
        let end = offsets.end.min(self.records.len());
        self.records
            .get(offsets.start..end)
            .unwrap_or_default()
            .iter()
            .map(|(range, record)| (&self.bytes[range.clone()], record))
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn records(&self) -> impl DoubleEndedIterator<Item = &Record> {
        self.records.iter().map(|(_, record)| record)
    }
}

/// Bundles a range must span to be read on helper threads ([`Reader::for_each`]).
const HELPERS_FROM_BUNDLES: u64 = 4;

/// Bundles each helper thread of [`Reader::for_each`] decodes ahead of the visitor, so that a
/// bundle slower than the others (one whose sled node must first be read, say) holds up only
/// its own decoder. With four, the other decoder soon filled its queue and waited too: a replay
/// of 1,000,000 records kept 1.74 of the 2 cores busy, and 1.88 with 32, in 9% less time; the
/// as-of query on the 10,000,000-record ledger folded in 20% less (tools/bench/PROFILE.md, goal
/// 2). A decoded bundle is about 100 KB.
const DECODED_AHEAD_BUNDLES: usize = 32;

/// Threads that decode bundles for [`Reader::for_each`]: one per core, up to four. Decoding a
/// record costs about twice as much as folding it (tools/bench/PROFILE.md, goal 2), so one
/// decoder alone leaves the folding thread waiting.
fn decoders() -> u64 {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().clamp(1, 4)) as u64
}

/// Which way [`Reader::walk`] goes through a range: in order, or latest record first (to fold
/// records out of a later snapshot).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    Forward,
    Backward,
}

/// Visits the records of bundle `index` that lie in `range`, in `direction`. Every one of them
/// must be there: a bundle holding fewer records than the range needs is corrupt.
fn visit_bundle<S>(
    state: &mut S,
    index: u64,
    bundle: &DecodedBundle,
    range: &Range<u64>,
    direction: Direction,
    visit: &mut impl FnMut(&mut S, &[u8], &Record) -> Result<(), Error>,
) -> Result<(), Error> {
    let base = index * BUNDLE_RECORDS;
    assert!(base < range.end && range.start < base + BUNDLE_RECORDS);
    let start = range.start.saturating_sub(base) as usize;
    let end = (range.end - base).min(BUNDLE_RECORDS) as usize;
    if bundle.len() < end {
        return Err(corrupt(format!(
            "record {} is missing from its bundle",
            base + bundle.len() as u64
        )));
    }
    let mut entries = bundle.entries(start..end);
    match direction {
        Direction::Forward => entries.try_for_each(|(bytes, record)| visit(state, bytes, record)),
        Direction::Backward => entries
            .rev()
            .try_for_each(|(bytes, record)| visit(state, bytes, record)),
    }
}

struct BundleCache {
    /// (bundle index, decoded records), most recent last.
    entries: Vec<(u64, Arc<DecodedBundle>)>,
}

/// A read-only view of a ledger.
pub struct Reader {
    pub(crate) paths: Paths,
    /// Shared with a background commit's thread ([`super::Ledger::commit_in_background`]).
    pub(crate) store: Arc<Store>,
    pub(crate) head: Head,
    pub(crate) genesis: Record,
    pub(crate) params: Arc<Params>,
    pub(crate) positions: Vec<Position>,
    cache: RefCell<BundleCache>,
    ids: RefCell<Option<super::index::IdIndex>>,
}

fn corrupt(message: String) -> Error {
    Error::Store(StoreError::Corrupt(message))
}

impl Reader {
    pub fn open(dir: &Path) -> Result<Reader, Error> {
        let paths = Paths::new(dir);
        let store = Store::open(&paths.store())?;
        Reader::from_store(paths, store)
    }

    /// Opens the ledger for a command's last reads before the process exits: dropping the
    /// reader leaves the store open (see [`Store::leave_open_at_exit`]). The process must not
    /// open the ledger again.
    pub fn open_until_exit(dir: &Path) -> Result<Reader, Error> {
        let reader = Reader::open(dir)?;
        reader.store.leave_open_at_exit();
        Ok(reader)
    }

    pub(crate) fn from_store(paths: Paths, store: Store) -> Result<Reader, Error> {
        let head = store
            .head()?
            .ok_or_else(|| corrupt("the store has no head".into()))?;
        let first = store
            .bundle(0)?
            .ok_or_else(|| corrupt("entry bundle 0 is missing".into()))?;
        // Only the genesis record: every command opens a reader, and `verify` checks the rest.
        let entry = codec::bundle_entry(&first, 0)
            .map_err(|error| corrupt(format!("the log has no genesis record: {error}")))?;
        let genesis = decode_stored(0, entry)?;
        let Body::Genesis(first) = &genesis.event.body else {
            return Err(corrupt("record 0 is not a genesis record".into()));
        };
        let Genesis { ruleset, .. } = first.as_ref();
        crate::rules::state::validate_ruleset(ruleset).map_err(|error| corrupt(error.0))?;
        let params = Arc::new(Params::new(ruleset.clone()));
        let mut reader = Reader {
            paths,
            store: Arc::new(store),
            head,
            genesis,
            params,
            positions: Vec::new(),
            cache: RefCell::new(BundleCache {
                entries: Vec::new(),
            }),
            ids: RefCell::new(None),
        };
        reader.positions = reader.load_positions()?;
        Ok(reader)
    }

    fn load_positions(&self) -> Result<Vec<Position>, Error> {
        let bundles = self.head.size.div_ceil(BUNDLE_RECORDS) as usize;
        let mut positions = Vec::with_capacity(bundles);
        for item in self
            .store
            .derived_from(POSITIONS_PREFIX, &index::key(POSITIONS_PREFIX, 0))
        {
            let (key, bytes) = item?;
            let chunk = index::number_after(POSITIONS_PREFIX, &key)
                .ok_or_else(|| corrupt("a position-index key is malformed".into()))?;
            if chunk * POSITION_CHUNK != positions.len() as u64 {
                return Err(corrupt(format!(
                    "position-index chunk {chunk} is out of order"
                )));
            }
            for entry in bytes.chunks(Position::BYTES) {
                positions.push(
                    Position::from_bytes(entry)
                        .ok_or_else(|| corrupt("a position-index entry is malformed".into()))?,
                );
            }
        }
        if positions.len() != bundles {
            return Err(corrupt(format!(
                "the position index covers {} bundles; the log has {bundles}",
                positions.len()
            )));
        }
        Ok(positions)
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn size(&self) -> u64 {
        self.head.size
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    pub fn genesis(&self) -> &Record {
        &self.genesis
    }

    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn origin(&self) -> &str {
        match &self.genesis.event.body {
            Body::Genesis(genesis) => genesis.origin.as_str(),
            _ => "",
        }
    }

    pub fn disk_bytes(&self) -> u64 {
        self.store.disk_bytes()
    }

    /// The decoded records of a bundle, with their bytes; every record is checked to be well
    /// formed and to carry the sequence number of its place.
    pub(crate) fn bundle(&self, index: u64) -> Result<Arc<DecodedBundle>, Error> {
        if let Some((_, records)) = self
            .cache
            .borrow()
            .entries
            .iter()
            .find(|(i, _)| *i == index)
        {
            return Ok(records.clone());
        }
        let bytes = self
            .store
            .bundle(index)?
            .ok_or_else(|| corrupt(format!("entry bundle {index} is missing")))?;
        let records = Arc::new(decode_bundle(index, bytes)?);
        let mut cache = self.cache.borrow_mut();
        if cache.entries.len() >= CACHED_BUNDLES {
            cache.entries.remove(0);
        }
        cache.entries.push((index, records.clone()));
        Ok(records)
    }

    /// The id index, loaded on first use.
    pub(crate) fn load_ids(&self) -> Result<super::index::IdIndex, Error> {
        use super::index::{ID_CHUNK, IDS_PREFIX, IdIndex};
        let mut hashes = Vec::with_capacity(self.head.size as usize);
        for item in self
            .store
            .derived_from(IDS_PREFIX, &index::key(IDS_PREFIX, 0))
        {
            let (key, bytes) = item?;
            let chunk = index::number_after(IDS_PREFIX, &key)
                .ok_or_else(|| corrupt("an id-index key is malformed".into()))?;
            if chunk * ID_CHUNK != hashes.len() as u64 {
                return Err(corrupt(format!("id-index chunk {chunk} is out of order")));
            }
            IdIndex::read_chunk(&bytes, &mut hashes).map_err(corrupt)?;
        }
        let ids = IdIndex::from_hashes(hashes);
        if ids.len() != self.head.size {
            return Err(corrupt(format!(
                "the id index covers {} records; the log has {}",
                ids.len(),
                self.head.size
            )));
        }
        Ok(ids)
    }

    /// The sequence number of the record with this event id.
    pub fn find_id(&self, id: &crate::name::Id) -> Result<Option<u64>, Error> {
        if self.ids.borrow().is_none() {
            let ids = self.load_ids()?;
            *self.ids.borrow_mut() = Some(ids);
        }
        let candidates: Vec<u64> = self
            .ids
            .borrow()
            .as_ref()
            .expect("loaded above")
            .candidates(index::id_hash(id))
            .collect();
        for seq in candidates {
            if self.record(seq)?.event.id == *id {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    /// Drops cached bundles from `first` on.
    pub(crate) fn forget_bundles(&self, first: u64) {
        self.cache
            .borrow_mut()
            .entries
            .retain(|(index, _)| *index < first);
    }

    /// Record `seq` and its canonical bytes.
    pub fn record_with_bytes(&self, seq: u64) -> Result<(Vec<u8>, Record), Error> {
        if seq >= self.head.size {
            return Err(Error::Usage(format!(
                "there is no record {seq}; the log has {} records (0 to {})",
                self.head.size,
                self.head.size.saturating_sub(1)
            )));
        }
        let bundle = self.bundle(seq / BUNDLE_RECORDS)?;
        bundle
            .get((seq % BUNDLE_RECORDS) as usize)
            .map(|(bytes, record)| (bytes.to_vec(), record.clone()))
            .ok_or_else(|| corrupt(format!("record {seq} is missing from its bundle")))
    }

    /// One record, decoding only its own entry when its bundle is not cached (walks back along
    /// back-links visit one record in many bundles).
    pub fn record_alone(&self, seq: u64) -> Result<Record, Error> {
        let index = seq / BUNDLE_RECORDS;
        if let Some((_, records)) = self
            .cache
            .borrow()
            .entries
            .iter()
            .find(|(cached, _)| *cached == index)
        {
            if let Some((_, record)) = records.get((seq % BUNDLE_RECORDS) as usize) {
                return Ok(record.clone());
            }
        }
        if seq >= self.head.size {
            return Err(corrupt(format!("record {seq} is beyond the log")));
        }
        let bundle = self
            .store
            .bundle(index)?
            .ok_or_else(|| corrupt(format!("entry bundle {index} is missing")))?;
        let entry = codec::bundle_entry(&bundle, (seq % BUNDLE_RECORDS) as usize)
            .map_err(|error| corrupt(format!("bundle {index}: {error}")))?;
        decode_stored(seq, entry)
    }

    pub fn record(&self, seq: u64) -> Result<Record, Error> {
        self.record_with_bytes(seq).map(|(_, record)| record)
    }

    /// Calls `visit` with each record in `from..to`, in order. A long range is read and
    /// decoded on helper threads ([`decoders`]), bundles ahead of `visit`: decoding costs
    /// more than folding, and they then share the machine's cores.
    pub fn for_each(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(&[u8], &Record) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.walk(
            from..to,
            Direction::Forward,
            || Ok(()),
            |_, bytes, record| visit(bytes, record),
        )
    }

    /// Calls `visit` with each record in `range` (clipped to the log), in `direction`, and the
    /// value `start` made, which it returns. `start` runs once the range's first bundles are
    /// being read and decoded on helper threads: an as-of query decodes its snapshot while the
    /// records it folds are decoded beside it.
    fn walk<S>(
        &self,
        range: Range<u64>,
        direction: Direction,
        start: impl FnOnce() -> Result<S, Error>,
        mut visit: impl FnMut(&mut S, &[u8], &Record) -> Result<(), Error>,
    ) -> Result<S, Error> {
        let range = range.start..range.end.min(self.head.size);
        if range.is_empty() {
            return start();
        }
        let (first, last) = (
            range.start / BUNDLE_RECORDS,
            (range.end - 1) / BUNDLE_RECORDS,
        );
        // The bundle visited `step`-th.
        let nth = |step: u64| match direction {
            Direction::Forward => first + step,
            Direction::Backward => last - step,
        };
        let count = last - first + 1;
        if count <= HELPERS_FROM_BUNDLES {
            let mut state = start()?;
            for step in 0..count {
                let index = nth(step);
                let bundle = self.bundle(index)?;
                visit_bundle(&mut state, index, &bundle, &range, direction, &mut visit)?;
            }
            return Ok(state);
        }
        let store: &Store = &self.store;
        let decoders = decoders();
        std::thread::scope(|scope| {
            // One lane per decoding thread: decoder `k` takes the bundles visited `k`-th,
            // `k + decoders`-th, and so on, and the visitor takes them from the lanes in turn,
            // so they arrive in the order of the walk.
            let lanes: Vec<_> = (0..decoders)
                .map(|decoder| {
                    let (sender, receiver) = std::sync::mpsc::sync_channel(DECODED_AHEAD_BUNDLES);
                    // Visited bundles go back to their decoder to be freed where they were
                    // allocated: freed here, each of their allocations would take the lock of
                    // the decoder's heap while it allocates from it. A replay of 1,000,000
                    // records took about half as long once they went back
                    // (tools/bench/PROFILE.md, goal 2).
                    let (spent_sender, spent) =
                        std::sync::mpsc::sync_channel::<DecodedBundle>(DECODED_AHEAD_BUNDLES);
                    scope.spawn(move || {
                        for step in (decoder..count).step_by(decoders as usize) {
                            spent.try_iter().for_each(drop);
                            let index = nth(step);
                            let decoded = store
                                .bundle(index)
                                .map_err(Error::Store)
                                .and_then(|bytes| {
                                    bytes.ok_or_else(|| {
                                        corrupt(format!("entry bundle {index} is missing"))
                                    })
                                })
                                .and_then(|bytes| decode_bundle(index, bytes));
                            let failed = decoded.is_err();
                            // A closed channel means the visitor stopped: so does the decoder.
                            if sender
                                .send(decoded.map(|records| (index, records)))
                                .is_err()
                                || failed
                            {
                                break;
                            }
                        }
                        // The visitor stops taking from this lane when this sender is gone;
                        // then it hands back its last bundles and closes the return channel.
                        drop(sender);
                        spent.iter().for_each(drop);
                    });
                    (receiver, spent_sender)
                })
                .collect();
            let mut state = start()?;
            for step in 0..count {
                let (receiver, spent_sender) = &lanes[(step % decoders) as usize];
                // A decoder stops early only after sending an error, which an earlier turn
                // returned, or by panicking, which the scope then passes on.
                let item = receiver
                    .recv()
                    .expect("a decoder sends each bundle of its lane or stops at an error");
                let (index, records) = item?;
                assert_eq!(index, nth(step), "bundles arrive in the walk's order");
                visit_bundle(&mut state, index, &records, &range, direction, &mut visit)?;
                // The decoder takes bundles back until this side's handle is dropped; when its
                // queue is full (or it has panicked), the bundle is freed here instead.
                let _ = spent_sender.try_send(records);
            }
            drop(lanes);
            Ok(state)
        })
    }

    /// The first sequence number whose record, or an earlier one, lies in the timeline after
    /// `date`: every record before it is dated on or before `date` (ARCHITECTURE.md, "As-of").
    pub fn first_after(&self, date: Date) -> Result<u64, Error> {
        let bundle = self
            .positions
            .partition_point(|position| position.max_date <= date) as u64;
        if bundle * BUNDLE_RECORDS >= self.head.size {
            return Ok(self.head.size);
        }
        let mut max = if bundle == 0 {
            crate::rules::state::beginning()
        } else {
            self.positions[bundle as usize - 1].max_date
        };
        let records = self.bundle(bundle)?;
        for record in records.records() {
            max = max.max(TimelineKey::of(record).date);
            if max > date {
                return Ok(record.seq);
            }
        }
        Err(corrupt(format!(
            "position index entry {bundle} disagrees with its bundle"
        )))
    }

    /// The number of records recorded at or before `instant`.
    pub fn size_known_at(&self, instant: Instant) -> Result<u64, Error> {
        let bundle = self
            .positions
            .partition_point(|position| position.last_recorded_at <= instant)
            as u64;
        if bundle * BUNDLE_RECORDS >= self.head.size {
            return Ok(self.head.size);
        }
        let records = self.bundle(bundle)?;
        for record in records.records() {
            if record.recorded_at > instant {
                return Ok(record.seq);
            }
        }
        Err(corrupt(format!(
            "position index entry {bundle} disagrees with its bundle"
        )))
    }

    /// The size and byte length of the latest stored prefix snapshot at or before `size`; for
    /// none, the genesis record's (size 1, no bytes).
    pub(crate) fn last_snapshot(&self, size: u64) -> Result<(u64, u64), Error> {
        let found = self
            .store
            .derived_at_or_before(SNAPSHOT_PREFIX, &index::snapshot_key(size, u32::MAX))?;
        let Some((key, last_chunk)) = found else {
            return Ok((1, 0));
        };
        let at = snapshot_size(&key)?;
        let chunk = key
            .get(SNAPSHOT_PREFIX.len() + 8..)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(malformed_snapshot_key)?;
        let bytes = u64::from(chunk) * index::SNAPSHOT_CHUNK_BYTES as u64 + last_chunk.len() as u64;
        Ok((at, bytes))
    }

    /// The latest stored prefix snapshot at or before `size`: its size, state and links.
    pub(crate) fn snapshot_at_or_before(&self, size: u64) -> Result<(u64, State, Links), Error> {
        self.snapshot_or_empty(self.snapshot_size_at_or_before(size)?)
    }

    /// The prefix snapshot after the first `at` records, or without one the empty state after
    /// the genesis record.
    fn snapshot_or_empty(&self, at: Option<u64>) -> Result<(u64, State, Links), Error> {
        match at {
            Some(at) => self.load_snapshot(at),
            None => Ok((
                1,
                State::with_params(self.params.clone()),
                self.genesis_links(),
            )),
        }
    }

    /// The size of the latest prefix snapshot of at most `size` records, if there is one.
    fn snapshot_size_at_or_before(&self, size: u64) -> Result<Option<u64>, Error> {
        let found = self
            .store
            .derived_at_or_before(SNAPSHOT_PREFIX, &index::snapshot_key(size, u32::MAX))?;
        found.map(|(key, _)| snapshot_size(&key)).transpose()
    }

    /// The size of the earliest prefix snapshot of at least `size` records, if there is one.
    fn snapshot_size_at_or_after(&self, size: u64) -> Result<Option<u64>, Error> {
        let start = index::snapshot_key(size, 0);
        match self.store.derived_from(SNAPSHOT_PREFIX, &start).next() {
            Some(item) => snapshot_size(&item?.0).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes the prefix snapshot taken after the first `at` records.
    fn load_snapshot(&self, at: u64) -> Result<(u64, State, Links), Error> {
        let prefix = index::key(SNAPSHOT_PREFIX, at);
        let mut bytes = Vec::new();
        for item in self.store.derived_from(&prefix, &prefix) {
            bytes.extend_from_slice(&item?.1);
        }
        let snapshot: PrefixSnapshot = codec::from_bytes(&bytes)
            .map_err(|error| corrupt(format!("the snapshot at {at} {error}")))?;
        let state = snapshot::decode(&snapshot.state, self.params.clone())
            .map_err(|error| corrupt(format!("the snapshot state at {at} {error}")))?;
        let links = Links {
            last: snapshot.links.into_iter().collect(),
        };
        Ok((at, state, links))
    }

    /// The fold of the first `size` records, from the nearest prefix snapshot on either side:
    /// records after an earlier snapshot are folded in; records before a later one are taken out
    /// again, latest first (every record folds out exactly, ARCHITECTURE.md, "The state is
    /// commutative"). With snapshots on both sides, at most half their spacing is read.
    fn state_of_prefix(&self, size: u64) -> Result<State, Error> {
        let before = self.snapshot_size_at_or_before(size)?;
        let after = self
            .snapshot_size_at_or_after(size)?
            .filter(|after| after - size < size.saturating_sub(before.unwrap_or(1)));
        let (range, direction, snapshot) = match after {
            None => (before.unwrap_or(1)..size, Direction::Forward, before),
            Some(after) => (size..after, Direction::Backward, Some(after)),
        };
        // The snapshot is decoded while the first records to fold are.
        let load = || {
            let (at, state, _) = self.snapshot_or_empty(snapshot)?;
            assert_eq!(at, snapshot.unwrap_or(1));
            Ok(state)
        };
        self.walk(range, direction, load, |state, _, record| {
            match direction {
                Direction::Forward => state.apply(record),
                Direction::Backward => state.unapply(record),
            }
            .map_err(|error| fold_failure(record, error))
        })
    }

    fn genesis_links(&self) -> Links {
        Links::default()
    }

    /// The state of the first `size` records folded from the genesis record on, ignoring every
    /// snapshot: what rebuilding the derived state from the log alone costs.
    pub fn replay_from_genesis(&self, size: u64) -> Result<State, Error> {
        let mut state = State::with_params(self.params.clone());
        self.for_each(1, size, |_, record| {
            state
                .apply(record)
                .map_err(|error| fold_failure(record, error))
        })?;
        Ok(state)
    }

    /// The state and links of the first `size` records: a snapshot, then a replay.
    pub fn prefix_state(&self, size: u64) -> Result<(State, Links), Error> {
        let (at, mut state, mut links) = self.snapshot_at_or_before(size)?;
        self.for_each(at, size, |_, record| {
            state
                .apply(record)
                .map_err(|error| fold_failure(record, error))?;
            links.link(record);
            Ok(())
        })?;
        Ok((state, links))
    }

    /// The state as of `date`, as known when the log had `size` records.
    pub fn state_at(&self, date: Date, size: u64) -> Result<State, Error> {
        let size = size.min(self.head.size);
        let first_later = self.first_after(date)?.min(size);
        let mut state = self.state_of_prefix(first_later)?;
        // The records from `first_later` on that belong before `date` are late records, which
        // lie scattered over many bundles; the late-record index holds their bytes. Only the
        // bundles whose earliest late record is dated on or before `date` are looked at, so the
        // length of the log after `date` costs a walk of the position index, not a read of
        // every late record in it.
        let mut bundle = first_later / BUNDLE_RECORDS;
        let bundles = size.div_ceil(BUNDLE_RECORDS);
        let holds_late_record = |bundle: u64| {
            self.positions[bundle as usize]
                .earliest_late_date
                .is_some_and(|late| late <= date)
        };
        while bundle < bundles {
            if !holds_late_record(bundle) {
                bundle += 1;
                continue;
            }
            let run_start = bundle;
            while bundle < bundles && holds_late_record(bundle) {
                bundle += 1;
            }
            let from = first_later.max(run_start * BUNDLE_RECORDS);
            let to = size.min(bundle * BUNDLE_RECORDS);
            self.fold_late_records(&mut state, date, from..to)?;
        }
        Ok(state)
    }

    /// Folds into `state` the late records among `seqs` whose timeline date is on or before
    /// `date`, from the late-record index.
    fn fold_late_records(
        &self,
        state: &mut State,
        date: Date,
        seqs: std::ops::Range<u64>,
    ) -> Result<(), Error> {
        for item in self
            .store
            .derived_from(LATE_PREFIX, &index::key(LATE_PREFIX, seqs.start))
        {
            let (key, value) = item?;
            let seq = index::number_after(LATE_PREFIX, &key)
                .ok_or_else(|| corrupt("a late-record key is malformed".into()))?;
            if seq >= seqs.end {
                break;
            }
            let (timeline, bytes) = index::parse_late_value(&value).ok_or_else(|| {
                corrupt(format!(
                    "the late-record entry of record {seq} is malformed"
                ))
            })?;
            if timeline <= date {
                let record = decode_stored(seq, bytes)?;
                state
                    .apply(&record)
                    .map_err(|error| fold_failure(&record, error))?;
            }
        }
        Ok(())
    }

    /// The RFC 6962 inclusion proof of record `seq` in the tree of the first `size` records.
    pub fn prove_record(&self, seq: u64, size: u64) -> Result<Vec<[u8; 32]>, Error> {
        let tree = self.tree_at(size)?;
        let reader = tree.reader(self);
        tlog_tiles::prove_record(size, seq, &reader)
            .map(|proof| proof.into_iter().map(|hash| hash.0).collect())
            .map_err(|error| {
                corrupt(format!(
                    "cannot prove record {seq} in {size} records: {error}"
                ))
            })
    }

    /// The RFC 6962 consistency proof from the first `old` records to the first `new`.
    pub fn prove_tree(&self, old: u64, new: u64) -> Result<Vec<[u8; 32]>, Error> {
        let tree = self.tree_at(new)?;
        let reader = tree.reader(self);
        tlog_tiles::prove_tree(new, old, &reader)
            .map(|proof| proof.into_iter().map(|hash| hash.0).collect())
            .map_err(|error| {
                corrupt(format!(
                    "cannot prove {old} records consistent with {new}: {error}"
                ))
            })
    }

    /// The latest checkpoint this ledger signed, if any.
    pub fn last_checkpoint(&self) -> Result<Option<String>, Error> {
        Ok(self.store.checkpoint()?)
    }

    /// The ledger's verifier key (C2SP vkey text).
    pub fn verifier_key(&self) -> Result<String, Error> {
        let path = self.paths.verifier_key();
        std::fs::read_to_string(&path)
            .map(|text| text.trim().to_string())
            .map_err(|error| Error::Store(StoreError::Io(format!("{}: {error}", path.display()))))
    }

    /// The Merkle root of the first `size` records.
    pub fn root_at(&self, size: u64) -> Result<[u8; 32], Error> {
        let size = size.min(self.head.size);
        if size == self.head.size {
            return Ok(self.head.root);
        }
        let tree = self.tree_at(size)?;
        Ok(tree.root())
    }

    /// The tree of the first `size` records, its right edge read from the stored tiles.
    pub(crate) fn tree_at(&self, size: u64) -> Result<Tree, Error> {
        Tree::from_edge(size, |level, index, width| {
            let data = self
                .store
                .tile(level, index)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("tile {level}/{index} is missing"))?;
            if data.len() < width * 32 {
                return Err(format!(
                    "tile {level}/{index} is shorter than {width} hashes"
                ));
            }
            Ok(data[..width * 32].to_vec())
        })
        .map_err(corrupt)
    }
}

impl TileSource for Reader {
    fn full_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
        self.store
            .tile(level, index)
            .map(|tile| tile.map(|bytes| bytes.to_vec()))
            .map_err(|error| error.to_string())
    }
}

/// Decodes every record of a stored bundle (as [`decode_stored`] does), each as its entry is
/// found ([`codec::BundleEntries`]). A bundle whose framing is broken is reported as such, even
/// where a record before the break does not decode.
pub(crate) fn decode_bundle(index: u64, bytes: Bytes) -> Result<DecodedBundle, Error> {
    let framing = |error: codec::CodecError| corrupt(format!("bundle {index}: {error}"));
    let mut entries = codec::BundleEntries::new(&bytes);
    let mut records = Vec::with_capacity(BUNDLE_RECORDS as usize);
    for (offset, entry) in (&mut entries).enumerate() {
        let range = entry.map_err(framing)?;
        let seq = index * BUNDLE_RECORDS + offset as u64;
        let decoded = codec::push_stored_record(&bytes[range.clone()], &mut records, range)
            .map_err(|error| stored_failure(seq, error))
            .and_then(|()| check_seq(seq, &records[offset].1));
        if let Err(error) = decoded {
            return Err(entries.find_map(Result::err).map_or(error, framing));
        }
    }
    Ok(DecodedBundle { bytes, records })
}

/// The record count a prefix snapshot's key names.
fn snapshot_size(key: &[u8]) -> Result<u64, Error> {
    index::number_after(SNAPSHOT_PREFIX, key).ok_or_else(malformed_snapshot_key)
}

fn malformed_snapshot_key() -> Error {
    corrupt("a snapshot key is malformed".into())
}

/// A stored record that does not fold into the state: the store is corrupt.
fn fold_failure(record: &Record, error: FoldError) -> Error {
    corrupt(format!("record {} does not fold: {error}", record.seq))
}

/// Decodes the bytes stored for record `seq` ([`codec::decode_stored_record`]: well formed, not
/// re-encoded), checking its sequence number.
pub(crate) fn decode_stored(seq: u64, bytes: &[u8]) -> Result<Record, Error> {
    let record = codec::decode_stored_record(bytes).map_err(|error| stored_failure(seq, error))?;
    check_seq(seq, &record)?;
    Ok(record)
}

/// The stored bytes of record `seq` do not decode: the store is corrupt.
fn stored_failure(seq: u64, error: codec::CodecError) -> Error {
    corrupt(format!("record {seq} {error}"))
}

/// The record stored at position `seq` must say it is record `seq`.
fn check_seq(seq: u64, record: &Record) -> Result<(), Error> {
    if record.seq != seq {
        return Err(corrupt(format!(
            "the record at position {seq} says it is record {}",
            record.seq
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `verify` compares a stored prefix snapshot part by part; the parts must be exactly what
    /// encoding the whole gives, and a snapshot cut short or with a wrong length has none.
    #[test]
    fn a_prefix_snapshot_splits_into_its_state_and_links() {
        let links = vec![(Subject::Tiers, 7), (Subject::Tiers, 9)];
        for state in [vec![], vec![1, 2, 3], vec![0xAB; 300]] {
            let bytes = codec::to_bytes(&PrefixSnapshot {
                state: state.clone(),
                links: links.clone(),
            });
            let (state_bytes, links_bytes) = PrefixSnapshot::split(&bytes).unwrap();
            assert_eq!(state_bytes, &state[..]);
            assert_eq!(links_bytes, &codec::to_bytes(&links)[..]);
            assert!(PrefixSnapshot::split(&bytes[..7]).is_none());
            if !state.is_empty() {
                // The state's last byte missing.
                assert!(PrefixSnapshot::split(&bytes[..8 + state.len() - 1]).is_none());
            }
        }
        let mut long = codec::to_bytes(&PrefixSnapshot {
            state: vec![1],
            links,
        });
        long[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(PrefixSnapshot::split(&long).is_none());
    }
}
