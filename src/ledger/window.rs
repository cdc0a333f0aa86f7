//! The most recent records of a log, decoded, for late records and voids.
//!
//! A late record or a void needs the records that sit after it in the timeline and concern its
//! subjects. Nearly always they are recent, so the writer and the verifier keep the last
//! [`CAPACITY`] records here. They need no index of their own: every record carries, per
//! subject, the sequence number of the subject's previous record (its back-links, FORMAT.md),
//! so a subject's recent records are a walk back from its latest one. A country's counters are
//! read only for its allocation, so its walk follows a chain of its own through the records
//! that touch an allocation, which the window keeps. Only a record reaching further back than
//! the window reads the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::codec::{Record, Subject};
use crate::country::Country;
use crate::rules::{Affected, Later, TimelineKey, touches_allocation};

/// Records kept: about two months of a busy ledger's history, some 30 MiB.
pub const CAPACITY: usize = 1 << 16;

pub struct Window {
    capacity: usize,
    /// The sequence number of `records[0]`.
    first: u64,
    /// Each record with its subjects, sorted as its back-links are.
    records: VecDeque<Entry>,
    /// Each country's latest record that touches an allocation.
    allocation_last: HashMap<Country, u64>,
}

struct Entry {
    later: Later,
    /// For a record that touches an allocation: per country subject, that country's previous
    /// such record (the chain country walks follow).
    allocation_previous: Vec<(Country, Option<u64>)>,
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
            allocation_last: HashMap::new(),
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

    fn entry(&self, seq: u64) -> Option<&Entry> {
        let offset = seq.checked_sub(self.first)?;
        self.records.get(usize::try_from(offset).ok()?)
    }

    pub fn get(&self, seq: u64) -> Option<&Arc<Record>> {
        self.entry(seq).map(|entry| &entry.later.record)
    }

    /// Adds the next record, forgetting the oldest when full.
    pub fn push(&mut self, record: Arc<Record>, subjects: Arc<[Subject]>) {
        assert_eq!(record.seq, self.end(), "records enter the window in order");
        assert_eq!(
            record.links.len(),
            subjects.len(),
            "a record has one back-link per subject"
        );
        let mut allocation_previous = Vec::new();
        if touches_allocation(&record) {
            for subject in subjects.iter() {
                if let Subject::Country(country) = subject {
                    let previous = self.allocation_last.insert(*country, record.seq);
                    allocation_previous.push((*country, previous));
                }
            }
        }
        // The oldest leaves before the newest enters, so the queue never outgrows the capacity
        // (a queue one past a power of two would double its buffer: 3 MiB at the capacity).
        if self.records.len() == self.capacity {
            self.records.pop_front();
            self.first += 1;
        }
        self.records.push_back(Entry {
            later: Later { record, subjects },
            allocation_previous,
        });
    }

    /// Removes the records from `next` on (a rolled-back batch). When the window has already
    /// forgotten records older than them, it starts afresh at `next`.
    pub fn pop_to(&mut self, next: u64) {
        while self.end() > next {
            let Some(newest) = self.records.pop_back() else {
                break;
            };
            for (country, previous) in newest.allocation_previous {
                match previous {
                    Some(seq) => self.allocation_last.insert(country, seq),
                    None => self.allocation_last.remove(&country),
                };
            }
        }
        if self.end() != next {
            *self = Window::with_capacity(next, self.capacity);
        }
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
        let wanted = |later: &Later| {
            TimelineKey::of(&later.record) > key && reads.concerns(&later.record, &later.subjects)
        };
        let mut found: Vec<Later> = Vec::new();
        if reads.all {
            let start = usize::try_from(from.saturating_sub(self.first)).unwrap_or(usize::MAX);
            found.extend(
                self.records
                    .iter()
                    .skip(start)
                    .map(|entry| &entry.later)
                    .filter(|later| wanted(later))
                    .cloned(),
            );
        } else {
            let mut seqs: Vec<u64> = Vec::new();
            // Each step of a walk moves to a strictly smaller sequence number: every walk ends.
            for entity in &reads.entities {
                let subject = Subject::Entity(entity.clone());
                let mut next = latest(&subject);
                while let Some(seq) = next.filter(|seq| *seq >= from) {
                    let Some(entry) = self.entry(seq) else {
                        beyond.push((subject.clone(), seq));
                        break;
                    };
                    seqs.push(seq);
                    let later = &entry.later;
                    next = later
                        .subjects
                        .binary_search(&subject)
                        .ok()
                        .and_then(|index| later.record.links[index]);
                    debug_assert!(next.is_none_or(|previous| previous < seq));
                }
            }
            for country in &reads.countries {
                let mut next = self.allocation_last.get(country).copied();
                while let Some(seq) = next.filter(|seq| *seq >= from) {
                    let Some(entry) = self.entry(seq) else {
                        // Past the window a country is walked along its own back-links.
                        beyond.push((Subject::Country(*country), seq));
                        break;
                    };
                    seqs.push(seq);
                    next = entry
                        .allocation_previous
                        .iter()
                        .find(|(chained, _)| chained == country)
                        .and_then(|(_, previous)| *previous);
                    debug_assert!(next.is_none_or(|previous| previous < seq));
                }
            }
            seqs.sort_unstable();
            seqs.dedup();
            found.extend(
                seqs.into_iter()
                    .filter_map(|seq| self.entry(seq))
                    .map(|entry| &entry.later)
                    .filter(|later| wanted(later))
                    .cloned(),
            );
        }
        found.sort_by_key(|later| TimelineKey::of(&later.record));
        (found, beyond)
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
    let mut seen: std::collections::HashSet<u64> =
        found.iter().map(|later| later.record.seq).collect();
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
