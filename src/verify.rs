//! Verification: replay a log from its bytes and check everything it claims.
//!
//! [`Replay`] takes records in log order (from the store or from an export) and checks, for
//! each: canonical bytes, its sequence number, the chain hash it embeds, its recording time, its
//! back-links, that its id is new, and that the rules, replayed exactly as `append` ran them
//! (late records and voids included), accept it with the outcome it stores. The first failure
//! names the record. The Merkle tree of the records is built beside it, from each record's
//! [`Decoded::leaf`]: an audit of the store builds it on its reading thread, with the hashing.

use std::sync::Arc;

use crate::codec::{self, Body, Outcome, Record, Subject};
use crate::date::{Date, Instant, RecordingDays};
use crate::ledger::Links;
use crate::ledger::index::{self, IdIndex, Position, id_hash};
use crate::ledger::window::{RecordBytes, Window};
use crate::rules::{self, Affected, Later, Rejection, State, TimelineKey, VoidTarget};

/// Where a replay reads records it no longer holds (a late record reaching far back).
pub trait RecordSource {
    fn record(&self, seq: u64) -> Result<Record, String>;
}

/// The first problem found, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The first bad record's sequence number, when the problem is in one record.
    pub seq: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "record {seq}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn fail(seq: u64, message: impl Into<String>) -> Failure {
    Failure {
        seq: Some(seq),
        message: message.into(),
    }
}

/// What a record's bytes give without any earlier record: the record decoded (with the canonical
/// check) and its subjects, its chain hash, its Merkle leaf hash and its id index hash. It is
/// about half of a replay's work, so an audit of the store computes it on a helper thread ahead
/// of [`Replay`]: the decoding and the chain hash always, the two other hashes when the helper
/// runs far enough ahead.
pub struct Decoded {
    record: Result<(Record, codec::Subjects), codec::CodecError>,
    /// The id index's hash of the record's event id, once [`Decoded::hash_id`] or
    /// [`Replay::warm`] has computed it; [`Replay::push`] computes it if neither has.
    id_hash: Option<u64>,
    chain: [u8; 32],
    /// The Merkle leaf hash, once [`Decoded::hash_leaf`] has computed it.
    leaf: Option<[u8; 32]>,
}

impl Decoded {
    /// Everything a record's bytes give alone except the id index's hash.
    pub fn of(bytes: &[u8]) -> Decoded {
        let mut decoded = Decoded::decode(bytes);
        decoded.hash_leaf(bytes);
        decoded
    }

    /// The record and its chain hash, leaving its Merkle leaf hash and id hash for later
    /// ([`Decoded::hash_leaf`], [`Decoded::hash_id`]): on whichever thread of an audit has time
    /// to spare.
    pub fn decode(bytes: &[u8]) -> Decoded {
        Decoded {
            record: codec::decode_record_subjects(bytes),
            id_hash: None,
            chain: codec::chain_hash(bytes),
            leaf: None,
        }
    }

    /// The record's Merkle leaf hash (RFC 6962), whether or not its bytes decode, computed on
    /// this thread unless it was already. `bytes` are the bytes this was decoded from.
    pub fn hash_leaf(&mut self, bytes: &[u8]) -> [u8; 32] {
        *self.leaf.get_or_insert_with(|| codec::leaf_hash(bytes))
    }

    /// The id index's hash of the record's event id (`None` if its bytes do not decode),
    /// computed on this thread unless it was already: an audit's reading thread computes it
    /// while it runs ahead of the replay, so that the hash lands on whichever thread has time
    /// to spare, and [`Replay::warm`] computes the rest.
    pub fn hash_id(&mut self) -> Option<u64> {
        let (record, _) = self.record.as_ref().ok()?;
        Some(
            *self
                .id_hash
                .get_or_insert_with(|| id_hash(&record.event.id)),
        )
    }
}

/// A replay in progress.
pub struct Replay {
    state: Option<State>,
    links: Links,
    ids: IdIndex,
    size: u64,
    last_chain: [u8; 32],
    last_recorded_at: Option<Instant>,
    recording_days: RecordingDays,
    /// The running maximum timeline date after each record.
    max_dates: Vec<Date>,
    /// The most recent records, for late records and voids to find the ones after them.
    window: Window,
    /// Records whose timeline date was before the running maximum (the late list), each with
    /// the chain hash of its bytes: the audit compares the late index's copies by it, without
    /// holding every late record's bytes (about 14 MB on a 10,000,000-record ledger).
    late: Vec<(u64, Date, [u8; 32])>,
    /// Per entry bundle: the position index entry a ledger should hold.
    positions: Vec<Position>,
}

impl Default for Replay {
    fn default() -> Self {
        Replay::new()
    }
}

/// The most records [`Replay::with_capacity`] reserves room for ahead: a claim of more (a
/// store's head can lie) reserves no more than 80 MiB (the id index's hashes and slots, 32 MiB
/// each, and the dates, 16 MiB), none of it touched before records fill it.
const MOST_RESERVED_RECORDS: u64 = 1 << 22;

impl Replay {
    pub fn new() -> Replay {
        Replay::with_capacity(0)
    }

    /// A replay with room for `records` records (at most [`MOST_RESERVED_RECORDS`]) in its id
    /// index and per-record lists, so that they are not rebuilt as the log grows: growing the
    /// id index was about 2% of `verify`'s replaying thread on a 1,000,000-record ledger.
    pub fn with_capacity(records: u64) -> Replay {
        let records = usize::try_from(records.min(MOST_RESERVED_RECORDS)).expect("fits in memory");
        Replay {
            state: None,
            links: Links::default(),
            ids: IdIndex::with_capacity(records),
            size: 0,
            last_chain: [0; 32],
            last_recorded_at: None,
            recording_days: RecordingDays::default(),
            max_dates: Vec::with_capacity(records),
            window: Window::new(0),
            late: Vec::new(),
            positions: Vec::new(),
        }
    }

    /// The position index the replayed records call for.
    pub fn positions(&self) -> Vec<Position> {
        self.positions.clone()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn last_chain(&self) -> [u8; 32] {
        self.last_chain
    }

    pub fn last_recorded_at(&self) -> Option<Instant> {
        self.last_recorded_at
    }

    pub fn max_date(&self) -> Option<Date> {
        self.max_dates.last().copied()
    }

    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    pub fn ids(&self) -> &IdIndex {
        &self.ids
    }

    /// The late records: position, timeline date and the chain hash of the canonical bytes.
    pub fn late(&self) -> &[(u64, Date, [u8; 32])] {
        &self.late
    }

    /// Frees the window of recent records once every record is replayed. The checks that
    /// follow a replay read much of the store, and sled keeps what they read, so its peak
    /// memory comes after the replay; the window held about 100 MB of it on a 10,000,000-record
    /// ledger (tools/bench/PROFILE.md, goal 6). A record pushed after this is still checked,
    /// its walks reading the records from the source.
    pub fn release_window(&mut self) {
        self.window = Window::new(self.size);
    }

    fn record(&self, seq: u64, source: &dyn RecordSource) -> Result<Arc<Record>, Failure> {
        if let Some(record) = self.window.get(seq) {
            return Ok(record);
        }
        source
            .record(seq)
            .map(Arc::new)
            .map_err(|error| fail(self.size, format!("cannot read record {seq}: {error}")))
    }

    fn find(
        &self,
        id: &crate::name::Id,
        source: &dyn RecordSource,
    ) -> Result<Option<Arc<Record>>, Failure> {
        self.find_hashed(id, id_hash(id), source)
    }

    /// Readies the duplicate-id probes of records about to be pushed ([`IdIndex::warm`]). The
    /// hashes are computed first and the probes' slots read after, back to back: reading each
    /// slot right after hashing its id left every cache miss to stall alone (the warming was
    /// 7.6% of `verify`'s samples, tools/bench/PROFILE.md, goal 3).
    pub fn warm<'a>(&self, decoded: impl Iterator<Item = &'a mut Decoded>) {
        let hashes: Vec<u64> = decoded.filter_map(Decoded::hash_id).collect();
        self.ids.warm(hashes.into_iter());
    }

    fn find_hashed(
        &self,
        id: &crate::name::Id,
        hash: u64,
        source: &dyn RecordSource,
    ) -> Result<Option<Arc<Record>>, Failure> {
        for seq in self.ids.candidates(hash) {
            let record = self.record(seq, source)?;
            if record.event.id == *id {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Records already replayed that sit after `key` in the timeline and concern `reads`, in
    /// timeline order.
    fn later_than(
        &self,
        key: TimelineKey,
        reads: &Affected,
        source: &dyn RecordSource,
    ) -> Result<Vec<Later>, Failure> {
        let from = match key.date.previous_day() {
            Some(day) => self.max_dates.partition_point(|max| *max <= day) as u64,
            None => 0,
        };
        let latest = |subject: &Subject| self.links.last.get(subject).copied();
        let (mut later, beyond) = self.window.later(reads, key, from, latest);
        crate::ledger::window::walk_beyond(&mut later, beyond, reads, key, from, |seq| {
            self.record(seq, source)
        })?;
        if reads.all && from < self.window.first() {
            for seq in from..self.window.first() {
                let record = self.record(seq, source)?;
                let subjects: Arc<[Subject]> = record.subjects().into();
                if TimelineKey::of(&record) > key && reads.concerns(&record, &subjects) {
                    later.push(Later { record, subjects });
                }
            }
            later.sort_by_key(|later| TimelineKey::of(&later.record));
        }
        Ok(later)
    }

    /// Checks one record's bytes and replays it. `decoded` is what [`Decoded::decode`] (or
    /// [`Decoded::of`]) gives for these bytes.
    pub fn push<'d>(
        &mut self,
        bytes: RecordBytes<'_>,
        decoded: &'d mut Decoded,
        source: &dyn RecordSource,
    ) -> Result<&'d Record, Failure> {
        let seq = self.size;
        let (record, subjects) = decoded
            .record
            .as_mut()
            .map_err(|error| fail(seq, format!("the bytes {error}")))?;
        if record.seq != seq {
            return Err(fail(
                seq,
                format!(
                    "it says it is record {}, but record {seq} comes next",
                    record.seq
                ),
            ));
        }
        if record.prev_chain != self.last_chain {
            return Err(fail(
                seq,
                if seq == 0 {
                    "the genesis record's previous chain hash is not zero".to_string()
                } else {
                    format!("its previous chain hash does not match record {}", seq - 1)
                },
            ));
        }
        if let Some(last) = self.last_recorded_at {
            if record.recorded_at < last {
                return Err(fail(
                    seq,
                    format!(
                        "recorded at {}, before record {} ({last})",
                        record.recorded_at,
                        seq - 1
                    ),
                ));
            }
        }
        let key = TimelineKey::of(record);
        let hash = decoded.id_hash.unwrap_or_else(|| id_hash(&record.event.id));
        match (&mut self.state, &record.event.body) {
            (None, Body::Genesis(_)) => {
                let state = State::from_genesis(record).map_err(|error| fail(seq, error.0))?;
                self.state = Some(state);
                if !record.links.is_empty() {
                    return Err(fail(seq, "the genesis record has back-links"));
                }
            }
            (None, _) => return Err(fail(seq, "the log does not start with a genesis record")),
            (Some(_), Body::Genesis(_)) => return Err(fail(seq, "a second genesis record")),
            (Some(_), _) => self.replay(record, subjects, hash, key, source)?,
        }
        self.ids.push(hash);
        let chain = decoded.chain;
        let late = self.size > 0 && key.date < self.max_dates[self.size as usize - 1];
        if late {
            self.late.push((seq, key.date, chain));
        }
        let max = self
            .max_dates
            .last()
            .map_or(key.date, |max| (*max).max(key.date));
        self.max_dates.push(max);
        index::push_position(
            &mut self.positions,
            seq,
            max,
            record.recorded_at,
            late.then_some(key.date),
        );
        self.last_chain = chain;
        self.last_recorded_at = Some(record.recorded_at);
        self.size += 1;
        self.window.push(record, subjects, bytes);
        Ok(record)
    }

    /// Replays `record` on the state. The rules decide it from its event alone; its stored
    /// outcome is set aside meanwhile (and compared with theirs), which spares a copy of every
    /// record.
    fn replay(
        &mut self,
        record: &mut Record,
        subjects: &[Subject],
        id_hash: u64,
        key: TimelineKey,
        source: &dyn RecordSource,
    ) -> Result<(), Failure> {
        let seq = record.seq;
        let today = self.recording_days.of(record.recorded_at);
        if self
            .find_hashed(&record.event.id, id_hash, source)?
            .is_some()
        {
            return Err(fail(
                seq,
                format!("event id {} appears in an earlier record", record.event.id),
            ));
        }
        let target = match &record.event.body {
            Body::Void(void) => self.find(&void.target, source)?,
            _ => None,
        };
        let expected_key = TimelineKey::of_new(record.effective, seq, target.as_deref());
        let start = expected_key.recheck_from(&record.event);
        let max_date = self.max_dates.last().copied();
        // As when it was appended: only a record before the last day, or on it when it changes
        // facts, or a void, has records after it to recheck.
        let late = target.is_some()
            || max_date.is_some_and(|max| {
                expected_key.date < max || (expected_key.date == max && start != expected_key)
            });
        let state = self.state.as_ref().expect("genesis was replayed");
        let reads = rules::reads(&record.event, target.as_deref(), &state.facts);
        let later = if late {
            self.later_than(start, &reads, source)?
        } else {
            Vec::new()
        };
        let state = self.state.as_mut().expect("genesis was replayed");
        let void_target = target.as_ref().map(|target| VoidTarget {
            record: target,
            voided: state.facts.voided.contains_key(&target.seq),
        });
        let stored = std::mem::replace(&mut record.outcome, Outcome::None);
        let admitted = rules::admit(state, record, today, void_target, &later, &reads);
        let replayed = std::mem::replace(&mut record.outcome, stored);
        match admitted {
            Ok(_) => {}
            Err(Rejection::Refused(refusal)) => {
                return Err(fail(
                    seq,
                    format!(
                        "{} {} is in the log, but the rules refuse it on replay: {refusal}",
                        record.event.body.type_name(),
                        record.event.id
                    ),
                ));
            }
            Err(Rejection::Inconsistent(error)) => {
                return Err(fail(seq, format!("the log does not add up here: {error}")));
            }
        }
        if replayed != record.outcome {
            // Take the replayed record out again, so the state stays the fold of the log.
            let stored = std::mem::replace(&mut record.outcome, replayed);
            let _ = state.unapply(record);
            let replayed = std::mem::replace(&mut record.outcome, stored);
            return Err(fail(
                seq,
                format!(
                    "its stored outcome differs from the replay: stored {}, replayed {}",
                    describe_outcome(&record.outcome),
                    describe_outcome(&replayed)
                ),
            ));
        }
        if key != expected_key {
            return Err(fail(
                seq,
                "its void target does not match the record it names",
            ));
        }
        if let Body::Commitment(stored) = &record.event.body {
            let state = self.state.as_ref().expect("genesis was replayed");
            let leaves = crate::proof::commitment::leaves(state, &self.links);
            let expected = crate::proof::commitment::event(seq, &leaves);
            if *stored != expected {
                return Err(fail(
                    seq,
                    format!(
                        "the commitment differs from the replay ({} subjects and root {} stored, {} and {} replayed)",
                        stored.subject_count,
                        crate::view::base64(&stored.subjects_root),
                        expected.subject_count,
                        crate::view::base64(&expected.subjects_root)
                    ),
                ));
            }
        }
        let expected_links = self.links.link_subjects(record.seq, subjects);
        if expected_links != record.links {
            return Err(fail(
                seq,
                format!(
                    "its back-links {:?} differ from the replay's {:?}",
                    record.links, expected_links
                ),
            ));
        }
        Ok(())
    }
}

/// A short description of an outcome, for mismatch messages.
pub fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::None => "nothing".into(),
        Outcome::Chips(chips) => format!(
            "basis {}, {} TPP ({} × {}){}{}",
            chips.basis.name(),
            chips.amount_tpp,
            chips.amount_tpp.checked_div(chips.unit_tpp).unwrap_or(0),
            chips.unit_tpp,
            if chips.controlled {
                ""
            } else {
                ", uncontrolled"
            },
            if chips.counts_allocation {
                ", counted against the allocation"
            } else {
                ""
            }
        ),
        Outcome::Weights(weights) => format!(
            "{} weights under {}",
            if weights.controlled {
                "controlled"
            } else {
                "uncontrolled"
            },
            weights.authority.name()
        ),
        Outcome::Void(void) => format!("void of record {}", void.target_seq),
        Outcome::Revoke(revoke) => format!("revoke of {}'s VEU", revoke.holder),
    }
}
