//! The canonical bytes of staged records, end to end in one buffer.
//!
//! An import stages ten thousand records per batch. Kept as one vector each, every record cost
//! an allocation when it was encoded and a free after its batch was committed, ten thousand
//! frees at a time that glibc merges chunk by chunk: 6% of the deciding thread's samples
//! (tools/bench/PROFILE.md, goal 1). Here a batch's records share one buffer, sized from the
//! batch before.

use crate::codec::{self, CodecError, Record};

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
