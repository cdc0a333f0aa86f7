//! Nothing acknowledged is lost: an import killed with SIGKILL leaves a ledger that opens,
//! verifies, holds a prefix of the input containing every acknowledged batch, and completes on
//! a re-run with each event exactly once. A second process is told the ledger is in use.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, NOW, TestLedger};

/// An input of `count` inventory events for one entity: always valid, easy to check.
fn input(count: usize) -> (String, Vec<String>) {
    let mut text = String::from(
        r#"{"type":"entity","id":"E-0","effective":"2025-01-13","entity":"holder","name":"Holder","hq":"FR"}"#,
    );
    text.push('\n');
    let mut ids = vec!["E-0".to_string()];
    for index in 0..count {
        let id = format!("I-{index:06}");
        text.push_str(&format!(
            r#"{{"type":"inventory","id":"{id}","effective":"2025-02-01","entity":"holder","chip":"A100","quantity":{},"country":"FR"}}"#,
            index % 97 + 1
        ));
        text.push('\n');
        ids.push(id);
    }
    (text, ids)
}

/// The event ids in the ledger, in log order, without the genesis record.
fn logged_ids(ledger: &TestLedger) -> Vec<String> {
    logged_ids_in(&ledger.dir)
}

fn logged_ids_in(dir: &std::path::Path) -> Vec<String> {
    let run = common::run_in(
        Some(dir),
        &["--format", "json", "log", "--from", "1"],
        None,
        &[],
    )
    .expect(0);
    run.stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Starts an import and kills it with SIGKILL once `acks` batches were acknowledged (or, with
/// `acks == 0`, after `delay`). Returns the highest line acknowledged as durable.
fn import_and_kill(ledger: &TestLedger, file: &str, acks: usize, delay: Duration) -> u64 {
    let mut child = Command::new(BIN)
        .args([
            "--ledger",
            ledger.dir.to_str().unwrap(),
            "--format",
            "json",
            "import",
            file,
            "--batch",
            "500",
        ])
        .env("CHIPLEDGER_NOW", NOW)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            if value["status"] == "committed" {
                let _ = sender.send(value["through_line"].as_u64().unwrap());
            }
        }
    });
    let mut acknowledged = 0;
    if acks == 0 {
        std::thread::sleep(delay);
    } else {
        for _ in 0..acks {
            match receiver.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => acknowledged = line,
                Err(_) => break,
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acknowledgements that were already on their way count too.
    while let Ok(line) = receiver.recv_timeout(Duration::from_millis(200)) {
        acknowledged = acknowledged.max(line);
    }
    acknowledged
}

#[test]
fn a_killed_import_loses_no_acknowledged_batch_and_a_rerun_completes_it() {
    let (text, ids) = input(20_000);
    let ledger = TestLedger::new();
    let file = ledger.path("input.ndjson");
    std::fs::write(&file, &text).unwrap();
    let file = file.to_str().unwrap().to_string();
    for (round, (acks, delay_ms)) in [(3, 0), (0, 150), (9, 0), (0, 400)].into_iter().enumerate() {
        let acknowledged = import_and_kill(&ledger, &file, acks, Duration::from_millis(delay_ms));
        ledger.run(&["verify"], None).expect(0);
        let logged = logged_ids(&ledger);
        assert_eq!(
            logged[..],
            ids[..logged.len()],
            "round {round}: the log is not a prefix of the input"
        );
        assert!(
            logged.len() as u64 >= acknowledged,
            "round {round}: {} events logged but {acknowledged} acknowledged",
            logged.len()
        );
    }
    let run = ledger.run(&["import", &file], None).expect(0);
    assert!(run.stdout.contains("already recorded"), "{}", run.stdout);
    ledger.run(&["verify"], None).expect(0);
    assert_eq!(
        logged_ids(&ledger),
        ids,
        "after the re-run every event is there exactly once"
    );
}

#[test]
fn a_second_process_is_told_the_ledger_is_in_use() {
    let ledger = TestLedger::new();
    let held =
        chipledger::ledger::Ledger::open(&ledger.dir).expect("this process opens the ledger");
    for args in [
        &["state"][..],
        &["append", "-"][..],
        &["verify"][..],
        &["log"][..],
    ] {
        let event = r#"{"type":"entity","id":"E-1","effective":"2025-01-13","entity":"x","name":"X","hq":"FR"}"#;
        let run = ledger.run(args, Some(event)).expect(3);
        assert!(
            run.stderr.contains("ledger is in use by another process"),
            "{args:?}: {}",
            run.stderr
        );
    }
    drop(held);
    ledger.run(&["state"], None).expect(0);
}

#[test]
fn a_missing_ledger_is_unavailable_not_bad_input() {
    let temp = tempfile::tempdir().unwrap();
    let run = common::run_in(Some(&temp.path().join("nothing")), &["state"], None, &[]).expect(3);
    assert!(run.stderr.contains("no ledger at"), "{}", run.stderr);
    let run = common::run_in(Some(temp.path()), &["init"], None, &[]).expect(0);
    assert!(run.stdout.contains("verifier key"), "{}", run.stdout);
    let run = common::run_in(Some(temp.path()), &["init"], None, &[]).expect(3);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
}

/// The import holds the ledger for as long as the readers run, whatever this host's speed: it
/// prints an acknowledgement of about 55 bytes per batch of 2 into a pipe that the test stops
/// reading after the first one, so after a pipe's worth (64 KiB, about 1,200 batches) of its
/// 5,000 acknowledgements it waits, ledger open, until the test reads on.
#[test]
fn a_reader_during_a_long_import_is_told_the_ledger_is_in_use_without_waiting() {
    let (text, _) = input(9_999);
    let ledger = TestLedger::new();
    let file = ledger.path("input.ndjson");
    std::fs::write(&file, &text).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--ledger",
            ledger.dir.to_str().unwrap(),
            "--format",
            "json",
            "import",
        ])
        .arg(&file)
        .args(["--batch", "2"])
        .env("CHIPLEDGER_NOW", NOW)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the import holds the ledger and has made a batch durable.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("an acknowledgement").unwrap();
    assert!(first.contains("\"committed\""), "{first}");
    for args in [&["state"][..], &["verify"][..], &["log", "--from", "1"][..]] {
        let started = std::time::Instant::now();
        let run = ledger.run(args, None).expect(3);
        // "Not a hang": the answer comes after the short lock retry, far below this bound.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} waited {:?}",
            started.elapsed()
        );
        assert!(
            run.stderr.contains("ledger is in use by another process"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let rest: Vec<String> = lines.map(|line| line.unwrap()).collect();
    // Several batches are in flight at once: each is still acknowledged once, in order, with
    // the log size that holds it and the lines before it.
    let acknowledged: Vec<(u64, u64)> = std::iter::once(&first)
        .chain(&rest)
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["status"] == "committed")
        .map(|value| {
            let line = value["through_line"].as_u64().unwrap();
            (line, value["size"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        acknowledged.len(),
        5_000,
        "one acknowledgement per batch of 2"
    );
    for (batch, (line, size)) in acknowledged.iter().enumerate() {
        // `input(9_999)` writes 10,000 lines: 5,000 whole batches.
        let expected_line = 2 * (batch as u64 + 1);
        assert_eq!(
            (*line, *size),
            (expected_line, expected_line + 1),
            "acknowledgement {batch}: through line {line}, log size {size}"
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the import itself finished: {status}");
    ledger.run(&["verify"], None).expect(0);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
    _temp: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes`; `None` where this process may not mount (not root).
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}M"), "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallDisk { path, _temp: temp })
    }

    fn grow(&self, megabytes: u32) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={megabytes}M")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_gives_a_clear_error_and_a_ledger_that_still_verifies() {
    let Some(disk) = SmallDisk::mount(12) else {
        let message =
            "*** cannot mount a small tmpfs (this needs root): the full-disk test was SKIPPED ***";
        assert!(
            std::env::var_os("CHIPLEDGER_REQUIRE_FULL_DISK").is_none(),
            "{message}"
        );
        eprintln!("{message}");
        return;
    };
    let dir = disk.path.join("ledger");
    let run = |args: &[&str]| common::run_in(Some(&dir), args, None, &[]);
    run(&["init", "--origin", "test.example/full"]).expect(0);
    // 60,000 events need more than the 8 MiB left after `init`.
    let (text, ids) = input(60_000);
    let outside = tempfile::tempdir().unwrap();
    let file = outside.path().join("input.ndjson");
    std::fs::write(&file, &text).unwrap();
    let file = file.to_str().unwrap();
    let full = run(&["--format", "json", "import", file, "--batch", "2000"]).expect(3);
    let message = format!("{}{}", full.stdout, full.stderr);
    assert!(
        message.contains("is full") && message.contains("Free some space"),
        "the error says what happened and what to do: {message}"
    );
    let acknowledged: Vec<u64> = full
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["status"] == "committed")
        .map(|value| value["size"].as_u64().unwrap())
        .collect();
    assert!(
        !acknowledged.is_empty(),
        "some batches fit: {}",
        full.stdout
    );
    // Space comes back: the ledger verifies, holds every acknowledged batch and a prefix of
    // the input, and the same import completes it.
    disk.grow(64);
    run(&["verify"]).expect(0);
    let logged = logged_ids_in(&dir);
    assert_eq!(logged[..], ids[..logged.len()], "a prefix of the input");
    assert!(logged.len() as u64 + 1 >= *acknowledged.last().unwrap());
    run(&["import", file]).expect(0);
    run(&["verify"]).expect(0);
    assert_eq!(logged_ids_in(&dir), ids);
}
