//! The write-ahead journal (FORMAT.md section 6.1), one test per shape it can be found in.
//!
//! Each test makes the state a crash would leave deterministically: a copy of the ledger taken
//! before some appends stands for sled as the disk held it, and the journal copied from the
//! ledger after them stands for the journal as written and synced.

mod common;

use std::path::Path;

use chipledger::store::JOURNAL_FILE;
use common::TestLedger;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `count` inventory events for one entity, ids `<prefix>-<n>`.
fn inventory(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|index| {
            format!(
                r#"{{"type":"inventory","id":"{prefix}-{index}","effective":"2025-02-01","entity":"holder","chip":"A100","quantity":{},"country":"FR"}}"#,
                index % 7 + 1
            ) + "\n"
        })
        .collect()
}

const HOLDER: &str = r#"{"type":"entity","id":"E-0","effective":"2025-01-13","entity":"holder","name":"Holder","hq":"FR"}"#;

/// The offsets and padded lengths of the frames from offset 0, read as FORMAT.md 6.1 lays
/// them out (magic, u32 LE payload length, u64 LE batch, payload, 32-byte checksum, padding
/// to 4 KiB), as long as the magic holds.
fn frames(journal: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut offset = 0;
    while journal.len() >= offset + 16 && &journal[offset..offset + 4] == b"CLJ1" {
        let payload = u32::from_le_bytes(journal[offset + 4..offset + 8].try_into().unwrap());
        let length = (16 + payload as usize + 32).next_multiple_of(4096);
        found.push((offset, length));
        offset += length;
    }
    found
}

/// A ledger with the holder, a copy of it (`before`), then two appends to the ledger.
fn two_appends_after_a_copy() -> (TestLedger, TestLedger) {
    let ledger = TestLedger::with(HOLDER);
    let before = TestLedger::new_uninitialized();
    copy_dir(&ledger.dir, &before.dir);
    ledger
        .run(&["append", "-"], Some(&inventory("A", 3)))
        .expect(0);
    ledger
        .run(&["append", "-"], Some(&inventory("B", 2)))
        .expect(0);
    (ledger, before)
}

/// Opening the ledger fails with exit 3, its message holding every one of `words`.
fn refused(ledger: &TestLedger, words: &[&str]) {
    let run = ledger.run(&["log"], None).expect(3);
    for word in words {
        assert!(run.stderr.contains(word), "`{word}` not in: {}", run.stderr);
    }
}

fn journal_path(ledger: &TestLedger) -> std::path::PathBuf {
    ledger.dir.join("store").join(JOURNAL_FILE)
}

#[test]
fn batches_only_the_journal_holds_are_replayed_at_open() {
    let (ledger, before) = two_appends_after_a_copy();
    std::fs::copy(journal_path(&ledger), journal_path(&before)).unwrap();
    assert_eq!(before.logged_ids(), ledger.logged_ids());
    assert_eq!(before.logged_ids().len(), 6);
    before.run(&["verify"], None).expect(0);
    assert_eq!(before.size_and_root(), ledger.size_and_root());
    // The replayed ledger takes further appends and keeps them.
    before
        .run(&["append", "-"], Some(&inventory("C", 1)))
        .expect(0);
    assert_eq!(before.logged_ids().len(), 7);
    before.run(&["verify"], None).expect(0);
}

#[test]
fn a_torn_last_frame_is_an_unacknowledged_batch_and_is_left_out() {
    let (ledger, before) = two_appends_after_a_copy();
    let mut journal = std::fs::read(journal_path(&ledger)).unwrap();
    let found = frames(&journal);
    // The marker written when `init` flushed the genesis batch, the holder's append, A, B.
    assert_eq!(found.len(), 4, "{found:?}");
    let (offset, _) = found[3];
    journal[offset + 40] ^= 0xFF;
    std::fs::write(journal_path(&before), &journal).unwrap();
    assert_eq!(before.logged_ids(), ["E-0", "A-0", "A-1", "A-2"]);
    before.run(&["verify"], None).expect(0);
    // The next batch goes where the torn frame was, and is kept.
    before
        .run(&["append", "-"], Some(&inventory("C", 1)))
        .expect(0);
    assert_eq!(before.logged_ids(), ["E-0", "A-0", "A-1", "A-2", "C-0"]);
    before.run(&["verify"], None).expect(0);
}

#[test]
fn a_damaged_frame_before_an_intact_one_is_named() {
    let (ledger, before) = two_appends_after_a_copy();
    let mut journal = std::fs::read(journal_path(&ledger)).unwrap();
    let (offset, _) = frames(&journal)[2];
    journal[offset + 40] ^= 0xFF;
    std::fs::write(journal_path(&before), &journal).unwrap();
    refused(&before, &["the journal's frame at offset", "damaged"]);
}

#[test]
fn a_damaged_marker_before_an_intact_frame_is_named() {
    let (ledger, before) = two_appends_after_a_copy();
    let mut journal = std::fs::read(journal_path(&ledger)).unwrap();
    // The marker init wrote at offset 0 (an empty payload: its checksum starts at byte 16).
    journal[20] ^= 0xFF;
    std::fs::write(journal_path(&before), &journal).unwrap();
    refused(&before, &["the journal's frame at offset 0 is damaged"]);
}

#[test]
fn a_journal_that_records_more_than_sled_holds_durably_is_refused() {
    let ledger = TestLedger::with(HOLDER);
    let before = TestLedger::new_uninitialized();
    copy_dir(&ledger.dir, &before.dir);
    // One batch larger than the journal takes: flushed into sled, and the journal restarted
    // with a marker saying sled is durable through it.
    let file = ledger.path("large.ndjson");
    std::fs::write(&file, inventory("L", 1500)).unwrap();
    ledger
        .run(&["import", file.to_str().unwrap(), "--batch", "1500"], None)
        .expect(0);
    let journal = std::fs::read(journal_path(&ledger)).unwrap();
    assert_eq!(frames(&journal)[0].1, 4096, "a marker frame at offset 0");
    std::fs::copy(journal_path(&ledger), journal_path(&before)).unwrap();
    refused(&before, &["its journal records it durable through batch"]);
}

#[test]
fn frames_left_from_before_a_restart_are_not_replayed() {
    let (ledger, _) = two_appends_after_a_copy();
    let file = ledger.path("large.ndjson");
    std::fs::write(&file, inventory("L", 1500)).unwrap();
    ledger
        .run(&["import", file.to_str().unwrap(), "--batch", "1500"], None)
        .expect(0);
    ledger
        .run(&["append", "-"], Some(&inventory("C", 1)))
        .expect(0);
    let journal = std::fs::read(journal_path(&ledger)).unwrap();
    // The marker, C's frame, then what is left of the frames before the restart.
    let found = frames(&journal);
    assert_eq!(found[0].1, 4096);
    let ids = ledger.logged_ids();
    assert_eq!(ids.len(), 1 + 3 + 2 + 1500 + 1);
    assert_eq!(ids.last().map(String::as_str), Some("C-0"));
    ledger.run(&["verify"], None).expect(0);
}

#[test]
fn a_missing_or_resized_journal_is_named() {
    let ledger = TestLedger::with(HOLDER);
    let journal = std::fs::read(journal_path(&ledger)).unwrap();
    std::fs::write(journal_path(&ledger), &journal[..4096]).unwrap();
    refused(&ledger, &["the journal is 4096 bytes"]);
    std::fs::remove_file(journal_path(&ledger)).unwrap();
    refused(&ledger, &["journal", "is missing"]);
    std::fs::write(journal_path(&ledger), &journal).unwrap();
    ledger.run(&["verify"], None).expect(0);
}
