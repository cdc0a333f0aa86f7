//! Tamper drills on the store itself: a flipped byte in a stored record or in the records file,
//! swapped or missing bundles, a truncated records file, a stale tile, a rolled-back head, damaged indexes and snapshots. `verify` names what
//! and where (exit 1); damage sled itself reports maps to exit 3 with advice.

mod common;

use chipledger::store::{Batch, Store};
use common::TestLedger;

/// A ledger with a few bundles (600 records) and snapshots every 100 records.
fn fresh() -> TestLedger {
    let temp_ledger = TestLedger::new_uninitialized();
    let now = chipledger::date::Instant::parse(common::NOW).unwrap();
    let (mut ledger, _) = chipledger::ledger::Ledger::create_with(
        &temp_ledger.dir,
        Some("test.example/tamper"),
        now,
        100,
    )
    .unwrap();
    let mut lines = vec![r#"{"type":"entity","id":"E-a","effective":"2025-01-13","entity":"a","name":"A","hq":"FR"}"#.to_string()];
    for index in 0..600 {
        lines.push(format!(
            r#"{{"type":"inventory","id":"I-{index}","effective":"2025-02-01","entity":"a","chip":"A100","quantity":1,"country":"FR"}}"#
        ));
    }
    for line in &lines {
        ledger
            .submit(&chipledger::input::parse_event(line).unwrap(), now)
            .unwrap()
            .unwrap();
    }
    ledger.commit().unwrap();
    // A late record, so the late index has an entry.
    let late = r#"{"type":"inventory","id":"I-late","effective":"2025-01-20","entity":"a","chip":"H100","quantity":1,"country":"FR"}"#;
    ledger
        .submit(&chipledger::input::parse_event(late).unwrap(), now)
        .unwrap()
        .unwrap();
    ledger.commit().unwrap();
    drop(ledger);
    temp_ledger.run(&["verify"], None).expect(0);
    temp_ledger
}

/// Writes raw values into the store, as an attacker with the files would.
fn tamper(ledger: &TestLedger, write: impl FnOnce(&Store) -> Batch) {
    let store = Store::open(&ledger.dir.join("store")).unwrap();
    let batch = write(&store);
    store.commit(&batch).unwrap();
}

fn verify_fails(ledger: &TestLedger, words: &[&str]) {
    let run = ledger.run(&["verify"], None).expect(1);
    for word in words {
        assert!(run.stderr.contains(word), "`{word}` not in: {}", run.stderr);
    }
}

/// Where entry `index` of an entry bundle starts (its length prefix).
fn entry_offset(bundle: &[u8], index: usize) -> usize {
    let mut offset = 0;
    for _ in 0..index {
        offset += 2 + usize::from(u16::from_be_bytes([bundle[offset], bundle[offset + 1]]));
    }
    offset
}

#[test]
fn a_flipped_byte_in_a_stored_record_is_named() {
    let ledger = fresh();
    tamper(&ledger, |store| {
        let mut bundle = store.bundle(1).unwrap().unwrap().to_vec();
        // Record 256 + 3: flip a byte inside the fourth record.
        let offset = entry_offset(&bundle, 3);
        bundle[offset + 2 + 60] ^= 0x04;
        Batch {
            bundles: vec![(1, bundle)],
            ..Batch::default()
        }
    });
    verify_fails(&ledger, &["record 259:"]);
}

#[test]
fn a_swapped_or_missing_bundle_is_named() {
    let ledger = fresh();
    tamper(&ledger, |store| Batch {
        bundles: vec![
            (1, store.bundle(0).unwrap().unwrap().to_vec()),
            (0, store.bundle(1).unwrap().unwrap().to_vec()),
        ],
        ..Batch::default()
    });
    verify_fails(&ledger, &["record 0:", "it says it is record 256"]);

    let ledger = fresh();
    let bytes = tamper_read(&ledger, |store| store.bundle(2).unwrap().unwrap().to_vec());
    tamper(&ledger, |_| Batch {
        bundles: vec![(1, bytes)],
        ..Batch::default()
    });
    verify_fails(&ledger, &["record 256:"]);
}

#[test]
fn a_bundle_cut_inside_an_entry_is_named() {
    let ledger = fresh();
    tamper(&ledger, |store| {
        let mut bundle = store.bundle(1).unwrap().unwrap().to_vec();
        let offset = entry_offset(&bundle, 3);
        bundle.truncate(offset + 2 + 10);
        Batch {
            bundles: vec![(1, bundle)],
            ..Batch::default()
        }
    });
    verify_fails(&ledger, &["record 256: bundle 1:", "entry 3 claims"]);
}

fn tamper_read<T>(ledger: &TestLedger, read: impl FnOnce(&Store) -> T) -> T {
    let store = Store::open(&ledger.dir.join("store")).unwrap();
    read(&store)
}

#[test]
fn a_stale_tile_is_named() {
    let ledger = fresh();
    // Tile 0/0 (records 0 to 255) replaced by tile 0/1's hashes.
    tamper(&ledger, |store| Batch {
        tiles: vec![(0, 0, store.tile(0, 1).unwrap().unwrap().to_vec())],
        ..Batch::default()
    });
    verify_fails(&ledger, &["Merkle tile 0/0", "records 0 to 255"]);
    // The partial tile of the right edge, one hash short (as it was a few appends ago).
    let ledger = fresh();
    tamper(&ledger, |store| {
        let tile = store.tile(0, 2).unwrap().unwrap().to_vec();
        Batch {
            tiles: vec![(0, 2, tile[..tile.len() - 32].to_vec())],
            ..Batch::default()
        }
    });
    verify_fails(&ledger, &["Merkle tile 0/2"]);
}

#[test]
fn a_rolled_back_head_is_named_and_refused_for_writing() {
    let ledger = fresh();
    tamper(&ledger, |store| {
        let mut head = store.head().unwrap().unwrap();
        head.size -= 5;
        Batch {
            head: Some(head),
            ..Batch::default()
        }
    });
    verify_fails(
        &ledger,
        &["the head says the log has 598 records; the bundles hold 603"],
    );
    let run = ledger
        .run(
            &["append", "-"],
            Some(
                r#"{"type":"aia_certification","id":"C-1","effective":"2025-03-01","entity":"a"}"#,
            ),
        )
        .expect(3);
    assert!(
        run.stderr.contains("corrupt")
            && run
                .stderr
                .contains("verify it against your last export or checkpoint"),
        "{}",
        run.stderr
    );
}

#[test]
fn damaged_indexes_and_snapshots_are_named() {
    let cases: [(&[u8], &str); 4] = [
        (b"ids/\0\0\0\0\0\0\0\0", "id-index chunk 0"),
        (b"pos/\0\0\0\0\0\0\0\0", "position-index chunk 0"),
        (b"late/\0\0\0\0\0\0\x02\x5a", "late-record index"),
        (
            b"snap/\0\0\0\0\0\0\0\xc8\0\0\0\0",
            "prefix snapshot at 200 records",
        ),
    ];
    for (key, words) in cases {
        let ledger = fresh();
        tamper(&ledger, |store| {
            let mut value = store
                .derived(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{words}: no such key"))
                .to_vec();
            let middle = value.len() / 2;
            value[middle] ^= 0x10;
            Batch {
                derived_puts: vec![(key.to_vec(), value)],
                ..Batch::default()
            }
        });
        verify_fails(&ledger, &[words]);
    }
}

/// A prefix snapshot stored where the writer put none is named: at 0 records or beyond the log
/// (the replay never reaches it), or inside the log (it does not match the replay there).
#[test]
fn stray_prefix_snapshots_are_named() {
    let cases: [(u64, &str); 3] = [
        (0, "a prefix snapshot claims 0 records; the log has 603"),
        (
            10_000,
            "a prefix snapshot claims 10000 records; the log has 603",
        ),
        (150, "the prefix snapshot at 150 records differs"),
    ];
    for (size, words) in cases {
        let ledger = fresh();
        tamper(&ledger, |store| {
            let copied = store
                .derived(&chipledger::ledger::index::snapshot_key(200, 0))
                .unwrap()
                .expect("a snapshot at 200 records")
                .to_vec();
            Batch {
                derived_puts: vec![(chipledger::ledger::index::snapshot_key(size, 0), copied)],
                ..Batch::default()
            }
        });
        verify_fails(&ledger, &[words]);
    }
}

/// A ledger whose bundles lie in the records file: one import batch too large for the
/// journal (2,000 events), flushed into sled, its bundles into `store/records`.
fn flushed() -> TestLedger {
    let ledger = TestLedger::new();
    let mut lines = vec![r#"{"type":"entity","id":"E-a","effective":"2025-01-13","entity":"a","name":"A","hq":"FR"}"#.to_string()];
    for index in 0..2_000 {
        lines.push(format!(
            r#"{{"type":"inventory","id":"I-{index}","effective":"2025-02-01","entity":"a","chip":"A100","quantity":1,"country":"FR"}}"#
        ));
    }
    let file = ledger.path("input.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    ledger
        .run(&["import", file.to_str().unwrap()], None)
        .expect(0);
    let records = std::fs::metadata(ledger.dir.join("store").join("records")).unwrap();
    assert!(
        records.len() > 300_000,
        "the bundles are in the records file"
    );
    ledger
}

#[test]
fn a_flipped_byte_in_the_records_file_is_named() {
    let ledger = flushed();
    let path = ledger.dir.join("store").join("records");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();
    let run = ledger.run(&["verify"], None).expect(1);
    assert!(run.stderr.contains("record "), "{}", run.stderr);
}

#[test]
fn a_truncated_records_file_is_corruption_with_advice() {
    let ledger = flushed();
    let path = ledger.dir.join("store").join("records");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let length = file.metadata().unwrap().len();
    file.set_len(length / 2).unwrap();
    drop(file);
    for args in [&["verify"][..], &["log"][..]] {
        let run = ledger.run(args, None).expect(3);
        assert!(
            run.stderr.contains("the ledger store is corrupt")
                && run.stderr.contains("past the end of the records file"),
            "{}",
            run.stderr
        );
    }
    std::fs::remove_file(&path).unwrap();
    let run = ledger.run(&["verify"], None).expect(3);
    assert!(run.stderr.contains("the records file"), "{}", run.stderr);
}

#[test]
fn damage_sled_reports_is_unavailable_with_advice() {
    let ledger = fresh();
    // Scramble sled's data file past its segment header (20 bytes): sled's own checksums
    // refuse what follows. (Its messages are small: sled holds pointers to the entry bundles,
    // not the bundles, so those of a small ledger all lie in the first kilobyte.)
    let path = ledger.dir.join("store").join("db");
    let mut bytes = std::fs::read(&path).unwrap();
    for byte in &mut bytes[32..] {
        *byte ^= 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    for args in [&["verify"][..], &["state"][..], &["log"][..]] {
        let run = ledger.run(args, None).expect(3);
        assert!(
            run.stderr.contains("the ledger store is corrupt"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("verify it against your last export or checkpoint"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

/// A head naming another storage format (a ledger written by an earlier or a later chipledger)
/// is neither damage nor opened: every command says which format it found and which it reads,
/// exit 3, before anything is decided or written.
#[test]
fn a_ledger_in_another_storage_format_is_named_not_called_corrupt() {
    use chipledger::store::STORAGE_FORMAT;
    for (format, writer) in [
        (STORAGE_FORMAT - 1, "an earlier chipledger"),
        (STORAGE_FORMAT + 1, "a later chipledger"),
    ] {
        let ledger = fresh();
        let earlier = format < STORAGE_FORMAT;
        tamper(&ledger, |store| {
            let mut head = store.head().unwrap().unwrap();
            head.format = format;
            Batch {
                head: Some(head),
                // An earlier format's head is in sled itself, as an earlier chipledger leaves
                // it: a batch too large for the journal is flushed into sled.
                derived_puts: if earlier {
                    vec![(b"padding".to_vec(), vec![0; 300_000])]
                } else {
                    Vec::new()
                },
                ..Batch::default()
            }
        });
        if earlier {
            // Format 5 and earlier kept the entry bundles in sled and had no records file.
            std::fs::remove_file(ledger.dir.join("store").join("records")).unwrap();
        }
        let append =
            r#"{"type":"aia_certification","id":"C-1","effective":"2025-03-01","entity":"a"}"#;
        for (args, stdin) in [
            (&["verify"][..], None),
            (&["state"][..], None),
            (&["append", "-"][..], Some(append)),
        ] {
            let run = ledger.run(args, stdin).expect(3);
            let expected = format!(
                "is in storage format {format}, written by {writer}; this one reads format \
                 {STORAGE_FORMAT} only. Nothing was recorded"
            );
            assert!(run.stderr.contains(&expected), "{args:?}: {}", run.stderr);
            assert!(!run.stderr.contains("corrupt"), "{args:?}: {}", run.stderr);
        }
        match Store::open(&ledger.dir.join("store")) {
            Err(chipledger::store::StoreError::OtherFormat { format: found, .. }) => {
                assert_eq!(found, format)
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a store in format {format} opened"),
        }
    }
}

/// Queries decode stored records without re-checking them (`verify` does): a record rewritten
/// with well-formed bytes but without its back-links is named by `verify`, and the commands
/// that follow back-links refuse it instead of panicking.
#[test]
fn a_record_without_its_back_links_is_named_and_never_panics() {
    let ledger = fresh();
    tamper(&ledger, |store| {
        let bundle = store.bundle(1).unwrap().unwrap().to_vec();
        let start = entry_offset(&bundle, 3);
        let end = entry_offset(&bundle, 4);
        let mut record = chipledger::codec::decode_record(&bundle[start + 2..end]).unwrap();
        assert_eq!(record.seq, 259);
        assert!(!record.links.is_empty());
        record.links = Default::default();
        let bytes = bincode::encode_to_vec(&record, bincode::config::legacy()).unwrap();
        let mut rewritten = bundle[..start].to_vec();
        rewritten.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        rewritten.extend_from_slice(&bytes);
        rewritten.extend_from_slice(&bundle[end..]);
        Batch {
            bundles: vec![(1, rewritten)],
            ..Batch::default()
        }
    });
    verify_fails(&ledger, &["record 259:"]);
    let proof = ledger.dir.join("a.json");
    let run = ledger.run(
        &[
            "prove",
            "compliance",
            "--entity",
            "a",
            "-o",
            proof.to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for args in [&["state"][..], &["log"][..]] {
        let run = ledger.run(args, None);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}
