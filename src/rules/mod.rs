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

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::codec::{Body, Outcome, Record, Subject};
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

/// Orders records by their place in the timeline.
pub fn timeline_order(a: &Record, b: &Record) -> Ordering {
    TimelineKey::of(a).cmp(&TimelineKey::of(b))
}

/// Which recorded events an inserted record could make break: those concerning a subject whose
/// counters or facts it changes (all of them, for a tier change).
#[derive(Clone, Debug, Default)]
pub struct Affected {
    pub all: bool,
    pub entities: HashSet<Id>,
    pub countries: HashSet<Country>,
}

impl Affected {
    pub fn of(record: &Record) -> Affected {
        let mut affected = Affected::default();
        collect_affected(&record.event.body, &record.outcome, &mut affected);
        affected
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.entities.is_empty() && self.countries.is_empty()
    }

    /// Whether `record` concerns an affected subject.
    pub fn concerns(&self, record: &Record) -> bool {
        self.all
            || record.subjects().iter().any(|subject| match subject {
                Subject::Entity(entity) => self.entities.contains(entity),
                Subject::Country(country) => self.countries.contains(country),
                Subject::Veu(_) | Subject::Chip(_) | Subject::Tiers => false,
            })
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
/// `state` is the fold of the whole log. `later` lists every record of the log whose
/// [`TimelineKey`] is greater than the new record's, sorted by key (empty for an event dated on
/// or after everything recorded). The later records' counters are taken out, the new record is
/// decided against the state at its place, and the later records are put back one by one in
/// timeline order, each rechecked against the state just before it if the new record affects
/// it. If one would break, the new record is refused naming it, and `state` is restored.
///
/// `record.outcome` is ignored and replaced; the decided outcome is returned.
pub fn admit(
    state: &mut State,
    record: &mut Record,
    today: Date,
    target: Option<VoidTarget<'_>>,
    later: &[Record],
) -> Result<Outcome, Rejection> {
    // Undo the later records latest first, so that every intermediate state is a state the
    // timeline really passed through (a void is undone before its target).
    for undone in later.iter().rev() {
        state
            .counters
            .apply_event(
                undone.effective,
                &undone.event,
                &undone.outcome,
                state::Sign::Remove,
            )
            .map_err(Rejection::Inconsistent)?;
    }
    let restore_from = |state: &mut State, records: &[Record]| -> Result<(), Rejection> {
        for record in records {
            state
                .counters
                .apply_event(
                    record.effective,
                    &record.event,
                    &record.outcome,
                    state::Sign::Add,
                )
                .map_err(Rejection::Inconsistent)?;
        }
        Ok(())
    };
    let outcome = match decide(
        &state.facts,
        &state.counters,
        record.effective,
        &record.event,
        today,
        target,
    ) {
        Ok(outcome) => outcome,
        Err(refusal) => {
            restore_from(state, later)?;
            return Err(Rejection::Refused(refusal));
        }
    };
    record.outcome = outcome.clone();
    state.apply(record).map_err(Rejection::Inconsistent)?;
    let affected = Affected::of(record);
    for (index, existing) in later.iter().enumerate() {
        if affected.concerns(existing) {
            if let Err(broken) = recheck(&state.facts, &state.counters, existing) {
                state.unapply(record).map_err(Rejection::Inconsistent)?;
                restore_from(state, &later[index..])?;
                return Err(Rejection::Refused(breaking(record, existing, broken)));
            }
        }
        restore_from(state, std::slice::from_ref(existing))?;
    }
    Ok(outcome)
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

/// Why a record was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A rule refuses it.
    Refused(Refusal),
    /// The log it was checked against does not add up (only a corrupted log can cause this).
    Inconsistent(FoldError),
}
