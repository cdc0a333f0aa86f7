//! Calendar dates (UTC days) and the recording clock.
//!
//! The framework works in calendar days: an event's `effective` date, the allocation window,
//! the LPP calendar year. A `Date` is a validated year, month and day; `jiff` does the calendar
//! arithmetic so that no hand-written leap-year rule can be wrong.

use std::fmt;

/// Earliest and latest years a date may carry. Before 1900 is far more likely a typo than a
/// record of AI hardware, and four digits keep the text form fixed-width.
pub const MIN_YEAR: u16 = 1900;
pub const MAX_YEAR: u16 = 9999;

/// A calendar day. Field order makes the derived ordering chronological.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, bincode::Encode)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// Builds a date, refusing impossible ones (2025-02-30) and years outside the range.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, String> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(format!("year {year} is outside {MIN_YEAR}..={MAX_YEAR}"));
        }
        // jiff rejects month 13, day 0 and 31 days in a 30-day month, leap years included.
        jiff::civil::Date::new(year as i16, month as i8, day as i8)
            .map_err(|_| format!("{year:04}-{month:02}-{day:02} is not a calendar date"))?;
        Ok(Date { year, month, day })
    }

    /// Parses exactly `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Date, String> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit());
        if !shape_ok {
            return Err(format!(
                "`{}` is not a date in the form YYYY-MM-DD",
                crate::country::printable(text)
            ));
        }
        let number = |range: std::ops::Range<usize>| -> u16 {
            text[range].parse().expect("digits were checked above")
        };
        Date::new(number(0..4), number(5..7) as u8, number(8..10) as u8)
    }

    pub fn year(&self) -> u16 {
        self.year
    }

    /// A dense, order-preserving number for indexes: the same order as `Date`'s.
    pub fn ordinal(&self) -> u32 {
        (u32::from(self.year) << 9) | (u32::from(self.month) << 5) | u32::from(self.day)
    }

    /// The inverse of [`Date::ordinal`], for indexes written by this program.
    pub fn from_ordinal(ordinal: u32) -> Option<Date> {
        let year = u16::try_from(ordinal >> 9).ok()?;
        Date::new(year, ((ordinal >> 5) & 0xF) as u8, (ordinal & 0x1F) as u8).ok()
    }

    /// The day after this one, or `None` after 9999-12-31.
    pub fn next_day(&self) -> Option<Date> {
        let civil = self.to_civil().tomorrow().ok()?;
        Date::from_civil(civil)
    }

    /// The day before this one, or `None` before 1900-01-01.
    pub fn previous_day(&self) -> Option<Date> {
        let civil = self.to_civil().yesterday().ok()?;
        Date::from_civil(civil)
    }

    /// The day `days` days before this one, or `None` before 1900-01-01.
    pub fn days_before(&self, days: u16) -> Option<Date> {
        let civil = self
            .to_civil()
            .checked_sub(jiff::Span::new().days(i64::from(days)))
            .ok()?;
        Date::from_civil(civil)
    }

    fn to_civil(self) -> jiff::civil::Date {
        jiff::civil::Date::new(self.year as i16, self.month as i8, self.day as i8)
            .expect("a Date is always a valid calendar date")
    }

    fn from_civil(civil: jiff::civil::Date) -> Option<Date> {
        Date::new(
            u16::try_from(civil.year()).ok()?,
            civil.month() as u8,
            civil.day() as u8,
        )
        .ok()
    }

    /// The UTC calendar day of a recording time.
    pub fn of_instant(instant: Instant) -> Date {
        // Whole days after 1970-01-01, counted by jiff. Not through `jiff::Timestamp`: its
        // microsecond constructor stops at the last whole second, 999,999 microseconds before
        // the last instant an `Instant` can hold.
        let days = instant.0.div_euclid(MICROSECONDS_PER_DAY);
        let civil = jiff::civil::date(1970, 1, 1)
            .checked_add(jiff::Span::new().days(days))
            .expect("recording times lie between 1900 and 9999");
        Date::from_civil(civil).expect("recording times lie between 1900 and 9999")
    }
}

/// Microseconds in a UTC day: recording times count no leap seconds, so every day has as many.
const MICROSECONDS_PER_DAY: i64 = 86_400_000_000;

/// [`Date::of_instant`] for a stream of recording times, remembering the last day it found.
/// Records are recorded in batches and days, so a replay asks for the same day over and over;
/// jiff's conversion was about a twentieth of `verify`'s replaying thread
/// (tools/bench/PROFILE.md, goal 3). The cache is keyed by the day's number since the epoch,
/// and jiff still does every conversion that a new day needs.
#[derive(Clone, Copy, Default, Debug)]
pub struct RecordingDays {
    last: Option<(i64, Date)>,
}

impl RecordingDays {
    /// The UTC calendar day of `instant`.
    pub fn of(&mut self, instant: Instant) -> Date {
        let day = instant.0.div_euclid(MICROSECONDS_PER_DAY);
        match self.last {
            Some((last_day, date)) if last_day == day => date,
            _ => {
                let date = Date::of_instant(instant);
                self.last = Some((day, date));
                date
            }
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<Context> bincode::Decode<Context> for Date {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let year = u16::decode(decoder)?;
        let month = u8::decode(decoder)?;
        let day = u8::decode(decoder)?;
        Date::new(year, month, day)
            .map_err(|_| bincode::error::DecodeError::Other("not a valid calendar date"))
    }
}
bincode::impl_borrow_decode!(Date);

/// 1900-01-01T00:00:00Z (the first instant of `MIN_YEAR`), in microseconds since the epoch.
const FIRST_MICROSECOND: i64 = -2_208_988_800_000_000;
/// 9999-12-30T22:00:00.999999Z: the last microsecond jiff represents (its timestamps stay
/// within a day of its civil range), and so the last an `Instant` can hold.
const LAST_MICROSECOND: i64 = 253_402_207_200_999_999;

/// A recording time: microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, bincode::Encode)]
pub struct Instant(i64);

impl Instant {
    /// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp.
    pub fn parse(text: &str) -> Result<Instant, String> {
        if let Ok(date) = Date::parse(text) {
            let timestamp = jiff::tz::TimeZone::UTC
                .to_timestamp(date.to_civil().to_datetime(jiff::civil::Time::midnight()))
                .map_err(|error| error.to_string())?;
            return Instant::from_timestamp(timestamp);
        }
        let timestamp: jiff::Timestamp = text.parse().map_err(|_| {
            format!(
                "`{}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time (2026-03-01T12:00:00Z)",
                crate::country::printable(text)
            )
        })?;
        Instant::from_timestamp(timestamp)
    }

    fn from_timestamp(timestamp: jiff::Timestamp) -> Result<Instant, String> {
        let instant = Instant(timestamp.as_microsecond());
        let year = jiff::tz::TimeZone::UTC.to_datetime(timestamp).year();
        if !(i16::try_from(MIN_YEAR).unwrap()..=i16::try_from(MAX_YEAR).unwrap()).contains(&year) {
            return Err(format!(
                "{timestamp} is outside the years {MIN_YEAR}..={MAX_YEAR}"
            ));
        }
        Ok(instant)
    }

    pub fn now() -> Instant {
        Instant::from_timestamp(jiff::Timestamp::now()).expect("the system clock is after 1900")
    }

    pub fn microseconds(&self) -> i64 {
        self.0
    }

    /// The instant `microseconds` after the epoch, if it lies in the years
    /// `MIN_YEAR..=MAX_YEAR`. A bounds check, not a calendar conversion: every stored record
    /// decodes one (a unit test derives the bounds with jiff).
    pub fn from_microseconds(microseconds: i64) -> Option<Instant> {
        (FIRST_MICROSECOND..=LAST_MICROSECOND)
            .contains(&microseconds)
            .then_some(Instant(microseconds))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(timestamp) => write!(f, "{timestamp}"),
            Err(_) => write!(f, "@{}µs", self.0),
        }
    }
}

impl serde::Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<Context> bincode::Decode<Context> for Instant {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let microseconds = i64::decode(decoder)?;
        Instant::from_microseconds(microseconds).ok_or(bincode::error::DecodeError::Other(
            "recording time out of range",
        ))
    }
}
bincode::impl_borrow_decode!(Instant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_bounds_are_the_years_bounds() {
        let first = Instant::parse("1900-01-01T00:00:00Z").unwrap();
        let last = Instant::parse("9999-12-30T22:00:00.999999Z").unwrap();
        assert_eq!(jiff::Timestamp::MAX.as_microsecond(), LAST_MICROSECOND);
        assert_eq!(first.microseconds(), FIRST_MICROSECOND);
        assert_eq!(last.microseconds(), LAST_MICROSECOND);
        assert_eq!(Instant::from_microseconds(FIRST_MICROSECOND), Some(first));
        assert_eq!(Instant::from_microseconds(LAST_MICROSECOND), Some(last));
        assert_eq!(Instant::from_microseconds(FIRST_MICROSECOND - 1), None);
        assert_eq!(Instant::from_microseconds(LAST_MICROSECOND + 1), None);
        assert!(Instant::parse("1899-12-31T23:59:59.999999Z").is_err());
    }

    #[test]
    fn recording_days_agree_with_jiff() {
        // The day as jiff's timestamps give it, from whole seconds and nanoseconds.
        let utc_day = |microseconds: i64| {
            let timestamp = jiff::Timestamp::new(
                microseconds.div_euclid(1_000_000),
                (microseconds.rem_euclid(1_000_000) * 1_000) as i32,
            )
            .unwrap();
            Date::from_civil(jiff::tz::TimeZone::UTC.to_datetime(timestamp).date()).unwrap()
        };
        assert_eq!(
            Date::of_instant(Instant::from_microseconds(LAST_MICROSECOND).unwrap()),
            Date::new(9999, 12, 30).unwrap()
        );
        let mut days = RecordingDays::default();
        // Around midnights on either side of the epoch, across a leap day, and at the bounds;
        // each instant is asked twice, so that both the conversion and the cache answer.
        let mut instants = vec![FIRST_MICROSECOND, LAST_MICROSECOND];
        for midnight in [
            "1900-01-01",
            "1969-12-31",
            "1970-01-01",
            "2024-02-29",
            "2024-03-01",
            "2025-12-31",
            "2026-01-01",
            "9999-12-30",
        ] {
            let at = Instant::parse(midnight).unwrap().microseconds();
            instants.extend([at - 1, at, at + 1, at + MICROSECONDS_PER_DAY - 1]);
        }
        for instant in instants {
            let Some(instant) = Instant::from_microseconds(instant) else {
                continue;
            };
            let expected = utc_day(instant.microseconds());
            assert_eq!(Date::of_instant(instant), expected, "{instant:?}");
            assert_eq!(days.of(instant), expected, "{instant:?}");
            assert_eq!(days.of(instant), expected, "{instant:?}");
        }
    }

    #[test]
    fn parse_is_strict() {
        assert_eq!(Date::parse("2025-01-13").unwrap().to_string(), "2025-01-13");
        assert_eq!(Date::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        for bad in [
            "2025-02-29",
            "2025-02-30",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "2025-1-13",
            "25-01-13",
            "2025/01/13",
            "2025-01-13T00:00:00Z",
            "1899-12-31",
            "",
            "２０２５-01-13",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn ordinal_preserves_order_and_round_trips() {
        let dates = [
            "1900-01-01",
            "2025-01-13",
            "2025-12-31",
            "2026-01-01",
            "9999-12-31",
        ];
        let parsed: Vec<Date> = dates
            .iter()
            .map(|text| Date::parse(text).unwrap())
            .collect();
        for pair in parsed.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].ordinal() < pair[1].ordinal());
        }
        for date in parsed {
            assert_eq!(Date::from_ordinal(date.ordinal()), Some(date));
        }
    }

    /// Whole days back, across months, years and a leap day; none before 1900-01-01.
    #[test]
    fn days_before_counts_calendar_days() {
        for (from, days, expected) in [
            ("2027-12-31", 32, Some("2027-11-29")),
            ("2028-03-01", 1, Some("2028-02-29")),
            ("2026-01-15", 31, Some("2025-12-15")),
            ("2026-01-15", 0, Some("2026-01-15")),
            ("1900-01-05", 4, Some("1900-01-01")),
            ("1900-01-05", 5, None),
        ] {
            let earlier = Date::parse(from).unwrap().days_before(days);
            assert_eq!(
                earlier.map(|date| date.to_string()).as_deref(),
                expected,
                "{days} days before {from}"
            );
        }
    }

    #[test]
    fn instants_parse_dates_and_rfc3339() {
        let midnight = Instant::parse("2026-02-03").unwrap();
        assert_eq!(Date::of_instant(midnight).to_string(), "2026-02-03");
        let late = Instant::parse("2026-02-03T23:59:59Z").unwrap();
        assert_eq!(Date::of_instant(late).to_string(), "2026-02-03");
        assert!(late > midnight);
        assert!(Instant::parse("yesterday").is_err());
    }
}
