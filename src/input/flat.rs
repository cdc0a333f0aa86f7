//! The fast path of [`super::parse_event`]: a flat JSON object read byte by byte.
//!
//! Nearly every line of an import is an object of string keys whose values are strings without
//! escapes and small whole numbers. serde_json reads such a line in about 5,700 instructions
//! (callgrind), two thirds of the parse; this reads it in about half that, into the same
//! [`RawObject`] (tools/bench/PROFILE.md, goal 1). It accepts only a strict subset of JSON, for
//! which serde_json gives the same values, and gives up on anything else (escapes, control
//! characters, signs, fractions, exponents, leading zeros, numbers past `u64`, nested values,
//! malformed text): the caller then parses the line with serde_json, so every error message and
//! every unusual value is serde_json's, as before.

use std::borrow::Cow;

use super::{RawObject, Scalar, field_index};

/// The object in `json`, or `None` where the line is not of the simple kind this reads.
pub(super) fn scan(json: &str) -> Option<RawObject<'_>> {
    let mut cursor = Cursor {
        text: json,
        position: 0,
    };
    let mut object = RawObject::new();
    cursor.skip_whitespace();
    cursor.expect(b'{')?;
    cursor.skip_whitespace();
    if cursor.peek() == Some(b'}') {
        cursor.position += 1;
    } else {
        let mut closed = false;
        // Each member takes at least four bytes (`"":0`), so this bounds the loop by the line.
        for _ in 0..=json.len() / 4 {
            let key = cursor.string()?;
            cursor.skip_whitespace();
            cursor.expect(b':')?;
            cursor.skip_whitespace();
            let value = cursor.value()?;
            match field_index(key) {
                Some(field) => object.field(field, value),
                None => object.unknown_key(key),
            }
            cursor.skip_whitespace();
            match cursor.next()? {
                b',' => cursor.skip_whitespace(),
                b'}' => {
                    closed = true;
                    break;
                }
                _ => return None,
            }
        }
        if !closed {
            return None;
        }
    }
    cursor.skip_whitespace();
    (cursor.position == json.len()).then_some(object)
}

struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.position += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.position += 1;
        }
    }

    /// A string without escapes or control characters, which JSON text holds as it is.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.position;
        let rest = &self.text.as_bytes()[start..];
        let length = special_byte(rest)?;
        if rest[length] != b'"' {
            return None;
        }
        self.position = start + length + 1;
        // Both ends are ASCII bytes of a `str`, so the slice is whole characters.
        self.text.get(start..start + length)
    }

    fn value(&mut self) -> Option<Scalar<'a>> {
        let value = match self.peek()? {
            b'"' => Scalar::Str(Cow::Borrowed(self.string()?)),
            b'0'..=b'9' => Scalar::Unsigned(self.unsigned()?),
            b't' => self.literal("true", Scalar::Bool(true))?,
            b'f' => self.literal("false", Scalar::Bool(false))?,
            b'n' => self.literal("null", Scalar::Null)?,
            _ => return None,
        };
        // A value ends where JSON lets it end; anything else (`1.5`, `1e3`, `truex`) is not
        // this path's to read.
        match self.peek()? {
            b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r' => Some(value),
            _ => None,
        }
    }

    /// Digits without a leading zero whose value fits `u64`.
    fn unsigned(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = bytes.get(self.position).copied() {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.position += 1;
        }
        if bytes[start] == b'0' && self.position - start > 1 {
            return None;
        }
        Some(value)
    }

    fn literal(&mut self, word: &str, value: Scalar<'a>) -> Option<Scalar<'a>> {
        let end = self.position + word.len();
        if self.text.as_bytes().get(self.position..end) != Some(word.as_bytes()) {
            return None;
        }
        self.position = end;
        Some(value)
    }
}

/// The first quote, backslash or control character in `bytes`: where a string without escapes
/// ends, or where this path gives up. Eight bytes at a time (strings are most of a line's
/// bytes; `memchr2` for the quote and backslash, then a pass for control characters, was no
/// faster than a byte-by-byte loop on strings this short): a byte of a word is flagged when it equals a quote or a backslash, or is below
/// 0x20; the lowest flagged byte is always a real one (the subtraction's borrows only reach
/// higher bytes).
fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        let flagged = zero_byte(word ^ (ONES * u64::from(b'"')))
            | zero_byte(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
        if flagged != 0 {
            return Some(offset + flagged.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        .map(|position| offset + position)
}

#[cfg(test)]
mod tests {
    use super::super::parse_object;
    use super::*;
    use proptest::prelude::*;

    /// Whatever this path reads, serde_json reads to the same object; `fast` says whether this
    /// path must read `line` (true) or leave it to serde_json (false).
    fn check(line: &str, fast: bool) {
        let scanned = scan(line);
        assert_eq!(scanned.is_some(), fast, "fast path for {line:?}");
        if let Some(object) = scanned {
            assert_eq!(Ok(object), parse_object(line), "{line:?}");
        }
    }

    #[test]
    fn reads_flat_objects_as_serde_json_does() {
        for line in [
            r#"{"type":"shipment","id":"S-1","effective":"2025-01-15","exporter":"nimbus-1","consignee":"lumen-8","country":"US","chip":"H200","quantity":7264}"#,
            r#"{"type":"entity","id":"E-1","effective":"2015-01-05","entity":"e1","name":"Nimbus Semiconductor 1 (KR) ✓","hq":"KR"}"#,
            "{}",
            " { } ",
            "\t{ \"type\" :\r\n\"void\" , \"id\":\"V-1\" }\r\n",
            r#"{"type":"a","type":"b","id":"x"}"#,
            r#"{"nonsense":1,"other":"x","type":"entity"}"#,
            r#"{"controlled":true,"open_weights":false,"parent":null,"tpp":0}"#,
            r#"{"quantity":18446744073709551615}"#,
            r#"{"":0}"#,
        ] {
            check(line, true);
        }
    }

    #[test]
    fn leaves_everything_else_to_serde_json() {
        for line in [
            r#"{"id":"a\"b"}"#,
            r#"{"id":"\u0041"}"#,
            "{\"id\":\"a\u{1}b\"}",
            r#"{"quantity":-1}"#,
            r#"{"quantity":-0}"#,
            r#"{"quantity":1.5}"#,
            r#"{"quantity":1e3}"#,
            r#"{"quantity":1E3}"#,
            r#"{"quantity":01}"#,
            r#"{"quantity":18446744073709551616}"#,
            r#"{"quantity":[1]}"#,
            r#"{"quantity":{"a":1}}"#,
            r#"{"controlled":truex}"#,
            r#"{"controlled":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{"a":1"#,
            r#"{"a":"b"#,
            r#"{"a":1} x"#,
            r#"{"a":1}}"#,
            "\u{feff}{}",
            "[]",
            "",
            "{",
            r#"{a:1}"#,
            r#"{"a":'b'}"#,
        ] {
            check(line, false);
        }
    }

    /// The word-at-a-time search finds what a byte-by-byte one finds: each kind of byte at
    /// each place of strings long enough to fill several words, among bytes either side of the
    /// thresholds, with and without a second special byte after it.
    #[test]
    fn special_byte_finds_the_first_quote_backslash_or_control_character() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        };
        let fillers = [b'a', b'!', b'#', b'[', b']', 0x20, 0x7f, 0x80, 0xc3, 0xff];
        let specials = [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n'];
        for length in 0..40 {
            for filler in fillers {
                let plain = vec![filler; length];
                assert_eq!(special_byte(&plain), naive(&plain));
                for at in 0..length {
                    for special in specials {
                        let mut bytes = plain.clone();
                        bytes[at] = special;
                        assert_eq!(special_byte(&bytes), Some(at), "{bytes:?}");
                        for later in at + 1..length {
                            let mut twice = bytes.clone();
                            twice[later] = b'"';
                            assert_eq!(special_byte(&twice), Some(at), "{twice:?}");
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn special_byte_agrees_with_a_byte_by_byte_search(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let naive = bytes.iter().position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20);
            prop_assert_eq!(special_byte(&bytes), naive);
        }
    }

    /// Pieces of JSON, well and badly formed, that lines are made of in the property below.
    const KEYS: [&str; 8] = [
        r#""type""#,
        r#""id""#,
        r#""quantity""#,
        r#""unknown""#,
        r#""""#,
        r#""ty\"pe""#,
        r#""chip"#,
        "type",
    ];
    const VALUES: [&str; 22] = [
        r#""shipment""#,
        r#""S-1""#,
        r#""2025-01-15""#,
        r#""é ✓""#,
        r#""a\nb""#,
        r#""\u00e9""#,
        "\"a\tb\"",
        "0",
        "7264",
        "007",
        "18446744073709551615",
        "18446744073709551616",
        "-5",
        "1.0",
        "2e2",
        "true",
        "false",
        "null",
        "nul",
        "[1,2]",
        r#"{"x":1}"#,
        "",
    ];
    const GAPS: [&str; 6] = ["", " ", "\t", "\r\n", "  ", "x"];

    /// Every object of one member made of the pieces below, with every gap around its colon.
    #[test]
    fn every_one_member_object_reads_as_serde_json_reads_it() {
        let mut fast = 0;
        for key in KEYS {
            for value in VALUES {
                for before in GAPS {
                    for after in GAPS {
                        let line = format!("{{{key}{before}:{after}{value}}}");
                        if let Some(object) = scan(&line) {
                            assert_eq!(Ok(object), parse_object(&line), "{line:?}");
                            fast += 1;
                        }
                    }
                }
            }
        }
        // The simple pieces: 5 keys, 10 values (strings without escapes or control characters,
        // whole numbers up to u64::MAX, the three literals), 5 gaps on each side.
        assert_eq!(fast, 5 * 10 * 5 * 5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn any_line_it_reads_serde_json_reads_the_same(
            members in proptest::collection::vec(
                (0..KEYS.len(), 0..VALUES.len(), 0..GAPS.len(), 0..GAPS.len()),
                0..6,
            ),
            separator in prop_oneof![Just(","), Just(", "), Just(""), Just(",,")],
            open in 0..GAPS.len(),
            close in prop_oneof![
                Just("}"), Just(" }"), Just("} "), Just(""), Just("},"), Just("}}"),
            ],
        ) {
            let body: Vec<String> = members
                .iter()
                .map(|&(key, value, before, after)| {
                    format!("{}{}:{}{}", KEYS[key], GAPS[before], GAPS[after], VALUES[value])
                })
                .collect();
            let line = format!("{}{{{}{}", GAPS[open], body.join(separator), close);
            if let Some(object) = scan(&line) {
                prop_assert_eq!(Ok(object), parse_object(&line), "{:?}", line);
            }
        }
    }
}
