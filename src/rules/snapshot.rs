//! A [`State`] as bytes, for the prefix snapshots that let the ledger open without replaying
//! its whole log (FORMAT.md, "Derived data"). Maps are written as vectors sorted by key, so a
//! state has exactly one encoding: `verify` compares a stored snapshot with its own replay
//! byte for byte.

use std::sync::Arc;

use crate::codec::{CodecError, Scope, Tier, from_bytes, to_bytes};
use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

use super::state::{
    ChipFact, Counters, CountryTpp, Dated, EntityFact, EntityTpp, Facts, Map, Params, State,
    VeuFact,
};

/// (effective, seq, value) of a dated fact.
type DatedEntry<T> = (Date, u64, T);
/// (id, holder, scope, granted, grant seq, revoked, revoke seq).
type VeuEntry = (Id, Id, Scope, Date, u64, Option<Date>, Option<u64>);

#[derive(bincode::Encode, bincode::Decode)]
struct Snapshot {
    entities: Vec<(Id, Date, u64, Text, Country, Option<Id>)>,
    chips: Vec<(Id, Date, u64, bool)>,
    tier_changes: Vec<(Country, Vec<DatedEntry<Tier>>)>,
    allocation_changes: Vec<(Country, Vec<DatedEntry<u64>>)>,
    veus: Vec<VeuEntry>,
    certified: Vec<(Id, Vec<(Date, u64)>)>,
    voided: Vec<(u64, u64)>,
    holdings: Vec<(Id, Country, Id, u64)>,
    entity_tpp: Vec<(Id, Vec<(Country, u64)>)>,
    lpp: Vec<(Id, u16, u64)>,
    aia: Vec<(Id, u64)>,
    country_tpp: Vec<(Country, u64, u64)>,
    weights: Vec<(Id, Country, u64)>,
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

/// Encodes a state canonically.
pub fn encode(state: &State) -> Vec<u8> {
    let facts = &state.facts;
    let counters = &state.counters;
    let dated = |list: &Vec<Dated<Tier>>| -> Vec<(Date, u64, Tier)> {
        list.iter()
            .map(|item| (item.effective, item.seq, item.value))
            .collect()
    };
    let snapshot = Snapshot {
        entities: sorted(
            facts
                .entities
                .iter()
                .map(|(id, fact)| {
                    (
                        id.clone(),
                        fact.effective,
                        fact.seq,
                        fact.name.clone(),
                        fact.hq,
                        fact.parent.clone(),
                    )
                })
                .collect(),
        ),
        chips: sorted(
            facts
                .chips
                .iter()
                .map(|(id, fact)| (id.clone(), fact.effective, fact.tpp, fact.controlled))
                .collect(),
        ),
        tier_changes: sorted(
            facts
                .tier_changes
                .iter()
                .filter(|(_, list)| !list.is_empty())
                .map(|(country, list)| (*country, dated(list)))
                .collect(),
        ),
        allocation_changes: sorted(
            facts
                .allocation_changes
                .iter()
                .filter(|(_, list)| !list.is_empty())
                .map(|(country, list)| {
                    (
                        *country,
                        list.iter()
                            .map(|item| (item.effective, item.seq, item.value))
                            .collect(),
                    )
                })
                .collect(),
        ),
        veus: {
            let mut veus: Vec<_> = facts
                .veus
                .iter()
                .map(|(id, fact)| {
                    (
                        id.clone(),
                        fact.holder.clone(),
                        fact.scope,
                        fact.granted,
                        fact.grant_seq,
                        fact.revoked,
                        fact.revoke_seq,
                    )
                })
                .collect();
            veus.sort_by(|a, b| a.0.cmp(&b.0));
            veus
        },
        certified: sorted(
            facts
                .certified
                .iter()
                .filter(|(_, list)| !list.is_empty())
                .map(|(id, list)| {
                    (
                        id.clone(),
                        list.iter().map(|item| (item.effective, item.seq)).collect(),
                    )
                })
                .collect(),
        ),
        voided: sorted(
            facts
                .voided
                .iter()
                .map(|(target, void)| (*target, *void))
                .collect(),
        ),
        holdings: sorted(
            counters
                .holdings
                .iter()
                .map(|((entity, country, chip), quantity)| {
                    (entity.clone(), *country, chip.clone(), *quantity)
                })
                .collect(),
        ),
        entity_tpp: sorted(
            counters
                .entity_tpp
                .iter()
                .map(|(id, tpp)| (id.clone(), tpp.by_country.clone()))
                .collect(),
        ),
        lpp: sorted(
            counters
                .lpp
                .iter()
                .filter(|(_, used)| **used > 0)
                .map(|((id, year), used)| (id.clone(), *year, *used))
                .collect(),
        ),
        aia: sorted(
            counters
                .aia
                .iter()
                .filter(|(_, received)| **received > 0)
                .map(|(id, received)| (id.clone(), *received))
                .collect(),
        ),
        country_tpp: sorted(
            counters
                .country_tpp
                .iter()
                .filter(|(_, tpp)| tpp.allocation_used > 0 || tpp.installed > 0)
                .map(|(country, tpp)| (*country, tpp.allocation_used, tpp.installed))
                .collect(),
        ),
        weights: sorted(
            counters
                .weights
                .iter()
                .map(|((id, country), count)| (id.clone(), *country, *count))
                .collect(),
        ),
    };
    to_bytes(&snapshot)
}

/// Decodes a state written by [`encode`] under the ledger's ruleset.
pub fn decode(bytes: &[u8], params: Arc<Params>) -> Result<State, CodecError> {
    let snapshot: Snapshot = from_bytes(bytes)?;
    let mut facts = Facts::empty(params);
    for (id, effective, seq, name, hq, parent) in snapshot.entities {
        facts.entities.insert(
            id,
            EntityFact {
                effective,
                seq,
                name,
                hq,
                parent,
            },
        );
    }
    for (id, effective, tpp, controlled) in snapshot.chips {
        facts.chips.insert(
            id,
            ChipFact {
                effective,
                tpp,
                controlled,
            },
        );
    }
    for (country, list) in snapshot.tier_changes {
        let list = list
            .into_iter()
            .map(|(effective, seq, value)| Dated {
                effective,
                seq,
                value,
            })
            .collect();
        facts.tier_changes.insert(country, list);
    }
    for (country, list) in snapshot.allocation_changes {
        let list = list
            .into_iter()
            .map(|(effective, seq, value)| Dated {
                effective,
                seq,
                value,
            })
            .collect();
        facts.allocation_changes.insert(country, list);
    }
    for (id, holder, scope, granted, grant_seq, revoked, revoke_seq) in snapshot.veus {
        facts
            .veus_by_holder
            .entry(holder.clone())
            .or_default()
            .push(id.clone());
        facts.veus.insert(
            id,
            VeuFact {
                holder,
                scope,
                granted,
                grant_seq,
                revoked,
                revoke_seq,
            },
        );
    }
    for list in facts.veus_by_holder.values_mut() {
        list.sort();
    }
    for (id, list) in snapshot.certified {
        let list = list
            .into_iter()
            .map(|(effective, seq)| Dated {
                effective,
                seq,
                value: (),
            })
            .collect();
        facts.certified.insert(id, list);
    }
    facts.voided = snapshot.voided.into_iter().collect();
    let holdings = snapshot
        .holdings
        .into_iter()
        .map(|(entity, country, chip, quantity)| ((entity, country, chip), quantity))
        .collect::<Map<_, _>>();
    let entity_tpp = snapshot
        .entity_tpp
        .into_iter()
        .map(|(id, by_country)| {
            let total = by_country.iter().map(|(_, amount)| amount).sum();
            (id, EntityTpp { total, by_country })
        })
        .collect();
    let lpp = snapshot
        .lpp
        .into_iter()
        .map(|(id, year, used)| ((id, year), used))
        .collect();
    let aia = snapshot.aia.into_iter().collect();
    let country_tpp = snapshot
        .country_tpp
        .into_iter()
        .map(|(country, allocation_used, installed)| {
            (
                country,
                CountryTpp {
                    allocation_used,
                    installed,
                },
            )
        })
        .collect();
    let weights = snapshot
        .weights
        .into_iter()
        .map(|(id, country, count)| ((id, country), count))
        .collect();
    let counters = Counters {
        holdings,
        entity_tpp,
        lpp,
        aia,
        country_tpp,
        weights,
        lenient: false,
    };
    Ok(State { facts, counters })
}
