//! The AI diffusion framework as a pure fold over exact integers.
//!
//! `rules` does no I/O and reads no clock: the ledger, `verify`, as-of queries and proof
//! verification all call the same functions with the records and the recording day as inputs.
//!
//! - [`state`]: what a set of records adds up to (facts evaluated at a date, and counters).
//! - [`decide`]: the clauses of framework.md sections 2 to 10.
//! - [`refusal`]: the stable codes and the figures of a refusal.
//! - [`builtin`]: the ruleset `ai-diffusion-2025` v1 as data.

pub mod builtin;
pub mod decide;
pub mod refusal;
pub mod snapshot;
pub mod state;
pub mod subject;

use smallvec::SmallVec;
use std::cmp::Ordering;

use crate::codec::{Body, Event, Outcome, Record, Subject};
use crate::country::Country;
use crate::date::Date;
use crate::name::Id;

pub use decide::{VoidTarget, decide, recheck};
pub use refusal::{Code, Figures, Refusal};
pub use state::{Counters, Facts, FoldError, Params, State};

/// Where a record sits in the timeline: ordered by this key, records are folded as the world
/// saw them (framework.md section 10). A record sits at its effective date, after the records
/// of that day recorded before it; a void sits right after its target, because it undoes the
/// target as if it had never happened.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct TimelineKey {
    pub date: Date,
    pub seq: u64,
    /// 1 for a void (placed after the target with the same date and seq), else 0.
    pub after: u8,
}

impl TimelineKey {
    /// The key of a record about to be written: a void's place follows from its target.
    pub fn of_new(effective: Date, seq: u64, void_target: Option<&Record>) -> TimelineKey {
        match void_target {
            Some(target) => TimelineKey {
                date: target.effective,
                seq: target.seq,
                after: 1,
            },
            None => TimelineKey {
                date: effective,
                seq,
                after: 0,
            },
        }
    }

    /// Where the records a new one may break begin. Facts are dated by day: a tier, an
    /// allocation, a VEU, an entity's headquarters, a chip model or a certification effective
    /// on day D governs every event of day D, also those recorded before it. So an event that
    /// changes facts is checked against the whole of its day; any other event only against the
    /// records after it in the timeline.
    pub fn recheck_from(self, event: &Event) -> TimelineKey {
        if self.after == 0 && changes_facts(&event.body) {
            TimelineKey {
                date: self.date,
                seq: 0,
                after: 0,
            }
        } else {
            self
        }
    }

    pub fn of(record: &Record) -> TimelineKey {
        match &record.outcome {
            Outcome::Void(void) => TimelineKey {
                date: void.target_effective,
                seq: void.target_seq,
                after: 1,
            },
            _ => TimelineKey {
                date: record.effective,
                seq: record.seq,
                after: 0,
            },
        }
    }
}

/// Whether an event changes the dated facts other events are judged by (see
/// [`TimelineKey::recheck_from`]).
pub fn changes_facts(body: &Body) -> bool {
    matches!(
        body,
        Body::TierChange(_)
            | Body::AllocationChange(_)
            | Body::VeuGrant(_)
            | Body::VeuRevoke(_)
            | Body::Entity(_)
            | Body::ChipModel(_)
            | Body::AiaCertification(_)
    )
}

/// Orders records by their place in the timeline.
pub fn timeline_order(a: &Record, b: &Record) -> Ordering {
    TimelineKey::of(a).cmp(&TimelineKey::of(b))
}

/// A set of subjects: whose counters a record reads or changes, or whose clauses a recheck
/// evaluates. `all` stands for every subject (a tier change reaches every rule).
#[derive(Clone, Debug, Default)]
pub struct Affected {
    pub all: bool,
    pub entities: Few<Id>,
    pub countries: Few<Country>,
}

/// A set of the few subjects of one event: it reads or changes at most two entities and one
/// country. Kept inline, in the order inserted. These sets are made for every decided event;
/// as hash sets each one allocated a table and drew a random seed, which with the hashing was
/// about a tenth of `verify`'s replaying thread (tools/bench/PROFILE.md, goal 3).
#[derive(Clone, Debug)]
pub struct Few<T>(SmallVec<[T; 2]>);

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few(SmallVec::new())
    }
}

impl<T: PartialEq> Few<T> {
    pub fn insert(&mut self, item: T) {
        if !self.0.contains(&item) {
            self.0.push(item);
        }
    }

    pub fn contains(&self, item: &T) -> bool {
        self.0.contains(item)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Affected {
    pub fn everything() -> Affected {
        Affected {
            all: true,
            ..Affected::default()
        }
    }

    /// The subjects whose counters or facts a decided record changes: the recorded events that
    /// could now break are those concerning them.
    pub fn of(record: &Record) -> Affected {
        let mut affected = Affected::default();
        collect_affected(&record.event.body, &record.outcome, &mut affected);
        affected
    }

    pub fn entity(&self, entity: &Id) -> bool {
        self.all || self.entities.contains(entity)
    }

    pub fn country(&self, country: Country) -> bool {
        self.all || self.countries.contains(&country)
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.entities.is_empty() && self.countries.is_empty()
    }

    /// Whether `record`, whose subjects are `subjects`, concerns one of these subjects: names
    /// an entity of the set, or names a country of the set and touches its allocation.
    pub fn concerns(&self, record: &Record, subjects: &[Subject]) -> bool {
        self.all
            || subjects.iter().any(|subject| match subject {
                Subject::Entity(entity) => self.entities.contains(entity),
                Subject::Country(country) => {
                    self.countries.contains(country) && touches_allocation(record)
                }
                Subject::Veu(_) | Subject::Chip(_) | Subject::Tiers => false,
            })
    }
}

/// The subjects whose counters deciding a new event reads, and whose clauses it may break:
/// the receiving and sending entities and the destination of a movement, a void's target's
/// affected subjects, a grant's or revoke's holder; every subject for a tier change. Callers
/// gather the later records concerning them ([`Affected::rewinds`]) before [`admit`].
///
/// Not every subject a record names: an exporter's counters are never read, and the only
/// country counter any clause reads is its allocation use.
pub fn reads(event: &Event, target: Option<&Record>, facts: &Facts) -> Affected {
    let mut reads = Affected::default();
    match (&event.body, target) {
        (Body::TierChange(_), _) => return Affected::everything(),
        (Body::Void(_), Some(target)) => return Affected::of(target),
        (Body::VeuRevoke(revoke), _) => {
            if let Some(fact) = facts.veus.get(&revoke.veu) {
                reads.entities.insert(fact.holder.clone());
            }
        }
        (Body::VeuGrant(grant), _) => {
            reads.entities.insert(grant.entity.clone());
        }
        (Body::Inventory(holding) | Body::Decommission(holding), _) => {
            reads.entities.insert(holding.entity.clone());
        }
        (Body::Shipment(shipment), _) => {
            reads.entities.insert(shipment.consignee.clone());
            reads.countries.insert(shipment.country);
        }
        (Body::Transfer(transfer), _) => {
            reads.entities.insert(transfer.entity.clone());
            if let Some(receiver) = &transfer.to_entity {
                reads.entities.insert(receiver.clone());
            }
            reads.countries.insert(transfer.to_country);
        }
        (Body::AllocationChange(change), _) => {
            reads.countries.insert(change.country);
        }
        _ => {}
    }
    reads
}

/// Whether `record` can change or check a country's allocation use: only these records need
/// rewinding and rechecking for a country (FORMAT.md; the allocation is the one country-owned
/// clause).
pub fn touches_allocation(record: &Record) -> bool {
    match (&record.event.body, &record.outcome) {
        (Body::AllocationChange(_), _) => true,
        (_, Outcome::Chips(chips)) => chips.counts_allocation,
        (_, Outcome::Void(void)) => {
            matches!(&*void.target_outcome, Outcome::Chips(chips) if chips.counts_allocation)
        }
        _ => false,
    }
}

fn collect_affected(body: &Body, outcome: &Outcome, affected: &mut Affected) {
    let counts = matches!(outcome, Outcome::Chips(chips) if chips.counts_allocation);
    match (body, outcome) {
        (Body::TierChange(_), _) => affected.all = true,
        (Body::AllocationChange(event), _) => {
            affected.countries.insert(event.country);
        }
        (Body::VeuGrant(event), _) => {
            affected.entities.insert(event.entity.clone());
        }
        (Body::VeuRevoke(_), Outcome::Revoke(revoke)) => {
            affected.entities.insert(revoke.holder.clone());
        }
        (Body::Inventory(event) | Body::Decommission(event), _) => {
            affected.entities.insert(event.entity.clone());
        }
        (Body::Shipment(event), _) => {
            affected.entities.insert(event.consignee.clone());
            if counts {
                affected.countries.insert(event.country);
            }
        }
        (Body::Transfer(event), _) => {
            affected.entities.insert(event.entity.clone());
            if let Some(receiver) = &event.to_entity {
                affected.entities.insert(receiver.clone());
            }
            if counts {
                affected.countries.insert(event.to_country);
            }
        }
        (Body::Void(_), Outcome::Void(void)) => {
            collect_affected(&void.target_event.body, &void.target_outcome, affected);
        }
        _ => {}
    }
}

/// Decides a new record at its place in the timeline and folds it into `state`.
///
/// `state` is the fold of the whole log. `later` lists the records of the log that sit after
/// the new record's [`TimelineKey::recheck_from`] in the timeline and concern a subject of
/// `reads` (all such records when `reads.all`), sorted by key: for an event that changes facts
/// this includes the records of its own day recorded before it. It is empty for an event
/// dated after everything recorded (or on the last day, for one that changes no facts), the
/// common case, which is decided against `state` directly.
///
/// Otherwise the counters of `reads` are copied and the later records taken out of the copy
/// (latest first). The record is decided where it sits (the copy with the records before its
/// own key put back), then every later record is put back in timeline order, the new record
/// at its place among them, each one concerning a subject the record affects rechecked first,
/// with only that subject's clauses. The first that would break refuses the record, naming
/// it. Only when all hold is the record folded into `state`: since the fold is commutative,
/// adding it to the whole log's state is the same as inserting it in the middle.
///
/// `record.outcome` is ignored and replaced; the decided outcome is returned.
pub fn admit(
    state: &mut State,
    record: &mut Record,
    today: Date,
    target: Option<VoidTarget<'_>>,
    later: &[Later],
    reads: &Affected,
) -> Result<Outcome, Rejection> {
    if later.is_empty() {
        let outcome = decide(
            &state.facts,
            &state.counters,
            record.effective,
            &record.event,
            today,
            target,
        )
        .map_err(Rejection::Refused)?;
        record.outcome = outcome.clone();
        state.apply(record).map_err(Rejection::Inconsistent)?;
        return Ok(outcome);
    }
    let mut counters = if reads.all {
        let mut copy = state.counters.clone();
        copy.lenient = true;
        copy
    } else {
        state
            .counters
            .extract(&reads.entities, reads.countries.iter().copied())
    };
    // The records before the new one's own key (its day's, for an event that changes facts)
    // are taken out only once it is decided: it is decided where it sits.
    let key = TimelineKey::of_new(
        record.effective,
        record.seq,
        target.as_ref().map(|t| t.record),
    );
    let same_day = later.partition_point(|undone| TimelineKey::of(&undone.record) < key);
    let unwind = |counters: &mut Counters, records: &[Later]| {
        records.iter().rev().try_for_each(|undone| {
            let undone = &undone.record;
            counters.apply_event(
                undone.effective,
                &undone.event,
                &undone.outcome,
                state::Sign::Remove,
            )
        })
    };
    unwind(&mut counters, &later[same_day..]).map_err(Rejection::Inconsistent)?;
    let outcome = decide(
        &state.facts,
        &counters,
        record.effective,
        &record.event,
        today,
        target,
    )
    .map_err(Rejection::Refused)?;
    unwind(&mut counters, &later[..same_day]).map_err(Rejection::Inconsistent)?;
    record.outcome = outcome.clone();
    // The rechecks read the facts the new record brings (a revoke, a tier change).
    state
        .facts
        .apply(record, state::Sign::Add)
        .map_err(Rejection::Inconsistent)?;
    let checked = recheck_later(&state.facts, &mut counters, record, later);
    if let Err(rejection) = checked {
        state
            .facts
            .apply(record, state::Sign::Remove)
            .map_err(Rejection::Inconsistent)?;
        return Err(rejection);
    }
    state
        .counters
        .apply_event(
            record.effective,
            &record.event,
            &record.outcome,
            state::Sign::Add,
        )
        .map_err(Rejection::Inconsistent)?;
    Ok(outcome)
}

/// Puts the later records back into `counters` in timeline order, the new record at its place
/// among them, rechecking those that concern a subject it affects.
fn recheck_later(
    facts: &Facts,
    counters: &mut Counters,
    record: &Record,
    later: &[Later],
) -> Result<(), Rejection> {
    let key = TimelineKey::of(record);
    let mut placed = false;
    let affected = Affected::of(record);
    for Later {
        record: existing,
        subjects,
    } in later
    {
        if !placed && TimelineKey::of(existing) > key {
            counters
                .apply_event(
                    record.effective,
                    &record.event,
                    &record.outcome,
                    state::Sign::Add,
                )
                .map_err(Rejection::Inconsistent)?;
            placed = true;
        }
        if affected.concerns(existing, subjects) {
            if let Err(broken) = recheck(facts, counters, existing, &affected) {
                return Err(Rejection::Refused(breaking(record, existing, broken)));
            }
        }
        counters
            .apply_event(
                existing.effective,
                &existing.event,
                &existing.outcome,
                state::Sign::Add,
            )
            .map_err(Rejection::Inconsistent)?;
    }
    if !placed {
        counters
            .apply_event(
                record.effective,
                &record.event,
                &record.outcome,
                state::Sign::Add,
            )
            .map_err(Rejection::Inconsistent)?;
    }
    Ok(())
}

fn breaking(inserted: &Record, existing: &Record, broken: Refusal) -> Refusal {
    Refusal {
        code: broken.code,
        event_id: inserted.event.id.clone(),
        message: format!(
            "{} {} would make the recorded {} {} (effective {}) break: {}",
            inserted.event.body.type_name(),
            inserted.event.id,
            existing.event.body.type_name(),
            existing.event.id,
            existing.effective,
            broken.message
        ),
        figures: broken.figures,
        breaks: Some(existing.event.id.clone()),
    }
}

/// A record after the one being admitted, with its subjects (computed once per admission).
#[derive(Clone, Debug)]
pub struct Later {
    pub record: std::sync::Arc<Record>,
    pub subjects: std::sync::Arc<[Subject]>,
}

/// Why a record was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A rule refuses it.
    Refused(Refusal),
    /// The log it was checked against does not add up (only a corrupted log can cause this).
    Inconsistent(FoldError),
}
