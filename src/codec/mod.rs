//! Canonical bytes: records, the chain hash, the Merkle leaf hash and entry bundles.
//!
//! This is the only module that defines a hashed byte layout; `schemas/FORMAT.md` describes each
//! one byte by byte. A record's bytes are the bincode 2 `config::legacy()` encoding of
//! [`Record`]: fixed-width little-endian integers, `u64` length prefixes, `u32` enum variant
//! indexes. Decoding checks that every byte is consumed and that encoding the decoded value
//! gives the same bytes back, so one record has exactly one valid encoding.

pub mod event;
pub mod ruleset;

use std::fmt;

use crate::country::Country;
use crate::date::{Date, Instant};
use crate::name::Id;

pub use event::*;
pub use ruleset::*;

/// The largest record: its length must fit the 16-bit frame of an entry bundle.
pub const MAX_RECORD_BYTES: usize = u16::MAX as usize;

/// Records per entry bundle, and hashes per Merkle tile (C2SP tlog-tiles, height 8).
pub const BUNDLE_RECORDS: u64 = 256;

/// BLAKE3 `derive_key` context of the chain hash: domain separation, so that no other BLAKE3
/// use can produce a colliding chain value.
pub const CHAIN_CONTEXT: &str = "chipledger 2026-11 record chain v1";

const fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::NoLimit,
> {
    bincode::config::legacy()
}

/// One entry of the log.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Record {
    /// Position in the log, from 0 (the genesis record).
    pub seq: u64,
    /// When the ledger recorded it (the clock, or `CHIPLEDGER_NOW`; never before the previous
    /// record's time).
    pub recorded_at: Instant,
    /// The day the event takes effect.
    pub effective: Date,
    /// Chain hash of record `seq - 1`; zeros for the genesis record.
    pub prev_chain: [u8; 32],
    /// For each subject of [`Record::subjects`], in that order: the sequence number of the
    /// subject's previous record, if it had one.
    pub links: BackLinks,
    pub event: Event,
    pub outcome: Outcome,
}

/// The most subjects a record has ([`Record::subjects`]): a transfer's entity, its two
/// countries and the entity it goes to.
pub const MAX_SUBJECTS: usize = 4;

/// A record's back-links ([`Record::links`]), held inline: a replay decodes a million records,
/// and allocating and freeing a vector for each one's links was 7% of the decoding's
/// instructions (tools/bench/PROFILE.md, goal 2). Encoded as a `Vec<Option<u64>>` would be
/// (FORMAT.md section 3): a length, then each link.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct BackLinks {
    /// How many links there are; the slots past them are always `None`, so that the derived
    /// equality is that of the links.
    count: u8,
    slots: [Option<u64>; MAX_SUBJECTS],
}

impl BackLinks {
    /// Appends a link. Panics past [`MAX_SUBJECTS`]: no record has more subjects.
    pub fn push(&mut self, link: Option<u64>) {
        let slot = usize::from(self.count);
        assert!(
            slot < MAX_SUBJECTS,
            "a record has at most {MAX_SUBJECTS} subjects"
        );
        self.slots[slot] = link;
        self.count += 1;
    }
}

impl std::ops::Deref for BackLinks {
    type Target = [Option<u64>];

    fn deref(&self) -> &[Option<u64>] {
        &self.slots[..usize::from(self.count)]
    }
}

impl<'a> IntoIterator for &'a BackLinks {
    type Item = &'a Option<u64>;
    type IntoIter = std::slice::Iter<'a, Option<u64>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Panics past [`MAX_SUBJECTS`] links, as [`BackLinks::push`] does.
impl FromIterator<Option<u64>> for BackLinks {
    fn from_iter<I: IntoIterator<Item = Option<u64>>>(links: I) -> BackLinks {
        let mut back_links = BackLinks::default();
        links.into_iter().for_each(|link| back_links.push(link));
        back_links
    }
}

impl fmt::Debug for BackLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl bincode::Encode for BackLinks {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        (self.len() as u64).encode(encoder)?;
        self.iter().try_for_each(|link| link.encode(encoder))
    }
}

impl<Context> bincode::Decode<Context> for BackLinks {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let count = <u64 as bincode::Decode<Context>>::decode(decoder)?;
        if count > MAX_SUBJECTS as u64 {
            return Err(bincode::error::DecodeError::Other(
                "more back-links than a record has subjects",
            ));
        }
        let mut back_links = BackLinks::default();
        for _ in 0..count {
            back_links.push(bincode::Decode::decode(decoder)?);
        }
        Ok(back_links)
    }
}
bincode::impl_borrow_decode!(BackLinks);

/// Something a record concerns. A subject's records form a linked list inside the log through
/// the records' `links`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, bincode::Encode, bincode::Decode)]
pub enum Subject {
    Entity(Id),
    Country(Country),
    Veu(Id),
    Chip(Id),
    /// Every tier change, whatever the country: tiers decide rules everywhere, so a
    /// compliance proof includes this list and proves it complete.
    Tiers,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Entity(id) => write!(f, "entity:{id}"),
            Subject::Country(country) => write!(f, "country:{country}"),
            Subject::Veu(id) => write!(f, "veu:{id}"),
            Subject::Chip(id) => write!(f, "chip:{id}"),
            Subject::Tiers => f.write_str("tiers"),
        }
    }
}

impl Subject {
    /// Parses the `kind:id` form of [`Subject`]'s `Display`.
    pub fn parse(text: &str) -> Result<Subject, String> {
        if text == "tiers" {
            return Ok(Subject::Tiers);
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            format!("`{text}` is not a subject such as entity:acme or country:MY")
        })?;
        match kind {
            "entity" => Id::parse(rest).map(Subject::Entity),
            "country" => Country::parse(rest).map(Subject::Country),
            "veu" => Id::parse(rest).map(Subject::Veu),
            "chip" => Id::parse(rest).map(Subject::Chip),
            _ => Err(format!(
                "`{kind}` is not a subject kind (entity, country, veu, chip)"
            )),
        }
    }
}

impl Record {
    /// The subjects this record concerns, sorted and without repeats: the layout of `links`.
    ///
    /// A subject is listed when the event changes its state or names it as a party: the
    /// exporter of a shipment is listed because an exporter's compliance report must show its
    /// exports. A void concerns what its target concerned.
    pub fn subjects(&self) -> Vec<Subject> {
        self.few_subjects().into_vec()
    }

    /// [`Record::subjects`] without an allocation (an event has at most four): what staging
    /// a record uses, for every record an import writes.
    pub fn few_subjects(&self) -> Subjects {
        let mut subjects = match (&self.event.body, &self.outcome) {
            (Body::Void(_), Outcome::Void(void)) => body_subjects(&void.target_event.body),
            (Body::VeuRevoke(revoke), Outcome::Revoke(outcome)) => smallvec::smallvec![
                Subject::Entity(outcome.holder.clone()),
                Subject::Veu(revoke.veu.clone()),
            ],
            (body, _) => body_subjects(body),
        };
        subjects.sort_unstable();
        subjects.dedup();
        subjects
    }
}

/// A record's subjects, held inline.
pub type Subjects = smallvec::SmallVec<[Subject; 4]>;

fn body_subjects(body: &Body) -> Subjects {
    use Subject::{Chip, Country as C, Entity, Tiers, Veu};
    use smallvec::smallvec;
    match body {
        Body::Genesis(_) | Body::Commitment(_) | Body::Void(_) => Subjects::new(),
        Body::Entity(event) => smallvec![Entity(event.entity.clone())],
        Body::ChipModel(event) => smallvec![Chip(event.chip.clone())],
        Body::TierChange(event) => smallvec![C(event.country), Tiers],
        Body::AllocationChange(event) => smallvec![C(event.country)],
        Body::VeuGrant(event) => smallvec![Entity(event.entity.clone()), Veu(event.veu.clone())],
        // The holder is not in the event; `subjects` takes it from the revoke's outcome.
        Body::VeuRevoke(event) => smallvec![Veu(event.veu.clone())],
        Body::AiaCertification(event) => smallvec![Entity(event.entity.clone())],
        Body::Inventory(event) | Body::Decommission(event) => {
            smallvec![Entity(event.entity.clone()), C(event.country)]
        }
        Body::Shipment(event) => smallvec![
            Entity(event.exporter.clone()),
            Entity(event.consignee.clone()),
            C(event.country),
        ],
        Body::Transfer(event) => {
            let mut subjects: Subjects = smallvec![
                Entity(event.entity.clone()),
                C(event.from_country),
                C(event.to_country),
            ];
            if let Some(to_entity) = &event.to_entity {
                subjects.push(Entity(to_entity.clone()));
            }
            subjects
        }
        Body::WeightsHosting(event) => smallvec![Entity(event.entity.clone()), C(event.country)],
    }
}

/// Why bytes are not a valid record (or bundle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// bincode could not decode the bytes.
    Malformed(String),
    /// Bytes were left over after the record.
    TrailingBytes { used: usize, total: usize },
    /// Decoding and re-encoding gave different bytes.
    NotCanonical,
    /// The encoding exceeds [`MAX_RECORD_BYTES`].
    TooLarge(usize),
    /// The number of links does not match the number of subjects.
    LinksMismatch { links: usize, subjects: usize },
    /// An entry bundle's framing is broken.
    BadBundle(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Malformed(reason) => write!(f, "cannot be decoded: {reason}"),
            CodecError::TrailingBytes { used, total } => {
                write!(f, "has {} bytes after the record's {used}", total - used)
            }
            CodecError::NotCanonical => write!(f, "is not in canonical form"),
            CodecError::TooLarge(size) => {
                write!(
                    f,
                    "is {size} bytes; a record has at most {MAX_RECORD_BYTES}"
                )
            }
            CodecError::LinksMismatch { links, subjects } => {
                write!(f, "has {links} links for {subjects} subjects")
            }
            CodecError::BadBundle(reason) => write!(f, "entry bundle is broken: {reason}"),
        }
    }
}

/// Encodes a record canonically.
pub fn encode_record(record: &Record) -> Result<Vec<u8>, CodecError> {
    encode_linked(record, record.subjects().len())
}

/// [`encode_record`] for a caller that knows how many subjects the record has.
pub fn encode_linked(record: &Record, subjects: usize) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::new();
    encode_linked_into(record, subjects, &mut bytes)?;
    Ok(bytes)
}

/// [`encode_linked`], appending the bytes to `out`; on an error `out` is unchanged.
pub fn encode_linked_into(
    record: &Record,
    subjects: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    if record.links.len() != subjects {
        return Err(CodecError::LinksMismatch {
            links: record.links.len(),
            subjects,
        });
    }
    // One encoding pass into a buffer on the stack, then one copy to its place: `encode_to_vec`
    // would walk the record twice (once to size it). A record too large for the buffer (rare:
    // long texts) takes that slower path.
    let mut buffer = [0u8; 1024];
    let large;
    let bytes = match bincode::encode_into_slice(record, &mut buffer, config()) {
        Ok(used) => &buffer[..used],
        Err(bincode::error::EncodeError::UnexpectedEnd) => {
            large = bincode::encode_to_vec(record, config())
                .map_err(|error| CodecError::Malformed(error.to_string()))?;
            &large[..]
        }
        Err(error) => return Err(CodecError::Malformed(error.to_string())),
    };
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// Decodes a record, insisting on canonical bytes.
pub fn decode_record(bytes: &[u8]) -> Result<Record, CodecError> {
    decode_record_subjects(bytes).map(|(record, _)| record)
}

/// [`decode_record`], with the record's subjects (computed to check its back-links anyway).
pub fn decode_record_subjects(bytes: &[u8]) -> Result<(Record, Subjects), CodecError> {
    let record = decode_stored_record(bytes)?;
    let subjects = record.few_subjects();
    if record.links.len() != subjects.len() {
        return Err(CodecError::LinksMismatch {
            links: record.links.len(),
            subjects: subjects.len(),
        });
    }
    if !encodes_to(&record, bytes) {
        return Err(CodecError::NotCanonical);
    }
    Ok((record, subjects))
}

/// The configuration stored records are decoded with. The limit bounds what a hostile length
/// prefix can make the decoder allocate; it does not change the encoding.
fn stored_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<{ MAX_RECORD_BYTES * 4 }>,
> {
    config().with_limit::<{ MAX_RECORD_BYTES * 4 }>()
}

/// Decodes a record read back from the ledger's own store, whose bytes were encoded by
/// [`encode_record`] and are checked against their hashes by `verify`: one whole record and
/// nothing after it, its identifiers, dates and texts valid, but not re-encoded to check its
/// canonical form and back-links (without that, a replay of 1,000,000 records took 15 to 20%
/// less time). Bytes from elsewhere (an export, a proof) and `verify` go through
/// [`decode_record`].
pub fn decode_stored_record(bytes: &[u8]) -> Result<Record, CodecError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let (record, used): (Record, usize) = bincode::decode_from_slice(bytes, stored_config())
        .map_err(|error| CodecError::Malformed(error.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            used,
            total: bytes.len(),
        });
    }
    Ok(record)
}

/// [`decode_stored_record`], with the record pushed onto `records` beside `key` rather than
/// returned. A record is 288 bytes, and handing one back through two `Result`s to a caller's
/// vector copied it four times more (5% of the decoding's instructions,
/// tools/bench/PROFILE.md, goal 2). Bytes that do not decode get the error
/// [`decode_stored_record`] gives.
pub fn push_stored_record<K>(
    bytes: &[u8],
    records: &mut Vec<(K, Record)>,
    key: K,
) -> Result<(), CodecError> {
    use bincode::de::{Decoder, read::Reader};
    if bytes.len() <= MAX_RECORD_BYTES {
        let reader = bincode::de::read::SliceReader::new(bytes);
        let mut decoder = bincode::de::DecoderImpl::new(reader, stored_config(), ());
        if let Ok(record) = <Record as bincode::Decode<()>>::decode(&mut decoder)
            && decoder.reader().peek_read(1).is_none()
        {
            records.push((key, record));
            return Ok(());
        }
    }
    let record = decode_stored_record(bytes)?;
    records.push((key, record));
    Ok(())
}

/// A bincode writer that checks that what is written equals `expected`, byte for byte.
pub(crate) struct Compare<'a> {
    expected: &'a [u8],
    position: usize,
}

impl<'a> Compare<'a> {
    pub(crate) fn new(expected: &'a [u8]) -> Compare<'a> {
        Compare {
            expected,
            position: 0,
        }
    }

    /// Whether everything written so far matched and every expected byte was written.
    pub(crate) fn matched_all(&self) -> bool {
        self.position == self.expected.len()
    }
}

impl bincode::enc::write::Writer for Compare<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        let end = self.position + bytes.len();
        if self.expected.get(self.position..end) != Some(bytes) {
            return Err(bincode::error::EncodeError::Other("not canonical"));
        }
        self.position = end;
        Ok(())
    }
}

thread_local! {
    /// The chain hasher with its context key derived once (deriving it costs as much as hashing
    /// a small record), reset for each record: a `blake3::Hasher` is about 1.9 KB, so reusing
    /// one is cheaper than copying a prepared one for every record.
    static CHAIN_HASHER: std::cell::RefCell<blake3::Hasher> =
        std::cell::RefCell::new(blake3::Hasher::new_derive_key(CHAIN_CONTEXT));
}

/// The chain hash of a record's bytes.
pub fn chain_hash(record_bytes: &[u8]) -> [u8; 32] {
    CHAIN_HASHER.with_borrow_mut(|hasher| hasher.reset().update(record_bytes).finalize().into())
}

/// Where `prev_chain` sits in a record's bytes (FORMAT.md section 2): after `seq` (8 bytes),
/// `recorded_at` (8) and `effective` (4), whatever the record holds. Because the place is
/// fixed, a writer stages a record before the previous record's chain hash is known, with
/// zeros there, and seals it later ([`seal`]): the chain hash, which runs in log order, then
/// leaves the thread that decides events for the thread that commits them.
pub const PREV_CHAIN_BYTES: std::ops::Range<usize> = 20..52;

/// Writes `prev_chain` into the bytes of a record staged with zeros in its place, and returns
/// the record's own chain hash.
pub fn seal(record_bytes: &mut [u8], prev_chain: &[u8; 32]) -> [u8; 32] {
    let place = &mut record_bytes[PREV_CHAIN_BYTES];
    assert!(
        place.iter().all(|&byte| byte == 0),
        "a record is sealed once, from zeros"
    );
    place.copy_from_slice(prev_chain);
    chain_hash(record_bytes)
}

/// The RFC 6962 Merkle leaf hash of a record's bytes: SHA-256(0x00 ‖ bytes).
pub fn leaf_hash(record_bytes: &[u8]) -> [u8; 32] {
    tlog_tiles::record_hash(record_bytes).0
}

/// Canonical bytes of an event and its effective date: what "the same content" means when an
/// id is submitted twice.
pub fn content_bytes(effective: Date, event: &Event) -> Vec<u8> {
    bincode::encode_to_vec((effective, event), config()).expect("encoding to a Vec cannot fail")
}

/// Encodes any value with the canonical configuration (used for derived data and digests).
pub fn to_bytes<T: bincode::Encode>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    append_bytes(value, &mut bytes);
    bytes
}

/// Appends `value`'s canonical encoding to `bytes`, as [`to_bytes`] encodes it.
pub fn append_bytes<T: bincode::Encode>(value: &T, bytes: &mut Vec<u8>) {
    // One pass, the vector growing as it goes: `bincode::encode_to_vec` encodes everything
    // twice, once only to count the bytes, and a state snapshot's encoding sorts every map.
    let mut growing = Growing(std::mem::take(bytes));
    bincode::encode_into_writer(value, &mut growing, config())
        .expect("encoding to a Vec cannot fail");
    *bytes = growing.0;
}

/// Whether `value`'s canonical encoding is exactly `bytes`. Compares as the bytes come,
/// without building a second copy.
pub fn encodes_to<T: bincode::Encode>(value: &T, bytes: &[u8]) -> bool {
    let mut compare = Compare::new(bytes);
    write_to(value, &mut compare).is_ok() && compare.matched_all()
}

/// Writes `value`'s canonical encoding to `writer`.
pub(crate) fn write_to<T: bincode::Encode>(
    value: &T,
    writer: &mut impl bincode::enc::write::Writer,
) -> Result<(), bincode::error::EncodeError> {
    bincode::encode_into_writer(value, writer, config())
}

/// A bincode writer that appends to a vector.
pub(crate) struct Growing(pub(crate) Vec<u8>);

impl bincode::enc::write::Writer for Growing {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes a value written by [`to_bytes`], requiring every byte to be used.
///
/// The decoder's allocation limit grows with the input: a valid encoding never claims more
/// than a small multiple of its own size in memory, so damaged bytes cannot make it allocate
/// without bound.
pub fn from_bytes<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    fn decode<T: bincode::Decode<()>, const LIMIT: usize>(
        bytes: &[u8],
    ) -> Result<(T, usize), CodecError> {
        bincode::decode_from_slice(bytes, config().with_limit::<LIMIT>())
            .map_err(|error| CodecError::Malformed(error.to_string()))
    }
    let needed = bytes.len().saturating_mul(64).max(1 << 16);
    let (value, used) = if needed <= 1 << 20 {
        decode::<T, { 1 << 20 }>(bytes)?
    } else if needed <= 1 << 26 {
        decode::<T, { 1 << 26 }>(bytes)?
    } else if needed <= 1 << 32 {
        decode::<T, { 1 << 32 }>(bytes)?
    } else {
        decode::<T, { 1 << 38 }>(bytes)?
    };
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            used,
            total: bytes.len(),
        });
    }
    Ok(value)
}

/// Appends one entry to a C2SP entry bundle: a 16-bit big-endian length, then the bytes.
pub fn push_entry(bundle: &mut Vec<u8>, record_bytes: &[u8]) {
    let length = u16::try_from(record_bytes.len()).expect("records are at most 65535 bytes");
    bundle.extend_from_slice(&length.to_be_bytes());
    bundle.extend_from_slice(record_bytes);
}

/// Entry `offset` of an entry bundle, without slicing the rest.
pub fn bundle_entry(bundle: &[u8], offset: usize) -> Result<&[u8], CodecError> {
    match BundleEntries::new(bundle).nth(offset) {
        Some(entry) => entry.map(|range| &bundle[range]),
        None => Err(CodecError::BadBundle(format!("entry {offset} is missing"))),
    }
}

/// The entries of an entry bundle (FORMAT.md section 4), found one at a time: each entry's
/// range, or why the framing breaks there, after which the iterator ends. Ranges rather than
/// slices, so that a bundle handed to another thread keeps its entries found.
///
/// A reader that decodes each entry as it is found reads the next length prefix while the
/// bytes before it are in the cache. Finding all 256 entries first is a chain of dependent
/// cache misses, each prefix's address following from the one before it: 3% of a replay's
/// CPU (tools/bench/PROFILE.md, goal 2).
pub struct BundleEntries<'a> {
    bundle: &'a [u8],
    start: usize,
    found: usize,
}

impl<'a> BundleEntries<'a> {
    pub fn new(bundle: &'a [u8]) -> BundleEntries<'a> {
        BundleEntries {
            bundle,
            start: 0,
            found: 0,
        }
    }

    /// Ends the iteration with `error`.
    fn broken(&mut self, error: String) -> Option<Result<std::ops::Range<usize>, CodecError>> {
        self.start = self.bundle.len();
        Some(Err(CodecError::BadBundle(error)))
    }
}

impl Iterator for BundleEntries<'_> {
    type Item = Result<std::ops::Range<usize>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self
            .bundle
            .get(self.start..)
            .filter(|rest| !rest.is_empty())?;
        if rest.len() < 2 {
            return self.broken("a length prefix is cut short".into());
        }
        let length = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + length {
            return self.broken(format!(
                "entry {} claims {length} bytes but {} remain",
                self.found,
                rest.len() - 2
            ));
        }
        if self.found as u64 == BUNDLE_RECORDS {
            return self.broken("more than 256 entries".into());
        }
        let entry = self.start + 2..self.start + 2 + length;
        self.start = entry.end;
        self.found += 1;
        Some(Ok(entry))
    }
}

/// The first bytes of every journal frame (FORMAT.md section 6.1).
pub const JOURNAL_MAGIC: [u8; 4] = *b"CLJ1";

/// Journal frames start at multiples of this: a frame is written as whole pages, so writing
/// one never reads a page back from the disk first.
pub const JOURNAL_PAGE_BYTES: usize = 4096;

/// Bytes of a journal frame before its payload: magic, payload length (u32 LE), batch number
/// (u64 LE).
pub const JOURNAL_HEADER_BYTES: usize = 16;

/// Bytes of the BLAKE3 checksum after a journal frame's payload.
const JOURNAL_CHECKSUM_BYTES: usize = 32;

/// A journal frame for batch `seq` carrying `payload`, padded with zeroes to whole pages:
/// magic, payload length, batch number, payload, then BLAKE3 of everything before it.
pub fn journal_frame(seq: u64, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a journal payload is under 4 GiB");
    let unpadded = JOURNAL_HEADER_BYTES + payload.len() + JOURNAL_CHECKSUM_BYTES;
    let mut frame = Vec::with_capacity(unpadded.next_multiple_of(JOURNAL_PAGE_BYTES));
    frame.extend_from_slice(&JOURNAL_MAGIC);
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(payload);
    let checksum = blake3::hash(&frame);
    frame.extend_from_slice(checksum.as_bytes());
    frame.resize(unpadded.next_multiple_of(JOURNAL_PAGE_BYTES), 0);
    debug_assert_eq!(frame.len() % JOURNAL_PAGE_BYTES, 0);
    frame
}

/// How long the frame whose header is `header` claims to be with its checksum and padding,
/// or `None` when the header is not a frame's (zeroes, a torn write, other bytes).
pub fn journal_frame_bytes(header: &[u8; JOURNAL_HEADER_BYTES]) -> Option<usize> {
    if header[..4] != JOURNAL_MAGIC {
        return None;
    }
    let length = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let unpadded = JOURNAL_HEADER_BYTES + length as usize + JOURNAL_CHECKSUM_BYTES;
    Some(unpadded.next_multiple_of(JOURNAL_PAGE_BYTES))
}

/// The batch number and payload of the frame `frame` (as long as [`journal_frame_bytes`]
/// said), or `None` when its checksum does not match: the frame was torn or never written.
pub fn journal_frame_payload(frame: &[u8]) -> Option<(u64, &[u8])> {
    let header: &[u8; JOURNAL_HEADER_BYTES] = frame.get(..JOURNAL_HEADER_BYTES)?.try_into().ok()?;
    if journal_frame_bytes(header)? != frame.len() {
        return None;
    }
    let length = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
    let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let checked = JOURNAL_HEADER_BYTES + length;
    let checksum = &frame[checked..checked + JOURNAL_CHECKSUM_BYTES];
    if blake3::hash(&frame[..checked]).as_bytes() != checksum {
        return None;
    }
    Some((seq, &frame[JOURNAL_HEADER_BYTES..checked]))
}
