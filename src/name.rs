//! Identifiers and free text: the two kinds of strings an event may carry.
//!
//! Both are bounded so that a record always fits its 16-bit length frame in an entry bundle
//! (FORMAT.md), and both refuse control characters, which would let a crafted name rewrite a
//! terminal line or break an NDJSON export.

use smol_str::SmolStr;
use std::fmt;

/// The longest identifier, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// The longest free text, in bytes (entity names, model names, void reasons).
pub const MAX_TEXT_BYTES: usize = 512;

/// An identifier: 1 to 128 characters from `[A-Za-z0-9._:-]`.
///
/// Cheap to clone, because the rule state keys its maps by entity and VEU ids and every
/// event names some: an identifier of at most [`INLINE_ID_BYTES`] bytes (nearly all: event
/// ids, entity names, chip models) is held inline, so that making, cloning, comparing and
/// dropping it touches no allocation and no shared reference count; a longer one is shared.
///
/// Each identifier also carries a hash of its text, computed once when it is made: the rule
/// state finds entities, chips and VEUs by identifier in about a dozen maps per event, and
/// hashing the text each time was a tenth of the deciding thread's instructions
/// (tools/bench/PROFILE.md, goal 1). `Hash` writes that number alone. It is seeded at random
/// once per process ([`ID_HASHER`]), as the maps' own hashers are, so it is never stored and
/// which identifiers collide changes from one process to the next. Equality and order are
/// those of the text (equality compares the hashes first, which equal texts always share);
/// there is no `Borrow<str>`, because a `str` hashes differently.
#[derive(Clone)]
pub struct Id {
    text: SmolStr,
    hash: u64,
}

/// The hasher of every identifier's text in this process: random, made once.
static ID_HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Eq for Id {}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Id) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Id) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The longest identifier held inline, in bytes.
const INLINE_ID_BYTES: usize = SmolStr::INLINE_CAP;

/// Slots in each thread's cache of recently made identifiers: four times the few thousand
/// names a large ledger repeats, so that few of them share a slot.
const RECENT_IDS: usize = 16_384;

thread_local! {
    /// Long identifiers (more than [`INLINE_ID_BYTES`]) recently made on this thread, each in
    /// the slot its text hashes to. Events name the same few thousand entities over and over: a
    /// repeated long identifier is then one shared allocation, not one per event, and is not
    /// checked again. Ids that name one event are made by [`Id::parse_unique`] and do not
    /// evict them. The cache holds at most [`RECENT_IDS`] identifiers of at most
    /// [`MAX_ID_BYTES`] bytes.
    static RECENT: std::cell::RefCell<Vec<Option<Id>>> =
        std::cell::RefCell::new(vec![None; RECENT_IDS]);
}

impl Id {
    pub fn parse(text: &str) -> Result<Id, String> {
        if text.len() <= INLINE_ID_BYTES {
            // Held inline: checking it costs less than finding it in the cache.
            return Id::check(text);
        }
        let hash = text_hash(text.as_bytes());
        let slot = recent_slot(hash);
        if let Some(id) = Id::recent(slot, text.as_bytes()) {
            return Ok(id);
        }
        Id::check_hashed(text, hash).inspect(|id| Id::remember(slot, id))
    }

    /// Puts a long identifier in `slot` of this thread's cache.
    fn remember(slot: usize, id: &Id) {
        RECENT.with_borrow_mut(|recent| recent[slot] = Some(id.clone()));
    }

    /// The identifier in `slot` of this thread's cache if its text is `bytes`.
    fn recent(slot: usize, bytes: &[u8]) -> Option<Id> {
        RECENT.with_borrow(|recent| {
            recent[slot]
                .as_ref()
                .filter(|id| id.as_str().as_bytes() == bytes)
                .cloned()
        })
    }

    /// [`Id::parse`] without the cache, for an identifier that names one event (an event id, a
    /// void's target): it would only evict a name that repeats.
    pub fn parse_unique(text: &str) -> Result<Id, String> {
        Id::check(text)
    }

    fn check(text: &str) -> Result<Id, String> {
        Id::check_hashed(text, text_hash(text.as_bytes()))
    }

    /// [`Id::check`] of a text whose hash ([`text_hash`]) is already known.
    fn check_hashed(text: &str, hash: u64) -> Result<Id, String> {
        if text.is_empty() {
            return Err("must not be empty".to_string());
        }
        if text.len() > MAX_ID_BYTES {
            return Err(format!(
                "is {} characters long; identifiers have at most {MAX_ID_BYTES}",
                text.chars().count()
            ));
        }
        if !all_id_bytes(text.as_bytes()) {
            let bad = text.chars().find(|c| !is_id_char(*c)).unwrap_or('?');
            return Err(format!(
                "`{}` contains {:?}; identifiers use only letters, digits and . _ : -",
                crate::country::printable(text),
                bad
            ));
        }
        Ok(Id {
            text: SmolStr::new(text),
            hash,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Whether every byte is one an identifier may hold. Bytes, not characters: every allowed
/// character is ASCII. Without a branch per byte: nearly every identifier passes, and a loop
/// that stops at the first bad byte cost 7.1M more instructions in decoding the 100k ledger
/// (2.6% of it, callgrind; tools/bench/PROFILE.md, goal 2).
fn all_id_bytes(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |valid, byte| valid & ID_BYTES[usize::from(*byte)])
}

/// Which bytes an identifier may hold, as a table: every stored record's identifiers are
/// checked as they are decoded, a table lookup per byte rather than five comparisons.
const ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        byte += 1;
    }
    table
};

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.text)
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl bincode::Encode for Id {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.text.as_str().encode(encoder)
    }
}

impl<Context> bincode::Decode<Context> for Id {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Id::decode_with(decoder, true)
    }
}
bincode::impl_borrow_decode!(Id);

impl Id {
    /// Decodes an identifier that names one event (an event id, a void's target) without the
    /// cache of [`Id::parse`], as [`Id::parse_unique`] parses one.
    pub fn decode_unique<D: bincode::de::Decoder>(
        decoder: &mut D,
    ) -> Result<Id, bincode::error::DecodeError> {
        Id::decode_with(decoder, false)
    }

    /// Decodes an identifier encoded as a string (a length, then the bytes) through a buffer
    /// on the stack, not a `String`: an identifier is at most [`MAX_ID_BYTES`] long, and a
    /// short one (held inline) or a repeated long one then costs no allocation at all.
    fn decode_with<D: bincode::de::Decoder>(
        decoder: &mut D,
        repeats: bool,
    ) -> Result<Id, bincode::error::DecodeError> {
        use bincode::de::read::Reader;
        let invalid = || bincode::error::DecodeError::Other("invalid identifier");
        let length = <u64 as bincode::Decode<D::Context>>::decode(decoder)?;
        let length = usize::try_from(length)
            .ok()
            .filter(|length| *length <= MAX_ID_BYTES)
            .ok_or_else(invalid)?;
        decoder.claim_container_read::<u8>(length)?;
        let mut buffer = [0u8; MAX_ID_BYTES];
        decoder.reader().read(&mut buffer[..length])?;
        let bytes = &buffer[..length];
        let hash = text_hash(bytes);
        // A repeated long identifier is found by its bytes: its text was checked when it
        // entered the cache, so it is not checked again, not even as UTF-8.
        let slot = (repeats && length > INLINE_ID_BYTES).then(|| recent_slot(hash));
        if let Some(slot) = slot
            && let Some(id) = Id::recent(slot, bytes)
        {
            return Ok(id);
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|inner| bincode::error::DecodeError::Utf8 { inner })?;
        let id = Id::check_hashed(text, hash).map_err(|_| invalid())?;
        if let Some(slot) = slot {
            Id::remember(slot, &id);
        }
        Ok(id)
    }
}

/// The hash an identifier with this text carries ([`ID_HASHER`]): computed once per
/// identifier made, and also what places a long one in this thread's cache.
fn text_hash(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    ID_HASHER.hash_one(bytes)
}

/// The slot of this thread's identifier cache for a text with this hash.
fn recent_slot(hash: u64) -> usize {
    (hash % RECENT_IDS as u64) as usize
}

/// Free text: 1 to 512 bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Box<str>);

impl Text {
    pub fn parse(text: &str) -> Result<Text, String> {
        Text::check(text)?;
        Ok(Text(Box::from(text)))
    }

    fn check(text: &str) -> Result<(), String> {
        if text.trim().is_empty() {
            return Err("must not be empty".to_string());
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(format!(
                "is {} bytes long; text fields have at most {MAX_TEXT_BYTES}",
                text.len()
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(format!(
                "`{}` contains a control character",
                crate::country::printable(text)
            ));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl bincode::Encode for Text {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.as_ref().encode(encoder)
    }
}

impl<Context> bincode::Decode<Context> for Text {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        // The decoded string becomes the text's own allocation (its capacity is its length).
        let text = String::decode(decoder)?;
        Text::check(&text).map_err(|_| bincode::error::DecodeError::Other("invalid text field"))?;
        Ok(Text(text.into_boxed_str()))
    }
}
bincode::impl_borrow_decode!(Text);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_pattern() {
        for byte in 0..=u8::MAX {
            assert_eq!(
                all_id_bytes(&[byte]),
                is_id_char(char::from(byte)),
                "{byte}"
            );
        }
        for good in ["a", "S-1", "acme.cloud:eu_1", &"x".repeat(128)] {
            assert!(Id::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a/b", "a\nb", &"x".repeat(129)] {
            assert!(Id::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// A short identifier is held inline and a long repeated one shares the first one's
    /// allocation; the cache never lets a bad one through, nor confuses two texts that land in
    /// the same slot.
    #[test]
    fn a_repeated_id_is_shared_and_the_cache_changes_no_answer() {
        let short = "x".repeat(INLINE_ID_BYTES);
        assert!(!Id::parse(&short).unwrap().text.is_heap_allocated());
        let long = "x".repeat(INLINE_ID_BYTES + 1);
        let first = Id::parse(&long).unwrap();
        let again = Id::parse(&long).unwrap();
        assert!(first.text.is_heap_allocated());
        assert_eq!(first.text.as_str().as_ptr(), again.text.as_str().as_ptr());
        let padding = "y".repeat(INLINE_ID_BYTES);
        for index in 0..3 * RECENT_IDS {
            for text in [format!("E-{index}"), format!("{padding}-{index}")] {
                assert_eq!(Id::parse(&text).unwrap().as_str(), text);
                assert_eq!(Id::parse(&text).unwrap().as_str(), text);
                assert!(Id::parse(&format!("{text} ")).is_err());
            }
        }
    }

    /// Equality, order and hash follow the text, whichever way each side was made (parsed
    /// inline or shared, parsed as unique, decoded from the cache or not), so that maps keyed by
    /// `Id` find an identifier however it arrived, and sort as the text does.
    #[test]
    fn inline_and_shared_ids_behave_as_their_text() {
        use std::hash::BuildHasher;
        let hasher = foldhash::fast::FixedState::default();
        let texts = [
            "a".to_string(),
            "B200".to_string(),
            "x".repeat(INLINE_ID_BYTES),
            "x".repeat(INLINE_ID_BYTES + 1),
            "y".repeat(MAX_ID_BYTES),
        ];
        let made = |text: &str| {
            let encoded = crate::codec::to_bytes(&text.to_string());
            let decode = |repeats| {
                let mut decoder = bincode::de::DecoderImpl::new(
                    bincode::de::read::SliceReader::new(&encoded),
                    bincode::config::legacy(),
                    (),
                );
                Id::decode_with(&mut decoder, repeats).unwrap()
            };
            [
                Id::parse(text).unwrap(),
                Id::parse(text).unwrap(),
                Id::parse_unique(text).unwrap(),
                decode(true),
                decode(true),
                decode(false),
            ]
        };
        for left in &texts {
            for right in &texts {
                for id in made(left) {
                    for other in made(right) {
                        assert_eq!(id == other, left == right, "{left} {right}");
                        assert_eq!(
                            hasher.hash_one(&id) == hasher.hash_one(&other),
                            left == right,
                            "{left} {right}"
                        );
                        assert_eq!(id.cmp(&other), left.cmp(right));
                    }
                }
            }
        }
    }

    #[test]
    fn text_refuses_control_characters_and_blank() {
        assert!(Text::parse("Acme Cloud, Inc. <script>").is_ok());
        for bad in ["", "   ", "a\u{1b}[2J", "tab\there", &"x".repeat(513)] {
            assert!(Text::parse(bad).is_err(), "{bad:?}");
        }
    }
}
