//! Time (framework.md section 10): late records and voids are accepted only if every later
//! event still holds; as-of and known-at answers; the snapshot path equals a full replay.

mod common;

use chipledger::codec::{Basis, Outcome, Record};
use chipledger::date::{Date, Instant};
use chipledger::input::parse_event;
use chipledger::ledger::{Admitted, Ledger, Reader};
use chipledger::rules::{State, TimelineKey, snapshot};
use common::{BASE, TestLedger};
use proptest::prelude::*;

const HOLDINGS: &str = r#"{"type":"inventory","id":"I-1","effective":"2025-01-20","entity":"acme","chip":"H100","quantity":100,"country":"US"}
{"type":"transfer","id":"T-1","effective":"2025-06-01","entity":"acme","from_country":"US","to_country":"FR","chip":"H100","quantity":80}
"#;

fn holding(state: &serde_json::Value, entity: &str, country: &str, chip: &str) -> u64 {
    state["entities"][entity]["holdings"][country][chip]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn an_accepted_late_record_changes_an_earlier_as_of_answer_and_known_at_keeps_the_old_one() {
    // A ledger created in 2025, so that recording times are real points in 2025.
    let ledger = TestLedger::created_at("2025-01-13T00:00:00Z");
    let july = [("CHIPLEDGER_NOW", "2025-07-01T00:00:00Z")];
    ledger
        .run_env(&["append", "-"], Some(BASE), &july)
        .expect(0);
    ledger
        .run_env(&["append", "-"], Some(HOLDINGS), &july)
        .expect(0);
    let (size_before, _) = ledger.size_and_root();
    let as_of = ["--as-of", "2025-04-01", "--entity", "acme"];
    assert_eq!(holding(&ledger.state(&as_of), "acme", "US", "A100"), 0);

    // Recorded in August, effective in March: a baseline nobody had declared.
    let late = r#"{"type":"inventory","id":"I-late","effective":"2025-03-01","entity":"acme","chip":"A100","quantity":40,"country":"US"}"#;
    let run = ledger
        .run_env(
            &["append", "-"],
            Some(late),
            &[("CHIPLEDGER_NOW", "2025-08-01T00:00:00Z")],
        )
        .expect(0);
    assert!(
        run.stdout.contains("recorded inventory I-late"),
        "{}",
        run.stdout
    );

    // The answer about April changed...
    assert_eq!(holding(&ledger.state(&as_of), "acme", "US", "A100"), 40);
    assert_eq!(holding(&ledger.state(&as_of), "acme", "US", "H100"), 100);
    // ... but what the ledger said before the late record is still available, by size and by time.
    let known = size_before.to_string();
    let mut by_size = as_of.to_vec();
    by_size.extend(["--known-at", &known]);
    assert_eq!(holding(&ledger.state(&by_size), "acme", "US", "A100"), 0);
    let mut by_time = as_of.to_vec();
    by_time.extend(["--known-at", "2025-07-15"]);
    let old = ledger.state(&by_time);
    assert_eq!(holding(&old, "acme", "US", "A100"), 0);
    assert_eq!(old["size"].as_u64(), Some(size_before));
    let now = ledger.state(&as_of);
    assert_eq!(now["size"].as_u64(), Some(size_before + 1));
    assert_ne!(old["root"], now["root"]);
    // As of a date before the late record's, nothing changed.
    let early = ledger.state(&["--as-of", "2025-02-28", "--entity", "acme"]);
    assert_eq!(holding(&early, "acme", "US", "A100"), 0);
    ledger.run(&["verify"], None).expect(0);
}

/// Appends `setup`, then expects `event` to be refused with `code`, naming `breaks`.
fn refused_because_it_breaks(setup: &str, event: &str, code: &str, breaks: &str) {
    let ledger = TestLedger::with(&format!("{BASE}{setup}"));
    let before = ledger.size_and_root();
    let run = ledger
        .run(&["--format", "json", "append", "-"], Some(event))
        .expect(1);
    let value = run.json();
    assert_eq!(value["code"], code, "{value}");
    assert_eq!(value["breaks"], breaks, "{value}");
    let message = value["message"].as_str().unwrap();
    assert!(
        message.contains("would make the recorded") && message.contains(breaks),
        "{message}"
    );
    assert_eq!(ledger.size_and_root(), before);
    ledger.run(&["verify"], None).expect(0);
}

#[test]
fn a_late_record_that_would_break_a_later_event_is_refused_naming_it() {
    refused_because_it_breaks(
        HOLDINGS,
        r#"{"type":"decommission","id":"D-late","effective":"2025-03-01","entity":"acme","chip":"H100","quantity":50,"country":"US"}"#,
        "INSUFFICIENT_HOLDINGS",
        "T-1",
    );
    // A licence backdated into MY's allocation pushes a later licence over the cap.
    refused_because_it_breaks(
        r#"{"type":"shipment","id":"S-a","effective":"2025-05-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":30000}
{"type":"shipment","id":"S-b","effective":"2025-09-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":19000}
"#,
        r#"{"type":"shipment","id":"S-late","effective":"2025-03-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":2000,"basis":"license"}"#,
        "COUNTRY_ALLOCATION_EXCEEDED",
        "S-b",
    );
    // The same, with the later licence to another consignee: only MY's allocation links the
    // two, and the appending process has just opened the ledger (its window holds none of them).
    refused_because_it_breaks(
        r#"{"type":"shipment","id":"S-a","effective":"2025-05-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":30000}
{"type":"shipment","id":"S-b","effective":"2025-09-01","exporter":"nvidia","consignee":"in-dc","country":"MY","chip":"H100","quantity":19000}
"#,
        r#"{"type":"shipment","id":"S-late","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"MY","chip":"H100","quantity":2000,"basis":"license"}"#,
        "COUNTRY_ALLOCATION_EXCEEDED",
        "S-b",
    );
    // A revoke backdated before a shipment made under the VEU.
    refused_because_it_breaks(
        r#"{"type":"inventory","id":"I-us","effective":"2025-01-20","entity":"acme","chip":"H100","quantity":100000,"country":"US"}
{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"acme","scope":"universal"}
{"type":"shipment","id":"S-u","effective":"2025-06-01","exporter":"nvidia","consignee":"acme","country":"MY","chip":"H100","quantity":2000}
"#,
        r#"{"type":"veu_revoke","id":"R-late","effective":"2025-04-01","veu":"V-1"}"#,
        "BASIS_NOT_APPLICABLE",
        "S-u",
    );
    // A tier change backdated under a shipment.
    refused_because_it_breaks(
        r#"{"type":"shipment","id":"S-in","effective":"2025-06-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":100}
"#,
        r#"{"type":"tier_change","id":"TC-late","effective":"2025-05-01","country":"IN","tier":3}"#,
        "TIER3_DESTINATION",
        "S-in",
    );
    // Facts govern their whole day: a tier change on the day of a shipment recorded before it.
    refused_because_it_breaks(
        r#"{"type":"shipment","id":"S-in","effective":"2025-06-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":100}
"#,
        r#"{"type":"tier_change","id":"TC-same-day","effective":"2025-06-01","country":"IN","tier":3}"#,
        "TIER3_DESTINATION",
        "S-in",
    );
}

#[test]
fn a_void_that_would_break_a_later_event_is_refused_naming_it() {
    refused_because_it_breaks(
        HOLDINGS,
        r#"{"type":"void","id":"X-1","effective":"2025-07-01","target":"I-1","reason":"baseline was wrong"}"#,
        "INSUFFICIENT_HOLDINGS",
        "T-1",
    );
}

#[test]
fn a_late_transfer_within_one_holding_folds_without_a_negative_balance() {
    // Found by the 10,000-case reference run: 183 H20 arrive, 1 leaves later; a late transfer of
    // all 183 from MY to MY by the same holder nets to nothing, and folding it into today's
    // state (182 held) must not pass through -1.
    let ledger = TestLedger::with(&format!(
        r#"{BASE}{{"type":"shipment","id":"S-h20","effective":"2025-01-13","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H20","quantity":183}}
{{"type":"transfer","id":"T-out","effective":"2025-10-31","entity":"my-dc","from_country":"MY","to_country":"JP","chip":"H20","quantity":1}}
"#
    ));
    ledger
        .run(
            &["append", "-"],
            Some(r#"{"type":"transfer","id":"T-same","effective":"2025-01-13","entity":"my-dc","from_country":"MY","to_country":"MY","to_entity":"my-dc","chip":"H20","quantity":183}"#),
        )
        .expect(0);
    ledger.run(&["verify"], None).expect(0);
    let state = ledger
        .run(&["--format", "json", "state"], None)
        .expect(0)
        .json();
    assert_eq!(holding(&state, "my-dc", "MY", "H20"), 182);
}

#[test]
fn a_void_removes_its_target_from_every_as_of_answer_but_not_from_what_was_known() {
    let ledger = TestLedger::with(&format!("{BASE}{HOLDINGS}"));
    let (size_before, _) = ledger.size_and_root();
    ledger
        .run(&["append", "-"], Some(r#"{"type":"void","id":"X-1","effective":"2025-07-01","target":"T-1","reason":"never happened"}"#))
        .expect(0);
    let after = ledger.state(&["--as-of", "2025-06-15", "--entity", "acme"]);
    assert_eq!(holding(&after, "acme", "US", "H100"), 100);
    assert_eq!(holding(&after, "acme", "FR", "H100"), 0);
    let known = size_before.to_string();
    let before = ledger.state(&[
        "--as-of",
        "2025-06-15",
        "--entity",
        "acme",
        "--known-at",
        &known,
    ]);
    assert_eq!(holding(&before, "acme", "US", "H100"), 20);
    assert_eq!(holding(&before, "acme", "FR", "H100"), 80);
    ledger.run(&["verify"], None).expect(0);
}

#[test]
fn verify_reports_a_stored_outcome_that_a_replay_contradicts() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("ledger");
    let now = Instant::parse(common::NOW).unwrap();
    let (mut ledger, _) = Ledger::create(&dir, Some("test.example/forged"), now).unwrap();
    for line in BASE.lines() {
        ledger
            .submit(&parse_event(line).unwrap(), now)
            .unwrap()
            .unwrap();
    }
    // 1,000 H100 to IN fit the LPP; the forged record claims a licence and a different amount.
    let shipment = parse_event(
        r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":1000}"#,
    )
    .unwrap();
    let forged = Outcome::Chips(chipledger::codec::ChipsOutcome {
        unit_tpp: 15_831,
        amount_tpp: 15_831_000,
        controlled: true,
        basis: Basis::License,
        counts_allocation: true,
    });
    let record = ledger
        .stage_unchecked(shipment.effective, shipment.event.clone(), forged, now)
        .unwrap();
    let seq = record.seq;
    ledger
        .submit(&parse_event(r#"{"type":"aia_certification","id":"C-1","effective":"2025-04-01","entity":"acme"}"#).unwrap(), now)
        .unwrap()
        .unwrap();
    ledger.commit().unwrap();
    drop(ledger);
    let run = common::run_in(Some(&dir), &["verify"], None, &[]).expect(1);
    assert!(
        run.stderr.contains(&format!("record {seq}:")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("stored outcome differs"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("stored basis license") && run.stderr.contains("replayed basis lpp"),
        "{}",
        run.stderr
    );
}

// ---- the snapshot and as-of path equals a full replay ------------------------------------

/// A world small enough that random events often interact.
const WORLD: &str = r#"{"type":"entity","id":"E-1","effective":"2025-01-13","entity":"us-a","name":"US A","hq":"US"}
{"type":"entity","id":"E-2","effective":"2025-01-13","entity":"fr-b","name":"FR B","hq":"FR"}
{"type":"entity","id":"E-3","effective":"2025-01-13","entity":"my-c","name":"MY C","hq":"MY"}
{"type":"entity","id":"E-4","effective":"2025-01-13","entity":"in-d","name":"IN D","hq":"IN","parent":"fr-b"}
{"type":"entity","id":"E-5","effective":"2025-01-13","entity":"ae-e","name":"AE E","hq":"AE"}
{"type":"chip_model","id":"M-1","effective":"2025-01-13","chip":"X1","tpp":1000000,"controlled":true}
{"type":"inventory","id":"I-0","effective":"2025-01-13","entity":"us-a","chip":"X1","quantity":5000,"country":"US"}
"#;

const ENTITIES: [&str; 5] = ["us-a", "fr-b", "my-c", "in-d", "ae-e"];
const COUNTRIES: [&str; 6] = ["US", "FR", "MY", "IN", "AE", "JP"];
const CHIPS: [&str; 3] = ["X1", "H100", "H20"];

#[derive(Clone, Debug)]
enum Step {
    Event {
        kind: u8,
        a: usize,
        b: usize,
        c: usize,
        quantity: u64,
        day: u32,
    },
    Commit,
}

fn date_of(day: u32) -> String {
    let start = Date::parse("2025-01-13").unwrap();
    let mut date = start;
    for _ in 0..day {
        date = date.next_day().unwrap();
    }
    date.to_string()
}

fn event_json(
    index: usize,
    kind: u8,
    a: usize,
    b: usize,
    c: usize,
    quantity: u64,
    day: u32,
) -> String {
    let date = date_of(day);
    let (entity, other) = (ENTITIES[a % 5], ENTITIES[b % 5]);
    let (country, country2) = (COUNTRIES[b % 6], COUNTRIES[c % 6]);
    let chip = CHIPS[c % 3];
    match kind % 12 {
        0..=2 => format!(
            r#"{{"type":"shipment","id":"S-{index}","effective":"{date}","exporter":"us-a","consignee":"{entity}","country":"{country}","chip":"{chip}","quantity":{quantity}}}"#
        ),
        3 => format!(
            r#"{{"type":"inventory","id":"I-{index}","effective":"{date}","entity":"{entity}","chip":"{chip}","quantity":{quantity},"country":"{country}"}}"#
        ),
        4 | 5 => format!(
            r#"{{"type":"transfer","id":"T-{index}","effective":"{date}","entity":"{entity}","from_country":"{country}","to_country":"{country2}","to_entity":"{other}","chip":"{chip}","quantity":{}}}"#,
            quantity / 2 + 1
        ),
        6 => format!(
            r#"{{"type":"decommission","id":"D-{index}","effective":"{date}","entity":"{entity}","chip":"{chip}","quantity":{},"country":"{country}"}}"#,
            quantity / 3 + 1
        ),
        7 => format!(
            r#"{{"type":"void","id":"X-{index}","effective":"{date}","target":"S-{}","reason":"correction"}}"#,
            index.saturating_sub(1 + c % 6)
        ),
        8 => format!(
            r#"{{"type":"veu_grant","id":"G-{index}","effective":"{date}","veu":"V-{index}","entity":"{entity}","scope":"national","country":"{country}"}}"#
        ),
        9 => format!(
            r#"{{"type":"allocation_change","id":"A-{index}","effective":"{date}","country":"{country}","allocation_tpp":{}}}"#,
            quantity * 5_000_000
        ),
        10 => format!(
            r#"{{"type":"veu_revoke","id":"R-{index}","effective":"{date}","veu":"V-{}"}}"#,
            index.saturating_sub(1 + c % 5)
        ),
        _ => format!(
            r#"{{"type":"tier_change","id":"TC-{index}","effective":"{date}","country":"{country}","tier":{}}}"#,
            1 + c % 3
        ),
    }
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let event = (
        any::<u8>(),
        0usize..5,
        0usize..6,
        0usize..6,
        1u64..400,
        0u32..1080,
    )
        .prop_map(|(kind, a, b, c, quantity, day)| Step::Event {
            kind,
            a,
            b,
            c,
            quantity,
            day,
        });
    let step = prop_oneof![8 => event, 1 => Just(Step::Commit)];
    proptest::collection::vec(step, 10..60)
}

/// The reference: every record with seq < size and timeline date ≤ date, folded in timeline
/// order from the genesis state, without snapshots, indexes or late lists.
fn full_replay(reader: &Reader, date: Date, size: u64) -> State {
    let mut records: Vec<Record> = Vec::new();
    reader
        .for_each(0, size, |_, record| {
            records.push(record.clone());
            Ok(())
        })
        .unwrap();
    let mut state = State::from_genesis(&records[0]).unwrap();
    let mut chosen: Vec<&Record> = records[1..]
        .iter()
        .filter(|record| TimelineKey::of(record).date <= date)
        .collect();
    chosen.sort_by_key(|record| TimelineKey::of(record));
    for record in chosen {
        state.apply(record).unwrap();
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::proptest_cases(200), ..ProptestConfig::default() })]

    #[test]
    fn the_snapshot_path_equals_a_full_replay(steps in steps(), probes in proptest::collection::vec((0u32..1200, any::<prop::sample::Index>()), 12)) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("ledger");
        let now = Instant::parse("2028-01-01T00:00:00Z").unwrap();
        // Snapshots every 3 records, so that every query crosses snapshots, tails and late records.
        let (mut ledger, _) = Ledger::create_with(&dir, Some("test.example/property"), now, 3).unwrap();
        ledger.limit_window(16);
        for line in WORLD.lines() {
            let admitted = ledger.submit(&parse_event(line).unwrap(), now).unwrap();
            prop_assert!(matches!(admitted, Ok(Admitted::Recorded(_))));
        }
        ledger.commit().unwrap();
        for (index, step) in steps.iter().enumerate() {
            match step {
                Step::Commit => { ledger.commit().unwrap(); }
                Step::Event { kind, a, b, c, quantity, day } => {
                    let line = event_json(index, *kind, *a, *b, *c, *quantity, *day);
                    // Refused events are simply not recorded; the state must be as before.
                    let _ = ledger.submit(&parse_event(&line).unwrap(), now).unwrap();
                }
            }
        }
        ledger.commit().unwrap();
        let size = ledger.reader().size();
        drop(ledger);
        chipledger::audit::verify_store(&dir.join("store"), None, |_, _| {}).unwrap();
        let reader = Reader::open(&dir).unwrap();
        for (day, known) in probes {
            let date = Date::parse(&date_of(day)).unwrap();
            let known_size = 1 + known.index(size as usize) as u64;
            let fast = reader.state_at(date, known_size).unwrap();
            let slow = full_replay(&reader, date, known_size);
            prop_assert_eq!(snapshot::encode(&fast), snapshot::encode(&slow), "as of {} known at {}", date, known_size);
        }
    }
}

// ---- restricted rechecks decide exactly like rechecking everything -----------------------

/// The brute-force reference for admitting `draft` after `records` (the log so far): fold every
/// record before it in the timeline, decide it there, then recheck *every* record from its
/// recheck start on (its own day's too, for an event that changes facts) with every clause
/// against the full state just before it, the draft at its place among them.
fn reference_admit(
    records: &[Record],
    draft: &Record,
    target: Option<&Record>,
    today: Date,
) -> Result<chipledger::codec::Outcome, chipledger::rules::Code> {
    use chipledger::rules::{Affected, VoidTarget, decide, recheck};
    let genesis = &records[0];
    let mut all_facts = State::from_genesis(genesis).unwrap();
    for record in &records[1..] {
        all_facts.apply(record).unwrap();
    }
    let key = TimelineKey::of_new(draft.effective, draft.seq, target);
    let mut timeline: Vec<&Record> = records[1..].iter().collect();
    timeline.sort_by_key(|record| TimelineKey::of(record));
    let mut before = State::from_genesis(genesis).unwrap();
    for record in timeline
        .iter()
        .filter(|record| TimelineKey::of(record) < key)
    {
        before.apply(record).unwrap();
    }
    let void_target = target.map(|record| VoidTarget {
        record,
        voided: all_facts.facts.voided.contains_key(&record.seq),
    });
    let outcome = decide(
        &all_facts.facts,
        &before.counters,
        draft.effective,
        &draft.event,
        today,
        void_target,
    )
    .map_err(|refusal| refusal.code)?;
    let mut decided = draft.clone();
    decided.outcome = outcome.clone();
    all_facts
        .facts
        .apply(&decided, chipledger::rules::state::Sign::Add)
        .unwrap();
    let start = key.recheck_from(&draft.event);
    let mut counters = State::from_genesis(genesis).unwrap().counters;
    for record in timeline
        .iter()
        .filter(|record| TimelineKey::of(record) < start)
    {
        counters
            .apply_event(
                record.effective,
                &record.event,
                &record.outcome,
                chipledger::rules::state::Sign::Add,
            )
            .unwrap();
    }
    let mut placed = false;
    for record in timeline
        .iter()
        .filter(|record| TimelineKey::of(record) > start)
    {
        if !placed && TimelineKey::of(record) > key {
            counters
                .apply_event(
                    decided.effective,
                    &decided.event,
                    &decided.outcome,
                    chipledger::rules::state::Sign::Add,
                )
                .unwrap();
            placed = true;
        }
        recheck(&all_facts.facts, &counters, record, &Affected::everything())
            .map_err(|refusal| refusal.code)?;
        counters
            .apply_event(
                record.effective,
                &record.event,
                &record.outcome,
                chipledger::rules::state::Sign::Add,
            )
            .unwrap();
    }
    Ok(outcome)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::proptest_cases(100), ..ProptestConfig::default() })]

    #[test]
    fn restricted_rechecks_decide_like_rechecking_everything(steps in steps()) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("ledger");
        let now = Instant::parse("2028-01-01T00:00:00Z").unwrap();
        let today = Date::of_instant(now);
        let (mut ledger, _) = Ledger::create_with(&dir, Some("test.example/reference"), now, 5).unwrap();
        // A window of a few records: walks leave it and go on through the store.
        ledger.limit_window(4);
        for line in WORLD.lines() {
            ledger.submit(&parse_event(line).unwrap(), now).unwrap().unwrap();
        }
        let mut records: Vec<Record> = Vec::new();
        let mut accepted = 0;
        for (index, step) in steps.iter().enumerate() {
            let Step::Event { kind, a, b, c, quantity, day } = step else {
                // As a new process would: a window that saw none of the records so far.
                ledger.commit().unwrap();
                drop(ledger);
                ledger = Ledger::open(&dir).unwrap();
                ledger.limit_window(4);
                continue;
            };
            ledger.commit().unwrap();
            let reader = ledger.reader();
            records.clear();
            reader.for_each(0, reader.size(), |_, record| { records.push(record.clone()); Ok(()) }).unwrap();
            // Ids from 1000 on, clear of the world's own.
            let submission = parse_event(&event_json(index + 1000, *kind, *a, *b, *c, *quantity, *day)).unwrap();
            let target = match &submission.event.body {
                chipledger::codec::Body::Void(void) => records.iter().find(|record| record.event.id == void.target).cloned(),
                _ => None,
            };
            let draft = Record {
                seq: records.len() as u64,
                recorded_at: now,
                effective: submission.effective,
                prev_chain: [0; 32],
                links: Default::default(),
                event: submission.event.clone(),
                outcome: chipledger::codec::Outcome::None,
            };
            let expected = reference_admit(&records, &draft, target.as_ref(), today);
            let got = ledger.submit(&submission, now).unwrap();
            match (&expected, &got) {
                (Ok(outcome), Ok(Admitted::Recorded(record))) => {
                    prop_assert_eq!(outcome, &record.outcome);
                    accepted += 1;
                }
                (Err(code), Err(refusal)) => prop_assert_eq!(*code, refusal.code),
                _ => prop_assert!(false, "event {}: reference {:?}, ledger {:?}", index, expected, got.map(|_| ()).map_err(|refusal| refusal.code)),
            }
            // Some batches are abandoned: the window must forget their records' links.
            if quantity % 4 == 0 {
                ledger.rollback().unwrap();
            }
        }
        ledger.commit().unwrap();
        prop_assert!(accepted <= steps.len());
    }
}

/// A ledger of one entity and `count` inventory records of 1 to 7 chips, committed as one
/// batch, with prefix snapshots at multiples of `snapshot_interval` records.
fn inventory_ledger(count: usize, snapshot_interval: u64) -> TestLedger {
    let temp_ledger = TestLedger::new_uninitialized();
    let now = Instant::parse(common::NOW).unwrap();
    let (mut ledger, _) = Ledger::create_with(
        &temp_ledger.dir,
        Some("test.example/read"),
        now,
        snapshot_interval,
    )
    .unwrap();
    let entity = r#"{"type":"entity","id":"E-a","effective":"2025-01-13","entity":"a","name":"A","hq":"FR"}"#;
    ledger
        .submit(&parse_event(entity).unwrap(), now)
        .unwrap()
        .unwrap();
    for index in 0..count {
        let line = format!(
            r#"{{"type":"inventory","id":"I-{index}","effective":"2025-02-01","entity":"a","chip":"A100","quantity":{},"country":"FR"}}"#,
            1 + index % 7
        );
        ledger
            .submit(&parse_event(&line).unwrap(), now)
            .unwrap()
            .unwrap();
    }
    ledger.commit().unwrap();
    temp_ledger
}

/// Long reads (replays, verification of snapshots, as-of folds) decode on a helper thread a
/// few bundles ahead and hand visited bundles back to it: every record arrives once and in
/// order, a range may start and end inside a bundle, and a visitor's error stops the read and
/// is returned, without waiting on the helper.
#[test]
fn a_long_read_visits_each_record_once_in_order_and_stops_at_the_visitors_error() {
    // Eight bundles and a part: well past the read-ahead threshold.
    let temp_ledger = inventory_ledger(2_100, 1_000);
    let reader = Reader::open(&temp_ledger.dir).unwrap();
    let size = reader.size();
    assert_eq!(size, 2_102);
    for (from, to) in [(0, size), (3, size - 5), (300, 1_900), (0, size + 10)] {
        let mut seen = Vec::new();
        reader
            .for_each(from, to, |_, record| {
                seen.push(record.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            (from..to.min(size)).collect::<Vec<_>>(),
            "{from}..{to}"
        );
    }
    for stop_at in [5, 700, 2_050] {
        let mut visited = 0u64;
        let error = reader
            .for_each(0, size, |_, record| {
                visited += 1;
                if record.seq == stop_at {
                    return Err(chipledger::error::Error::Verification(format!(
                        "stop {stop_at}"
                    )));
                }
                Ok(())
            })
            .unwrap_err();
        assert!(
            error.to_string().ends_with(&format!("stop {stop_at}")),
            "{error}"
        );
        assert_eq!(visited, stop_at + 1);
    }
}

/// An as-of answer folds records into an earlier snapshot, or out of a later one, latest first;
/// a long fold decodes its bundles on helper threads while the snapshot itself is decoded. For
/// every size of a ledger whose only snapshot lies thousands of records in, the answer equals a
/// full replay: short and long folds, both ways, starting and ending inside bundles.
#[test]
fn as_of_folds_in_and_out_of_distant_snapshots_equal_a_full_replay() {
    let temp_ledger = inventory_ledger(4_300, 4_096);
    let reader = Reader::open(&temp_ledger.dir).unwrap();
    let size = reader.size();
    assert_eq!(size, 4_302);
    let date = Date::parse("2025-06-30").unwrap();
    for known_size in (1..=size)
        .step_by(97)
        .chain([2_047, 3_000, 4_095, 4_096, 4_097, size])
    {
        let fast = reader.state_at(date, known_size).unwrap();
        let slow = full_replay(&reader, date, known_size);
        assert_eq!(
            snapshot::encode(&fast),
            snapshot::encode(&slow),
            "known at {known_size}"
        );
    }
}

/// The window keeps exactly the last `capacity` records as they arrive, whether it copies
/// their bytes (the writer) or keeps the blocks they came in (the verifier's entry bundles); a
/// walk finds the records after a place in the timeline that concern an entity, and hands over
/// where it left the window, to go on through the store.
#[test]
fn the_window_of_recent_records_keeps_the_last_ones() {
    use chipledger::ledger::window::{RecordBytes, SharedBytes, Window, walk_beyond};
    use chipledger::rules::Affected;
    use std::sync::Arc;
    let temp_ledger = inventory_ledger(300, 1_000);
    let reader = Reader::open(&temp_ledger.dir).unwrap();
    let mut records = Vec::new();
    reader
        .for_each(0, 200, |bytes, record| {
            records.push((record.clone(), bytes.to_vec()));
            Ok(())
        })
        .unwrap();
    // Blocks of 7 records' bytes end to end, as a verifier's bundles hold them.
    let blocks: Vec<(SharedBytes, Vec<std::ops::Range<usize>>)> = records
        .chunks(7)
        .map(|chunk| {
            let mut block = Vec::new();
            let mut ranges = Vec::new();
            for (_, bytes) in chunk {
                ranges.push(block.len()..block.len() + bytes.len());
                block.extend_from_slice(bytes);
            }
            (Arc::new(block) as SharedBytes, ranges)
        })
        .collect();
    for shared in [false, true] {
        let mut window = Window::with_capacity(0, 64);
        for (index, (record, bytes)) in records.iter().enumerate() {
            let (block, ranges) = &blocks[index / 7];
            let bytes = if shared {
                RecordBytes::Within(block, ranges[index % 7].clone())
            } else {
                RecordBytes::Copy(bytes)
            };
            window.push(record, &record.subjects(), bytes);
            assert_eq!(window.end(), record.seq + 1);
            assert_eq!(window.first(), (record.seq + 1).saturating_sub(64));
        }
        assert!(window.get(135).is_none());
        assert_eq!(*window.get(136).unwrap(), reader.record(136).unwrap());
        assert_eq!(*window.get(199).unwrap(), reader.record(199).unwrap());
        assert!(window.get(200).is_none());

        // Every record from 1 on names entity "a", all on one day: after record 120 come 121
        // to 199.
        let entity = chipledger::name::Id::parse("a").unwrap();
        let mut reads = Affected::default();
        reads.entities.insert(entity.clone());
        let key = TimelineKey::of(&reader.record(120).unwrap());
        let read = |seq| reader.record_alone(seq).map(Arc::new);
        let (mut found, beyond) = window.later(&reads, key, 100, |_| Some(199));
        let seqs = |found: &[chipledger::rules::Later]| -> Vec<u64> {
            found.iter().map(|later| later.record.seq).collect()
        };
        assert_eq!(seqs(&found), (136..200).collect::<Vec<_>>());
        assert_eq!(
            beyond,
            vec![(chipledger::codec::Subject::Entity(entity), 135)]
        );
        walk_beyond(&mut found, beyond, &reads, key, 100, read).unwrap();
        assert_eq!(seqs(&found), (121..200).collect::<Vec<_>>());

        // A rolled-back tail (here from the middle of a block) leaves the window as it was
        // before those records came, and the next records come in after what is left.
        window.pop_to(150);
        assert_eq!((window.first(), window.end()), (136, 150));
        assert!(window.get(150).is_none());
        assert_eq!(*window.get(149).unwrap(), reader.record(149).unwrap());
        let (found, beyond) = window.later(&reads, key, 100, |_| Some(149));
        assert_eq!(seqs(&found), (136..150).collect::<Vec<_>>());
        assert_eq!(beyond.len(), 1);
        for (record, bytes) in &records[150..160] {
            window.push(record, &record.subjects(), RecordBytes::Copy(bytes));
        }
        assert_eq!((window.first(), window.end()), (136, 160));
        for seq in [136, 149, 150, 159] {
            assert_eq!(*window.get(seq).unwrap(), reader.record(seq).unwrap());
        }
    }
}

/// Past its floor the window keeps the last 32 days of the timeline, however many records they
/// are, but never more than 16 times its floor or an eighth of the log, whichever is more:
/// records a day apart leave once they are 33 days older than the latest; records that all
/// share one date leave at the ceiling.
#[test]
fn the_window_keeps_the_recent_days_up_to_its_ceiling() {
    use chipledger::ledger::window::Window;
    let check = |temp_ledger: &TestLedger, expected_kept: u64| {
        let reader = Reader::open(&temp_ledger.dir).unwrap();
        let mut window = Window::with_floor(0, 4);
        reader
            .for_each(0, reader.size(), |bytes, record| {
                window.push(
                    record,
                    &record.subjects(),
                    chipledger::ledger::window::RecordBytes::Copy(bytes),
                );
                assert!(window.end() - window.first() >= 4.min(window.end()));
                Ok(())
            })
            .unwrap();
        let first = reader.size() - expected_kept;
        assert_eq!((window.first(), window.end()), (first, reader.size()));
        assert!(window.get(first - 1).is_none());
        assert_eq!(*window.get(first).unwrap(), reader.record(first).unwrap());
    };

    // One record a day for 400 days: the 33 dated within 32 days of the last one stay (the
    // ceiling is 64, 16 times the floor of 4).
    let temp_ledger = TestLedger::new_uninitialized();
    let now = Instant::parse(common::NOW).unwrap();
    let (mut ledger, _) =
        Ledger::create_with(&temp_ledger.dir, Some("test.example/read"), now, 4_096).unwrap();
    let entity = r#"{"type":"entity","id":"E-a","effective":"2025-01-13","entity":"a","name":"A","hq":"FR"}"#;
    ledger
        .submit(&parse_event(entity).unwrap(), now)
        .unwrap()
        .unwrap();
    let mut effective = Date::parse("2025-02-01").unwrap();
    for day in 0..400 {
        let line = format!(
            r#"{{"type":"inventory","id":"I-{day}","effective":"{effective}","entity":"a","chip":"A100","quantity":1,"country":"FR"}}"#
        );
        ledger
            .submit(&parse_event(&line).unwrap(), now)
            .unwrap()
            .unwrap();
        effective = effective.next_day().unwrap();
    }
    ledger.commit().unwrap();
    drop(ledger);
    check(&temp_ledger, 33);

    // Records on one date after two others: the ceiling keeps 16 times the floor of 4 from
    // 300 of them, and an eighth of the 1,001 records the log held before the last one came
    // from 1,000.
    check(&inventory_ledger(300, 1_000), 64);
    check(&inventory_ledger(1_000, 10_000), 1_001 / 8);
}
