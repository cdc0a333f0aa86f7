//! The built-in ruleset `ai-diffusion-2025` v1: framework.md sections 2 to 4, as data.
//!
//! `init` writes this into the genesis record; from then on the ledger reads every number from
//! its own genesis, so changing a value here changes only ledgers created afterwards.

use crate::codec::{ChipSpec, Ratio, Ruleset, RulesetTierChange, Tier, YearCap};
use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

const TIER_ONE: [&str; 19] = [
    "US", "AU", "BE", "CA", "DK", "FI", "FR", "DE", "IE", "IT", "JP", "NL", "NZ", "NO", "KR", "ES",
    "SE", "TW", "GB",
];

/// Country Group D:5 at 2025-01-13, plus Macau, plus Hong Kong (treated as China).
const TIER_THREE: [&str; 25] = [
    "AF", "BY", "MM", "KH", "CF", "CN", "CD", "CU", "ER", "HT", "IR", "IQ", "KP", "LB", "LY", "NI",
    "RU", "SO", "SS", "SD", "SY", "VE", "ZW", "MO", "HK",
];

/// framework.md section 3: model, TPP, controlled (3A090.a).
const CHIPS: [(&str, u64, bool); 16] = [
    ("H100", 15_831, true),
    ("H100-PCIE", 12_104, true),
    ("H200", 15_831, true),
    ("H800", 15_831, true),
    ("H20", 2_368, false),
    ("A100", 4_992, true),
    ("A800", 4_992, true),
    ("B100", 28_000, true),
    ("B200", 36_000, true),
    ("GB200", 40_000, true),
    ("B300", 60_000, true),
    ("L40S", 5_864, true),
    ("MI300X", 20_919, true),
    ("MI325X", 20_919, true),
    ("GAUDI3", 29_360, true),
    ("TPU-V5P", 7_344, true),
];

/// TPP of one H100 (1,978.9 dense FP8 TOPS × 8).
pub const H100_TPP: u64 = 15_831;

fn date(text: &str) -> Date {
    Date::parse(text).expect("built-in dates are valid")
}

fn countries(codes: &[&str]) -> Vec<Country> {
    let mut list: Vec<Country> = codes
        .iter()
        .map(|code| Country::parse(code).expect("built-in codes are assigned"))
        .collect();
    list.sort();
    list
}

/// The ruleset of framework.md, ready to be written into a genesis record.
pub fn ruleset() -> Ruleset {
    Ruleset {
        name: Text::parse("ai-diffusion-2025").expect("valid text"),
        version: 1,
        window_start: date("2025-01-13"),
        window_end: date("2027-12-31"),
        tier_one: countries(&TIER_ONE),
        tier_three: countries(&TIER_THREE),
        tier_changes: vec![RulesetTierChange {
            effective: date("2026-02-03"),
            country: Country::parse("KH").expect("assigned"),
            tier: Tier::Two,
        }],
        chips: CHIPS
            .iter()
            .map(|(name, tpp, controlled)| ChipSpec {
                chip: Id::parse(name).expect("valid id"),
                tpp: *tpp,
                controlled: *controlled,
            })
            .collect(),
        default_allocation_tpp: 790_000_000,
        lpp_limit_tpp: 26_900_000,
        aia_threshold_tpp: 253_000_000,
        uveu_tier_one_share_min: Ratio {
            numerator: 3,
            denominator: 4,
        },
        uveu_country_share_max: Ratio {
            numerator: 7,
            denominator: 100,
        },
        uveu_home_share_min: Ratio {
            numerator: 1,
            denominator: 2,
        },
        uveu_home_country: Country::parse("US").expect("assigned"),
        nveu_caps: vec![
            YearCap {
                year: 2025,
                cap_tpp: 1_583_100_000,
            },
            YearCap {
                year: 2026,
                cap_tpp: 4_274_370_000,
            },
            YearCap {
                year: 2027,
                cap_tpp: 5_065_920_000,
            },
        ],
        weights_threshold_ops: 100_000_000_000_000_000_000_000_000,
        h100_tpp: H100_TPP,
    }
}
