//! The crash harness: an import or an append runs in a child process that dies by SIGKILL at a
//! random moment, or aborts at an injected point between the steps of a commit: for a batch
//! that goes through the journal (FORMAT.md section 6.1), before anything, after the frame's
//! write, after the journal's sync; for one flushed into sled (larger
//! than the journal takes), before the transaction, after it, after the flush, after the
//! fsync. After every death the ledger must
//! open, verify, hold every acknowledged batch and nothing half-written, and a re-run must
//! complete the work with each event exactly once.
//!
//! 10 rounds in the normal test run; `CHIPLEDGER_CRASH_ROUNDS=1000 cargo test --release --test
//! crash -- --nocapture` runs 1,000 and prints the tally for RELIABILITY.md.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, NOW, TestLedger};

/// A small deterministic generator, so that a failing round can be replayed from its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Valid events of several types for a few entities, with ids `E-…`, `I-…`, `S-…`, `T-…`.
fn events(count: usize) -> Vec<String> {
    let mut lines = vec![
        r#"{"type":"entity","id":"E-nv","effective":"2025-01-13","entity":"nv","name":"NV","hq":"US"}"#.to_string(),
        r#"{"type":"entity","id":"E-a","effective":"2025-01-13","entity":"a","name":"A","hq":"FR"}"#.to_string(),
        r#"{"type":"entity","id":"E-b","effective":"2025-01-13","entity":"b","name":"B","hq":"DE"}"#.to_string(),
    ];
    for index in 0..count {
        // Dates rise with the index (28-day months keep the arithmetic simple).
        let day = (index * 300 / count.max(1)) as u32;
        let date = format!("2025-{:02}-{:02}", 2 + day / 28, 1 + day % 28);
        let line = match index % 4 {
            0 | 1 => format!(
                r#"{{"type":"inventory","id":"I-{index}","effective":"{date}","entity":"a","chip":"A100","quantity":3,"country":"FR"}}"#
            ),
            2 => format!(
                r#"{{"type":"shipment","id":"S-{index}","effective":"{date}","exporter":"nv","consignee":"b","country":"DE","chip":"H100","quantity":2}}"#
            ),
            _ => format!(
                r#"{{"type":"transfer","id":"T-{index}","effective":"{date}","entity":"a","from_country":"FR","to_country":"DE","to_entity":"b","chip":"A100","quantity":1}}"#
            ),
        };
        lines.push(line);
    }
    lines
}

#[derive(Default, Debug)]
struct Tally {
    rounds: u64,
    /// Imports sent SIGKILL at a random moment, and how many it actually killed (the others had
    /// finished first).
    random_kills: u64,
    random_kills_landed: u64,
    /// Imports armed to abort at an injected point of their nth commit, and how many did (the
    /// others made fewer commits).
    injected: std::collections::BTreeMap<String, u64>,
    injected_landed: std::collections::BTreeMap<String, u64>,
    /// Sequences of appends, one of them sent SIGKILL, and how many it killed.
    append_kills: u64,
    append_kills_landed: u64,
    events_checked: u64,
    acknowledged_batches: u64,
}

/// Whether a child died of `signal`.
fn died_of(status: std::process::ExitStatus, signal: i32) -> bool {
    std::os::unix::process::ExitStatusExt::signal(&status) == Some(signal)
}

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// The injected points a journaled batch passes (batches under 256 KiB: a few hundred events).
const JOURNAL_POINTS: &[&str] = &["before-transaction", "after-journal-write", "after-fsync"];

/// The injected points a batch flushed into sled passes (over 256 KiB: 1,100 events or more).
const FLUSH_POINTS: &[&str] = &[
    "before-transaction",
    "after-records",
    "after-transaction",
    "after-flush",
    "after-fsync",
];

/// One round: a fresh ledger, an import (or appends) that dies, the checks, and a re-run.
fn round(number: u64, tally: &mut Tally) {
    let mut rng = Rng(number * 7919 + 17);
    let mode = rng.below(3);
    // A third of the imports use batches too large for the journal, flushed into sled.
    let large = mode != 2 && rng.below(3) == 0;
    let (lines, batch) = if large {
        (
            events(2400 + rng.below(1200) as usize),
            1100 + rng.below(400),
        )
    } else {
        (events(600 + rng.below(1200) as usize), 50 + rng.below(200))
    };
    let batch = batch.to_string();
    let ledger = TestLedger::new();
    let file = ledger.path("input.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut command = Command::new(BIN);
    command.env("CHIPLEDGER_NOW", NOW).stderr(Stdio::null());
    let mut acknowledged = 0u64;
    if mode == 2 {
        // Appends of a few events each, one process; killed after a random number of them.
        tally.append_kills += 1;
        let script = lines
            .chunks(7)
            .map(|chunk| chunk.join("\n"))
            .collect::<Vec<_>>();
        let stop_after = rng.below(script.len() as u64);
        let mut done = 0u64;
        for (index, chunk) in script.iter().enumerate() {
            let mut child = Command::new(BIN)
                .args(["--ledger", ledger.dir.to_str().unwrap(), "append", "-"])
                .env("CHIPLEDGER_NOW", NOW)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(chunk.as_bytes())
                .unwrap();
            if index as u64 == stop_after {
                std::thread::sleep(Duration::from_micros(rng.below(20_000)));
                let _ = child.kill();
                if died_of(child.wait().unwrap(), SIGKILL) {
                    tally.append_kills_landed += 1;
                }
                break;
            }
            assert!(
                child.wait().unwrap().success(),
                "round {number}: append {index} failed"
            );
            done += chunk.lines().count() as u64;
        }
        acknowledged = done;
        tally.acknowledged_batches += stop_after;
    } else {
        let injected = mode == 1;
        let mut armed = None;
        command.args([
            "--ledger",
            ledger.dir.to_str().unwrap(),
            "--format",
            "json",
            "import",
            file.to_str().unwrap(),
            "--batch",
            &batch,
        ]);
        if injected {
            let points = if large { FLUSH_POINTS } else { JOURNAL_POINTS };
            let point = points[rng.below(points.len() as u64) as usize];
            let nth = 1 + rng.below(if large { 2 } else { 5 });
            command.env("CHIPLEDGER_TEST_FAULT", format!("{point}:kill:{nth}"));
            let point = format!("{point} ({})", if large { "flushed" } else { "journaled" });
            *tally.injected.entry(point.clone()).or_default() += 1;
            armed = Some(point);
        } else {
            tally.random_kills += 1;
        }
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                if value["status"] == "committed" {
                    let _ = sender.send(value["size"].as_u64().unwrap() - 1);
                }
            }
        });
        if !injected {
            std::thread::sleep(Duration::from_micros(rng.below(150_000)));
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        match armed {
            Some(point) if died_of(status, SIGABRT) => {
                *tally.injected_landed.entry(point).or_default() += 1;
            }
            None if died_of(status, SIGKILL) => tally.random_kills_landed += 1,
            _ => {}
        }
        reader.join().unwrap();
        while let Ok(size) = receiver.try_recv() {
            acknowledged = acknowledged.max(size);
            tally.acknowledged_batches += 1;
        }
    }

    // However the writer died, it left nothing beside the ledger: the import's scratch file
    // has no name, so the directory holds what `init` made and nothing else.
    let mut names: Vec<String> = std::fs::read_dir(&ledger.dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["signing.key", "store", "verifier.key"],
        "round {number}"
    );

    // The ledger opens and verifies; the log is a prefix of the input holding every
    // acknowledged event, and nothing half-written.
    ledger.run(&["verify"], None).expect(0);
    let logged = ledger.logged_ids();
    let ids: Vec<String> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        logged[..],
        ids[..logged.len()],
        "round {number}: the log is not a prefix of the input"
    );
    assert!(
        logged.len() as u64 >= acknowledged,
        "round {number}: {} logged, {acknowledged} acknowledged",
        logged.len()
    );

    // A re-run completes the work, each event exactly once.
    ledger
        .run(&["import", file.to_str().unwrap()], None)
        .expect(0);
    ledger.run(&["verify"], None).expect(0);
    assert_eq!(ledger.logged_ids(), ids, "round {number}: after the re-run");
    tally.events_checked += ids.len() as u64;
    tally.rounds += 1;
}

#[test]
fn killed_writers_lose_nothing_acknowledged_and_leave_nothing_half_written() {
    let rounds: u64 = std::env::var("CHIPLEDGER_CRASH_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10);
    let mut tally = Tally::default();
    for number in 0..rounds {
        round(number, &mut tally);
    }
    println!("crash harness: {tally:#?}");
    assert_eq!(tally.rounds, rounds);
}

#[test]
fn an_injected_failure_poisons_the_handle_and_leaves_a_ledger_that_verifies() {
    // (point, events per batch): batches of 100 events go through the journal, batches of
    // 1,500 are flushed into sled.
    let cases = JOURNAL_POINTS
        .iter()
        .map(|point| (*point, 100))
        .chain(FLUSH_POINTS.iter().map(|point| (*point, 1500)));
    for (point, batch) in cases {
        let ledger = TestLedger::new();
        let lines = events(3 * batch);
        let file = ledger.path("input.ndjson");
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        // The second commit fails at `point`: the first batch is durable, the process reports
        // an I/O error (exit 3) and writes nothing more.
        let run = ledger.run_env(
            &[
                "import",
                file.to_str().unwrap(),
                "--batch",
                &batch.to_string(),
            ],
            None,
            &[("CHIPLEDGER_TEST_FAULT", &format!("{point}:fail:2"))],
        );
        assert_eq!(run.code, 3, "{point} ({batch}): {}", run.stderr);
        assert!(
            run.stderr.contains("injected failure"),
            "{point} ({batch}): {}",
            run.stderr
        );
        ledger.run(&["verify"], None).expect(0);
        let logged = ledger.logged_ids();
        // Before the transaction (and after the bundles reached the records file, where
        // nothing points at them yet): only the first batch. Once the journal's frame is written,
        // or sled's flush done, the second batch too, unacknowledged but whole (the frame is
        // replayed at the next open). Between sled's transaction and its flush, sled may or
        // may not write the transaction as the process ends; either way the batch is whole or
        // absent.
        let allowed: &[usize] = match (point, batch) {
            ("before-transaction" | "after-records", _) => &[batch],
            ("after-transaction", 1500) => &[batch, 2 * batch],
            _ => &[2 * batch],
        };
        assert!(
            allowed.contains(&logged.len()),
            "{point} ({batch}): {} records",
            logged.len()
        );
        ledger
            .run(&["import", file.to_str().unwrap()], None)
            .expect(0);
        assert_eq!(ledger.logged_ids().len(), lines.len(), "{point} ({batch})");
    }
}
