//! The most recent records of a log, decoded, with an index by subject.
//!
//! A late record or a void needs the records that sit after it in the timeline and concern its
//! subjects. Nearly always they are recent, so the writer and the verifier keep the last
//! [`CAPACITY`] records here and find them through each subject's list, without reading or
//! decoding anything. Only a record reaching further back reads the store.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use crate::codec::{Record, Subject};
use crate::ledger::index::PassThrough;
use crate::rules::{Affected, Later, TimelineKey, touches_allocation};

/// Records kept: about two months of a busy ledger's history, some 30 MiB.
pub const CAPACITY: usize = 1 << 16;

/// Lists by a 64-bit hash of the subject: pushing a record then neither clones nor compares
/// names. A collision only adds candidates, which [`Window::later`] filters by subject anyway.
type Index = HashMap<u64, VecDeque<u64>, BuildHasherDefault<PassThrough>>;

fn subject_hash(subject: &Subject) -> u64 {
    foldhash::fast::FixedState::with_seed(0).hash_one(subject)
}

pub struct Window {
    capacity: usize,
    /// The sequence number of `records[0]`.
    first: u64,
    records: VecDeque<Later>,
    /// For each entity, the sequence numbers of its records in the window; for each country,
    /// of its records that touch its allocation (the only country counter a rule reads).
    /// Ascending; by [`subject_hash`].
    by_subject: Index,
}

impl Window {
    /// An empty window whose next record will be `first`.
    pub fn new(first: u64) -> Window {
        Window::with_capacity(first, CAPACITY)
    }

    pub fn with_capacity(first: u64, capacity: usize) -> Window {
        Window {
            capacity: capacity.max(1),
            first,
            records: VecDeque::new(),
            by_subject: Index::default(),
        }
    }

    /// The first sequence number the window holds (or would hold).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// One past the last sequence number.
    pub fn end(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    pub fn get(&self, seq: u64) -> Option<&Arc<Record>> {
        let offset = seq.checked_sub(self.first)?;
        self.records
            .get(usize::try_from(offset).ok()?)
            .map(|later| &later.record)
    }

    /// The subjects a record is listed under: its entities always, its countries only when it
    /// touches their allocation.
    fn indexed(later: &Later) -> impl Iterator<Item = &Subject> {
        let allocation = touches_allocation(&later.record);
        later.subjects.iter().filter(move |subject| match subject {
            Subject::Entity(_) => true,
            Subject::Country(_) => allocation,
            Subject::Veu(_) | Subject::Chip(_) | Subject::Tiers => false,
        })
    }

    /// Adds the next record, forgetting the oldest when full.
    pub fn push(&mut self, record: Arc<Record>, subjects: Arc<[Subject]>) {
        assert_eq!(record.seq, self.end(), "records enter the window in order");
        let later = Later { record, subjects };
        for subject in Window::indexed(&later) {
            self.by_subject
                .entry(subject_hash(subject))
                .or_default()
                .push_back(later.record.seq);
        }
        self.records.push_back(later);
        if self.records.len() > self.capacity {
            let oldest = self.records.pop_front().expect("not empty");
            self.first += 1;
            for subject in Window::indexed(&oldest) {
                let hash = subject_hash(subject);
                let list = self.by_subject.get_mut(&hash).expect("indexed on entry");
                assert_eq!(list.pop_front(), Some(oldest.record.seq));
                if list.is_empty() {
                    self.by_subject.remove(&hash);
                }
            }
        }
    }

    /// Removes the newest record (a rolled-back append). When the window has already forgotten
    /// records older than it, it starts afresh at `next`.
    pub fn pop_to(&mut self, next: u64) {
        while self.end() > next {
            let Some(newest) = self.records.pop_back() else {
                break;
            };
            for subject in Window::indexed(&newest) {
                let hash = subject_hash(subject);
                if let Some(list) = self.by_subject.get_mut(&hash) {
                    list.pop_back();
                    if list.is_empty() {
                        self.by_subject.remove(&hash);
                    }
                }
            }
        }
        if self.end() != next {
            *self = Window::with_capacity(next, self.capacity);
        }
    }

    /// The records from `from` on (at least the window's first) that concern `reads` and sit
    /// after `key` in the timeline, in timeline order.
    pub fn later(&self, reads: &Affected, key: TimelineKey, from: u64) -> Vec<Later> {
        let from = from.max(self.first);
        let mut found: Vec<Later> = Vec::new();
        if reads.all {
            let start = usize::try_from(from - self.first).unwrap_or(usize::MAX);
            found.extend(
                self.records
                    .iter()
                    .skip(start)
                    .filter(|later| TimelineKey::of(&later.record) > key)
                    .cloned(),
            );
        } else {
            let subjects = reads
                .entities
                .iter()
                .map(|entity| Subject::Entity(entity.clone()))
                .chain(
                    reads
                        .countries
                        .iter()
                        .map(|country| Subject::Country(*country)),
                );
            let mut seqs: Vec<u64> = Vec::new();
            for subject in subjects {
                if let Some(list) = self.by_subject.get(&subject_hash(&subject)) {
                    // Newest first, down to `from`: older records all sit before `key`.
                    seqs.extend(list.iter().rev().take_while(|seq| **seq >= from));
                }
            }
            seqs.sort_unstable();
            seqs.dedup();
            found.extend(
                seqs.into_iter()
                    .filter_map(|seq| self.records.get(usize::try_from(seq - self.first).ok()?))
                    .filter(|later| {
                        TimelineKey::of(&later.record) > key
                            && reads.concerns(&later.record, &later.subjects)
                    })
                    .cloned(),
            );
        }
        found.sort_by_key(|later| TimelineKey::of(&later.record));
        found
    }
}
