//! A [`State`] as bytes, for the prefix snapshots that let the ledger open without replaying
//! its whole log (FORMAT.md, "Derived data"). Maps are written as vectors sorted by key, so a
//! state has exactly one encoding: `verify` compares a stored snapshot with its own replay
//! byte for byte.

use std::sync::Arc;

use crate::codec::{self, CodecError, Scope, Tier, from_bytes};
use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

use super::state::{
    ChipFact, ChipNumber, Counters, CountryTpp, Dated, EntityCounters, EntityFact, EntityTpp,
    Facts, Params, State, VeuFact,
};

/// (effective, seq, value) of a dated fact.
type DatedEntry<T> = (Date, u64, T);
/// (id, holder, scope, granted, grant seq, revoked, revoke seq).
type VeuEntry<I> = (I, I, Scope, Date, u64, Option<Date>, Option<u64>);

/// The snapshot's layout. Decoding fills it with owned identifiers and text (`Id`, `Text`);
/// [`encode`] fills it with references into the state (`&Id`, `&Text`), which bincode writes
/// byte for byte as the owned values, so that encoding copies no identifier and allocates no
/// text: the encoding is checked against every stored snapshot by `verify`, and written by
/// every import.
#[derive(bincode::Encode, bincode::Decode)]
struct Snapshot<I, T, E> {
    entities: Vec<(I, Date, u64, T, Country, Option<I>)>,
    chips: Vec<(I, Date, u64, bool)>,
    tier_changes: Vec<(Country, Vec<DatedEntry<Tier>>)>,
    allocation_changes: Vec<(Country, Vec<DatedEntry<u64>>)>,
    veus: Vec<VeuEntry<I>>,
    certified: Vec<(I, Vec<(Date, u64)>)>,
    voided: Vec<(u64, u64)>,
    /// `Vec<EntityEntry<I>>`, sorted by entity; entities whose counters are all zero are left
    /// out. [`encode`] writes it entry by entry ([`EntityCountersOf`]).
    entity_counters: E,
    country_tpp: Vec<(Country, u64, u64)>,
}

/// One entity's counters, nested as in memory so that neither side regroups them: holdings
/// (country, chip, quantity), controlled TPP by country, LPP by year, AIA receipts, weights
/// hostings by country; each list sorted.
#[derive(bincode::Encode, bincode::Decode)]
struct EntityEntry<I> {
    entity: I,
    holdings: Vec<(Country, I, u64)>,
    tpp_by_country: Vec<(Country, u64)>,
    lpp: Vec<(u16, u64)>,
    aia: u64,
    weights: Vec<(Country, u64)>,
}

/// Every list sorted here comes from a map, so no two items are equal and an unstable sort
/// gives the one order a stable sort would.
fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort_unstable();
    items
}

/// A state's entity counters, written as `Vec<EntityEntry<&Id>>` is, one entity at a time:
/// building every entry first cost four vectors per entity, for every stored snapshot `verify`
/// checks (1M `verify`: 1.049 against 1.035 s with the comparison below, tools/bench/PROFILE.md,
/// goal 3).
struct EntityCountersOf<'a> {
    counters: &'a Counters,
    /// The entities whose counters are not all zero, sorted by identifier.
    entities: Vec<(&'a Id, &'a EntityCounters)>,
    /// Each chip's rank among the chips' identifiers ([`super::state::ChipNumbers::ranks`]):
    /// holdings are sorted by country and rank rather than by comparing identifiers.
    ranks: Vec<u32>,
}

impl bincode::Encode for EntityCountersOf<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        // A list's length, as bincode writes a `Vec`'s or a slice's: a `u64`.
        let length = |items: usize| items as u64;
        length(self.entities.len()).encode(encoder)?;
        let mut holdings: Vec<(Country, u32, ChipNumber, u64)> = Vec::new();
        let mut weights: Vec<(Country, u64)> = Vec::new();
        let mut lpp: Vec<(u16, u64)> = Vec::new();
        for (entity, parts) in &self.entities {
            // The fields of `EntityEntry`, in order, each list as a `Vec` is written.
            entity.encode(encoder)?;
            holdings.clear();
            holdings.extend(parts.holdings.iter().map(|((country, chip), quantity)| {
                (*country, self.ranks[*chip as usize], *chip, *quantity)
            }));
            holdings.sort_unstable_by_key(|(country, rank, _, _)| (*country, *rank));
            length(holdings.len()).encode(encoder)?;
            for (country, _, chip, quantity) in &holdings {
                (country, self.counters.chips.id(*chip), quantity).encode(encoder)?;
            }
            parts.tpp.by_country.encode(encoder)?;
            lpp.clear();
            lpp.extend(
                parts
                    .lpp
                    .iter()
                    .filter(|(_, used)| **used > 0)
                    .map(|(year, used)| (*year, *used)),
            );
            lpp.sort_unstable();
            lpp.encode(encoder)?;
            parts.aia.encode(encoder)?;
            weights.clear();
            weights.extend(
                parts
                    .weights
                    .iter()
                    .map(|(country, count)| (*country, *count)),
            );
            weights.sort_unstable();
            weights.encode(encoder)?;
        }
        Ok(())
    }
}

/// Encodes a state canonically.
pub fn encode(state: &State) -> Vec<u8> {
    let mut growing = codec::Growing(Vec::new());
    write(state, &mut growing).expect("encoding to a Vec cannot fail");
    growing.0
}

/// Whether `bytes` are exactly [`encode`]'s bytes for `state`: compared as they are written,
/// without a second copy (`verify` checks every stored snapshot so).
pub fn encodes_to(state: &State, bytes: &[u8]) -> bool {
    let mut compare = codec::Compare::new(bytes);
    write(state, &mut compare).is_ok() && compare.matched_all()
}

/// Writes a state canonically to `writer`.
fn write(
    state: &State,
    writer: &mut impl bincode::enc::write::Writer,
) -> Result<(), bincode::error::EncodeError> {
    let facts = &state.facts;
    let counters = &state.counters;
    let dated = |list: &Vec<Dated<Tier>>| -> Vec<(Date, u64, Tier)> {
        list.iter()
            .map(|item| (item.effective, item.seq, item.value))
            .collect()
    };
    let snapshot: Snapshot<&Id, &Text, EntityCountersOf> = Snapshot {
        entities: sorted(
            facts
                .entities
                .iter()
                .map(|(id, fact)| {
                    (
                        id,
                        fact.effective,
                        fact.seq,
                        &fact.name,
                        fact.hq,
                        fact.parent.as_ref(),
                    )
                })
                .collect(),
        ),
        chips: sorted(
            facts
                .chips
                .iter()
                .map(|(id, fact)| (id, fact.effective, fact.tpp, fact.controlled))
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
                        id,
                        &fact.holder,
                        fact.scope,
                        fact.granted,
                        fact.grant_seq,
                        fact.revoked,
                        fact.revoke_seq,
                    )
                })
                .collect();
            veus.sort_by(|a, b| a.0.cmp(b.0));
            veus
        },
        certified: sorted(
            facts
                .certified
                .iter()
                .filter(|(_, list)| !list.is_empty())
                .map(|(id, list)| {
                    (
                        id,
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
        entity_counters: {
            let mut entities: Vec<(&Id, &EntityCounters)> = counters
                .entities
                .iter()
                .filter(|(_, parts)| !parts.is_empty())
                .collect();
            entities.sort_unstable_by(|a, b| a.0.cmp(b.0));
            EntityCountersOf {
                counters,
                entities,
                ranks: counters.chips.ranks(),
            }
        },
        country_tpp: sorted(
            counters
                .countries
                .iter()
                .filter(|(_, tpp)| tpp.allocation_used > 0 || tpp.installed > 0)
                .map(|(country, tpp)| (*country, tpp.allocation_used, tpp.installed))
                .collect(),
        ),
    };
    codec::write_to(&snapshot, writer)
}

/// Decodes a state written by [`encode`] under the ledger's ruleset.
pub fn decode(bytes: &[u8], params: Arc<Params>) -> Result<State, CodecError> {
    let snapshot: Snapshot<Id, Text, Vec<EntityEntry<Id>>> = from_bytes(bytes)?;
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
    counters.entities.reserve(snapshot.entity_counters.len());
    for entry in snapshot.entity_counters {
        let total = entry.tpp_by_country.iter().map(|(_, amount)| amount).sum();
        let parts = EntityCounters {
            holdings: entry
                .holdings
                .into_iter()
                .map(|(country, chip, quantity)| ((country, counters.chip_number(&chip)), quantity))
                .collect(),
            tpp: EntityTpp {
                total,
                by_country: entry.tpp_by_country,
            },
            lpp: entry.lpp.into_iter().collect(),
            aia: entry.aia,
            weights: entry.weights.into_iter().collect(),
        };
        counters.entities.insert(entry.entity, parts);
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
    Ok(State { facts, counters })
}
