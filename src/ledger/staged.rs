//! The canonical bytes of staged records, end to end in one buffer.
//!
//! An import stages ten thousand records per batch. Kept as one vector each, every record cost
//! an allocation when it was encoded and a free after its batch was committed, ten thousand
//! frees at a time that glibc merges chunk by chunk: 6% of the deciding thread's samples
//! (tools/bench/PROFILE.md, goal 1). Here a batch's records share one buffer: that of the last
//! batch made durable, emptied, or else one sized from the batch before.

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

    /// Empties the buffer, keeping its memory for the next batch.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
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

    /// Seals the records, staged from log position `first` on after `start` (FORMAT.md
    /// section 2: each record's `prev_chain` written in, in log order, from `start`'s chain
    /// hash): the entry bundles that hold them, the first completing `start`'s partial bundle
    /// and the last perhaps partial; each record's Merkle leaf hash; the sealed bytes of the
    /// records numbered in `copy` (ascending); and where the next batch starts. The staged
    /// bytes themselves keep their zeros: what the writer's own thread reads of them (the
    /// rules' view of a record) does not include its place in the chain.
    pub(crate) fn seal(
        &self,
        first: u64,
        start: &SealedEnd,
        copy: impl IntoIterator<Item = u64>,
    ) -> Sealed {
        assert_eq!(
            codec::BundleEntries::new(&start.tail).count() as u64,
            first % BUNDLE_RECORDS,
            "the tail holds the bundle's records before the batch"
        );
        // Each bundle starts at about a full one's size rather than growing to it.
        let average_entry = self.bytes.len() / self.len().max(1) + 2;
        let capacity = average_entry * (BUNDLE_RECORDS as usize + 1);
        let mut bundles = Vec::with_capacity(self.len() / BUNDLE_RECORDS as usize + 2);
        let mut leaves = Vec::with_capacity(self.len());
        let mut copies = Vec::new();
        let mut wanted = copy.into_iter().peekable();
        let mut chain = start.chain;
        let mut bundle = Vec::with_capacity(capacity);
        bundle.extend_from_slice(&start.tail);
        for (offset, bytes) in self.iter().enumerate() {
            let seq = first + offset as u64;
            codec::push_entry(&mut bundle, bytes);
            let entry_start = bundle.len() - bytes.len();
            let sealed = &mut bundle[entry_start..];
            chain = codec::seal(sealed, &chain);
            leaves.push(codec::leaf_hash(sealed));
            if wanted.next_if_eq(&seq).is_some() {
                copies.push(sealed.to_vec());
            }
            if (seq + 1) % BUNDLE_RECORDS == 0 {
                let full = std::mem::replace(&mut bundle, Vec::with_capacity(capacity));
                bundles.push((seq / BUNDLE_RECORDS, full));
            }
        }
        assert!(
            wanted.next().is_none(),
            "every record to copy is one of the batch's, in order"
        );
        let tail = if bundle.is_empty() {
            Vec::new()
        } else {
            let end = first + self.len() as u64;
            let tail = bundle.clone();
            bundles.push(((end - 1) / BUNDLE_RECORDS, bundle));
            tail
        };
        Sealed {
            bundles,
            leaves,
            copies,
            end: SealedEnd { chain, tail },
        }
    }
}

/// Where the next batch's sealing starts: the chain hash of the last record before it and the
/// entries of that record's bundle when the bundle is partial (empty on a bundle boundary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SealedEnd {
    pub(crate) chain: [u8; 32],
    pub(crate) tail: Vec<u8>,
}

/// A batch's records sealed ([`StagedBytes::seal`]).
pub(crate) struct Sealed {
    pub(crate) bundles: Vec<(u64, Vec<u8>)>,
    pub(crate) leaves: Vec<[u8; 32]>,
    pub(crate) copies: Vec<Vec<u8>>,
    pub(crate) end: SealedEnd,
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

    /// Sealing staged records gives the log's bytes: for batches starting anywhere in a
    /// bundle and spanning none, one or several boundaries, the tail's entries and then every
    /// record in order, each with the chain hash of the one before it, 256 to a bundle,
    /// numbered by position; each record's leaf hash; the sealed copies asked for; and the
    /// chain hash of the last record with its partial bundle (nothing on a boundary).
    #[test]
    fn sealing_chains_the_records_and_frames_them_256_to_a_bundle_after_the_tail() {
        let bundle_records = BUNDLE_RECORDS as usize;
        let staged_records: Vec<Record> = (0..700)
            .map(|seq| Record {
                prev_chain: [0; 32],
                ..entity(seq % 5, "acme")
            })
            .collect();
        // The log as it should be: each record with the chain hash of the one before, from a
        // chain hash standing for the records before these.
        let before = [7u8; 32];
        let mut chains = vec![before];
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        for record in &staged_records {
            let sealed = Record {
                prev_chain: *chains.last().unwrap(),
                ..record.clone()
            };
            let bytes = codec::encode_record(&sealed).unwrap();
            chains.push(codec::chain_hash(&bytes));
            encoded.push(bytes);
        }
        for first in [0, 1, 255, 256, 300] {
            for count in [1, 2, 255, 256, 257, 400] {
                let context = format!("first {first}, count {count}");
                let mut staged = StagedBytes::default();
                for record in &staged_records[first..first + count] {
                    staged.push(record, 1).unwrap();
                }
                let bundle_start = first - first % bundle_records;
                let mut tail = Vec::new();
                for bytes in &encoded[bundle_start..first] {
                    codec::push_entry(&mut tail, bytes);
                }
                let start = SealedEnd {
                    chain: chains[first],
                    tail,
                };
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
                let copy: Vec<u64> = (first..end).step_by(3).map(|seq| seq as u64).collect();
                let sealed = staged.seal(first as u64, &start, copy.iter().copied());
                assert_eq!(sealed.bundles, expected, "{context}");
                let leaves: Vec<[u8; 32]> = encoded[first..end]
                    .iter()
                    .map(|bytes| codec::leaf_hash(bytes))
                    .collect();
                assert_eq!(sealed.leaves, leaves, "{context}");
                let copies: Vec<Vec<u8>> = copy
                    .iter()
                    .map(|&seq| encoded[seq as usize].clone())
                    .collect();
                assert_eq!(sealed.copies, copies, "{context}");
                assert_eq!(sealed.end.chain, chains[end], "{context}");
                if end % bundle_records == 0 {
                    assert!(sealed.end.tail.is_empty(), "{context}");
                } else {
                    assert_eq!(sealed.end.tail, expected.last().unwrap().1, "{context}");
                }
                // The staged bytes keep their zeros.
                assert!(
                    staged
                        .iter()
                        .all(|bytes| bytes[codec::PREV_CHAIN_BYTES].iter().all(|&b| b == 0)),
                    "{context}"
                );
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
