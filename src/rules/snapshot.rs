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
    ChipFact, Counters, CountryTpp, Dated, EntityFact, EntityTpp, Facts, Params, State, VeuFact,
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
                .entities
                .iter()
                .flat_map(|(entity, parts)| {
                    parts
                        .holdings
                        .iter()
                        .map(move |((country, chip), quantity)| {
                            (entity.clone(), *country, chip.clone(), *quantity)
                        })
                })
                .collect(),
        ),
        entity_tpp: sorted(
            counters
                .entities
                .iter()
                .filter(|(_, parts)| !parts.tpp.by_country.is_empty())
                .map(|(id, parts)| (id.clone(), parts.tpp.by_country.clone()))
                .collect(),
        ),
        lpp: sorted(
            counters
                .entities
                .iter()
                .flat_map(|(id, parts)| {
                    parts
                        .lpp
                        .iter()
                        .filter(|(_, used)| **used > 0)
                        .map(move |(year, used)| (id.clone(), *year, *used))
                })
                .collect(),
        ),
        aia: sorted(
            counters
                .entities
                .iter()
                .filter(|(_, parts)| parts.aia > 0)
                .map(|(id, parts)| (id.clone(), parts.aia))
                .collect(),
        ),
        country_tpp: sorted(
            counters
                .countries
                .iter()
                .filter(|(_, tpp)| tpp.allocation_used > 0 || tpp.installed > 0)
                .map(|(country, tpp)| (*country, tpp.allocation_used, tpp.installed))
                .collect(),
        ),
        weights: sorted(
            counters
                .entities
                .iter()
                .flat_map(|(id, parts)| {
                    parts
                        .weights
                        .iter()
                        .map(move |(country, count)| (id.clone(), *country, *count))
                })
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
    let mut counters = Counters::default();
    for (entity, country, chip, quantity) in snapshot.holdings {
        counters
            .entities
            .entry(entity)
            .or_default()
            .holdings
            .insert((country, chip), quantity);
    }
    for (entity, by_country) in snapshot.entity_tpp {
        let total = by_country.iter().map(|(_, amount)| amount).sum();
        counters.entities.entry(entity).or_default().tpp = EntityTpp { total, by_country };
    }
    for (entity, year, used) in snapshot.lpp {
        counters
            .entities
            .entry(entity)
            .or_default()
            .lpp
            .insert(year, used);
    }
    for (entity, received) in snapshot.aia {
        counters.entities.entry(entity).or_default().aia = received;
    }
    for (country, allocation_used, installed) in snapshot.country_tpp {
        counters.countries.insert(
            country,
            CountryTpp {
                allocation_used,
                installed,
            },
        );
    }
    for (entity, country, count) in snapshot.weights {
        counters
            .entities
            .entry(entity)
            .or_default()
            .weights
            .insert(country, count);
    }
    Ok(State { facts, counters })
}
