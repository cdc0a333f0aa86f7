//! The ruleset a ledger enforces, as stored in its genesis record.
//!
//! Every number the rules use comes from here, not from constants in the code: a verifier that
//! replays a ledger uses the ruleset the ledger was created with, and a later ruleset version is
//! a new genesis, not a silent change of behaviour. The built-in values live in `rules::builtin`.

use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

use super::event::Tier;

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Ruleset {
    pub name: Text,
    pub version: u32,
    /// First day of the allocation window (the framework's entry into force).
    pub window_start: Date,
    /// Last day of the allocation window (the end of the ruleset).
    pub window_end: Date,
    /// Countries in Tier 1 on `window_start`.
    pub tier_one: Vec<Country>,
    /// Countries in Tier 3 on `window_start`; every other assigned code is Tier 2.
    pub tier_three: Vec<Country>,
    /// Dated changes the ruleset already knows (Cambodia on 2026-02-03).
    pub tier_changes: Vec<RulesetTierChange>,
    pub chips: Vec<ChipSpec>,
    pub default_allocation_tpp: u64,
    pub lpp_limit_tpp: u64,
    pub aia_threshold_tpp: u64,
    /// A universal VEU holder's share of TPP in Tier 1 must be at least this.
    pub uveu_tier_one_share_min: Ratio,
    /// ... and in any single non-Tier-1 country at most this.
    pub uveu_country_share_max: Ratio,
    /// ... and, when headquartered in `uveu_home_country`, its share there at least this.
    pub uveu_home_share_min: Ratio,
    pub uveu_home_country: Country,
    pub nveu_caps: Vec<YearCap>,
    /// Closed weights trained with more operations than this are controlled (ECCN 4E091).
    pub weights_threshold_ops: u128,
    /// TPP of one H100, for the H100-equivalents shown beside TPP figures.
    pub h100_tpp: u64,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct RulesetTierChange {
    pub effective: Date,
    pub country: Country,
    pub tier: Tier,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct ChipSpec {
    pub chip: Id,
    pub tpp: u64,
    pub controlled: bool,
}

/// A share as an exact fraction; comparisons cross-multiply in u128.
#[derive(Clone, Copy, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Ratio {
    pub numerator: u64,
    pub denominator: u64,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct YearCap {
    pub year: u16,
    pub cap_tpp: u64,
}
