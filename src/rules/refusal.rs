//! Refusals: the stable codes of framework.md section 11 and the figures behind them.

use std::fmt;

use crate::name::Id;

/// A refusal code. The names are part of the interface: outside tests match on them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Code {
    Tier3Destination,
    HqTier3,
    CountryAllocationExceeded,
    LppAnnualLimit,
    AiaCertificationRequired,
    UveuTier1Share,
    UveuCountryShare,
    UveuUsShare,
    NveuCapExceeded,
    VeuNotEligible,
    BasisNotApplicable,
    WeightsTier3,
    WeightsUnauthorized,
    InsufficientHoldings,
    RulesetNotInForce,
    UnknownReference,
    DuplicateId,
    DuplicateSubject,
    AlreadyVoided,
    FutureDated,
}

impl Code {
    pub const ALL: [Code; 20] = [
        Code::Tier3Destination,
        Code::HqTier3,
        Code::CountryAllocationExceeded,
        Code::LppAnnualLimit,
        Code::AiaCertificationRequired,
        Code::UveuTier1Share,
        Code::UveuCountryShare,
        Code::UveuUsShare,
        Code::NveuCapExceeded,
        Code::VeuNotEligible,
        Code::BasisNotApplicable,
        Code::WeightsTier3,
        Code::WeightsUnauthorized,
        Code::InsufficientHoldings,
        Code::RulesetNotInForce,
        Code::UnknownReference,
        Code::DuplicateId,
        Code::DuplicateSubject,
        Code::AlreadyVoided,
        Code::FutureDated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Tier3Destination => "TIER3_DESTINATION",
            Code::HqTier3 => "HQ_TIER3",
            Code::CountryAllocationExceeded => "COUNTRY_ALLOCATION_EXCEEDED",
            Code::LppAnnualLimit => "LPP_ANNUAL_LIMIT",
            Code::AiaCertificationRequired => "AIA_CERTIFICATION_REQUIRED",
            Code::UveuTier1Share => "UVEU_TIER1_SHARE",
            Code::UveuCountryShare => "UVEU_COUNTRY_SHARE",
            Code::UveuUsShare => "UVEU_US_SHARE",
            Code::NveuCapExceeded => "NVEU_CAP_EXCEEDED",
            Code::VeuNotEligible => "VEU_NOT_ELIGIBLE",
            Code::BasisNotApplicable => "BASIS_NOT_APPLICABLE",
            Code::WeightsTier3 => "WEIGHTS_TIER3",
            Code::WeightsUnauthorized => "WEIGHTS_UNAUTHORIZED",
            Code::InsufficientHoldings => "INSUFFICIENT_HOLDINGS",
            Code::RulesetNotInForce => "RULESET_NOT_IN_FORCE",
            Code::UnknownReference => "UNKNOWN_REFERENCE",
            Code::DuplicateId => "DUPLICATE_ID",
            Code::DuplicateSubject => "DUPLICATE_SUBJECT",
            Code::AlreadyVoided => "ALREADY_VOIDED",
            Code::FutureDated => "FUTURE_DATED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The numbers behind a quantitative refusal, in TPP (H100 equivalents are derived for display).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Figures {
    pub before_tpp: u64,
    pub after_tpp: u64,
    pub limit_tpp: u64,
    /// How far `after` passes `limit` (or falls short of it, for minimum shares).
    pub excess_tpp: u64,
}

/// Why the rules refused an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Refusal {
    pub code: Code,
    /// The refused event.
    pub event_id: Id,
    /// A sentence naming the rule, the figures and the event.
    pub message: String,
    /// Boxed: refusals are rare, and a `Result` that may hold one is returned by every check
    /// the rules make, so its size is kept small.
    pub figures: Option<Box<Figures>>,
    /// For a late record or void: the already recorded event that would break.
    pub breaks: Option<Id>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused {}: {}", self.code, self.message)
    }
}

/// Formats a whole number with thousands separators: 790000000 → "790,000,000".
pub fn grouped(value: u128) -> String {
    // Written from the last digit back into a buffer on the stack, so the text is allocated
    // once: a state's table formats thousands of numbers. Amounts are u64 but for products;
    // while the rest fits in u64, u64 arithmetic makes its digits (128-bit division is a call).
    const LONGEST: usize = 39 + 12; // u128::MAX has 39 digits, so 12 separators.
    let mut buffer = [0u8; LONGEST];
    let mut start = LONGEST;
    let mut written_digits = 0usize;
    let mut push_digit = |digit: u8| {
        if written_digits > 0 && written_digits % 3 == 0 {
            start -= 1;
            buffer[start] = b',';
        }
        start -= 1;
        buffer[start] = b'0' + digit;
        written_digits += 1;
    };
    let mut wide = value;
    while wide > u128::from(u64::MAX) {
        push_digit((wide % 10) as u8);
        wide /= 10;
    }
    let mut rest = u64::try_from(wide).expect("the loop leaves a value that fits in u64");
    loop {
        push_digit((rest % 10) as u8);
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    std::str::from_utf8(&buffer[start..])
        .expect("digits and commas are ASCII")
        .to_string()
}

/// H100 equivalents of a TPP amount, rounded to the nearest whole H100 (display only).
pub fn h100_equivalents(tpp: u64, h100_tpp: u64) -> u64 {
    if h100_tpp == 0 {
        return 0;
    }
    let rounded = (u128::from(tpp) * 2 + u128::from(h100_tpp)) / (2 * u128::from(h100_tpp));
    u64::try_from(rounded).expect("a quotient of a u64 fits in u64")
}

/// A share in basis points (1/100 of a percent), rounded to the nearest (display only; rules
/// compare shares exactly by cross-multiplication).
pub fn basis_points(part: u64, total: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    let scaled = u128::from(part) * 20_000 + u128::from(total);
    u64::try_from(scaled / (2 * u128::from(total))).unwrap_or(u64::MAX)
}

/// "791,550,000 TPP (≈ 50,000 H100)".
pub fn tpp_text(tpp: u64, h100_tpp: u64) -> String {
    format!(
        "{} TPP (≈ {} H100)",
        grouped(u128::from(tpp)),
        grouped(u128::from(h100_equivalents(tpp, h100_tpp)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(791_550_000), "791,550,000");
        assert_eq!(grouped(u128::from(u64::MAX)), "18,446,744,073,709,551,615");
        assert_eq!(
            grouped(u128::from(u64::MAX) + 1),
            "18,446,744,073,709,551,616"
        );
        assert_eq!(
            grouped(u128::MAX),
            "340,282,366,920,938,463,463,374,607,431,768,211,455"
        );
        // Every length and every place of the separators, against the plain digits.
        for value in [
            1u128,
            12,
            123,
            1_234,
            100_000,
            9_999_999,
            10_000_000_000_000_000_000,
        ] {
            for scale in [1u128, 7, 1_000_003] {
                let value = value * scale;
                let plain: String = grouped(value).chars().filter(|c| *c != ',').collect();
                assert_eq!(plain, value.to_string());
                let text = grouped(value);
                let groups: Vec<&str> = text.split(',').collect();
                assert!((1..=3).contains(&groups[0].len()), "{text}");
                assert!(groups[1..].iter().all(|group| group.len() == 3), "{text}");
            }
        }
        assert_eq!(h100_equivalents(1_550_000, 15_831), 98);
        assert_eq!(h100_equivalents(26_900_000, 15_831), 1_699);
        assert_eq!(h100_equivalents(15_831, 15_831), 1);
        assert_eq!(tpp_text(1_550_000, 15_831), "1,550,000 TPP (≈ 98 H100)");
    }
}
