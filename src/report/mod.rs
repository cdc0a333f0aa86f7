//! `report`: one self-contained HTML page about a ledger, for people who will not run the CLI.
//!
//! [`collect`] gathers the figures with the library's own machinery (the full audit, the state
//! view as of a date, `Reader::state_at` at sampled dates); [`html::render`] turns them into a
//! page whose charts are inline SVG, so the file opens anywhere with no network. Nothing here
//! recomputes a rule: every figure comes from the views the `state` command prints.

pub mod html;
pub mod svg;

use std::path::Path;

use crate::audit::{self, Audit};
use crate::codec::Outcome;
use crate::date::{Date, Instant};
use crate::error::Error;
use crate::ledger::{Paths, Reader};
use crate::view::{self, Filter, Holdings, StateView};

/// The most points the tier chart samples; a long history is sampled every few months instead
/// of monthly, so that the chart (and the number of as-of replays) stays bounded.
pub const MAX_TIMELINE_POINTS: usize = 60;

/// Installed controlled TPP by the tier its country had on one date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelinePoint {
    pub date: Date,
    /// Index 0 is Tier 1, 1 is Tier 2, 2 is Tier 3.
    pub by_tier_tpp: [u64; 3],
}

/// What the full audit said.
#[derive(Clone, Debug)]
pub enum AuditOutcome {
    Verified(Audit),
    /// The message of the first problem found.
    Failed(String),
}

/// The last checkpoint the ledger signed, and whether it still matches the log.
#[derive(Clone, Debug)]
pub struct CheckpointSummary {
    pub size: Option<u64>,
    pub root: Option<String>,
    /// Why the checkpoint does not hold (bad signature, another root at its size), if it does not.
    pub problem: Option<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug)]
pub struct Report {
    pub origin: String,
    pub ruleset: String,
    pub generated_at: Instant,
    pub state: StateView,
    pub lpp_limit_tpp: u64,
    pub timeline: Vec<TimelinePoint>,
    pub audit: AuditOutcome,
    pub checkpoint: Option<CheckpointSummary>,
}

impl Report {
    pub fn verified(&self) -> bool {
        matches!(self.audit, AuditOutcome::Verified(_))
    }
}

/// Runs the full audit of the ledger in `dir`, then reads its state as of `as_of` (as known
/// with every record) and samples the installed TPP by tier up to that date.
///
/// A failed audit does not stop the report: the page says so. A ledger that cannot be opened
/// does (the error is returned).
pub fn collect(
    dir: &Path,
    as_of: Date,
    generated_at: Instant,
    progress: impl FnMut(u64, u64),
) -> Result<Report, Error> {
    // The audit opens the store itself; it must be closed again before the reader opens it.
    let audit = match audit::verify_store(&Paths::new(dir).store(), None, progress) {
        Ok(audit) => AuditOutcome::Verified(audit),
        Err(Error::Verification(message)) => AuditOutcome::Failed(message),
        Err(other) => return Err(other),
    };
    match figures(dir, as_of, generated_at, audit.clone()) {
        Ok(report) => Ok(report),
        // A damaged ledger may be unreadable past the audit's finding: that finding is the news.
        Err(error) => match audit {
            AuditOutcome::Failed(message) => Err(Error::Verification(format!(
                "{message} (and no report could be built: {error})"
            ))),
            AuditOutcome::Verified(_) => Err(error),
        },
    }
}

fn figures(
    dir: &Path,
    as_of: Date,
    generated_at: Instant,
    audit: AuditOutcome,
) -> Result<Report, Error> {
    let reader = Reader::open(dir)?;
    let size = reader.size();
    let state = reader.state_at(as_of, size)?;
    let root = reader.root_at(size)?;
    // The report's tables show each entity's TPP by country, not its chips by model.
    let filter = Filter {
        holdings: Holdings::Omitted,
        ..Filter::default()
    };
    let state_view = view::state_view(&state, as_of, size, root, &filter);
    drop(state);
    let timeline = timeline(&reader, as_of, size)?;
    let checkpoint = checkpoint_summary(&reader)?;
    let ruleset = &reader.params().ruleset;
    Ok(Report {
        origin: reader.origin().to_string(),
        ruleset: format!("{} v{}", ruleset.name, ruleset.version),
        generated_at,
        state: state_view,
        lpp_limit_tpp: ruleset.lpp_limit_tpp,
        timeline,
        audit,
        checkpoint,
    })
}

/// Installed controlled TPP by tier, sampled at month ends from the month of the first
/// controlled chip record to `as_of` (the last point is `as_of` itself), plus the day before
/// the first record, where everything is zero. Each point is `Reader::state_at`, so late
/// records, voids and tier changes count exactly as `state --as-of` counts them.
pub fn timeline(reader: &Reader, as_of: Date, size: u64) -> Result<Vec<TimelinePoint>, Error> {
    let mut first: Option<Date> = None;
    reader.for_each(0, size, |_, record| {
        if let Outcome::Chips(chips) = &record.outcome {
            if chips.controlled && first.is_none_or(|date| record.effective < date) {
                first = Some(record.effective);
            }
        }
        Ok(())
    })?;
    let Some(first) = first.filter(|first| *first <= as_of) else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    for date in sample_dates(first, as_of) {
        let state = reader.state_at(date, size)?;
        let mut by_tier_tpp = [0u64; 3];
        for country in state.counters.countries.keys() {
            let figures = view::country_view(&state, *country, date);
            let slot = usize::from(figures.tier.clamp(1, 3) - 1);
            by_tier_tpp[slot] = by_tier_tpp[slot].saturating_add(figures.installed_tpp);
        }
        points.push(TimelinePoint { date, by_tier_tpp });
    }
    Ok(points)
}

/// A `Date` as a `jiff` civil date, through the text form both share (`YYYY-MM-DD`), which
/// spares `Date` an accessor for its month.
fn civil(date: Date) -> jiff::civil::Date {
    date.to_string()
        .parse()
        .expect("a Date's text is a civil date")
}

fn from_civil(date: jiff::civil::Date) -> Option<Date> {
    Date::new(
        u16::try_from(date.year()).ok()?,
        date.month() as u8,
        date.day() as u8,
    )
    .ok()
}

/// The day before `first`, then month ends (every `step` months so that there are at most
/// [`MAX_TIMELINE_POINTS`]) up to `last`, which is always the final date.
pub fn sample_dates(first: Date, last: Date) -> Vec<Date> {
    let mut dates: Vec<Date> = first.previous_day().into_iter().collect();
    if last < first {
        return dates;
    }
    let (start, end) = (civil(first), civil(last));
    let months = (i64::from(end.year()) - i64::from(start.year())) * 12
        + i64::from(end.month() - start.month())
        + 1;
    let budget = (MAX_TIMELINE_POINTS - 2) as i64;
    let step = ((months + budget - 1) / budget).max(1);
    let mut month = start.first_of_month();
    // The loop adds one month end per pass and stops at `last`; `months` bounds it.
    for _ in 0..=months {
        let month_end = month.last_of_month();
        if month_end >= end {
            break;
        }
        if let Some(date) = from_civil(month_end) {
            dates.push(date);
        }
        match month.checked_add(jiff::Span::new().months(step)) {
            Ok(next) => month = next,
            Err(_) => break,
        }
    }
    dates.push(last);
    dates
}

fn checkpoint_summary(reader: &Reader) -> Result<Option<CheckpointSummary>, Error> {
    let Some(note) = reader.last_checkpoint()? else {
        return Ok(None);
    };
    let vkey = match reader.verifier_key() {
        Ok(vkey) => vkey,
        Err(error) => {
            return Ok(Some(CheckpointSummary {
                size: None,
                root: None,
                problem: Some(format!("the verifier key cannot be read: {error}")),
            }));
        }
    };
    let summary = match crate::proof::checkpoint::verify(&note, &vkey) {
        Ok(checkpoint) => {
            let problem = if checkpoint.size > reader.size() {
                Some(format!(
                    "it covers {} records but the log has {}",
                    checkpoint.size,
                    reader.size()
                ))
            } else if reader.root_at(checkpoint.size)? != checkpoint.root {
                Some(format!(
                    "the first {} records no longer have its root",
                    checkpoint.size
                ))
            } else {
                None
            };
            CheckpointSummary {
                size: Some(checkpoint.size),
                root: Some(view::base64(&checkpoint.root)),
                problem,
            }
        }
        Err(error) => CheckpointSummary {
            size: None,
            root: None,
            problem: Some(error.to_string()),
        },
    };
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    #[test]
    fn samples_month_ends_and_ends_on_the_date() {
        let dates = sample_dates(date("2025-01-13"), date("2025-04-10"));
        let text: Vec<String> = dates.iter().map(Date::to_string).collect();
        assert_eq!(
            text,
            [
                "2025-01-12",
                "2025-01-31",
                "2025-02-28",
                "2025-03-31",
                "2025-04-10"
            ]
        );
    }

    #[test]
    fn a_month_end_date_is_not_repeated() {
        let dates = sample_dates(date("2025-01-13"), date("2025-02-28"));
        let text: Vec<String> = dates.iter().map(Date::to_string).collect();
        assert_eq!(text, ["2025-01-12", "2025-01-31", "2025-02-28"]);
    }

    #[test]
    fn a_long_history_is_sampled_within_the_budget() {
        let dates = sample_dates(date("1990-01-01"), date("2027-12-31"));
        assert!(dates.len() <= MAX_TIMELINE_POINTS, "{} points", dates.len());
        assert!(dates.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(*dates.last().unwrap(), date("2027-12-31"));
        assert_eq!(dates[0], date("1989-12-31"));
    }

    #[test]
    fn a_single_day() {
        let dates = sample_dates(date("2025-03-01"), date("2025-03-01"));
        let text: Vec<String> = dates.iter().map(Date::to_string).collect();
        assert_eq!(text, ["2025-02-28", "2025-03-01"]);
    }
}
