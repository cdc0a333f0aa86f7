//! The canonical bytes of staged records, end to end in one buffer.
//!
//! An import stages ten thousand records per batch. Kept as one vector each, every record cost
//! an allocation when it was encoded and a free after its batch was committed, ten thousand
//! frees at a time that glibc merges chunk by chunk: 6% of the deciding thread's samples
//! (tools/bench/PROFILE.md, goal 1). Here a batch's records share one buffer, sized from the
//! batch before.

use crate::codec::{self, BUNDLE_RECORDS, CodecError, Record};

#[derive(Default)]
pub(crate) struct StagedBytes {
    bytes: Vec<u8>,
    /// Where each record's bytes end in `bytes`, in staging order.
    ends: Vec<usize>,
}

impl StagedBytes {
    /// Room for a batch like one with `previous`'s records.
    pub(crate) fn like(previous: &StagedBytes) -> StagedBytes {
        StagedBytes {
            bytes: Vec::with_capacity(previous.bytes.len()),
            ends: Vec::with_capacity(previous.ends.len()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of the record staged `index`-th.
    pub(crate) fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        Some(&self.bytes[start..end])
    }

    /// Every record's bytes, in staging order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator + '_ {
        (0..self.len()).map(|index| self.get(index).expect("an index below the length"))
    }

    /// Encodes `record` ([`codec::encode_linked`]) after the staged records and returns its
    /// bytes. Nothing is staged if it cannot be encoded.
    pub(crate) fn push(&mut self, record: &Record, subjects: usize) -> Result<&[u8], CodecError> {
        let start = self.bytes.len();
        codec::encode_linked_into(record, subjects, &mut self.bytes)?;
        assert!(self.bytes.len() > start, "a record has bytes");
        self.ends.push(self.bytes.len());
        Ok(&self.bytes[start..])
    }

    /// The entry bundles that hold the records, staged from log position `first` on: the first
    /// one completes `prefix`, the entries of its records before `first`, and the last may be
    /// partial.
    pub(crate) fn bundles(&self, first: u64, prefix: &[u8]) -> Vec<(u64, Vec<u8>)> {
        assert_eq!(
            codec::BundleEntries::new(prefix).count() as u64,
            first % BUNDLE_RECORDS,
            "the prefix holds the bundle's records before the batch"
        );
        // Each bundle starts at about a full one's size rather than growing to it.
        let average_entry = self.bytes.len() / self.len().max(1) + 2;
        let capacity = average_entry * (BUNDLE_RECORDS as usize + 1);
        let mut bundles = Vec::with_capacity(self.len() / BUNDLE_RECORDS as usize + 2);
        let mut bundle = Vec::with_capacity(capacity);
        bundle.extend_from_slice(prefix);
        for (offset, bytes) in self.iter().enumerate() {
            codec::push_entry(&mut bundle, bytes);
            let seq = first + offset as u64;
            if (seq + 1) % BUNDLE_RECORDS == 0 {
                let full = std::mem::replace(&mut bundle, Vec::with_capacity(capacity));
                bundles.push((seq / BUNDLE_RECORDS, full));
            }
        }
        if !bundle.is_empty() {
            let end = first + self.len() as u64;
            bundles.push(((end - 1) / BUNDLE_RECORDS, bundle));
        }
        bundles
    }

    /// The last, partial bundle once the records (staged from `first` on, after `prefix`, as
    /// in [`StagedBytes::bundles`]) are in the log: empty when they end on a bundle boundary.
    pub(crate) fn tail_bundle(&self, first: u64, prefix: &[u8]) -> Vec<u8> {
        let end = first + self.len() as u64;
        let tail_start = end - end % BUNDLE_RECORDS;
        let mut bundle = Vec::new();
        if tail_start <= first {
            bundle.extend_from_slice(prefix);
        }
        let skip = usize::try_from(tail_start.saturating_sub(first)).expect("in memory");
        for bytes in self.iter().skip(skip) {
            codec::push_entry(&mut bundle, bytes);
        }
        bundle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Body, EntityEvent, Event, Outcome};
    use crate::country::Country;
    use crate::date::{Date, Instant};
    use crate::name::{Id, Text};

    fn entity(seq: u64, name: &str) -> Record {
        Record {
            seq,
            recorded_at: Instant::parse("2026-01-01").unwrap(),
            effective: Date::parse("2025-03-01").unwrap(),
            prev_chain: [seq as u8; 32],
            links: [None].into_iter().collect(),
            event: Event {
                id: Id::parse(&format!("e{seq}")).unwrap(),
                body: Body::Entity(EntityEvent {
                    entity: Id::parse(name).unwrap(),
                    name: Text::parse(&name.repeat(seq as usize + 1)).unwrap(),
                    hq: Country::parse("FR").unwrap(),
                    parent: None,
                }),
            },
            outcome: Outcome::None,
        }
    }

    /// Bundles built from staged records are the log's bundles: for batches starting anywhere
    /// in a bundle and spanning none, one or several boundaries, the prefix's entries and then
    /// every record in order, 256 to a bundle, numbered by position; the tail is the last
    /// partial bundle, or nothing on a boundary.
    #[test]
    fn bundles_frame_the_records_256_to_a_bundle_after_the_prefix() {
        let bundle_records = BUNDLE_RECORDS as usize;
        let records: Vec<Record> = (0..700).map(|seq| entity(seq % 5, "acme")).collect();
        let encoded: Vec<Vec<u8>> = records
            .iter()
            .map(|record| codec::encode_record(record).unwrap())
            .collect();
        for first in [0, 1, 255, 256, 300] {
            for count in [1, 2, 255, 256, 257, 400] {
                let mut staged = StagedBytes::default();
                for record in &records[first..first + count] {
                    staged.push(record, 1).unwrap();
                }
                let bundle_start = first - first % bundle_records;
                let mut prefix = Vec::new();
                for bytes in &encoded[bundle_start..first] {
                    codec::push_entry(&mut prefix, bytes);
                }
                let end = first + count;
                let expected: Vec<(u64, Vec<u8>)> = (bundle_start..end)
                    .step_by(bundle_records)
                    .map(|start| {
                        let mut bundle = Vec::new();
                        for bytes in &encoded[start..(start + bundle_records).min(end)] {
                            codec::push_entry(&mut bundle, bytes);
                        }
                        ((start / bundle_records) as u64, bundle)
                    })
                    .collect();
                let bundles = staged.bundles(first as u64, &prefix);
                assert_eq!(bundles, expected, "first {first}, count {count}");
                let tail = staged.tail_bundle(first as u64, &prefix);
                if end % bundle_records == 0 {
                    assert!(tail.is_empty(), "first {first}, count {count}");
                } else {
                    assert_eq!(
                        tail,
                        expected.last().unwrap().1,
                        "first {first}, count {count}"
                    );
                }
            }
        }
    }

    /// Each staged record reads back as exactly the bytes `encode_record` gives it, in order
    /// and in reverse; a record that cannot be encoded stages nothing.
    #[test]
    fn staged_records_read_back_as_encoded() {
        let records: Vec<Record> = (0..5).map(|seq| entity(seq, "acme")).collect();
        let mut staged = StagedBytes::default();
        for record in &records {
            let bytes = staged.push(record, 1).unwrap().to_vec();
            assert_eq!(bytes, codec::encode_record(record).unwrap());
        }
        let mismatched = staged.push(&entity(5, "acme"), 2).unwrap_err();
        assert_eq!(
            mismatched,
            CodecError::LinksMismatch {
                links: 1,
                subjects: 2
            }
        );
        assert_eq!(staged.len(), records.len());
        let encoded: Vec<Vec<u8>> = records
            .iter()
            .map(|record| codec::encode_record(record).unwrap())
            .collect();
        for (index, bytes) in encoded.iter().enumerate() {
            assert_eq!(staged.get(index), Some(&bytes[..]));
        }
        assert_eq!(staged.get(records.len()), None);
        assert!(staged.iter().eq(encoded.iter().map(Vec::as_slice)));
        assert!(
            staged
                .iter()
                .rev()
                .eq(encoded.iter().rev().map(Vec::as_slice))
        );
        let next = StagedBytes::like(&staged);
        assert!(next.is_empty());
        assert!(next.bytes.capacity() >= staged.bytes.len());
    }
}
