//! ISO 3166-1 alpha-2 country codes.
//!
//! A `Country` is two uppercase ASCII letters that ISO 3166-1 lists as an officially assigned
//! alpha-2 code. Anything else is bad input: the framework's tiers are defined over this list,
//! and a typo such as `UK` (the ISO code is `GB`) must not silently become a Tier 2 country.

use std::fmt;

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted, as one string of pairs.
const ASSIGNED: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU \
WF WS YE YT ZA ZM ZW";

/// A lookup table over the 26 × 26 letter pairs, built from [`ASSIGNED`] at compile time, so
/// that checking a code while decoding a record costs one load.
const ASSIGNED_TABLE: [bool; 676] = {
    let bytes = ASSIGNED.as_bytes();
    let mut table = [false; 676];
    let mut index = 0;
    while index < bytes.len() {
        let first = (bytes[index] - b'A') as usize;
        let second = (bytes[index + 1] - b'A') as usize;
        table[first * 26 + second] = true;
        index += 3;
    }
    table
};

/// The number of codes in [`ASSIGNED`]; a test keeps the list honest.
pub const ASSIGNED_COUNT: usize = 249;

/// An officially assigned ISO 3166-1 alpha-2 code, stored as its two ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Country([u8; 2]);

/// One 16-bit write: the derived hash of a two-byte array writes its length too, and countries
/// key the maps the rules look into for nearly every event.
impl std::hash::Hash for Country {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u16(u16::from_le_bytes(self.0));
    }
}

impl Country {
    /// Parses a code, accepting only an assigned code in uppercase.
    pub fn parse(text: &str) -> Result<Country, String> {
        let bytes = text.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(format!(
                "`{}` is not an ISO 3166-1 alpha-2 country code (two letters, such as `US`)",
                printable(text)
            ));
        }
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(format!(
                "`{text}` must be written in uppercase: `{}`",
                text.to_ascii_uppercase()
            ));
        }
        let country = Country([bytes[0], bytes[1]]);
        if !country.is_assigned() {
            let hint = if text == "UK" {
                " (the United Kingdom is `GB`)"
            } else {
                ""
            };
            return Err(format!(
                "`{text}` is not an assigned ISO 3166-1 alpha-2 country code{hint}"
            ));
        }
        Ok(country)
    }

    /// Builds a country from its two bytes, checking that the code is assigned.
    pub fn from_bytes(bytes: [u8; 2]) -> Option<Country> {
        let country = Country(bytes);
        country.is_assigned().then_some(country)
    }

    pub fn as_bytes(&self) -> [u8; 2] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII letters, so this cannot fail.
        std::str::from_utf8(&self.0).expect("country codes are ASCII")
    }

    fn is_assigned(&self) -> bool {
        let [first, second] = self.0;
        if !first.is_ascii_uppercase() || !second.is_ascii_uppercase() {
            return false;
        }
        ASSIGNED_TABLE[self.index()]
    }

    /// A dense number for tables indexed by country: 0 for `AA` to 675 for `ZZ`. Every
    /// constructor admits only two uppercase letters, so it is always below 676.
    pub fn index(&self) -> usize {
        let [first, second] = self.0;
        usize::from(first - b'A') * 26 + usize::from(second - b'A')
    }

    /// Every assigned code, in alphabetical order.
    pub fn all() -> impl Iterator<Item = Country> {
        ASSIGNED
            .as_bytes()
            .chunks(3)
            .map(|pair| Country([pair[0], pair[1]]))
    }
}

/// Shortens and escapes untrusted text before it is quoted in an error message.
pub(crate) fn printable(text: &str) -> String {
    let mut out: String = text.chars().take(40).flat_map(char::escape_debug).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl bincode::Encode for Country {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode(encoder)
    }
}

impl<Context> bincode::Decode<Context> for Country {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let bytes = <[u8; 2]>::decode(decoder)?;
        Country::from_bytes(bytes).ok_or(bincode::error::DecodeError::Other(
            "country code is not an assigned ISO 3166-1 alpha-2 code",
        ))
    }
}
bincode::impl_borrow_decode!(Country);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_every_assigned_code_once_in_order() {
        let codes: Vec<Country> = Country::all().collect();
        assert_eq!(codes.len(), ASSIGNED_COUNT);
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(ASSIGNED.len(), ASSIGNED_COUNT * 3 - 1);
    }

    #[test]
    fn parse_accepts_assigned_uppercase_codes_only() {
        assert_eq!(Country::parse("US").unwrap().as_str(), "US");
        assert_eq!(Country::parse("MO").unwrap().as_str(), "MO");
        for bad in ["", "U", "USA", "us", "UK", "XX", "ZZ", "1A", "É"] {
            assert!(Country::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Country::parse("UK").unwrap_err().contains("GB"));
    }
}
