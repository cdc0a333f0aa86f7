//! The most recent records of a log, as bytes and back-links, for late records and voids.
//!
//! A late record or a void needs the records that sit after it in the timeline and concern its
//! subjects. Nearly always they are recent, so the writer and the verifier keep, for the last
//! [`RECENT_DAYS`] of the timeline (at least [`CAPACITY`] records, at most 16 times that or an
//! eighth of the log), what finding them takes: each record's place in the timeline and the
//! links a walk follows. Every record carries, per subject, the sequence number of the
//! subject's previous record (its back-links, FORMAT.md), so an entity's recent records are a
//! walk back from its latest one. A country's counters are read only for its allocation, so
//! its walk follows a chain of its own through the records that touch an allocation, which the
//! window keeps. Only a walk reaching further back than the window reads the store.
//!
//! The records themselves are kept as their canonical bytes and decoded when a walk finds them
//! (on a 1,000,000-event import, about 20,000 in all). Decoded records cost about 400 bytes and
//! a dozen allocations each (some 25 MiB for the 65,536 records the window then kept), and
//! freeing each one as it left the window was a tenth of an import's time on the writer's
//! thread; here a record is its bytes and a few dozen more in flat queues, and leaving frees at
//! most a whole block of bytes (64 KiB of the writer's copies, or an entry bundle the verifier's
//! reading thread shared with the window). Reading the found records
//! back from the store instead was slower still: a read waits for the commit running on the
//! helper thread (sled serializes its transactions with reads).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use crate::codec::{self, Record, Subject};
use crate::country::Country;
use crate::date::Date;
use crate::name::Id;
use crate::rules::{Affected, Later, TimelineKey, touches_allocation};

/// Records kept at least, whatever their dates: about 9 MiB. Past it the window keeps
/// [`RECENT_DAYS`] of the timeline, which is what late records and voids walk back through
/// (about 30,000 records on the benchmark's 1,000,000-event ledger, 950 a day). 65,536 until
/// 2026-12-03, when the import's peak memory needed the room (tools/bench/PROFILE.md, goal 6):
/// interleaved 1M imports peaked at 225 to 237 MiB with 32,768 and sled's buffers kept for
/// reuse, against 234 to 248 MiB with 65,536 and neither.
pub const CAPACITY: usize = 1 << 15;
/// Past [`CAPACITY`], the window keeps the records of the last this many days of the timeline
/// (a month of late reports): a late record's walk back to its date then stays in memory
/// however many records a day the ledger holds, instead of reading the store record by record
/// (a sled read and a scan of the record's bundle each). A 32nd of the log stood in for it
/// until 2026-12-03, but a share covers a month only once the log is long enough: importing the
/// benchmark's 10,000,000 events (about 9,200 a day, late records reaching back up to 30
/// days), a 32nd covers 30 days only past about 8.9 million records, and until then the walks
/// of the later late records left the window for the store. Interleaved, four imports each: the
/// deciding step took 46.6 to 50.3 s before and 40.4 to 44.6 s after, the whole import 52.0
/// to 56.2 s against 46.3 to 50.4 s, peaking at 524 to 529 MiB against 455 to 467 MiB.
const RECENT_DAYS: u16 = 32;
/// Past [`CAPACITY`], the window never keeps more than the larger of [`CEILING_FLOORS`] times
/// its floor and this share of the log (an eighth), so that a ledger whose records crowd onto a
/// few dates costs at most about 150 MiB, or about 35 bytes per record of a longer log.
const LOG_SHARE: u64 = 8;
/// The window may always grow to this many times its floor (524,288 records) to keep its
/// recent days. With the share alone, a long log's early part had too small a window for a
/// month: importing the benchmark's 10,000,000 events (9,200 a day), an eighth of the log held
/// 32 days only past 2.35 million records, and before that the late records' walks left the
/// window for the store, one record read at a time. In a profile of that import, those walks
/// (`walk_beyond`) took three quarters of all samples for a tenth of its time
/// (tools/bench/PROFILE.md, goal 7).
const CEILING_FLOORS: usize = 16;

/// A link to no earlier record.
const NONE: u64 = u64::MAX;

pub struct Window {
    /// Records kept whatever their dates (or, when `grows` is false, the most kept).
    floor: usize,
    /// Whether the window keeps the recent days past its floor, up to its ceiling
    /// ([`LOG_SHARE`]); not for a test's small window of fixed capacity.
    grows: bool,
    /// The sequence number of `entries[0]`.
    first: u64,
    /// The record the window began with (at creation, or when a rollback reached past it):
    /// the allocation chains know no record before it. Record 0 is the genesis, which touches
    /// no allocation, so a window beginning at 0 or 1 misses none.
    origin: u64,
    /// Each record's place in the timeline, and where its links end in `links`.
    entries: VecDeque<Entry>,
    /// The links of every entry, oldest first; `links[0]` has the number `links_first` in the
    /// stream of all links ever pushed.
    links: VecDeque<Link>,
    links_first: u64,
    /// The canonical bytes of every entry.
    blocks: Blocks,
    /// Each country's latest record that touches an allocation.
    allocation_last: HashMap<Country, u64, foldhash::fast::RandomState>,
    /// A small number per entity ever seen, so that a link names one in four bytes.
    entity_numbers: HashMap<Id, u32, foldhash::fast::RandomState>,
    /// The latest timeline date of any record pushed, and the date [`RECENT_DAYS`] before it:
    /// past the floor, records dated before that one leave. A rolled-back record's date is not
    /// taken back: the window is a cache, and only how much it holds would change.
    latest: Option<Date>,
    leaves_before: Option<Date>,
}

#[derive(Clone, Copy)]
struct Entry {
    key: TimelineKey,
    /// One past the number of this record's last link in the stream of links.
    links_end: u64,
    /// Where the record's bytes are: the block's number in the stream of blocks, and the
    /// range within it.
    block: u64,
    start: u32,
    end: u32,
}

/// The bytes of a block the caller holds and the window may keep: a verified entry bundle.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A record's canonical bytes as [`Window::push`] takes them.
pub enum RecordBytes<'a> {
    /// Bytes the window copies (the writer's staged records, an export's lines).
    Copy(&'a [u8]),
    /// Bytes within a block the window keeps a reference to instead of copying them: the
    /// verifier's entry bundles. Copying every record's bytes was about 4% of `verify`'s
    /// replaying thread (tools/bench/PROFILE.md, goal 3).
    Within(&'a SharedBytes, Range<usize>),
}

/// Bytes the window owns are copied into blocks of this size (or of one record, if larger),
/// which are freed whole once none of their records is left.
const OWNED_BLOCK_BYTES: usize = 64 * 1024;

enum Block {
    Shared(SharedBytes),
    /// Never grown past its first capacity, so that copying in never moves what it holds.
    Owned(Vec<u8>),
}

impl Block {
    fn bytes(&self) -> &[u8] {
        match self {
            Block::Shared(shared) => (**shared).as_ref(),
            Block::Owned(owned) => owned,
        }
    }
}

/// The window's blocks of bytes, oldest first; `blocks[0]` has the number `first` in the
/// stream of all blocks ever added.
#[derive(Default)]
struct Blocks {
    blocks: VecDeque<Block>,
    first: u64,
}

impl Blocks {
    /// Adds a record's bytes; returns where they are (block number, start, end).
    fn add(&mut self, bytes: RecordBytes<'_>) -> (u64, u32, u32) {
        let offset = |number: usize| u32::try_from(number).expect("a block is under 4 GiB");
        match bytes {
            RecordBytes::Copy(bytes) => {
                let fits = matches!(self.blocks.back(),
                    Some(Block::Owned(owned)) if owned.capacity() - owned.len() >= bytes.len());
                if !fits {
                    self.blocks.push_back(Block::Owned(Vec::with_capacity(
                        OWNED_BLOCK_BYTES.max(bytes.len()),
                    )));
                }
                let Some(Block::Owned(owned)) = self.blocks.back_mut() else {
                    unreachable!("an owned block was just made the last")
                };
                let start = owned.len();
                owned.extend_from_slice(bytes);
                let end = owned.len();
                (self.last(), offset(start), offset(end))
            }
            RecordBytes::Within(shared, range) => {
                assert!(range.end <= (**shared).as_ref().len());
                let same = matches!(self.blocks.back(),
                    Some(Block::Shared(last)) if std::ptr::addr_eq(Arc::as_ptr(last), Arc::as_ptr(shared)));
                if !same {
                    self.blocks.push_back(Block::Shared(shared.clone()));
                }
                (self.last(), offset(range.start), offset(range.end))
            }
        }
    }

    /// The number of the last block.
    fn last(&self) -> u64 {
        self.first + self.blocks.len() as u64 - 1
    }

    fn get(&self, entry: &Entry) -> &[u8] {
        let index = usize::try_from(entry.block - self.first).expect("in memory");
        &self.blocks[index].bytes()[entry.start as usize..entry.end as usize]
    }

    /// Frees the blocks before `oldest`'s, or every block when no entry is left.
    fn forget_before(&mut self, oldest: Option<&Entry>) {
        let keep_from = oldest.map_or(self.first + self.blocks.len() as u64, |entry| entry.block);
        while self.first < keep_from {
            self.blocks.pop_front();
            self.first += 1;
        }
    }

    /// Frees what lies after `newest`'s bytes (every block when no entry is left): what a
    /// rollback removed.
    fn truncate_after(&mut self, newest: Option<&Entry>) {
        let Some(newest) = newest else {
            self.first += self.blocks.len() as u64;
            self.blocks.clear();
            return;
        };
        while self.last() > newest.block {
            self.blocks.pop_back();
        }
        if let Some(Block::Owned(owned)) = self.blocks.back_mut() {
            owned.truncate(newest.end as usize);
        }
    }
}

/// One step back from a record, on the chain a walk follows.
#[derive(Clone, Copy)]
struct Link {
    chain: Chain,
    /// The previous record on this chain, or [`NONE`].
    previous: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// An entity's back-links (the entity by its number in `entity_numbers`).
    Entity(u32),
    /// A country's records that touch its allocation: `previous` is the country's previous
    /// such record.
    Allocation(Country),
    /// The first record touching the country's allocation since the window began at a record
    /// other than the genesis (a ledger opened on an existing log): the window never saw the
    /// ones before it, so `previous` is the record's own back-link for the country, from which
    /// a walk goes on along the country's back-links through the store.
    AllocationFromLinks(Country),
}

impl Link {
    fn previous(self) -> Option<u64> {
        (self.previous != NONE).then_some(self.previous)
    }
}

impl Window {
    /// An empty window whose next record will be `first`.
    pub fn new(first: u64) -> Window {
        Window::empty(first, CAPACITY, true)
    }

    /// A window like [`Window::new`]'s with another floor than [`CAPACITY`]: tests see its
    /// recent days and its ceiling without pushing 32,768 records first.
    #[doc(hidden)]
    pub fn with_floor(first: u64, floor: usize) -> Window {
        Window::empty(first, floor, true)
    }

    /// A window that keeps at most `capacity` records, however long the log.
    pub fn with_capacity(first: u64, capacity: usize) -> Window {
        Window::empty(first, capacity, false)
    }

    fn empty(first: u64, floor: usize, grows: bool) -> Window {
        Window {
            floor: floor.max(1),
            grows,
            first,
            origin: first,
            entries: VecDeque::new(),
            links: VecDeque::new(),
            links_first: 0,
            blocks: Blocks::default(),
            allocation_last: HashMap::default(),
            entity_numbers: HashMap::default(),
            latest: None,
            leaves_before: None,
        }
    }

    /// The most records the window keeps now: its floor; or, if it grows, [`CEILING_FLOORS`]
    /// times its floor or an eighth of the log, whichever is more.
    fn capacity(&self) -> usize {
        let share = usize::try_from(self.end() / LOG_SHARE).unwrap_or(usize::MAX);
        if self.grows {
            (self.floor * CEILING_FLOORS).max(share)
        } else {
            self.floor
        }
    }

    /// Whether the oldest record leaves before the next one enters: when the window is at its
    /// ceiling, or past its floor and the oldest record is dated more than [`RECENT_DAYS`]
    /// before the latest date the window has seen (the next record's included).
    fn full(&self) -> bool {
        // A window that does not grow has its floor for its ceiling: one of these two holds.
        let len = self.entries.len();
        if len < self.floor {
            return false;
        }
        if len >= self.capacity() {
            return true;
        }
        self.entries
            .front()
            .zip(self.leaves_before)
            .is_some_and(|(oldest, leaves_before)| oldest.key.date < leaves_before)
    }

    /// The first sequence number the window holds (or would hold).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// One past the last sequence number.
    pub fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Record `seq`, if the window holds it.
    pub fn get(&self, seq: u64) -> Option<Arc<Record>> {
        self.index(seq).map(|index| Arc::new(self.decode(index).0))
    }

    /// Where the entry at `index` lies in a queue whose first element has the number `first`
    /// in its stream, `end` giving the number one past an entry's last element.
    fn span(&self, index: usize, first: u64, end: fn(&Entry) -> u64) -> Range<usize> {
        let start = index
            .checked_sub(1)
            .map_or(first, |previous| end(&self.entries[previous]));
        let offset = |number: u64| usize::try_from(number - first).expect("in memory");
        offset(start)..offset(end(&self.entries[index]))
    }

    /// The record at `index`, decoded from its bytes, with its subjects.
    fn decode(&self, index: usize) -> (Record, codec::Subjects) {
        let bytes = self.blocks.get(&self.entries[index]);
        // The bytes were encoded by the writer or decoded by the verifier before they came in.
        let decoded = codec::decode_record_subjects(bytes).expect("the window's bytes decode");
        assert_eq!(decoded.0.seq, self.first + index as u64);
        decoded
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let index = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (index < self.entries.len()).then_some(index)
    }

    /// The links of the entry at `index`.
    fn links_of(&self, index: usize) -> impl Iterator<Item = Link> + '_ {
        let span = self.span(index, self.links_first, |entry| entry.links_end);
        self.links.range(span).copied()
    }

    /// Adds the next record, whose sorted subjects are `subjects` and canonical bytes `bytes`,
    /// forgetting the oldest when full.
    pub fn push(&mut self, record: &Record, subjects: &[Subject], bytes: RecordBytes<'_>) {
        assert_eq!(record.seq, self.end(), "records enter the window in order");
        assert_eq!(
            record.links.len(),
            subjects.len(),
            "a record has one back-link per subject"
        );
        // The oldest leave before the newest enters, so neither queue grows past what the
        // window keeps (a queue one past a power of two would double its buffer).
        let incoming = TimelineKey::of(record);
        if self.latest.is_none_or(|latest| latest < incoming.date) {
            self.latest = Some(incoming.date);
            self.leaves_before = incoming.date.days_before(RECENT_DAYS);
        }
        while self.full() {
            let oldest = self.entries.pop_front().expect("the window is full");
            while self.links_first < oldest.links_end {
                self.links.pop_front();
                self.links_first += 1;
            }
            self.blocks.forget_before(self.entries.front());
            self.first += 1;
        }
        let allocation = touches_allocation(record);
        for (subject, previous) in subjects.iter().zip(&record.links) {
            let link = match subject {
                Subject::Entity(entity) => {
                    let number = match self.entity_numbers.get(entity) {
                        Some(number) => *number,
                        None => {
                            let number = u32::try_from(self.entity_numbers.len())
                                .expect("fewer than 2^32 entities");
                            self.entity_numbers.insert(entity.clone(), number);
                            number
                        }
                    };
                    Link {
                        chain: Chain::Entity(number),
                        previous: previous.unwrap_or(NONE),
                    }
                }
                Subject::Country(country) if allocation => {
                    match self.allocation_last.insert(*country, record.seq) {
                        Some(seq) => Link {
                            chain: Chain::Allocation(*country),
                            previous: seq,
                        },
                        None if self.origin <= 1 => Link {
                            chain: Chain::Allocation(*country),
                            previous: NONE,
                        },
                        None => Link {
                            chain: Chain::AllocationFromLinks(*country),
                            previous: previous.unwrap_or(NONE),
                        },
                    }
                }
                _ => continue,
            };
            self.links.push_back(link);
        }
        let (block, start, end) = self.blocks.add(bytes);
        self.entries.push_back(Entry {
            key: incoming,
            links_end: self.links_first + self.links.len() as u64,
            block,
            start,
            end,
        });
    }

    /// Removes the records from `next` on (a rolled-back batch). When the window has already
    /// forgotten records older than them, it starts afresh at `next`.
    pub fn pop_to(&mut self, next: u64) {
        while self.end() > next && !self.entries.is_empty() {
            let newest = self.entries.len() - 1;
            let links = self.span(newest, self.links_first, |entry| entry.links_end);
            for link in self.links.drain(links) {
                match (link.chain, link.previous()) {
                    (Chain::Allocation(country), Some(seq)) => {
                        self.allocation_last.insert(country, seq);
                    }
                    (Chain::Allocation(country) | Chain::AllocationFromLinks(country), _) => {
                        self.allocation_last.remove(&country);
                    }
                    (Chain::Entity(_), _) => {}
                }
            }
            self.entries.pop_back();
        }
        self.blocks.truncate_after(self.entries.back());
        if self.end() != next {
            let entity_numbers = std::mem::take(&mut self.entity_numbers);
            *self = Window::empty(next, self.floor, self.grows);
            self.entity_numbers = entity_numbers;
        }
        debug_assert!(self.origin <= self.first);
    }

    /// The records from `from` on (at least the window's first) that concern `reads` and sit
    /// after `key` in the timeline, in timeline order. `latest` gives each subject's latest
    /// record: the walks back along the back-links start there. Walks that reach back past the
    /// window are returned too (the subject and the next record to visit), for the caller to
    /// continue through the store ([`walk_beyond`]); with `reads.all` the caller reads the part
    /// of `from..` the window does not hold instead.
    pub fn later(
        &self,
        reads: &Affected,
        key: TimelineKey,
        from: u64,
        latest: impl Fn(&Subject) -> Option<u64>,
    ) -> (Vec<Later>, Vec<(Subject, u64)>) {
        let mut beyond = Vec::new();
        // The records visited, by their index in the window.
        let mut visited: Vec<usize> = Vec::new();
        if reads.all {
            let start = usize::try_from(from.saturating_sub(self.first)).unwrap_or(usize::MAX);
            visited.extend(start.min(self.entries.len())..self.entries.len());
        } else {
            for entity in &reads.entities {
                let subject = Subject::Entity(entity.clone());
                let chain = self.entity_numbers.get(entity).copied().map(Chain::Entity);
                let mut next = latest(&subject);
                while let Some(seq) = next.filter(|seq| *seq >= from) {
                    let (Some(index), Some(chain)) = (self.index(seq), chain) else {
                        beyond.push((subject, seq));
                        break;
                    };
                    visited.push(index);
                    next = self.step(index, chain, seq);
                }
            }
            for country in &reads.countries {
                let subject = Subject::Country(*country);
                let Some(last) = self.allocation_last.get(country).copied() else {
                    // No record since the window began touched the allocation: any that did
                    // lie before it, found along the country's back-links.
                    if from < self.origin && self.origin > 1 {
                        if let Some(seq) = latest(&subject).filter(|seq| *seq >= from) {
                            beyond.push((subject, seq));
                        }
                    }
                    continue;
                };
                let mut next = Some(last);
                while let Some(seq) = next.filter(|seq| *seq >= from) {
                    let Some(index) = self.index(seq) else {
                        // Past the window a country is walked along its own back-links.
                        beyond.push((subject.clone(), seq));
                        break;
                    };
                    visited.push(index);
                    let link = self
                        .link(index, seq, |chain| {
                            matches!(chain, Chain::Allocation(chained)
                                | Chain::AllocationFromLinks(chained) if chained == *country)
                        })
                        .expect("a record on a country's allocation chain has its link");
                    next = link.previous();
                    // Before the chain's first record (the first since `origin`) only records
                    // before `origin` can touch the allocation: none matter unless `from` is.
                    if matches!(link.chain, Chain::AllocationFromLinks(_)) {
                        if let Some(previous) = next.filter(|previous| *previous >= from)
                            && from < self.origin
                        {
                            beyond.push((subject.clone(), previous));
                        }
                        break;
                    }
                }
            }
            visited.sort_unstable();
            visited.dedup();
        }
        // A record reached along an entity's links names it, and one reached along a
        // country's allocation chain touches its allocation: every one visited concerns
        // `reads`, so only its place in the timeline decides whether it is wanted.
        visited.retain(|index| self.entries[*index].key > key);
        visited.sort_by_key(|index| self.entries[*index].key);
        let found = visited
            .into_iter()
            .map(|index| {
                let (record, subjects) = self.decode(index);
                debug_assert!(reads.concerns(&record, &subjects));
                Later {
                    record: Arc::new(record),
                    subjects: subjects.into_vec().into(),
                }
            })
            .collect();
        (found, beyond)
    }

    /// The record before `seq` (the entry at `index`) on `chain`.
    fn step(&self, index: usize, chain: Chain, seq: u64) -> Option<u64> {
        self.link(index, seq, |on| on == chain)
            .and_then(Link::previous)
    }

    /// The link of record `seq` (the entry at `index`) on the chain `wanted` accepts.
    fn link(&self, index: usize, seq: u64, wanted: impl Fn(Chain) -> bool) -> Option<Link> {
        let link = self.links_of(index).find(|link| wanted(link.chain));
        // Each step moves to a strictly smaller sequence number, so every walk ends.
        assert!(
            link.and_then(Link::previous)
                .is_none_or(|previous| previous < seq),
            "a back-link in the window points forward"
        );
        link
    }
}

/// Continues walks that left the window: from each `(subject, seq)`, back along the subject's
/// back-links down to `from`, reading each record with `read`; adds the records that sit after
/// `key` and concern `reads` to `found` (without duplicates), in timeline order. Each step
/// reads one record and moves to a smaller sequence number, so every walk ends.
pub fn walk_beyond<E>(
    found: &mut Vec<Later>,
    beyond: Vec<(Subject, u64)>,
    reads: &Affected,
    key: TimelineKey,
    from: u64,
    mut read: impl FnMut(u64) -> Result<Arc<Record>, E>,
) -> Result<(), E> {
    if beyond.is_empty() {
        return Ok(());
    }
    let mut seen: HashSet<u64> = found.iter().map(|later| later.record.seq).collect();
    for (subject, start) in beyond {
        let mut next = Some(start);
        while let Some(seq) = next.filter(|seq| *seq >= from) {
            let record = read(seq)?;
            let subjects: Arc<[Subject]> = record.subjects().into();
            next = subjects
                .binary_search(&subject)
                .ok()
                .and_then(|index| record.links.get(index).copied().flatten())
                .filter(|previous| *previous < seq);
            if seen.insert(seq)
                && TimelineKey::of(&record) > key
                && reads.concerns(&record, &subjects)
            {
                found.push(Later { record, subjects });
            }
        }
    }
    found.sort_by_key(|later| TimelineKey::of(&later.record));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's and the verifier's window may keep up to 16 times its floor, or a share of
    /// a longer log; a window of fixed capacity (the tests' small windows) does not grow.
    #[test]
    fn the_window_grows_with_the_log_only_past_its_floor() {
        let ceiling = CAPACITY * CEILING_FLOORS;
        assert_eq!(ceiling, 524_288);
        assert_eq!(Window::new(0).capacity(), ceiling);
        assert_eq!(Window::new(LOG_SHARE * ceiling as u64).capacity(), ceiling);
        assert_eq!(
            Window::new(LOG_SHARE * ceiling as u64 + LOG_SHARE).capacity(),
            ceiling + 1
        );
        assert_eq!(Window::new(10_000_000).capacity(), 1_250_000);
        assert_eq!(Window::with_capacity(10_000_000, 4).capacity(), 4);
    }
}
