//! The state the rules read: what a set of records adds up to.
//!
//! State is split in two, and both halves are *commutative*: folding a set of records gives the
//! same state in any order. That is what lets a snapshot of one log prefix be extended with any
//! later records, and lets an as-of query add late records to a snapshot (ARCHITECTURE.md).
//!
//! - [`Facts`] are dated: registrations, tier and allocation changes, VEU grants and revokes,
//!   certifications, voids. Each keeps its effective date and is evaluated *at a date*, so one
//!   `Facts` answers "what tier was KH on 2026-01-01" and "on 2026-03-01" alike.
//! - [`Counters`] are sums of the effects of chip movements: holdings, controlled TPP by entity
//!   and country, LPP use by year, AIA receipts, allocation use. A void adds its target's
//!   effects with the opposite sign.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use crate::codec::{Basis, Body, ChipsOutcome, Event, Outcome, Record, Ruleset, Scope, Tier};
use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The ruleset with lookups prepared.
#[derive(Debug)]
pub struct Params {
    pub ruleset: Ruleset,
    /// Each country's tier before any dated change, by [`Country::index`]: looked up for every
    /// decision that names a country, several times for a Universal VEU holder's shipment, so
    /// a table rather than a hash map.
    base_tiers: Box<[Tier; COUNTRY_CODES]>,
}

/// The two-letter codes [`Country::index`] numbers.
const COUNTRY_CODES: usize = 26 * 26;

impl Params {
    pub fn new(ruleset: Ruleset) -> Params {
        let mut base_tiers = Box::new([Tier::Two; COUNTRY_CODES]);
        for country in &ruleset.tier_one {
            base_tiers[country.index()] = Tier::One;
        }
        for country in &ruleset.tier_three {
            base_tiers[country.index()] = Tier::Three;
        }
        Params {
            ruleset,
            base_tiers,
        }
    }

    /// A country's tier on the ruleset's first day, before any dated change.
    pub fn base_tier(&self, country: Country) -> Tier {
        self.base_tiers[country.index()]
    }

    pub fn h100_tpp(&self) -> u64 {
        self.ruleset.h100_tpp
    }

    pub fn in_window(&self, date: Date) -> bool {
        self.ruleset.window_start <= date && date <= self.ruleset.window_end
    }

    pub fn nveu_cap(&self, year: u16) -> Option<u64> {
        self.ruleset
            .nveu_caps
            .iter()
            .find(|cap| cap.year == year)
            .map(|cap| cap.cap_tpp)
    }
}

/// A value that holds from `effective` on; `seq` orders values of the same day.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dated<T> {
    pub effective: Date,
    pub seq: u64,
    pub value: T,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EntityFact {
    pub effective: Date,
    pub seq: u64,
    pub name: Text,
    pub hq: Country,
    pub parent: Option<Id>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChipFact {
    pub effective: Date,
    pub tpp: u64,
    pub controlled: bool,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VeuFact {
    pub holder: Id,
    pub scope: Scope,
    pub granted: Date,
    pub grant_seq: u64,
    pub revoked: Option<Date>,
    pub revoke_seq: Option<u64>,
}

/// Dated reference facts.
#[derive(Clone, Debug)]
pub struct Facts {
    pub params: Arc<Params>,
    pub entities: Map<Id, EntityFact>,
    pub chips: Map<Id, ChipFact>,
    pub tier_changes: Map<Country, Vec<Dated<Tier>>>,
    pub allocation_changes: Map<Country, Vec<Dated<u64>>>,
    pub veus: Map<Id, VeuFact>,
    pub veus_by_holder: Map<Id, Vec<Id>>,
    /// Each entity's AIA certifications, sorted by (date, seq).
    pub certified: Map<Id, Vec<Dated<()>>>,
    /// Voided record → the void's sequence number.
    pub voided: Map<u64, u64>,
}

/// Controlled TPP one entity holds, in total and by country.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct EntityTpp {
    pub total: u64,
    /// Sorted by country; countries at zero are removed.
    pub by_country: Vec<(Country, u64)>,
}

impl EntityTpp {
    pub fn in_country(&self, country: Country) -> u64 {
        EntityTpp::held_in(&self.by_country, country)
    }

    /// The amount `by_country` (sorted by country) holds for `country`.
    pub fn held_in(by_country: &[(Country, u64)], country: Country) -> u64 {
        match by_country.binary_search_by_key(&country, |(c, _)| *c) {
            Ok(index) => by_country[index].1,
            Err(_) => 0,
        }
    }
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct CountryTpp {
    /// Licence TPP counted against the country's allocation.
    pub allocation_used: u64,
    /// Controlled TPP installed in the country, whoever holds it.
    pub installed: u64,
}

/// A chip model's number in a [`Counters`]' [`ChipNumbers`].
pub type ChipNumber = u32;

/// The chip models that holdings name, numbered in the order holdings first named them, so
/// that a holding is keyed by eight bytes rather than by a 32-byte identifier. The holdings
/// tables are what the rules' replay finds least often in the cache: keyed by identifier, each
/// entity's took three times the memory (tools/bench/PROFILE.md, goal 3). The numbers depend on
/// the order records were folded in, so they never leave the process: snapshots, views and
/// digests name chips by their identifiers.
#[derive(Clone, Default, Debug)]
pub struct ChipNumbers {
    numbers: Map<Id, ChipNumber>,
    ids: Vec<Id>,
}

impl ChipNumbers {
    pub fn get(&self, chip: &Id) -> Option<ChipNumber> {
        self.numbers.get(chip).copied()
    }

    /// The chip's number, given it now if it has none.
    fn number(&mut self, chip: &Id) -> ChipNumber {
        if let Some(number) = self.get(chip) {
            return number;
        }
        let number = ChipNumber::try_from(self.ids.len()).expect("fewer than 2^32 chip models");
        self.numbers.insert(chip.clone(), number);
        self.ids.push(chip.clone());
        number
    }

    pub fn id(&self, number: ChipNumber) -> &Id {
        &self.ids[number as usize]
    }

    /// Each chip's place in the order of their identifiers, by number: sorting holdings by
    /// these numbers sorts them by identifier without comparing text.
    pub fn ranks(&self) -> Vec<u32> {
        let mut by_id: Vec<ChipNumber> = (0..self.ids.len() as ChipNumber).collect();
        by_id.sort_unstable_by_key(|number| &self.ids[*number as usize]);
        let mut ranks = vec![0; self.ids.len()];
        for (rank, number) in (0u32..).zip(by_id) {
            ranks[number as usize] = rank;
        }
        ranks
    }
}

/// One entity's sums.
#[derive(Clone, Default, Debug)]
pub struct EntityCounters {
    /// Quantity by country and chip (by its number in the counters' [`ChipNumbers`]),
    /// controlled or not; zero entries are removed.
    pub holdings: Map<(Country, ChipNumber), u64>,
    /// Controlled TPP.
    pub tpp: EntityTpp,
    /// LPP receipts by calendar year.
    pub lpp: Map<u16, u64>,
    /// Cumulative AIA receipts.
    pub aia: u64,
    /// Hostings of controlled model weights by country.
    pub weights: Map<Country, u64>,
}

impl EntityCounters {
    /// Every sum is back to zero. Each fold that changes an entity's counters then drops its
    /// entry, so that a state has one form whatever records were folded in and out.
    pub fn is_empty(&self) -> bool {
        self.holdings.is_empty()
            && self.tpp.total == 0
            && self.tpp.by_country.is_empty()
            && self.lpp.values().all(|used| *used == 0)
            && self.aia == 0
            && self.weights.is_empty()
    }
}

/// Sums of chip movements, by entity and by country.
#[derive(Clone, Default, Debug)]
pub struct Counters {
    pub entities: Map<Id, EntityCounters>,
    pub countries: Map<Country, CountryTpp>,
    /// Shared by the copies a late record's decision works on: they add a number only for a
    /// chip no holding named before, and copy the table only then.
    pub chips: Arc<ChipNumbers>,
    /// Saturate instead of refusing to go below zero: for folding only *some* of a log's
    /// records (a compliance bundle, a late record's scratch counters), where the counters of
    /// subjects outside the set are incomplete and are never read. Never set for a whole log.
    pub lenient: bool,
}

/// The state of a set of records: facts and counters.
#[derive(Clone, Debug)]
pub struct State {
    pub facts: Facts,
    pub counters: Counters,
}

/// A record could not be folded: the log contradicts itself (a replay, not a refusal, found it).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FoldError(pub String);

impl std::fmt::Display for FoldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The earliest date a built-in chip model exists: always.
pub fn beginning() -> Date {
    Date::new(crate::date::MIN_YEAR, 1, 1).expect("valid")
}

impl Facts {
    /// Facts with nothing in them, not even the ruleset's catalog (a snapshot fills them).
    pub fn empty(params: Arc<Params>) -> Facts {
        Facts {
            params,
            entities: Map::default(),
            chips: Map::default(),
            tier_changes: Map::default(),
            allocation_changes: Map::default(),
            veus: Map::default(),
            veus_by_holder: Map::default(),
            certified: Map::default(),
            voided: Map::default(),
        }
    }

    /// The facts of the ruleset alone: its chip catalog and its dated tier changes.
    fn new(params: Arc<Params>) -> Facts {
        let mut facts = Facts::empty(params.clone());
        for spec in &params.ruleset.chips {
            facts.chips.insert(
                spec.chip.clone(),
                ChipFact {
                    effective: beginning(),
                    tpp: spec.tpp,
                    controlled: spec.controlled,
                },
            );
        }
        for change in &params.ruleset.tier_changes {
            insert_dated(
                facts.tier_changes.entry(change.country).or_default(),
                Dated {
                    effective: change.effective,
                    seq: 0,
                    value: change.tier,
                },
            );
        }
        facts
    }

    /// A country's tier on a date.
    pub fn tier(&self, country: Country, date: Date) -> Tier {
        self.tier_changes
            .get(&country)
            .and_then(|changes| value_at(changes, date))
            .unwrap_or_else(|| self.params.base_tier(country))
    }

    /// A country's cumulative allocation on a date.
    pub fn allocation(&self, country: Country, date: Date) -> u64 {
        self.allocation_changes
            .get(&country)
            .and_then(|changes| value_at(changes, date))
            .unwrap_or(self.params.ruleset.default_allocation_tpp)
    }

    /// The entity, if registered on or before `date`.
    pub fn entity_at(&self, entity: &Id, date: Date) -> Option<&EntityFact> {
        self.entities
            .get(entity)
            .filter(|fact| fact.effective <= date)
    }

    pub fn chip_at(&self, chip: &Id, date: Date) -> Option<&ChipFact> {
        self.chips.get(chip).filter(|fact| fact.effective <= date)
    }

    /// The worst tier of the entity's HQ and of every ancestor's HQ on `date`.
    pub fn hq_tier(&self, entity: &Id, date: Date) -> Tier {
        let mut worst = Tier::One;
        let mut current = self.entities.get(entity);
        // Parents must exist before their children, so the chain cannot loop; the bound only
        // guards against a corrupted state.
        let mut steps = self.entities.len() + 1;
        while let Some(fact) = current {
            worst = worst.max(self.tier(fact.hq, date));
            steps -= 1;
            if steps == 0 {
                break;
            }
            current = fact
                .parent
                .as_ref()
                .and_then(|parent| self.entities.get(parent));
        }
        worst
    }

    pub fn veu_active(&self, veu: &VeuFact, date: Date) -> bool {
        veu.granted <= date && veu.revoked.is_none_or(|revoked| revoked > date)
    }

    /// The entity's VEUs active on `date`.
    pub fn active_veus<'a>(
        &'a self,
        holder: &Id,
        date: Date,
    ) -> impl Iterator<Item = (&'a Id, &'a VeuFact)> + 'a {
        self.veus_by_holder
            .get(holder)
            .into_iter()
            .flatten()
            .filter_map(move |id| {
                let fact = self.veus.get(id)?;
                self.veu_active(fact, date).then_some((id, fact))
            })
    }

    pub fn has_universal_veu(&self, holder: &Id, date: Date) -> bool {
        self.active_veus(holder, date)
            .any(|(_, fact)| fact.scope == Scope::Universal)
    }

    pub fn has_national_veu(&self, holder: &Id, country: Country, date: Date) -> bool {
        self.active_veus(holder, date)
            .any(|(_, fact)| fact.scope == Scope::National(country))
    }

    pub fn certified_by(&self, entity: &Id, date: Date) -> bool {
        self.certified
            .get(entity)
            .and_then(|list| list.first())
            .is_some_and(|first| first.effective <= date)
    }

    /// Folds a record's facts in (`Sign::Add`) or takes them out again (`Sign::Remove`, used to
    /// roll back a late record that a later event refused).
    pub fn apply(&mut self, record: &Record, sign: Sign) -> Result<(), FoldError> {
        let date = record.effective;
        let seq = record.seq;
        let adding = sign == Sign::Add;
        match &record.event.body {
            Body::Entity(event) if adding => {
                let fact = EntityFact {
                    effective: date,
                    seq,
                    name: event.name.clone(),
                    hq: event.hq,
                    parent: event.parent.clone(),
                };
                if self.entities.insert(event.entity.clone(), fact).is_some() {
                    return Err(FoldError(format!(
                        "entity {} is registered twice",
                        event.entity
                    )));
                }
            }
            Body::Entity(event) => {
                self.entities.remove(&event.entity);
            }
            Body::ChipModel(event) if adding => {
                let fact = ChipFact {
                    effective: date,
                    tpp: event.tpp,
                    controlled: event.controlled,
                };
                if self.chips.insert(event.chip.clone(), fact).is_some() {
                    return Err(FoldError(format!(
                        "chip model {} is defined twice",
                        event.chip
                    )));
                }
            }
            Body::ChipModel(event) => {
                self.chips.remove(&event.chip);
            }
            Body::TierChange(event) => {
                let list = self.tier_changes.entry(event.country).or_default();
                change_dated(
                    list,
                    Dated {
                        effective: date,
                        seq,
                        value: event.tier,
                    },
                    sign,
                );
            }
            Body::AllocationChange(event) => {
                let list = self.allocation_changes.entry(event.country).or_default();
                change_dated(
                    list,
                    Dated {
                        effective: date,
                        seq,
                        value: event.allocation_tpp,
                    },
                    sign,
                );
            }
            Body::VeuGrant(event) if adding => {
                let fact = VeuFact {
                    holder: event.entity.clone(),
                    scope: event.scope,
                    granted: date,
                    grant_seq: seq,
                    revoked: None,
                    revoke_seq: None,
                };
                if self.veus.insert(event.veu.clone(), fact).is_some() {
                    return Err(FoldError(format!("VEU {} is granted twice", event.veu)));
                }
                let list = self.veus_by_holder.entry(event.entity.clone()).or_default();
                if let Err(position) = list.binary_search(&event.veu) {
                    list.insert(position, event.veu.clone());
                }
            }
            Body::VeuGrant(event) => {
                self.veus.remove(&event.veu);
                if let Some(list) = self.veus_by_holder.get_mut(&event.entity) {
                    list.retain(|veu| *veu != event.veu);
                }
            }
            Body::VeuRevoke(event) => {
                let Some(fact) = self.veus.get_mut(&event.veu) else {
                    return Err(FoldError(format!(
                        "VEU {} is revoked before it is granted",
                        event.veu
                    )));
                };
                if adding {
                    if fact.revoked.is_some() {
                        return Err(FoldError(format!("VEU {} is revoked twice", event.veu)));
                    }
                    fact.revoked = Some(date);
                    fact.revoke_seq = Some(seq);
                } else {
                    fact.revoked = None;
                    fact.revoke_seq = None;
                }
            }
            Body::AiaCertification(event) => {
                let list = self.certified.entry(event.entity.clone()).or_default();
                change_dated(
                    list,
                    Dated {
                        effective: date,
                        seq,
                        value: (),
                    },
                    sign,
                );
            }
            Body::Void(_) => {
                let Outcome::Void(void) = &record.outcome else {
                    return Err(FoldError("a void without its target".into()));
                };
                if !adding {
                    self.voided.remove(&void.target_seq);
                } else if self.voided.insert(void.target_seq, seq).is_some() {
                    return Err(FoldError(format!(
                        "record {} is voided twice",
                        void.target_seq
                    )));
                }
            }
            Body::Genesis(_)
            | Body::Inventory(_)
            | Body::Shipment(_)
            | Body::Transfer(_)
            | Body::Decommission(_)
            | Body::WeightsHosting(_)
            | Body::Commitment(_) => {}
        }
        Ok(())
    }
}

fn change_dated<T>(list: &mut Vec<Dated<T>>, item: Dated<T>, sign: Sign) {
    match sign {
        Sign::Add => insert_dated(list, item),
        Sign::Remove => list.retain(|existing| existing.seq != item.seq),
    }
}

fn insert_dated<T>(list: &mut Vec<Dated<T>>, item: Dated<T>) {
    let key = (item.effective, item.seq);
    let position = list.partition_point(|existing| (existing.effective, existing.seq) <= key);
    list.insert(position, item);
}

fn value_at<T: Copy>(list: &[Dated<T>], date: Date) -> Option<T> {
    let position = list.partition_point(|item| item.effective <= date);
    position.checked_sub(1).map(|index| list[index].value)
}

/// Whether an effect adds or (for a void) takes away.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sign {
    Add,
    Remove,
}

impl Counters {
    /// The quantity of a chip an entity holds in a country.
    pub fn holding(&self, entity: &Id, country: Country, chip: &Id) -> u64 {
        let Some(chip) = self.chips.get(chip) else {
            return 0;
        };
        self.entities
            .get(entity)
            .and_then(|counters| counters.holdings.get(&(country, chip)))
            .copied()
            .unwrap_or(0)
    }

    /// An entity's holdings, as (country, chip, quantity), in no particular order.
    pub fn holdings<'a>(
        &'a self,
        parts: &'a EntityCounters,
    ) -> impl Iterator<Item = (Country, &'a Id, u64)> + 'a {
        parts
            .holdings
            .iter()
            .map(|((country, chip), quantity)| (*country, self.chips.id(*chip), *quantity))
    }

    /// The chip's number, given it now if no holding named it before.
    pub fn chip_number(&mut self, chip: &Id) -> ChipNumber {
        match self.chips.get(chip) {
            Some(number) => number,
            None => Arc::make_mut(&mut self.chips).number(chip),
        }
    }

    pub fn entity(&self, entity: &Id) -> Option<&EntityTpp> {
        self.entities.get(entity).map(|counters| &counters.tpp)
    }

    pub fn lpp_used(&self, entity: &Id, year: u16) -> u64 {
        self.entities
            .get(entity)
            .and_then(|counters| counters.lpp.get(&year))
            .copied()
            .unwrap_or(0)
    }

    pub fn aia_received(&self, entity: &Id) -> u64 {
        self.entities.get(entity).map_or(0, |counters| counters.aia)
    }

    pub fn allocation_used(&self, country: Country) -> u64 {
        self.countries
            .get(&country)
            .map(|tpp| tpp.allocation_used)
            .unwrap_or(0)
    }

    /// A lenient copy holding only the counters of the given entities and countries: what a
    /// late record's decision and rechecks read.
    pub fn extract<'a>(
        &self,
        entities: impl IntoIterator<Item = &'a Id>,
        countries: impl IntoIterator<Item = Country>,
    ) -> Counters {
        let mut part = Counters {
            lenient: true,
            chips: self.chips.clone(),
            ..Counters::default()
        };
        for entity in entities {
            if let Some(counters) = self.entities.get(entity) {
                part.entities.insert(entity.clone(), counters.clone());
            }
        }
        for country in countries {
            if let Some(tpp) = self.countries.get(&country) {
                part.countries.insert(country, *tpp);
            }
        }
        part
    }

    /// Adds (or removes) the effects of one event with its outcome, dated `effective`.
    pub fn apply_event(
        &mut self,
        effective: Date,
        event: &Event,
        outcome: &Outcome,
        sign: Sign,
    ) -> Result<(), FoldError> {
        match (&event.body, outcome) {
            (Body::Inventory(event), Outcome::Chips(chips)) => self.arrive(
                &event.entity,
                event.country,
                &event.chip,
                event.quantity,
                chips,
                effective,
                sign,
            ),
            (Body::Shipment(event), Outcome::Chips(chips)) => self.arrive(
                &event.consignee,
                event.country,
                &event.chip,
                event.quantity,
                chips,
                effective,
                sign,
            ),
            (Body::Transfer(event), Outcome::Chips(chips)) => {
                let receiver = event.to_entity.as_ref().unwrap_or(&event.entity);
                let depart = |counters: &mut Counters| {
                    counters.depart(
                        &event.entity,
                        event.from_country,
                        &event.chip,
                        event.quantity,
                        chips,
                        sign,
                    )
                };
                let arrive = |counters: &mut Counters| {
                    counters.arrive(
                        receiver,
                        event.to_country,
                        &event.chip,
                        event.quantity,
                        chips,
                        effective,
                        sign,
                    )
                };
                // The side that grows goes first. A transfer within one holding (same entity,
                // country and chip) nets to nothing, and folded into a state where that
                // holding is smaller than the quantity (a later transfer took some away) it must
                // not pass through a negative balance on the way.
                match sign {
                    Sign::Add => {
                        arrive(self)?;
                        depart(self)
                    }
                    Sign::Remove => {
                        depart(self)?;
                        arrive(self)
                    }
                }
            }
            (Body::Decommission(event), Outcome::Chips(chips)) => self.depart(
                &event.entity,
                event.country,
                &event.chip,
                event.quantity,
                chips,
                sign,
            ),
            (Body::WeightsHosting(event), Outcome::Weights(weights)) => {
                if weights.controlled {
                    let lenient = self.lenient;
                    let counters = self.entities.entry(event.entity.clone()).or_default();
                    let count = counters.weights.entry(event.country).or_default();
                    *count = adjust(lenient, *count, 1, sign, "controlled weights hostings")?;
                    if *count == 0 {
                        counters.weights.remove(&event.country);
                    }
                    if counters.is_empty() {
                        self.entities.remove(&event.entity);
                    }
                }
                Ok(())
            }
            (Body::Void(_), Outcome::Void(void)) => {
                let reversed = match sign {
                    Sign::Add => Sign::Remove,
                    Sign::Remove => Sign::Add,
                };
                self.apply_event(
                    void.target_effective,
                    &void.target_event,
                    &void.target_outcome,
                    reversed,
                )
            }
            (
                Body::Inventory(_) | Body::Shipment(_) | Body::Transfer(_) | Body::Decommission(_),
                _,
            )
            | (Body::WeightsHosting(_), _)
            | (Body::Void(_), _) => Err(FoldError(format!(
                "{} {} carries the wrong kind of outcome",
                event.body.type_name(),
                event.id
            ))),
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn arrive(
        &mut self,
        entity: &Id,
        country: Country,
        chip: &Id,
        quantity: u64,
        chips: &ChipsOutcome,
        effective: Date,
        sign: Sign,
    ) -> Result<(), FoldError> {
        let lenient = self.lenient;
        let number = self.chip_number(chip);
        let counters = self.entities.entry(entity.clone()).or_default();
        add_holding(
            lenient,
            counters,
            entity,
            country,
            (chip, number),
            quantity,
            sign,
        )?;
        if chips.controlled {
            add_entity_tpp(lenient, &mut counters.tpp, country, chips.amount_tpp, sign)?;
            match chips.basis {
                Basis::Lpp => {
                    let used = counters.lpp.entry(effective.year()).or_default();
                    *used = adjust(lenient, *used, chips.amount_tpp, sign, "LPP use")?;
                    if *used == 0 {
                        counters.lpp.remove(&effective.year());
                    }
                }
                Basis::Aia => {
                    counters.aia = adjust(
                        lenient,
                        counters.aia,
                        chips.amount_tpp,
                        sign,
                        "AIA receipts",
                    )?;
                }
                _ => {}
            }
            let country_tpp = self.countries.entry(country).or_default();
            country_tpp.installed = adjust(
                lenient,
                country_tpp.installed,
                chips.amount_tpp,
                sign,
                "installed TPP",
            )?;
            if chips.counts_allocation {
                country_tpp.allocation_used = adjust(
                    lenient,
                    country_tpp.allocation_used,
                    chips.amount_tpp,
                    sign,
                    "allocation use",
                )?;
            }
            if *country_tpp == CountryTpp::default() {
                self.countries.remove(&country);
            }
        }
        if counters.is_empty() {
            self.entities.remove(entity);
        }
        Ok(())
    }

    fn depart(
        &mut self,
        entity: &Id,
        country: Country,
        chip: &Id,
        quantity: u64,
        chips: &ChipsOutcome,
        sign: Sign,
    ) -> Result<(), FoldError> {
        let lenient = self.lenient;
        let opposite = match sign {
            Sign::Add => Sign::Remove,
            Sign::Remove => Sign::Add,
        };
        let number = self.chip_number(chip);
        let counters = self.entities.entry(entity.clone()).or_default();
        add_holding(
            lenient,
            counters,
            entity,
            country,
            (chip, number),
            quantity,
            opposite,
        )?;
        if chips.controlled {
            add_entity_tpp(
                lenient,
                &mut counters.tpp,
                country,
                chips.amount_tpp,
                opposite,
            )?;
            let country_tpp = self.countries.entry(country).or_default();
            country_tpp.installed = adjust(
                lenient,
                country_tpp.installed,
                chips.amount_tpp,
                opposite,
                "installed TPP",
            )?;
            if *country_tpp == CountryTpp::default() {
                self.countries.remove(&country);
            }
        }
        if counters.is_empty() {
            self.entities.remove(entity);
        }
        Ok(())
    }
}

fn add_holding(
    lenient: bool,
    counters: &mut EntityCounters,
    entity: &Id,
    country: Country,
    (chip, number): (&Id, ChipNumber),
    quantity: u64,
    sign: Sign,
) -> Result<(), FoldError> {
    // One lookup for the read and the write: this runs for every chip movement of a replay.
    let entry = counters.holdings.entry((country, number));
    let held = match &entry {
        Entry::Occupied(occupied) => *occupied.get(),
        Entry::Vacant(_) => 0,
    };
    let after = adjust(lenient, held, quantity, sign, "holdings").map_err(|_| {
        FoldError(format!(
            "{entity} would hold fewer than zero {chip} in {country} ({held} held, {quantity} leave)"
        ))
    })?;
    match entry {
        Entry::Occupied(occupied) if after == 0 => {
            occupied.remove();
        }
        Entry::Occupied(mut occupied) => {
            occupied.insert(after);
        }
        Entry::Vacant(vacant) if after != 0 => {
            vacant.insert(after);
        }
        Entry::Vacant(_) => {}
    }
    Ok(())
}

fn add_entity_tpp(
    lenient: bool,
    tpp: &mut EntityTpp,
    country: Country,
    amount: u64,
    sign: Sign,
) -> Result<(), FoldError> {
    tpp.total = adjust(lenient, tpp.total, amount, sign, "controlled TPP")?;
    match tpp.by_country.binary_search_by_key(&country, |(c, _)| *c) {
        Ok(index) => {
            let after = adjust(
                lenient,
                tpp.by_country[index].1,
                amount,
                sign,
                "controlled TPP",
            )?;
            if after == 0 {
                tpp.by_country.remove(index);
            } else {
                tpp.by_country[index].1 = after;
            }
        }
        Err(index) => {
            let after = adjust(lenient, 0, amount, sign, "controlled TPP")?;
            if after > 0 {
                tpp.by_country.insert(index, (country, after));
            }
        }
    }
    Ok(())
}

fn adjust(
    lenient: bool,
    value: u64,
    amount: u64,
    sign: Sign,
    what: &str,
) -> Result<u64, FoldError> {
    if lenient {
        return Ok(match sign {
            Sign::Add => value.saturating_add(amount),
            Sign::Remove => value.saturating_sub(amount),
        });
    }
    match sign {
        Sign::Add => value
            .checked_add(amount)
            .ok_or_else(|| FoldError(format!("{what} would overflow 64 bits"))),
        Sign::Remove => value
            .checked_sub(amount)
            .ok_or_else(|| FoldError(format!("{what} would fall below zero"))),
    }
}

impl State {
    /// The state of the genesis record alone.
    pub fn from_genesis(record: &Record) -> Result<State, FoldError> {
        let Body::Genesis(genesis) = &record.event.body else {
            return Err(FoldError("record 0 is not a genesis record".into()));
        };
        if record.seq != 0 {
            return Err(FoldError("the genesis record must be record 0".into()));
        }
        validate_ruleset(&genesis.ruleset)?;
        Ok(State::with_params(Arc::new(Params::new(
            genesis.ruleset.clone(),
        ))))
    }

    /// An empty state under a ruleset.
    pub fn with_params(params: Arc<Params>) -> State {
        State {
            facts: Facts::new(params),
            counters: Counters::default(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.facts.params
    }

    /// Folds one record in. The genesis record is folded by [`State::from_genesis`].
    pub fn apply(&mut self, record: &Record) -> Result<(), FoldError> {
        if matches!(record.event.body, Body::Genesis(_)) {
            return Ok(());
        }
        self.facts.apply(record, Sign::Add)?;
        self.counters
            .apply_event(record.effective, &record.event, &record.outcome, Sign::Add)
    }

    /// Takes a record folded by [`State::apply`] out again.
    pub fn unapply(&mut self, record: &Record) -> Result<(), FoldError> {
        if matches!(record.event.body, Body::Genesis(_)) {
            return Ok(());
        }
        self.counters.apply_event(
            record.effective,
            &record.event,
            &record.outcome,
            Sign::Remove,
        )?;
        self.facts.apply(record, Sign::Remove)
    }
}

/// Checks that a ruleset read from a genesis record keeps the arithmetic of the rules exact:
/// bounded TPP values and well-formed fractions.
pub fn validate_ruleset(ruleset: &Ruleset) -> Result<(), FoldError> {
    let bad = |why: String| Err(FoldError(format!("the genesis ruleset is invalid: {why}")));
    if ruleset.window_start > ruleset.window_end {
        return bad("the allocation window ends before it starts".into());
    }
    let mut names = std::collections::HashSet::new();
    for chip in &ruleset.chips {
        if chip.tpp == 0 || chip.tpp > crate::input::MAX_CHIP_TPP {
            return bad(format!("chip {} has TPP {}", chip.chip, chip.tpp));
        }
        if !names.insert(&chip.chip) {
            return bad(format!("chip {} is listed twice", chip.chip));
        }
    }
    for ratio in [
        ruleset.uveu_tier_one_share_min,
        ruleset.uveu_country_share_max,
        ruleset.uveu_home_share_min,
    ] {
        if ratio.denominator == 0 || ratio.numerator > ratio.denominator {
            return bad(format!("share {}/{}", ratio.numerator, ratio.denominator));
        }
    }
    if ruleset.h100_tpp == 0 {
        return bad("the H100 TPP is zero".into());
    }
    Ok(())
}
