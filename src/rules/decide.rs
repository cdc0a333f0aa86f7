//! The rules of framework.md sections 2 to 10, as one set of clauses with two uses.
//!
//! - [`decide`] resolves a new event: it checks references, dates and every rule at the event's
//!   date, chooses the authorization basis, and returns the [`Outcome`] the record will store.
//! - [`recheck`] re-evaluates an already recorded event with its stored outcome fixed, after a
//!   late record or a void was inserted before it in the timeline.
//!
//! Every clause is a pure function of the facts, the counters and the event; no I/O, no clock
//! (the recording day is an argument).

use smallvec::SmallVec;

use crate::codec::{
    Basis, Body, ChipsOutcome, Event, Outcome, Record, RevokeOutcome, Scope, Tier, VoidOutcome,
    WeightsAuthority, WeightsOutcome,
};
use crate::country::Country;
use crate::date::Date;
use crate::name::Id;

use super::Affected;
use super::refusal::{Code, Figures, Refusal, grouped, tpp_text};
use super::state::{ChipFact, Counters, EntityTpp, Facts};

/// A record already in the log that a new void would reverse.
pub struct VoidTarget<'a> {
    pub record: &'a Record,
    /// Whether it has been voided already.
    pub voided: bool,
}

/// Resolves a new event recorded on `today`, or refuses it.
///
/// `facts` must hold every record of the log (they are evaluated at `effective`); `counters`
/// must be the counters as of `effective`. For a void, `target` is the record its `target` id
/// names, if any.
pub fn decide(
    facts: &Facts,
    counters: &Counters,
    effective: Date,
    event: &Event,
    today: Date,
    target: Option<VoidTarget<'_>>,
) -> Result<Outcome, Refusal> {
    let all = Affected::everything();
    let checker = Checker {
        facts,
        counters,
        event,
        date: effective,
        owners: &all,
        stored: None,
    };
    checker.decide(today, target)
}

/// Re-checks a recorded event with its stored outcome against the state at its place in the
/// timeline (`counters` as of just before it; `facts` of the whole log), evaluating only the
/// clauses that read the state of the `owners`: the subjects an insertion changed. Only their
/// counters need be right in `counters`.
pub fn recheck(
    facts: &Facts,
    counters: &Counters,
    record: &Record,
    owners: &Affected,
) -> Result<(), Refusal> {
    let checker = Checker {
        facts,
        counters,
        event: &record.event,
        date: record.effective,
        owners,
        stored: Some(&record.outcome),
    };
    checker.recheck()
}

struct Checker<'a> {
    facts: &'a Facts,
    counters: &'a Counters,
    event: &'a Event,
    date: Date,
    /// Whose clauses to evaluate (everyone's when deciding).
    owners: &'a Affected,
    /// The stored outcome when rechecking; `None` when deciding.
    stored: Option<&'a Outcome>,
}

/// A movement of controlled chips, as the clauses see it.
struct Arrival<'a> {
    receiver: &'a Id,
    country: Country,
    amount_tpp: u64,
    /// A transfer within one country (from = to).
    in_country: bool,
    /// For transfers: who loses the chips, and where.
    source: Option<(&'a Id, Country)>,
}

impl<'a> Checker<'a> {
    fn h100(&self) -> u64 {
        self.facts.params.h100_tpp()
    }

    fn tpp(&self, amount: u64) -> String {
        tpp_text(amount, self.h100())
    }

    fn what(&self) -> String {
        format!("{} {}", self.event.body.type_name(), self.event.id)
    }

    fn refuse(&self, code: Code, message: String) -> Refusal {
        Refusal {
            code,
            event_id: self.event.id.clone(),
            message,
            figures: None,
            breaks: None,
        }
    }

    fn refuse_with(&self, code: Code, message: String, figures: Figures) -> Refusal {
        Refusal {
            figures: Some(Box::new(figures)),
            ..self.refuse(code, message)
        }
    }

    fn deciding(&self) -> bool {
        self.stored.is_none()
    }

    // ---- references and dates ------------------------------------------------------------

    fn entity(&self, entity: &Id, role: &str) -> Result<(), Refusal> {
        if !self.deciding() || self.facts.entity_at(entity, self.date).is_some() {
            return Ok(());
        }
        let later = self
            .facts
            .entities
            .get(entity)
            .map(|fact| format!(" (it is registered from {})", fact.effective))
            .unwrap_or_default();
        Err(self.refuse(
            Code::UnknownReference,
            format!(
                "{} names {role} {entity}, which is not a registered entity on {}{later}",
                self.what(),
                self.date
            ),
        ))
    }

    fn chip(&self, chip: &Id) -> Result<&'a ChipFact, Refusal> {
        if let Some(fact) = self.facts.chip_at(chip, self.date) {
            return Ok(fact);
        }
        Err(self.refuse(
            Code::UnknownReference,
            format!(
                "{} names chip model {chip}, which is not in the catalog on {}",
                self.what(),
                self.date
            ),
        ))
    }

    fn in_window(&self) -> Result<(), Refusal> {
        if !self.deciding() || self.facts.params.in_window(self.date) {
            return Ok(());
        }
        let ruleset = &self.facts.params.ruleset;
        Err(self.refuse(
            Code::RulesetNotInForce,
            format!(
                "{} is dated {}, outside the ruleset's allocation window {} to {}",
                self.what(),
                self.date,
                ruleset.window_start,
                ruleset.window_end
            ),
        ))
    }

    fn not_future(&self, today: Date) -> Result<(), Refusal> {
        if self.date <= today {
            return Ok(());
        }
        Err(self.refuse(
            Code::FutureDated,
            format!(
                "{} takes effect on {}, after the day of recording {today}",
                self.what(),
                self.date
            ),
        ))
    }

    // ---- decide ----------------------------------------------------------------------------

    fn decide(&self, today: Date, target: Option<VoidTarget<'_>>) -> Result<Outcome, Refusal> {
        self.not_future(today)?;
        match &self.event.body {
            Body::Genesis(_) | Body::Commitment(_) => Ok(Outcome::None),
            Body::Entity(event) => {
                if let Some(existing) = self.facts.entities.get(&event.entity) {
                    return Err(self.refuse(
                        Code::DuplicateSubject,
                        format!(
                            "{} registers entity {} again; it was registered from {}",
                            self.what(),
                            event.entity,
                            existing.effective
                        ),
                    ));
                }
                if let Some(parent) = &event.parent {
                    self.entity(parent, "parent")?;
                }
                Ok(Outcome::None)
            }
            Body::ChipModel(event) => {
                if let Some(existing) = self.facts.chips.get(&event.chip) {
                    return Err(self.refuse(
                        Code::DuplicateSubject,
                        format!(
                            "{} defines chip model {} again; it exists with {} TPP, {}",
                            self.what(),
                            event.chip,
                            grouped(u128::from(existing.tpp)),
                            if existing.controlled {
                                "controlled"
                            } else {
                                "not controlled"
                            }
                        ),
                    ));
                }
                Ok(Outcome::None)
            }
            Body::TierChange(_) | Body::AllocationChange(_) => Ok(Outcome::None),
            Body::VeuGrant(event) => {
                self.in_window()?;
                if let Some(existing) = self.facts.veus.get(&event.veu) {
                    return Err(self.refuse(
                        Code::DuplicateSubject,
                        format!(
                            "{} grants VEU {} again; it was granted to {} on {}",
                            self.what(),
                            event.veu,
                            existing.holder,
                            existing.granted
                        ),
                    ));
                }
                self.entity(&event.entity, "holder")?;
                self.veu_grant(&event.entity, event.scope)?;
                Ok(Outcome::None)
            }
            Body::VeuRevoke(event) => {
                let fact = self
                    .facts
                    .veus
                    .get(&event.veu)
                    .filter(|fact| fact.granted <= self.date)
                    .ok_or_else(|| {
                        self.refuse(
                            Code::UnknownReference,
                            format!(
                                "{} revokes VEU {}, which is not granted on {}",
                                self.what(),
                                event.veu,
                                self.date
                            ),
                        )
                    })?;
                if let Some(revoked) = fact.revoked {
                    return Err(self.refuse(
                        Code::DuplicateSubject,
                        format!(
                            "{} revokes VEU {} again; it was revoked on {revoked}",
                            self.what(),
                            event.veu
                        ),
                    ));
                }
                Ok(Outcome::Revoke(RevokeOutcome {
                    holder: fact.holder.clone(),
                    scope: fact.scope,
                }))
            }
            Body::AiaCertification(event) => {
                self.entity(&event.entity, "consignee")?;
                Ok(Outcome::None)
            }
            Body::Inventory(event) => {
                self.entity(&event.entity, "holder")?;
                let chip = self.chip(&event.chip)?;
                let chips = self.declared(chip, event.quantity);
                if chip.controlled {
                    self.uveu_after(&event.entity, &[(event.country, chips.amount_tpp, true)])?;
                }
                Ok(Outcome::Chips(chips))
            }
            Body::Decommission(event) => {
                self.entity(&event.entity, "holder")?;
                let chip = self.chip(&event.chip)?;
                let chips = self.declared(chip, event.quantity);
                self.holdings(
                    &event.entity,
                    event.country,
                    &event.chip,
                    event.quantity,
                    chip,
                )?;
                if chip.controlled {
                    self.uveu_after(&event.entity, &[(event.country, chips.amount_tpp, false)])?;
                }
                Ok(Outcome::Chips(chips))
            }
            Body::Shipment(event) => {
                self.in_window()?;
                self.entity(&event.exporter, "exporter")?;
                self.entity(&event.consignee, "consignee")?;
                let chip = self.chip(&event.chip)?;
                let amount_tpp = amount(event.quantity, chip.tpp);
                let arrival = Arrival {
                    receiver: &event.consignee,
                    country: event.country,
                    amount_tpp,
                    in_country: false,
                    source: None,
                };
                self.movement(chip, &arrival, event.basis)
                    .map(Outcome::Chips)
            }
            Body::Transfer(event) => {
                self.in_window()?;
                self.entity(&event.entity, "owner")?;
                let receiver = event.to_entity.as_ref().unwrap_or(&event.entity);
                if let Some(to_entity) = &event.to_entity {
                    self.entity(to_entity, "receiver")?;
                }
                let chip = self.chip(&event.chip)?;
                self.holdings(
                    &event.entity,
                    event.from_country,
                    &event.chip,
                    event.quantity,
                    chip,
                )?;
                let arrival = Arrival {
                    receiver,
                    country: event.to_country,
                    amount_tpp: amount(event.quantity, chip.tpp),
                    in_country: event.from_country == event.to_country,
                    source: Some((&event.entity, event.from_country)),
                };
                self.movement(chip, &arrival, event.basis)
                    .map(Outcome::Chips)
            }
            Body::WeightsHosting(event) => {
                self.in_window()?;
                self.entity(&event.entity, "host")?;
                let controlled = !event.open_weights
                    && event.training_ops > self.facts.params.ruleset.weights_threshold_ops;
                let authority = if controlled {
                    self.weights(&event.entity, event.country, event.secured)?
                } else {
                    WeightsAuthority::Uncontrolled
                };
                Ok(Outcome::Weights(WeightsOutcome {
                    controlled,
                    authority,
                }))
            }
            Body::Void(event) => {
                let Some(target) = target else {
                    return Err(self.refuse(
                        Code::UnknownReference,
                        format!(
                            "{} targets {}, which is not in the ledger",
                            self.what(),
                            event.target
                        ),
                    ));
                };
                let record = target.record;
                let voidable = matches!(
                    record.event.body,
                    Body::Shipment(_)
                        | Body::Transfer(_)
                        | Body::Inventory(_)
                        | Body::Decommission(_)
                        | Body::WeightsHosting(_)
                );
                if !voidable {
                    return Err(self.refuse(
                        Code::UnknownReference,
                        format!(
                            "{} targets {}, a {}; only shipments, transfers, inventory, \
                             decommissions and weights hostings can be voided",
                            self.what(),
                            event.target,
                            record.event.body.type_name()
                        ),
                    ));
                }
                if target.voided {
                    return Err(self.refuse(
                        Code::AlreadyVoided,
                        format!(
                            "{} targets {}, which is already voided",
                            self.what(),
                            event.target
                        ),
                    ));
                }
                Ok(Outcome::Void(Box::new(VoidOutcome {
                    target_seq: record.seq,
                    target_effective: record.effective,
                    target_event: record.event.clone(),
                    target_outcome: Box::new(record.outcome.clone()),
                })))
            }
        }
    }

    fn declared(&self, chip: &ChipFact, quantity: u64) -> ChipsOutcome {
        ChipsOutcome {
            unit_tpp: chip.tpp,
            amount_tpp: amount(quantity, chip.tpp),
            controlled: chip.controlled,
            basis: Basis::Declared,
            counts_allocation: false,
        }
    }

    // ---- recheck ---------------------------------------------------------------------------

    fn recheck(&self) -> Result<(), Refusal> {
        let stored = self.stored.expect("recheck has a stored outcome");
        match (&self.event.body, stored) {
            (Body::Inventory(event), Outcome::Chips(chips)) if chips.controlled => {
                self.uveu_after(&event.entity, &[(event.country, chips.amount_tpp, true)])
            }
            (Body::Decommission(event), Outcome::Chips(chips)) => {
                let chip = ChipFact {
                    effective: self.date,
                    tpp: chips.unit_tpp,
                    controlled: chips.controlled,
                };
                self.holdings(
                    &event.entity,
                    event.country,
                    &event.chip,
                    event.quantity,
                    &chip,
                )?;
                if chips.controlled {
                    self.uveu_after(&event.entity, &[(event.country, chips.amount_tpp, false)])?;
                }
                Ok(())
            }
            (Body::Shipment(event), Outcome::Chips(chips)) => {
                let chip = ChipFact {
                    effective: self.date,
                    tpp: chips.unit_tpp,
                    controlled: chips.controlled,
                };
                let arrival = Arrival {
                    receiver: &event.consignee,
                    country: event.country,
                    amount_tpp: chips.amount_tpp,
                    in_country: false,
                    source: None,
                };
                self.movement(&chip, &arrival, Some(chips.basis))
                    .map(|_| ())
            }
            (Body::Transfer(event), Outcome::Chips(chips)) => {
                let chip = ChipFact {
                    effective: self.date,
                    tpp: chips.unit_tpp,
                    controlled: chips.controlled,
                };
                self.holdings(
                    &event.entity,
                    event.from_country,
                    &event.chip,
                    event.quantity,
                    &chip,
                )?;
                let arrival = Arrival {
                    receiver: event.to_entity.as_ref().unwrap_or(&event.entity),
                    country: event.to_country,
                    amount_tpp: chips.amount_tpp,
                    in_country: event.from_country == event.to_country,
                    source: Some((&event.entity, event.from_country)),
                };
                self.movement(&chip, &arrival, Some(chips.basis))
                    .map(|_| ())
            }
            (Body::VeuGrant(event), Outcome::None) => self.veu_grant(&event.entity, event.scope),
            (Body::WeightsHosting(event), Outcome::Weights(weights)) if weights.controlled => self
                .weights(&event.entity, event.country, event.secured)
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    // ---- holdings --------------------------------------------------------------------------

    fn holdings(
        &self,
        entity: &Id,
        country: Country,
        chip_id: &Id,
        quantity: u64,
        chip: &ChipFact,
    ) -> Result<(), Refusal> {
        if !self.owners.entity(entity) {
            return Ok(());
        }
        let held = self.counters.holding(entity, country, chip_id);
        if held >= quantity {
            return Ok(());
        }
        let held_tpp = amount(held, chip.tpp);
        let wanted_tpp = amount(quantity, chip.tpp);
        Err(self.refuse_with(
            Code::InsufficientHoldings,
            format!(
                "{} moves {} {chip_id} ({}) out of {country}, but {entity} holds {} there on {}, \
                 short by {}",
                self.what(),
                grouped(u128::from(quantity)),
                self.tpp(wanted_tpp),
                grouped(u128::from(held)),
                self.date,
                grouped(u128::from(quantity - held)),
            ),
            Figures {
                before_tpp: held_tpp,
                after_tpp: wanted_tpp,
                limit_tpp: held_tpp,
                excess_tpp: wanted_tpp - held_tpp,
            },
        ))
    }

    // ---- movements of chips (section 7) -----------------------------------------------------

    /// Checks a shipment or transfer of `chip` and resolves its basis. When rechecking,
    /// `requested` is the stored basis.
    fn movement(
        &self,
        chip: &ChipFact,
        arrival: &Arrival<'_>,
        requested: Option<Basis>,
    ) -> Result<ChipsOutcome, Refusal> {
        let mut outcome = ChipsOutcome {
            unit_tpp: chip.tpp,
            amount_tpp: arrival.amount_tpp,
            controlled: chip.controlled,
            basis: Basis::Uncontrolled,
            counts_allocation: false,
        };
        if !chip.controlled {
            return match requested {
                Some(Basis::Uncontrolled) | None => Ok(outcome),
                Some(basis) => Err(self.refuse(
                    Code::BasisNotApplicable,
                    format!(
                        "{} asks for basis {} but its chips are not controlled; no basis applies",
                        self.what(),
                        basis.name()
                    ),
                )),
            };
        }
        let country = arrival.country;
        if self.owners.all && self.facts.tier(country, self.date) == Tier::Three {
            return Err(self.refuse(
                Code::Tier3Destination,
                format!(
                    "{} sends controlled chips to {country}, a Tier 3 country on {}",
                    self.what(),
                    self.date
                ),
            ));
        }
        if self.owners.all && self.facts.hq_tier(arrival.receiver, self.date) == Tier::Three {
            return Err(self.refuse(
                Code::HqTier3,
                format!(
                    "{} delivers controlled chips to {}, whose headquarters (or a parent's) is in \
                     a Tier 3 country on {}",
                    self.what(),
                    arrival.receiver,
                    self.date
                ),
            ));
        }
        let (basis, counts_allocation) = self.authorize(arrival, requested)?;
        outcome.basis = basis;
        outcome.counts_allocation = counts_allocation;
        if let Some(Outcome::Chips(stored)) = self.stored {
            if self.owners.all && stored.counts_allocation != counts_allocation {
                return Err(self.refuse(
                    Code::BasisNotApplicable,
                    format!(
                        "{} was recorded as {} {country}'s allocation; on {} it would {}",
                        self.what(),
                        if stored.counts_allocation {
                            "counting against"
                        } else {
                            "not counting against"
                        },
                        self.date,
                        if counts_allocation {
                            "count"
                        } else {
                            "not count"
                        }
                    ),
                ));
            }
        }
        // At most two changes, so they live on the stack: a vector for the changes and another
        // for each holder's share of them cost `verify`'s replaying thread 5.6% of its
        // instructions in allocations (tools/bench/PROFILE.md, goal 3).
        let arriving = (arrival.receiver, country, arrival.amount_tpp, true);
        let changes: SmallVec<[_; 2]> = std::iter::once(arriving)
            .chain(
                arrival
                    .source
                    .map(|(source, from)| (source, from, arrival.amount_tpp, false)),
            )
            .collect();
        for holder in [
            Some(arrival.receiver),
            arrival.source.map(|(source, _)| source),
        ]
        .into_iter()
        .flatten()
        {
            let own: SmallVec<[(Country, u64, bool); 2]> = changes
                .iter()
                .filter(|(who, ..)| *who == holder)
                .map(|(_, country, amount, arriving)| (*country, *amount, *arriving))
                .collect();
            self.uveu_after(holder, &own)?;
            if arrival
                .source
                .is_some_and(|(source, _)| source == arrival.receiver)
            {
                break;
            }
        }
        Ok(outcome)
    }

    /// Chooses (or, for a requested basis, checks) the authorization basis.
    fn authorize(
        &self,
        arrival: &Arrival<'_>,
        requested: Option<Basis>,
    ) -> Result<(Basis, bool), Refusal> {
        if let Some(basis) = requested {
            if let Some(reason) = self.not_applicable(arrival, basis) {
                let asked = if self.deciding() {
                    "asks for"
                } else {
                    "was recorded under"
                };
                return Err(self.refuse(
                    Code::BasisNotApplicable,
                    format!(
                        "{} {asked} basis {}, which does not apply on {}: {reason}",
                        self.what(),
                        basis.name(),
                        self.date
                    ),
                ));
            }
            let counts = self.limit(arrival, basis)?;
            return Ok((basis, counts));
        }
        for basis in [
            Basis::Aia,
            Basis::Uveu,
            Basis::Nveu,
            Basis::Lpp,
            Basis::License,
        ] {
            if !self.applies(arrival, basis) {
                continue;
            }
            // LPP is chosen automatically only when it fits; the others, once they apply, are
            // the basis and their limits refuse.
            if basis == Basis::Lpp && self.lpp_excess(arrival).is_some() {
                continue;
            }
            let counts = self.limit(arrival, basis)?;
            return Ok((basis, counts));
        }
        unreachable!("license always applies")
    }

    /// Why `basis` does not apply, or `None` when it does.
    fn not_applicable(&self, arrival: &Arrival<'_>, basis: Basis) -> Option<String> {
        self.reason_not(arrival, basis, true)
    }

    /// Whether `basis` applies: [`Checker::not_applicable`] without writing the reason, for
    /// the search through the bases that every controlled shipment makes.
    fn applies(&self, arrival: &Arrival<'_>, basis: Basis) -> bool {
        self.reason_not(arrival, basis, false).is_none()
    }

    /// Why `basis` does not apply, written out only when `explain` (an empty string stands
    /// for the reason otherwise).
    fn reason_not(&self, arrival: &Arrival<'_>, basis: Basis, explain: bool) -> Option<String> {
        let country = arrival.country;
        let receiver = arrival.receiver;
        let tier = || self.facts.tier(country, self.date);
        let because =
            |reason: &dyn Fn() -> String| Some(if explain { reason() } else { String::new() });
        match basis {
            Basis::Aia if !self.owners.all => None,
            Basis::Aia => {
                if tier() != Tier::One {
                    because(&|| format!("{country} is not a Tier 1 country on {}", self.date))
                } else if self.facts.hq_tier(receiver, self.date) != Tier::One {
                    because(&|| format!("{receiver} is not headquartered in Tier 1"))
                } else {
                    None
                }
            }
            Basis::Uveu if !self.owners.entity(receiver) => None,
            Basis::Uveu => {
                if self.facts.has_universal_veu(receiver, self.date) {
                    None
                } else {
                    because(&|| {
                        format!("{receiver} holds no active universal VEU on {}", self.date)
                    })
                }
            }
            Basis::Nveu if !self.owners.entity(receiver) => None,
            Basis::Nveu => {
                if self.facts.has_national_veu(receiver, country, self.date) {
                    None
                } else {
                    because(&|| {
                        format!(
                            "{receiver} holds no active national VEU for {country} on {}",
                            self.date
                        )
                    })
                }
            }
            Basis::Lpp => {
                if arrival.in_country {
                    because(&|| "an in-country transfer cannot use the LPP".to_string())
                } else if self.owners.all && tier() == Tier::Three {
                    because(&|| format!("{country} is a Tier 3 country"))
                } else {
                    None
                }
            }
            Basis::License => None,
            Basis::Uncontrolled | Basis::Declared => {
                because(&|| "the chips are controlled".to_string())
            }
        }
    }

    /// The LPP excess if this arrival does not fit the consignee's annual limit.
    fn lpp_excess(&self, arrival: &Arrival<'_>) -> Option<(u64, u64, u64)> {
        let limit = self.facts.params.ruleset.lpp_limit_tpp;
        let before = self.counters.lpp_used(arrival.receiver, self.date.year());
        let after = before.saturating_add(arrival.amount_tpp);
        (after > limit).then_some((before, after, limit))
    }

    /// Checks the limits of a basis that applies; returns whether the amount counts against the
    /// destination's allocation.
    fn limit(&self, arrival: &Arrival<'_>, basis: Basis) -> Result<bool, Refusal> {
        let receiver = arrival.receiver;
        let country = arrival.country;
        let amount_tpp = arrival.amount_tpp;
        let params = &self.facts.params;
        match basis {
            Basis::Aia if self.owners.entity(receiver) => {
                let threshold = params.ruleset.aia_threshold_tpp;
                let before = self.counters.aia_received(receiver);
                let after = before.saturating_add(amount_tpp);
                if after >= threshold && !self.facts.certified_by(receiver, self.date) {
                    return Err(self.refuse_with(
                        Code::AiaCertificationRequired,
                        format!(
                            "{} would raise {receiver}'s AIA receipts to {}, reaching the {} \
                             certification threshold, and {receiver} has filed no AIA \
                             certification by {}",
                            self.what(),
                            self.tpp(after),
                            self.tpp(threshold),
                            self.date
                        ),
                        Figures {
                            before_tpp: before,
                            after_tpp: after,
                            limit_tpp: threshold,
                            excess_tpp: after - threshold,
                        },
                    ));
                }
                Ok(false)
            }
            Basis::Nveu if self.owners.entity(receiver) => {
                let year = self.date.year();
                let cap = params.nveu_cap(year).unwrap_or(0);
                let held = self
                    .counters
                    .entity(receiver)
                    .map(|tpp| tpp.in_country(country))
                    .unwrap_or(0);
                let leaving = match arrival.source {
                    Some((source, from)) if source == receiver && from == country => amount_tpp,
                    _ => 0,
                };
                let after = held.saturating_add(amount_tpp).saturating_sub(leaving);
                if after > cap {
                    return Err(self.refuse_with(
                        Code::NveuCapExceeded,
                        format!(
                            "{} would raise {receiver}'s controlled TPP in {country} to {}, over \
                             its {year} national VEU cap of {} by {}",
                            self.what(),
                            self.tpp(after),
                            self.tpp(cap),
                            self.tpp(after - cap)
                        ),
                        Figures {
                            before_tpp: held,
                            after_tpp: after,
                            limit_tpp: cap,
                            excess_tpp: after - cap,
                        },
                    ));
                }
                Ok(false)
            }
            Basis::Lpp if self.owners.entity(receiver) => {
                if let Some((before, after, limit)) = self.lpp_excess(arrival) {
                    return Err(self.refuse_with(
                        Code::LppAnnualLimit,
                        format!(
                            "{} would raise {receiver}'s LPP receipts in {} to {}, over the \
                             annual limit of {} by {}",
                            self.what(),
                            self.date.year(),
                            self.tpp(after),
                            self.tpp(limit),
                            self.tpp(after - limit)
                        ),
                        Figures {
                            before_tpp: before,
                            after_tpp: after,
                            limit_tpp: limit,
                            excess_tpp: after - limit,
                        },
                    ));
                }
                Ok(false)
            }
            Basis::License => {
                let counts = self.facts.tier(country, self.date) == Tier::Two;
                if counts && self.owners.country(country) {
                    let allocation = self.facts.allocation(country, self.date);
                    let before = self.counters.allocation_used(country);
                    let after = before.saturating_add(amount_tpp);
                    if after > allocation {
                        return Err(self.refuse_with(
                            Code::CountryAllocationExceeded,
                            format!(
                                "{} would raise {country}'s allocation use to {} TPP, over its \
                                 {} TPP allocation by {}",
                                self.what(),
                                grouped(u128::from(after)),
                                grouped(u128::from(allocation)),
                                self.tpp(after - allocation)
                            ),
                            Figures {
                                before_tpp: before,
                                after_tpp: after,
                                limit_tpp: allocation,
                                excess_tpp: after - allocation,
                            },
                        ));
                    }
                }
                Ok(counts)
            }
            _ => Ok(false),
        }
    }

    // ---- universal VEU ratios (section 8) ---------------------------------------------------

    /// Checks the universal VEU ratios of `holder` after the given changes of its controlled
    /// TPP (country, amount, arriving), if it holds an active universal VEU.
    fn uveu_after(&self, holder: &Id, changes: &[(Country, u64, bool)]) -> Result<(), Refusal> {
        if !self.owners.entity(holder) || !self.facts.has_universal_veu(holder, self.date) {
            return Ok(());
        }
        let nothing = EntityTpp::default();
        let before = self.counters.entity(holder).unwrap_or(&nothing);
        // The holder's TPP by country after the changes: on the stack for a holder in up to
        // 16 countries, as a copy of its counters was one allocation per check.
        let mut after: SmallVec<[(Country, u64); 16]> = SmallVec::from_slice(&before.by_country);
        let mut total = before.total;
        for (country, amount, arriving) in changes {
            let held = EntityTpp::held_in(&after, *country);
            let new = if *arriving {
                held.saturating_add(*amount)
            } else {
                held.saturating_sub(*amount)
            };
            total = total - held + new;
            match after.binary_search_by_key(country, |(c, _)| *c) {
                Ok(index) => after[index].1 = new,
                Err(index) => after.insert(index, (*country, new)),
            }
        }
        self.uveu_ratios(holder, before, total, &after)
    }

    /// Checks the universal VEU ratios of `holder`, whose TPP was `before` and would be `total`
    /// in all, `after` by country (sorted by country).
    fn uveu_ratios(
        &self,
        holder: &Id,
        before: &EntityTpp,
        total: u64,
        after: &[(Country, u64)],
    ) -> Result<(), Refusal> {
        if total == 0 {
            return Ok(());
        }
        let ruleset = &self.facts.params.ruleset;
        let tier_one = |tpp: &EntityTpp| -> u64 {
            tpp.by_country
                .iter()
                .filter(|(country, _)| self.facts.tier(*country, self.date) == Tier::One)
                .map(|(_, amount)| amount)
                .sum()
        };
        let share = |part: u64| -> String {
            let basis_points = super::refusal::basis_points(part, total);
            format!("{}.{:02}%", basis_points / 100, basis_points % 100)
        };
        let min_share = ruleset.uveu_tier_one_share_min;
        let max_share = ruleset.uveu_country_share_max;
        // One pass, each country's tier looked up once: the share in Tier 1, and the first
        // country outside Tier 1 over its limit, which is refused only if the Tier 1 share holds.
        let mut t1_after = 0;
        let mut over_share = None;
        for (country, held) in after {
            if self.facts.tier(*country, self.date) == Tier::One {
                t1_after += held;
            } else if over_share.is_none()
                && u128::from(max_share.denominator) * u128::from(*held)
                    > u128::from(max_share.numerator) * u128::from(total)
            {
                over_share = Some((*country, *held));
            }
        }
        if u128::from(min_share.denominator) * u128::from(t1_after)
            < u128::from(min_share.numerator) * u128::from(total)
        {
            let required = ceil_share(total, min_share.numerator, min_share.denominator);
            return Err(self.refuse_with(
                Code::UveuTier1Share,
                format!(
                    "{} would leave {holder} with {} of its {} in Tier 1 countries ({}), under \
                     the universal VEU minimum of {}/{} ({}) by {}",
                    self.what(),
                    self.tpp(t1_after),
                    self.tpp(total),
                    share(t1_after),
                    min_share.numerator,
                    min_share.denominator,
                    self.tpp(required),
                    self.tpp(required - t1_after)
                ),
                Figures {
                    before_tpp: tier_one(before),
                    after_tpp: t1_after,
                    limit_tpp: required,
                    excess_tpp: required - t1_after,
                },
            ));
        }
        if let Some((country, held)) = over_share {
            let allowed = floor_share(total, max_share.numerator, max_share.denominator);
            return Err(self.refuse_with(
                Code::UveuCountryShare,
                format!(
                    "{} would put {} of {holder}'s {} in {country} ({}), over the universal VEU \
                     limit of {}/{} for one non-Tier-1 country ({}) by {}",
                    self.what(),
                    self.tpp(held),
                    self.tpp(total),
                    share(held),
                    max_share.numerator,
                    max_share.denominator,
                    self.tpp(allowed),
                    self.tpp(held - allowed)
                ),
                Figures {
                    before_tpp: before.in_country(country),
                    after_tpp: held,
                    limit_tpp: allowed,
                    excess_tpp: held - allowed,
                },
            ));
        }
        let home = ruleset.uveu_home_country;
        let own_hq = self.facts.entities.get(holder).map(|fact| fact.hq);
        if own_hq == Some(home) {
            let home_share = ruleset.uveu_home_share_min;
            let at_home = EntityTpp::held_in(after, home);
            if u128::from(home_share.denominator) * u128::from(at_home)
                < u128::from(home_share.numerator) * u128::from(total)
            {
                let required = ceil_share(total, home_share.numerator, home_share.denominator);
                return Err(self.refuse_with(
                    Code::UveuUsShare,
                    format!(
                        "{} would leave {holder}, headquartered in {home}, with {} of its {} in \
                         {home} ({}), under the universal VEU minimum of {}/{} ({}) by {}",
                        self.what(),
                        self.tpp(at_home),
                        self.tpp(total),
                        share(at_home),
                        home_share.numerator,
                        home_share.denominator,
                        self.tpp(required),
                        self.tpp(required - at_home)
                    ),
                    Figures {
                        before_tpp: before.in_country(home),
                        after_tpp: at_home,
                        limit_tpp: required,
                        excess_tpp: required - at_home,
                    },
                ));
            }
        }
        Ok(())
    }

    // ---- VEU grants (section 8, eligibility) ------------------------------------------------

    fn veu_grant(&self, holder: &Id, scope: Scope) -> Result<(), Refusal> {
        if self.owners.all {
            let hq_tier = self.facts.hq_tier(holder, self.date);
            let refusal = match scope {
                Scope::Universal if hq_tier != Tier::One => Some(format!(
                    "a universal VEU needs headquarters in Tier 1; {holder}'s are in Tier {} on {}",
                    hq_tier.number(),
                    self.date
                )),
                Scope::National(_) if hq_tier == Tier::Three => Some(format!(
                    "a national VEU needs headquarters in Tier 1 or 2; {holder}'s are in Tier 3 on {}",
                    self.date
                )),
                Scope::National(country) if self.facts.tier(country, self.date) == Tier::Three => {
                    Some(format!(
                        "a national VEU needs a Tier 1 or 2 country; {country} is Tier 3 on {}",
                        self.date
                    ))
                }
                _ => None,
            };
            if let Some(reason) = refusal {
                return Err(self.refuse(
                    Code::VeuNotEligible,
                    format!("{} refused: {reason}", self.what()),
                ));
            }
        }
        if scope == Scope::Universal && self.owners.entity(holder) {
            let nothing = EntityTpp::default();
            let current = self.counters.entity(holder).unwrap_or(&nothing);
            return self.uveu_ratios(holder, current, current.total, &current.by_country);
        }
        Ok(())
    }

    // ---- model weights (section 9) ----------------------------------------------------------

    fn weights(
        &self,
        host: &Id,
        country: Country,
        secured: bool,
    ) -> Result<WeightsAuthority, Refusal> {
        let hq_tier = self.facts.hq_tier(host, self.date);
        let tier = self.facts.tier(country, self.date);
        if self.owners.all && hq_tier == Tier::Three {
            return Err(self.refuse(
                Code::HqTier3,
                format!(
                    "{} would let {host}, headquartered (or parented) in a Tier 3 country, host \
                     controlled model weights",
                    self.what()
                ),
            ));
        }
        if self.owners.all && tier == Tier::Three {
            return Err(self.refuse(
                Code::WeightsTier3,
                format!(
                    "{} would host controlled model weights in {country}, a Tier 3 country on {}",
                    self.what(),
                    self.date
                ),
            ));
        }
        let authority = match tier {
            Tier::One => Some(WeightsAuthority::TierOne),
            _ if self.facts.has_universal_veu(host, self.date) => {
                Some(WeightsAuthority::UniversalVeu)
            }
            _ if self.facts.has_national_veu(host, country, self.date) => {
                Some(WeightsAuthority::NationalVeu)
            }
            _ if hq_tier == Tier::One && secured => {
                Some(WeightsAuthority::SecuredTierOneHeadquarters)
            }
            _ => None,
        };
        if let Some(Outcome::Weights(stored)) = self.stored {
            // A recheck keeps the authority the record was granted under: it must still hold.
            let still = match stored.authority {
                WeightsAuthority::TierOne => !self.owners.all || tier == Tier::One,
                WeightsAuthority::UniversalVeu => {
                    !self.owners.entity(host) || self.facts.has_universal_veu(host, self.date)
                }
                WeightsAuthority::NationalVeu => {
                    !self.owners.entity(host)
                        || self.facts.has_national_veu(host, country, self.date)
                }
                WeightsAuthority::SecuredTierOneHeadquarters => {
                    !self.owners.all || (hq_tier == Tier::One && secured)
                }
                WeightsAuthority::Uncontrolled => true,
            };
            if still {
                return Ok(stored.authority);
            }
            return Err(self.refuse(
                Code::WeightsUnauthorized,
                format!(
                    "{} was recorded under {} authority, which no longer holds for {host} in \
                     {country} on {}",
                    self.what(),
                    stored.authority.name(),
                    self.date
                ),
            ));
        }
        authority.ok_or_else(|| {
            self.refuse(
                Code::WeightsUnauthorized,
                format!(
                    "{} would host controlled model weights in {country}, a Tier 2 country, but \
                     {host} holds no universal VEU or national VEU for {country} on {}, and is \
                     not a secured host headquartered in Tier 1",
                    self.what(),
                    self.date
                ),
            )
        })
    }
}

/// `quantity × tpp`. Input bounds (quantity ≤ 10^9, TPP ≤ 10^9) keep it within 64 bits.
fn amount(quantity: u64, tpp: u64) -> u64 {
    let product = u128::from(quantity) * u128::from(tpp);
    u64::try_from(product).expect("quantity and TPP are bounded so that their product fits u64")
}

fn ceil_share(total: u64, numerator: u64, denominator: u64) -> u64 {
    let product = u128::from(total) * u128::from(numerator);
    u64::try_from(product.div_ceil(u128::from(denominator))).expect("a share of a u64 fits")
}

fn floor_share(total: u64, numerator: u64, denominator: u64) -> u64 {
    let product = u128::from(total) * u128::from(numerator);
    u64::try_from(product / u128::from(denominator)).expect("a share of a u64 fits")
}
