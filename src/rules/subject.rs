//! A subject's part of the state, and its digest: what a commitment record commits to.
//!
//! A subject's part follows from its own records alone (every record that changes an
//! entity's holdings, a country's allocation use or a VEU lists that subject), so a verifier
//! that folds only the records of a compliance bundle gets the same part, and the same digest,
//! as the ledger that folded everything.

use crate::codec::{Scope, Subject, Tier, to_bytes};
use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

use super::state::State;

/// BLAKE3 `derive_key` context of subject digests.
pub const DIGEST_CONTEXT: &str = "chipledger 2026-11 subject state v1";

/// (granted, grant seq, revoked, revoke seq) of a VEU.
type VeuLife = (Date, u64, Option<Date>, Option<u64>);

/// A subject's part of the state, in canonical form (vectors sorted by key).
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode)]
pub enum SubjectState {
    Entity {
        /// (effective, seq, name, hq, parent) of the registration.
        registration: Option<(Date, u64, Text, Country, Option<Id>)>,
        holdings: Vec<(Country, Id, u64)>,
        controlled_tpp: Vec<(Country, u64)>,
        lpp_used: Vec<(u16, u64)>,
        aia_received: u64,
        certifications: Vec<(Date, u64)>,
        veus: Vec<(Id, Scope, VeuLife)>,
        controlled_weights: Vec<(Country, u64)>,
    },
    Country {
        allocation_used: u64,
        installed: u64,
        allocation_changes: Vec<(Date, u64, u64)>,
        tier_changes: Vec<(Date, u64, Tier)>,
    },
    Veu {
        holder: Id,
        scope: Scope,
        life: VeuLife,
    },
    /// `None` for a subject the state knows nothing about.
    Chip(Option<(Date, u64, bool)>),
    Tiers(Vec<(Country, Date, u64, Tier)>),
    Unknown,
}

/// The part of `state` that belongs to `subject`.
pub fn project(state: &State, subject: &Subject) -> SubjectState {
    let facts = &state.facts;
    let counters = &state.counters;
    match subject {
        Subject::Entity(id) => {
            let registration = facts.entities.get(id).map(|fact| {
                (
                    fact.effective,
                    fact.seq,
                    fact.name.clone(),
                    fact.hq,
                    fact.parent.clone(),
                )
            });
            let parts = counters.entities.get(id).cloned().unwrap_or_default();
            let mut holdings: Vec<(Country, Id, u64)> = counters
                .holdings(&parts)
                .map(|(country, chip, quantity)| (country, chip.clone(), quantity))
                .collect();
            holdings.sort();
            let controlled_tpp = parts.tpp.by_country.clone();
            let mut lpp_used: Vec<(u16, u64)> = parts
                .lpp
                .iter()
                .filter(|(_, used)| **used > 0)
                .map(|(year, used)| (*year, *used))
                .collect();
            lpp_used.sort();
            let certifications = facts
                .certified
                .get(id)
                .map(|list| list.iter().map(|item| (item.effective, item.seq)).collect())
                .unwrap_or_default();
            let mut veus: Vec<(Id, Scope, VeuLife)> = facts
                .veus_by_holder
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|veu| {
                    let fact = facts.veus.get(veu)?;
                    Some((
                        veu.clone(),
                        fact.scope,
                        (fact.granted, fact.grant_seq, fact.revoked, fact.revoke_seq),
                    ))
                })
                .collect();
            veus.sort_by(|a, b| a.0.cmp(&b.0));
            let mut controlled_weights: Vec<(Country, u64)> = parts
                .weights
                .iter()
                .map(|(country, count)| (*country, *count))
                .collect();
            controlled_weights.sort();
            SubjectState::Entity {
                registration,
                holdings,
                controlled_tpp,
                lpp_used,
                aia_received: parts.aia,
                certifications,
                veus,
                controlled_weights,
            }
        }
        Subject::Country(country) => {
            let tpp = counters.countries.get(country).copied().unwrap_or_default();
            SubjectState::Country {
                allocation_used: tpp.allocation_used,
                installed: tpp.installed,
                allocation_changes: facts
                    .allocation_changes
                    .get(country)
                    .map(|list| {
                        list.iter()
                            .map(|item| (item.effective, item.seq, item.value))
                            .collect()
                    })
                    .unwrap_or_default(),
                tier_changes: facts
                    .tier_changes
                    .get(country)
                    .map(|list| {
                        list.iter()
                            .map(|item| (item.effective, item.seq, item.value))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        }
        Subject::Veu(id) => match facts.veus.get(id) {
            Some(fact) => SubjectState::Veu {
                holder: fact.holder.clone(),
                scope: fact.scope,
                life: (fact.granted, fact.grant_seq, fact.revoked, fact.revoke_seq),
            },
            None => SubjectState::Unknown,
        },
        Subject::Chip(id) => SubjectState::Chip(
            facts
                .chips
                .get(id)
                .map(|fact| (fact.effective, fact.tpp, fact.controlled)),
        ),
        Subject::Tiers => {
            let mut changes: Vec<(Country, Date, u64, Tier)> = facts
                .tier_changes
                .iter()
                .flat_map(|(country, list)| {
                    list.iter()
                        // seq 0: the ruleset's own changes, part of the genesis record.
                        .filter(|item| item.seq > 0)
                        .map(|item| (*country, item.effective, item.seq, item.value))
                })
                .collect();
            changes.sort();
            SubjectState::Tiers(changes)
        }
    }
}

/// The digest of a subject's part of the state.
pub fn digest(part: &SubjectState) -> [u8; 32] {
    blake3::Hasher::new_derive_key(DIGEST_CONTEXT)
        .update(&to_bytes(part))
        .finalize()
        .into()
}

/// One leaf of a commitment's subject tree: the canonical bytes of (subject, latest seq or
/// none, digest). Leaves are sorted by subject.
pub fn leaf_bytes(subject: &Subject, latest: Option<u64>, digest: &[u8; 32]) -> Vec<u8> {
    to_bytes(&(subject, latest, digest))
}
