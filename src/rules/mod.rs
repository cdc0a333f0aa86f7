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
pub mod state;

use std::cmp::Ordering;

use crate::codec::{Body, Outcome, Record};
use crate::date::Date;

pub use decide::{Owners, VoidTarget, decide, recheck};
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

/// The subjects whose counters or facts a record changes, and so whose clauses a later event
/// could now break. Empty when the record cannot make any later event break a rule.
pub fn affected(record: &Record) -> Owners {
    let mut owners = Owners::default();
    collect_affected(&record.event.body, &record.outcome, &mut owners);
    owners
}

fn collect_affected(body: &Body, outcome: &Outcome, owners: &mut Owners) {
    let counts = matches!(outcome, Outcome::Chips(chips) if chips.counts_allocation);
    match (body, outcome) {
        (Body::TierChange(_), _) => owners.all = true,
        (Body::AllocationChange(event), _) => {
            owners.countries.insert(event.country);
        }
        (Body::VeuGrant(event), _) => {
            owners.entities.insert(event.entity.clone());
        }
        (Body::VeuRevoke(_), Outcome::Revoke(revoke)) => {
            owners.entities.insert(revoke.holder.clone());
        }
        (Body::Inventory(event) | Body::Decommission(event), _) => {
            owners.entities.insert(event.entity.clone());
        }
        (Body::Shipment(event), _) => {
            owners.entities.insert(event.consignee.clone());
            if counts {
                owners.countries.insert(event.country);
            }
        }
        (Body::Transfer(event), _) => {
            owners.entities.insert(event.entity.clone());
            if let Some(receiver) = &event.to_entity {
                owners.entities.insert(receiver.clone());
            }
            if counts {
                owners.countries.insert(event.to_country);
            }
        }
        (Body::Void(_), Outcome::Void(void)) => {
            collect_affected(&void.target_event.body, &void.target_outcome, owners);
        }
        _ => {}
    }
}

/// Re-checks, in timeline order, the recorded events that follow an inserted record.
///
/// `facts` include the inserted record; `counters` are the counters just after it in the
/// timeline; `later` are the records after it that concern `owners`, sorted by
/// [`TimelineKey`]. The first event that would break refuses the insertion, naming it.
pub fn revalidate(
    inserted: &Record,
    facts: &Facts,
    mut counters: Counters,
    later: &[Record],
    owners: &Owners,
) -> Result<(), Refusal> {
    for record in later {
        if let Err(broken) = recheck(facts, &counters, record, owners) {
            return Err(Refusal {
                code: broken.code,
                event_id: inserted.event.id.clone(),
                message: format!(
                    "{} {} (effective {}) would make the recorded {} {} (effective {}) break \
                     the rule: {}",
                    inserted.event.body.type_name(),
                    inserted.event.id,
                    inserted.effective,
                    record.event.body.type_name(),
                    record.event.id,
                    record.effective,
                    broken.message
                ),
                figures: broken.figures,
                breaks: Some(record.event.id.clone()),
            });
        }
        counters
            .apply_event(record.effective, &record.event, &record.outcome, state::Sign::Add)
            .map_err(|error| Refusal {
                code: Code::InsufficientHoldings,
                event_id: inserted.event.id.clone(),
                message: format!(
                    "{} {} would leave the recorded {} {} inconsistent: {error}",
                    inserted.event.body.type_name(),
                    inserted.event.id,
                    record.event.body.type_name(),
                    record.event.id
                ),
                figures: None,
                breaks: Some(record.event.id.clone()),
            })?;
    }
    Ok(())
}
