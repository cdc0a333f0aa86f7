//! `verify` passes on a fresh ledger and on its export; every way of tampering with an export
//! is caught and the first bad sequence number is named.

mod common;

use base64::Engine;
use common::{BASE, TestLedger};

const HISTORY: &str = r#"{"type":"inventory","id":"I-1","effective":"2025-01-13","entity":"acme","chip":"H100","quantity":1000,"country":"US"}
{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":1000}
{"type":"shipment","id":"S-2","effective":"2025-04-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":100}
{"type":"transfer","id":"T-1","effective":"2025-05-01","entity":"acme","from_country":"US","to_country":"JP","chip":"H100","quantity":10}
{"type":"shipment","id":"S-3","effective":"2025-06-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H20","quantity":50}
{"type":"inventory","id":"I-late","effective":"2025-02-01","entity":"in-dc","chip":"A100","quantity":5,"country":"IN"}
{"type":"void","id":"X-1","effective":"2025-06-02","target":"S-3","reason":"entered in error"}
{"type":"decommission","id":"D-1","effective":"2025-07-01","entity":"acme","chip":"H100","quantity":5,"country":"US"}
"#;

fn ledger() -> TestLedger {
    TestLedger::with(&format!("{BASE}{HISTORY}"))
}

fn export(ledger: &TestLedger) -> Vec<String> {
    let file = ledger.path("export.ndjson");
    ledger
        .run(&["export", "-o", file.to_str().unwrap()], None)
        .expect(0);
    std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Writes lines to a file and verifies it; returns the run.
fn verify_lines(ledger: &TestLedger, lines: &[String]) -> common::Run {
    let file = ledger.path("tampered.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    common::run_in(
        None,
        &["verify", "--export", file.to_str().unwrap()],
        None,
        &[],
    )
}

fn expect_bad_record(run: common::Run, seq: usize, what: &str) {
    let run = run.expect(1);
    assert!(
        run.stderr.contains(&format!("record {seq}:")),
        "{what}: expected record {seq} to be named, got: {}",
        run.stderr
    );
}

#[test]
fn verify_passes_on_the_ledger_and_its_export() {
    let ledger = ledger();
    let run = ledger.run(&["verify"], None).expect(0);
    assert!(run.stdout.contains("verified 13 records"), "{}", run.stdout);
    assert!(
        run.stdout.contains("(1 late records, 1 voids)"),
        "{}",
        run.stdout
    );
    let lines = export(&ledger);
    assert_eq!(lines.len(), 13);
    let run = verify_lines(&ledger, &lines).expect(0);
    let (_, root) = ledger.size_and_root();
    assert!(
        run.stdout.contains(&root),
        "the export's root is the ledger's: {}",
        run.stdout
    );
}

#[test]
fn every_record_round_trips_to_identical_bytes() {
    let ledger = ledger();
    for line in export(&ledger) {
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value["record"].as_str().unwrap())
            .unwrap();
        let record = chipledger::codec::decode_record(&bytes).unwrap();
        assert_eq!(chipledger::codec::encode_record(&record).unwrap(), bytes);
    }
}

#[test]
fn a_flipped_byte_in_a_record_is_caught() {
    let ledger = ledger();
    let lines = export(&ledger);
    for seq in [0usize, 5, 9, 12] {
        let mut value: serde_json::Value = serde_json::from_str(&lines[seq]).unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        let mut bytes = engine.decode(value["record"].as_str().unwrap()).unwrap();
        // Flip one bit in several places of the record: each must be caught.
        for position in [0, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[position] ^= 0x01;
            value["record"] = serde_json::json!(engine.encode(&flipped));
            let mut tampered = lines.clone();
            tampered[seq] = value.to_string();
            expect_bad_record(
                verify_lines(&ledger, &tampered),
                seq,
                &format!("flip at {position} of record {seq}"),
            );
        }
        bytes.push(0);
        value["record"] = serde_json::json!(engine.encode(&bytes));
        let mut tampered = lines.clone();
        tampered[seq] = value.to_string();
        expect_bad_record(verify_lines(&ledger, &tampered), seq, "an appended byte");
    }
}

#[test]
fn an_edited_readable_field_is_caught() {
    let ledger = ledger();
    let lines = export(&ledger);
    let edits: [(usize, &str, serde_json::Value); 5] = [
        (6, "effective", serde_json::json!("2025-03-02")),
        (6, "id", serde_json::json!("S-9")),
        (7, "recorded_at", serde_json::json!("2027-12-31T12:00:01Z")),
        (11, "chain", serde_json::json!("00")),
        (5, "type", serde_json::json!("shipment")),
    ];
    for (seq, field, replacement) in edits {
        let mut value: serde_json::Value = serde_json::from_str(&lines[seq]).unwrap();
        value[field] = replacement;
        let mut tampered = lines.clone();
        tampered[seq] = value.to_string();
        let run = verify_lines(&ledger, &tampered);
        let stderr = run.stderr.clone();
        expect_bad_record(run, seq, field);
        assert!(stderr.contains(&format!("field `{field}`")), "{stderr}");
    }
    // An edit inside the event object is named with its path.
    let mut value: serde_json::Value = serde_json::from_str(&lines[6]).unwrap();
    value["event"]["quantity"] = serde_json::json!(999);
    let mut tampered = lines.clone();
    tampered[6] = value.to_string();
    let run = verify_lines(&ledger, &tampered);
    assert!(
        run.stderr.contains("field `event.quantity`"),
        "{}",
        run.stderr
    );
}

#[test]
fn deleted_duplicated_and_swapped_lines_are_caught() {
    let ledger = ledger();
    let lines = export(&ledger);
    // Deleting the last line leaves a valid shorter log (see the truncation test).
    for seq in [1usize, 7, 11] {
        let mut deleted = lines.clone();
        deleted.remove(seq);
        expect_bad_record(verify_lines(&ledger, &deleted), seq, "deleted");

        let mut duplicated = lines.clone();
        duplicated.insert(seq, lines[seq].clone());
        expect_bad_record(verify_lines(&ledger, &duplicated), seq + 1, "duplicated");

        let mut swapped = lines.clone();
        swapped.swap(seq, seq + 1);
        expect_bad_record(verify_lines(&ledger, &swapped), seq, "swapped");
    }
    let mut no_genesis = lines.clone();
    no_genesis.remove(0);
    expect_bad_record(verify_lines(&ledger, &no_genesis), 0, "no genesis");
}

#[test]
fn a_truncated_export_is_a_valid_shorter_log() {
    let ledger = ledger();
    let lines = export(&ledger);
    let run = verify_lines(&ledger, &lines[..9]).expect(0);
    assert!(run.stdout.contains("verified 9 records"), "{}", run.stdout);
    // `export --to` writes the same prefix, with the root of that prefix.
    let file = ledger.path("prefix.ndjson");
    ledger
        .run(&["export", "--to", "9", "-o", file.to_str().unwrap()], None)
        .expect(0);
    let prefix: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(prefix, lines[..9]);
}

/// The export's records, decoded.
fn records(lines: &[String]) -> Vec<chipledger::codec::Record> {
    let engine = base64::engine::general_purpose::STANDARD;
    lines
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            chipledger::codec::decode_record(
                &engine.decode(value["record"].as_str().unwrap()).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

/// The records re-encoded and re-chained from the genesis on, as an attacker with the code
/// could: each record's bytes, and its export line.
fn rechain(records: &mut [chipledger::codec::Record]) -> Vec<(Vec<u8>, String)> {
    let mut chain = [0u8; 32];
    let mut rewritten = Vec::new();
    for record in records {
        record.prev_chain = chain;
        let bytes = chipledger::codec::encode_record(record).unwrap();
        chain = chipledger::codec::chain_hash(&bytes);
        let line = chipledger::view::export_line(record, &bytes).to_string();
        rewritten.push((bytes, line));
    }
    rewritten
}

/// Records a replay reads by number, as a store or an export would give them, counting the
/// reads.
struct Records {
    records: Vec<chipledger::codec::Record>,
    reads: std::cell::Cell<usize>,
}

impl Records {
    fn new(records: Vec<chipledger::codec::Record>) -> Records {
        Records {
            records,
            reads: std::cell::Cell::new(0),
        }
    }
}

impl chipledger::verify::RecordSource for Records {
    fn record(&self, seq: u64) -> Result<chipledger::codec::Record, String> {
        self.reads.set(self.reads.get() + 1);
        self.records
            .get(seq as usize)
            .cloned()
            .ok_or_else(|| format!("no record {seq}"))
    }
}

#[test]
fn a_rewritten_history_with_valid_hashes_is_refused_by_the_rules() {
    // An attacker with the code can re-encode a record and re-chain everything after it, but
    // cannot make the rules accept a shipment they refuse: the replay catches it.
    let ledger = ledger();
    let lines = export(&ledger);
    let mut records = records(&lines);
    // Record 6 is S-1 (1,000 H100 to MY, within the LPP): claim it used a licence instead,
    // which would have counted against MY's allocation.
    if let chipledger::codec::Outcome::Chips(chips) = &mut records[6].outcome {
        assert_eq!(chips.basis, chipledger::codec::Basis::Lpp);
        chips.basis = chipledger::codec::Basis::License;
        chips.counts_allocation = true;
    } else {
        panic!("record 6 is a shipment");
    }
    let rewritten: Vec<String> = rechain(&mut records)
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    let run = verify_lines(&ledger, &rewritten);
    let stderr = run.stderr.clone();
    expect_bad_record(run, 6, "rewritten outcome");
    assert!(
        stderr.contains("stored outcome differs") || stderr.contains("refuse"),
        "{stderr}"
    );
}

/// A rewritten history whose last record reuses an earlier record's event id is caught at that
/// record, both by `verify --export` and by the replay `verify` runs over a store, which
/// computes the id probes of a bundle ahead of pushing its records (`Replay::warm`), with the
/// id hashes computed by the reading thread (`Decoded::hash_id`), by the warming, or by the
/// push itself.
#[test]
fn an_event_id_used_twice_is_caught() {
    use chipledger::ledger::window::RecordBytes;
    use chipledger::verify::{Decoded, Replay};
    let ledger = ledger();
    let mut records = records(&export(&ledger));
    let last = records.len() - 1;
    assert_eq!(records[last].event.id.as_str(), "D-1");
    records[last].event.id = chipledger::name::Id::parse("S-1").unwrap();
    let rewritten = rechain(&mut records);
    let lines: Vec<String> = rewritten.iter().map(|(_, line)| line.clone()).collect();
    let run = verify_lines(&ledger, &lines);
    let stderr = run.stderr.clone();
    expect_bad_record(run, last, "reused event id");
    assert!(
        stderr.contains("event id S-1 appears in an earlier record"),
        "{stderr}"
    );

    let source = Records::new(records);
    for (hashed_ahead, warmed) in [(true, true), (false, true), (false, false)] {
        let mut replay = Replay::new();
        let mut failure = None;
        for (bytes, _) in &rewritten {
            // As an audit's reading thread leaves them: with or without the hashes.
            let mut decoded = Decoded::decode(bytes);
            if hashed_ahead {
                decoded.hash_leaf(bytes);
                decoded.hash_id();
            }
            if warmed {
                replay.warm(std::iter::once(&mut decoded));
            }
            if let Err(error) = replay.push(RecordBytes::Copy(bytes), &mut decoded, &source) {
                failure = Some(error);
                break;
            }
        }
        let failure = failure.expect("the replay stops at the reused id");
        assert_eq!(failure.seq, Some(last as u64), "{hashed_ahead} {warmed}");
        assert!(
            failure.message.contains("appears in an earlier record"),
            "{failure}"
        );
    }
}

/// A replay whose window of recent records was freed still replays what comes after: the late
/// record and the void that follow it read the records they need from the source instead, and
/// the replay ends in the state of one that kept its window.
#[test]
fn a_replay_without_its_window_still_checks_late_records_and_voids() {
    use chipledger::ledger::window::RecordBytes;
    use chipledger::verify::{Decoded, Replay};
    let ledger = ledger();
    let lines = export(&ledger);
    let mut records = records(&lines);
    let late = records
        .iter()
        .position(|record| record.event.id.as_str() == "I-late")
        .expect("the late record");
    let rewritten = rechain(&mut records);
    let replay_all = |release_before: Option<usize>| {
        let source = Records::new(records.clone());
        let mut replay = Replay::new();
        for (index, (bytes, _)) in rewritten.iter().enumerate() {
            if release_before == Some(index) {
                replay.release_window();
            }
            let mut decoded = Decoded::of(bytes);
            replay
                .push(RecordBytes::Copy(bytes), &mut decoded, &source)
                .unwrap();
        }
        let state = chipledger::rules::snapshot::encode(replay.state().unwrap());
        (state, source.reads.get())
    };
    let (kept_state, kept_reads) = replay_all(None);
    let (released_state, released_reads) = replay_all(Some(late));
    assert_eq!(released_state, kept_state);
    assert!(
        released_reads > kept_reads,
        "{released_reads} reads from the source without the window, {kept_reads} with it"
    );
}
