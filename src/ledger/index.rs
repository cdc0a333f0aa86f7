//! Derived indexes over the log, kept in the store's `derived` tree (FORMAT.md, "Derived
//! data"). Every one of them can be rebuilt from the records, and `verify` checks each against
//! its own replay. None has a key per event: like the bundles, they are chunked by position so
//! that an append rewrites only the last chunk.

use crate::date::{Date, Instant};
use crate::name::Id;

/// Records per id-index chunk (8 bytes each: 32 KiB).
pub const ID_CHUNK: u64 = 4096;
/// Bundles per position-index chunk (16 bytes each: 16 KiB).
pub const POSITION_CHUNK: u64 = 1024;
/// The fewest records between prefix snapshots, unless a ledger was created with another.
pub const SNAPSHOT_INTERVAL: u64 = 4_096;
/// A snapshot of B bytes is followed by the next one at least B / this many records later.
/// Records are about 200 bytes, so snapshots take at most about a sixth of the store, their
/// encoding costs a bounded share of an append, and an as-of query replays at most about
/// B / 32 records after loading one.
pub const SNAPSHOT_BYTES_PER_RECORD: u64 = 32;
/// Snapshots are stored in values of at most this many bytes (sled keeps them inline).
pub const SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024;

pub const IDS_PREFIX: &[u8] = b"ids/";
pub const POSITIONS_PREFIX: &[u8] = b"pos/";
pub const LATE_PREFIX: &[u8] = b"late/";
pub const SNAPSHOT_PREFIX: &[u8] = b"snap/";

pub fn key(prefix: &[u8], number: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// How many records after a snapshot of `bytes` bytes the next one may come. Snapshots are
/// taken at multiples of the head's interval, the first one at least this far along.
pub fn snapshot_spacing(head: &crate::store::Head, bytes: u64) -> u64 {
    bytes
        .checked_div(head.snapshot_bytes_per_record)
        .unwrap_or(0)
}

pub fn snapshot_key(size: u64, chunk: u32) -> Vec<u8> {
    let mut key = key(SNAPSHOT_PREFIX, size);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// A late-record index value: the record's timeline date (ordinal, `u32` BE) followed by the
/// record's canonical bytes, so that an as-of query folds a late record without reading the
/// bundle it lies in (on a large ledger that read pulls a whole sled node from disk).
pub fn late_value(date: Date, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(4 + record.len());
    value.extend_from_slice(&date.ordinal().to_be_bytes());
    value.extend_from_slice(record);
    value
}

/// Splits a late-record index value into the timeline date and the record's bytes.
pub fn parse_late_value(value: &[u8]) -> Option<(Date, &[u8])> {
    let (ordinal, record) = value.split_first_chunk::<4>()?;
    Some((Date::from_ordinal(u32::from_be_bytes(*ordinal))?, record))
}

/// Reads the big-endian number after a key's prefix.
pub fn number_after(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
}

/// The 64-bit hash of an event id under which the id index files it: the first 8 bytes of
/// BLAKE3 with its own derive-key context. A match is confirmed against the record itself.
pub fn id_hash(id: &Id) -> u64 {
    thread_local! {
        // Reset for each id rather than copied from a prepared one (a hasher is about 1.9 KB).
        static HASHER: std::cell::RefCell<blake3::Hasher> = std::cell::RefCell::new(
            blake3::Hasher::new_derive_key("chipledger 2026-11 event id index v1"),
        );
    }
    let hash =
        HASHER.with_borrow_mut(|hasher| hasher.reset().update(id.as_str().as_bytes()).finalize());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Event id hash → sequence numbers, in about 16 bytes per record: the hashes in log order,
/// and an open-addressing table of sequence numbers (linear probing) whose slots are checked
/// against those hashes. Equal hashes (the rare 64-bit collision) simply sit in the same probe
/// run; every candidate is confirmed against the record itself by the caller.
pub struct IdIndex {
    /// Hash per sequence number, in order: what the chunks store.
    hashes: Vec<u64>,
    /// `seq + 1` per slot; 0 is empty, [`TOMBSTONE`] a slot freed by a rollback.
    slots: Vec<u32>,
}

const TOMBSTONE: u32 = u32::MAX;

/// The table's size for `records` records: a power of two, at least twice their number (the
/// table is never more than half full), at least 16.
fn slots_for(records: usize) -> usize {
    (records.max(8) * 2).next_power_of_two()
}

/// The size of a page of memory (the smallest, on the systems chipledger runs on).
const PAGE_BYTES: usize = 4096;

/// Regions of the table a rebuild files records into one after another (a power of two).
const TABLE_REGIONS: usize = 2048;
/// The most records a rebuild sorts at once (16 MiB).
const REBUILD_BATCH: usize = 1 << 21;

impl Default for IdIndex {
    fn default() -> IdIndex {
        IdIndex::with_capacity(0)
    }
}

impl IdIndex {
    pub fn with_capacity(records: usize) -> IdIndex {
        let mut index = IdIndex {
            hashes: Vec::with_capacity(records),
            slots: Vec::new(),
        };
        index.resize(slots_for(records));
        index
    }

    pub fn len(&self) -> u64 {
        self.hashes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The index of a log whose records' id hashes are `hashes`, in log order.
    pub fn from_hashes(hashes: Vec<u64>) -> IdIndex {
        let mut index = IdIndex {
            hashes,
            slots: Vec::new(),
        };
        index.resize(slots_for(index.hashes.len()));
        index
    }

    /// Rebuilds the table with `capacity` slots (a power of two).
    ///
    /// Filing the records in log order would write the table at random, a cache miss per
    /// record (a third of a 1M ledger's `append` process went to that). They are filed region
    /// by region instead: sorted by the region of the table their home slot lies in (a
    /// counting pass, then a scattering pass into one run per region), so that each region (a
    /// few KiB) is written while it is in cache. The sort holds at most [`REBUILD_BATCH`]
    /// records at a time (8 bytes each): a larger log is filed in several passes, each over a
    /// range of regions. Linear probing gives a valid table whatever the order of insertion.
    fn resize(&mut self, capacity: usize) {
        self.rebuild(capacity, REBUILD_BATCH);
    }

    /// [`IdIndex::resize`], sorting at most `batch` records at a time.
    fn rebuild(&mut self, capacity: usize, batch: usize) {
        assert!(capacity.is_power_of_two() && capacity > self.hashes.len());
        self.slots = vec![0; capacity];
        // Each page of the new table is written once now, before anything reads it. A large
        // table comes from the kernel unmapped, and a page first read ([`IdIndex::warm`]'s
        // probes) is mapped to the kernel's shared zero page: the first write to it then
        // faults again, to copy it, and flushes the page from the other processors' TLBs
        // with an interrupt. Those faults were about 3% of `verify`'s replaying thread
        // (tools/bench/PROFILE.md, goal 3); a page first written faults once. Filing a
        // table's records writes nearly every page anyway.
        for slot in self
            .slots
            .iter_mut()
            .step_by(PAGE_BYTES / std::mem::size_of::<u32>())
        {
            *slot = std::hint::black_box(0);
        }
        let mask = capacity - 1;
        // A sorted entry keeps its home slot in 32 bits.
        if self.hashes.len() < TABLE_REGIONS || mask > u32::MAX as usize {
            for seq in 0..self.hashes.len() {
                self.place(self.hashes[seq] as usize & mask, seq);
            }
            return;
        }
        let shift = capacity.trailing_zeros() - TABLE_REGIONS.trailing_zeros();
        let region = |hash: u64| (hash as usize & mask) >> shift;
        let passes = self.hashes.len().div_ceil(batch);
        let regions_per_pass = TABLE_REGIONS.div_ceil(passes);
        let mut counts = vec![0usize; TABLE_REGIONS];
        for &hash in &self.hashes {
            counts[region(hash)] += 1;
        }
        let mut next = vec![0usize; TABLE_REGIONS];
        let mut order = Vec::new();
        for first in (0..TABLE_REGIONS).step_by(regions_per_pass) {
            let regions = first..(first + regions_per_pass).min(TABLE_REGIONS);
            let mut start = 0;
            for region in regions.clone() {
                next[region] = start;
                start += counts[region];
            }
            // Sequence number in the high half, home slot in the low half.
            order.clear();
            order.resize(start, 0u64);
            for (seq, &hash) in self.hashes.iter().enumerate() {
                if regions.contains(&region(hash)) {
                    let at = &mut next[region(hash)];
                    order[*at] = (seq as u64) << 32 | (hash as usize & mask) as u64;
                    *at += 1;
                }
            }
            for &entry in &order {
                self.place(entry as u32 as usize, (entry >> 32) as usize);
            }
        }
    }

    /// Files record `seq` in the first free slot from `home` on.
    fn place(&mut self, home: usize, seq: usize) {
        let mask = self.mask();
        let mut slot = home;
        // The table is never more than half full: an empty slot is always found.
        while self.slots[slot] != 0 && self.slots[slot] != TOMBSTONE {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = u32::try_from(seq + 1).expect("fewer than 2^32 - 1 records");
    }

    /// Makes room for `additional` more records, so that filing them never rebuilds the table
    /// (each rebuild re-files every record).
    pub fn reserve(&mut self, additional: usize) {
        // The table holds fewer than 2^32 records (slots are `u32`).
        let additional = additional.min(u32::MAX as usize - self.hashes.len());
        let records = self.hashes.len() + additional;
        self.hashes.reserve(additional);
        let capacity = slots_for(records);
        if capacity > self.slots.len() {
            self.resize(capacity);
        }
    }

    /// Files the next record's id hash.
    pub fn push(&mut self, hash: u64) {
        self.hashes.push(hash);
        if self.slots.len() < 2 * self.hashes.len() {
            self.resize(slots_for(self.hashes.len()));
        } else {
            self.place(hash as usize & self.mask(), self.hashes.len() - 1);
        }
    }

    /// Forgets the last record (a rolled-back append).
    pub fn pop(&mut self) {
        let Some(hash) = self.hashes.last().copied() else {
            return;
        };
        let wanted = u32::try_from(self.hashes.len()).expect("fewer than 2^32 - 1 records");
        let mask = self.mask();
        let mut slot = hash as usize & mask;
        while self.slots[slot] != 0 {
            if self.slots[slot] == wanted {
                self.slots[slot] = TOMBSTONE;
                break;
            }
            slot = (slot + 1) & mask;
        }
        self.hashes.pop();
    }

    /// Reads the slots where probes for `hashes` start, and the hash each occupied one points
    /// to, before those probes are made. On a large log each is a cache miss; made one after
    /// another, with a record's rules decided between them, each stalls on its own, while
    /// these reads are independent of one another, so the processor overlaps their misses,
    /// and the probes that follow find the lines in cache.
    pub fn warm(&self, hashes: impl Iterator<Item = u64>) {
        let mask = self.mask();
        for hash in hashes {
            let entry = self.slots[hash as usize & mask];
            if entry != 0 && entry != TOMBSTONE {
                std::hint::black_box(self.hashes[entry as usize - 1]);
            }
        }
    }

    /// Sequence numbers whose id has this hash.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let mask = self.mask();
        let mut slot = hash as usize & mask;
        let mut probed = 0usize;
        std::iter::from_fn(move || {
            // Bounded by the table's size, whatever its contents.
            while probed < self.slots.len() {
                let entry = self.slots[slot];
                if entry == 0 {
                    return None;
                }
                slot = (slot + 1) & mask;
                probed += 1;
                if entry != TOMBSTONE && self.hashes[entry as usize - 1] == hash {
                    return Some(u64::from(entry) - 1);
                }
            }
            None
        })
    }

    /// The stored bytes of chunk `chunk` (8-byte little-endian hashes).
    pub fn chunk_bytes(&self, chunk: u64) -> Vec<u8> {
        let start = (chunk * ID_CHUNK) as usize;
        let end = ((chunk + 1) * ID_CHUNK).min(self.len()) as usize;
        self.hashes[start..end]
            .iter()
            .flat_map(|hash| hash.to_le_bytes())
            .collect()
    }

    /// Appends the hashes of a stored chunk to `hashes` (chunks must come in order).
    pub fn read_chunk(bytes: &[u8], hashes: &mut Vec<u64>) -> Result<(), String> {
        if bytes.len() % 8 != 0 {
            return Err("an id-index chunk is not a whole number of hashes".into());
        }
        hashes.extend(
            bytes
                .chunks_exact(8)
                .map(|hash| u64::from_le_bytes(hash.try_into().expect("8 bytes"))),
        );
        Ok(())
    }
}

/// Per bundle: the latest timeline date of any record up to the end of the bundle, the
/// recording time of the bundle's last record, and the earliest timeline date of the bundle's
/// late records. The first two are non-decreasing along the log, which makes "the first record
/// dated after D" and "the records known at time T" binary searches; the third tells an as-of
/// query which bundles can hold a late record it must fold in, so it skips the others.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Position {
    pub max_date: Date,
    pub last_recorded_at: Instant,
    /// `None` when no record of the bundle is late.
    pub earliest_late_date: Option<Date>,
}

impl Position {
    pub const BYTES: usize = 16;
    /// The stored `earliest_late_date` of a bundle without late records (no date has it).
    const NO_LATE_RECORD: u32 = u32::MAX;

    pub fn to_bytes(self) -> [u8; Position::BYTES] {
        let mut bytes = [0u8; Position::BYTES];
        bytes[..4].copy_from_slice(&self.max_date.ordinal().to_le_bytes());
        bytes[4..12].copy_from_slice(&self.last_recorded_at.microseconds().to_le_bytes());
        let earliest_late = self
            .earliest_late_date
            .map_or(Position::NO_LATE_RECORD, |date| date.ordinal());
        bytes[12..].copy_from_slice(&earliest_late.to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Position> {
        let ordinal = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        let micros = i64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
        let earliest_late = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?);
        Some(Position {
            max_date: Date::from_ordinal(ordinal)?,
            last_recorded_at: Instant::from_microseconds(micros)?,
            earliest_late_date: match earliest_late {
                Position::NO_LATE_RECORD => None,
                ordinal => Some(Date::from_ordinal(ordinal)?),
            },
        })
    }
}

/// Brings the position index up to record `seq`, the last of the log: `max_date` is the latest
/// timeline date up to it, and `late_date` its own timeline date if it is late (earlier than
/// the latest before it). The one place both the ledger and `verify`'s replay build entries.
pub fn push_position(
    positions: &mut Vec<Position>,
    seq: u64,
    max_date: Date,
    recorded_at: Instant,
    late_date: Option<Date>,
) {
    let bundle = (seq / crate::codec::BUNDLE_RECORDS) as usize;
    let starts_bundle = seq % crate::codec::BUNDLE_RECORDS == 0;
    assert_eq!(
        positions.len(),
        if starts_bundle { bundle } else { bundle + 1 },
        "record {seq} is not the next record of the position index"
    );
    let earlier_late_date = if starts_bundle {
        None
    } else {
        positions[bundle].earliest_late_date
    };
    let position = Position {
        max_date,
        last_recorded_at: recorded_at,
        earliest_late_date: match (earlier_late_date, late_date) {
            (Some(earlier), Some(date)) => Some(earlier.min(date)),
            (earlier, date) => earlier.or(date),
        },
    };
    if starts_bundle {
        positions.push(position);
    } else {
        positions[bundle] = position;
    }
}

/// The stored bytes of position chunk `chunk`.
pub fn positions_chunk_bytes(positions: &[Position], chunk: u64) -> Vec<u8> {
    let start = (chunk * POSITION_CHUNK) as usize;
    let end = (((chunk + 1) * POSITION_CHUNK) as usize).min(positions.len());
    positions[start..end]
        .iter()
        .flat_map(|position| position.to_bytes())
        .collect()
}

#[cfg(test)]
mod position_tests {
    use super::{Position, push_position};
    use crate::date::{Date, Instant};

    /// Each bundle's entry holds the latest date so far, its last recording time and the
    /// earliest of its own late dates (none from an earlier bundle), and survives its bytes.
    #[test]
    fn each_bundle_keeps_its_earliest_late_date_through_its_bytes() {
        let day = |day: u8| Date::new(2025, 3, day).expect("valid");
        let bundle_records = crate::codec::BUNDLE_RECORDS;
        // (seq, late date): two late records in bundle 0 (the later one dated later), one in
        // bundle 2, none in bundle 1.
        let late = [(5, day(1)), (200, day(2)), (2 * bundle_records + 1, day(3))];
        let mut positions = Vec::new();
        let mut max_date = day(1);
        for seq in 0..3 * bundle_records {
            let late_date = late
                .iter()
                .find(|(late_seq, _)| *late_seq == seq)
                .map(|(_, date)| *date);
            if late_date.is_none() && seq % 64 == 0 {
                max_date = max_date.next_day().expect("valid");
            }
            let recorded_at = Instant::from_microseconds(seq as i64).expect("valid");
            push_position(&mut positions, seq, max_date, recorded_at, late_date);
        }
        let earliest: Vec<Option<Date>> = positions
            .iter()
            .map(|position| position.earliest_late_date)
            .collect();
        assert_eq!(earliest, [Some(day(1)), None, Some(day(3))]);
        assert_eq!(
            positions[2].last_recorded_at,
            Instant::from_microseconds(3 * bundle_records as i64 - 1).expect("valid")
        );
        for position in positions {
            assert_eq!(Position::from_bytes(&position.to_bytes()), Some(position));
        }
    }
}

#[cfg(test)]
mod id_index_tests {
    use super::IdIndex;

    /// A reference: every sequence number whose hash matches, by a scan.
    fn scan(hashes: &[u64], hash: u64) -> Vec<u64> {
        (0..hashes.len() as u64)
            .filter(|seq| hashes[*seq as usize] == hash)
            .collect()
    }

    #[test]
    fn candidates_are_exactly_the_records_with_the_hash_through_growth_and_rollbacks() {
        let mut index = IdIndex::default();
        let mut hashes = Vec::new();
        // Few distinct hashes, so that runs collide and wrap; low bits equal, so they share slots.
        let hash_of = |n: u64| (n % 37) << 40 | (n % 5);
        for n in 0..5_000u64 {
            index.push(hash_of(n));
            hashes.push(hash_of(n));
            if n % 7 == 3 {
                index.pop();
                hashes.pop();
            }
            if n % 500 == 0 {
                for probe in 0..40 {
                    let mut found: Vec<u64> = index.candidates(hash_of(probe)).collect();
                    found.sort_unstable();
                    assert_eq!(
                        found,
                        scan(&hashes, hash_of(probe)),
                        "after {n}, probe {probe}"
                    );
                }
            }
        }
        assert_eq!(index.len(), hashes.len() as u64);
        assert_eq!(index.candidates(u64::MAX).count(), 0);
        let empty = IdIndex::default();
        assert_eq!(empty.candidates(7).count(), 0);
    }

    /// A table built from a whole log, in one pass or in several (and one filled record by
    /// record), answers exactly what a scan of the hashes answers, including runs that cross
    /// from one region to the next and wrap around the table's end.
    #[test]
    fn a_table_rebuilt_region_by_region_finds_what_a_scan_finds() {
        // Repeated hashes (runs of candidates) and hashes crowded at both ends of the table.
        let hash_of = |n: u64| match n % 5 {
            0 => n % 97,
            1 => u64::MAX - n % 89,
            _ => n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        let hashes: Vec<u64> = (0..20_000).map(hash_of).collect();
        let mut pushed = IdIndex::default();
        for &hash in &hashes {
            pushed.push(hash);
        }
        let built = IdIndex::from_hashes(hashes.clone());
        for batch in [1_000, 7_919, 20_000] {
            let mut rebuilt = IdIndex::from_hashes(hashes.clone());
            rebuilt.rebuild(rebuilt.slots.len(), batch);
            for index in [&pushed, &built, &rebuilt] {
                assert_eq!(
                    index.slots.iter().filter(|slot| **slot != 0).count(),
                    hashes.len()
                );
                for probe in hashes.iter().copied().chain([3, 500, u64::MAX - 200]) {
                    let mut found: Vec<u64> = index.candidates(probe).collect();
                    found.sort_unstable();
                    assert_eq!(found, scan(&hashes, probe), "batch {batch}, probe {probe}");
                }
            }
        }
    }
}
