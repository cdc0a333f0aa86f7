//! Proofs: the RFC 6962 conformance vectors through the project's verification path; every
//! kind of proof verifies, and no single changed byte, left-out record, other key or rewritten
//! history gets past `verify-proof`.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use chipledger::proof::{self, compliance, consistency, inclusion, rfc6962};
use common::{BASE, TestLedger};

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|_| text.as_bytes().to_vec())
}

fn proof_hashes(value: &serde_json::Value) -> Vec<Vec<u8>> {
    value
        .as_array()
        .map(|hashes| {
            hashes
                .iter()
                .map(|hash| b64(hash.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn json_files(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, found);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            found.push(path);
        }
    }
}

#[test]
fn rfc6962_conformance_vectors_pass_through_the_verification_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/merkle");
    assert!(
        root.is_dir(),
        "\n\n*** The RFC 6962 conformance vectors are missing: expected them at {}. ***\n\
         *** They come from transparency-dev/merkle and live outside the project.  ***\n\n",
        root.display()
    );
    let mut files = Vec::new();
    json_files(&root, &mut files);
    files.sort();
    assert_eq!(
        files.len(),
        196,
        "expected 196 vector files under {}",
        root.display()
    );
    let (mut inclusion_count, mut consistency_count, mut rejected) = (0, 0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let vector: serde_json::Value = serde_json::from_str(&text).unwrap();
        let want_error = vector["wantErr"].as_bool().unwrap();
        let result = if vector.get("leafIdx").is_some() {
            inclusion_count += 1;
            rfc6962::verify_inclusion(
                vector["leafIdx"].as_u64().unwrap(),
                vector["treeSize"].as_u64().unwrap(),
                &b64(vector["root"].as_str().unwrap()),
                &b64(vector["leafHash"].as_str().unwrap()),
                &proof_hashes(&vector["proof"]),
            )
        } else {
            consistency_count += 1;
            rfc6962::verify_consistency(
                vector["size1"].as_u64().unwrap(),
                vector["size2"].as_u64().unwrap(),
                &b64(vector["root1"].as_str().unwrap()),
                &b64(vector["root2"].as_str().unwrap()),
                &proof_hashes(&vector["proof"]),
            )
        };
        assert_eq!(
            result.is_err(),
            want_error,
            "{}: {} ({result:?})",
            file.display(),
            vector["desc"]
        );
        rejected += usize::from(want_error);
    }
    assert!(inclusion_count > 0 && consistency_count > 0);
    assert!(
        rejected > 100,
        "the vectors include many mutated proofs: {rejected}"
    );
}

/// A ledger with history, a checkpoint, and one proof of each kind.
struct Proved {
    ledger: TestLedger,
    vkey: String,
    checkpoint: String,
    inclusion: String,
    consistency: String,
    entity_bundle: String,
    country_bundle: String,
}

const HISTORY: &str = r#"{"type":"entity","id":"E-sub","effective":"2025-01-13","entity":"acme-in","name":"Acme India","hq":"IN","parent":"acme"}
{"type":"inventory","id":"I-1","effective":"2025-01-20","entity":"acme","chip":"H100","quantity":5000,"country":"US"}
{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":3000}
{"type":"shipment","id":"S-2","effective":"2025-04-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":100}
{"type":"transfer","id":"T-1","effective":"2025-05-01","entity":"acme","from_country":"US","to_country":"IN","to_entity":"acme-in","chip":"H100","quantity":40}
{"type":"tier_change","id":"TC-1","effective":"2025-06-01","country":"BR","tier":3}
{"type":"shipment","id":"S-3","effective":"2025-06-02","exporter":"nvidia","consignee":"acme-in","country":"IN","chip":"A100","quantity":300}
{"type":"void","id":"X-1","effective":"2025-06-03","target":"S-2","reason":"cancelled"}
"#;

fn proved() -> Proved {
    let ledger = TestLedger::with(&format!("{BASE}{HISTORY}"));
    let file = |name: &str| ledger.path(name);
    let path = |name: &str| file(name).to_str().unwrap().to_string();
    ledger
        .run(&["checkpoint", "-o", &path("old.checkpoint")], None)
        .expect(0);
    ledger
        .run(&["append", "-"], Some(r#"{"type":"aia_certification","id":"C-1","effective":"2025-07-01","entity":"acme"}"#))
        .expect(0);
    ledger
        .run(&["checkpoint", "-o", &path("new.checkpoint")], None)
        .expect(0);
    ledger
        .run(
            &["prove", "inclusion", "S-1", "-o", &path("s1.tlog-proof")],
            None,
        )
        .expect(0);
    ledger
        .run(
            &[
                "prove",
                "consistency",
                "--old",
                &path("old.checkpoint"),
                "-o",
                &path("consistency.json"),
            ],
            None,
        )
        .expect(0);
    ledger
        .run(
            &[
                "prove",
                "compliance",
                "--entity",
                "acme-in",
                "--as-of",
                "2025-12-31",
                "-o",
                &path("acme-in.json"),
            ],
            None,
        )
        .expect(0);
    ledger
        .run(
            &[
                "prove",
                "compliance",
                "--country",
                "MY",
                "-o",
                &path("my.json"),
            ],
            None,
        )
        .expect(0);
    let read = |name: &str| std::fs::read_to_string(file(name)).unwrap();
    Proved {
        vkey: read("ledger/verifier.key").trim().to_string(),
        checkpoint: read("new.checkpoint"),
        inclusion: read("s1.tlog-proof"),
        consistency: read("consistency.json"),
        entity_bundle: read("acme-in.json"),
        country_bundle: read("my.json"),
        ledger,
    }
}

fn verify(text: &str, vkey: &str) -> Result<(), chipledger::error::Error> {
    match proof::kind_of(text) {
        proof::Kind::Inclusion => inclusion::verify(text, vkey).map(|_| ()),
        proof::Kind::Consistency => consistency::verify(text, vkey).map(|_| ()),
        proof::Kind::Compliance => compliance::verify(text, vkey).map(|_| ()),
        proof::Kind::Checkpoint => proof::checkpoint::verify(text, vkey).map(|_| ()),
    }
}

#[test]
fn each_kind_of_proof_verifies_offline_with_only_the_file_and_the_key() {
    let proved = proved();
    for (name, text) in [
        ("checkpoint", &proved.checkpoint),
        ("inclusion", &proved.inclusion),
        ("consistency", &proved.consistency),
        ("entity bundle", &proved.entity_bundle),
        ("country bundle", &proved.country_bundle),
    ] {
        verify(text, &proved.vkey).unwrap_or_else(|error| panic!("{name}: {error}"));
        // And through the command line, with no ledger anywhere near.
        let file = proved
            .ledger
            .path(&format!("copy-{}", name.replace(' ', "-")));
        std::fs::write(&file, text).unwrap();
        let key = proved.ledger.path("key.vkey");
        std::fs::write(&key, &proved.vkey).unwrap();
        let run = common::run_in(
            None,
            &[
                "verify-proof",
                file.to_str().unwrap(),
                "--vkey",
                key.to_str().unwrap(),
            ],
            None,
            &[],
        )
        .expect(0);
        assert!(run.stdout.contains("verified"), "{name}: {}", run.stdout);
    }
    let shown = inclusion::verify(&proved.inclusion, &proved.vkey).unwrap();
    assert_eq!(shown.record.event.id.as_str(), "S-1");
    let bundle = compliance::verify(&proved.entity_bundle, &proved.vkey).unwrap();
    assert_eq!(bundle.figures["entity"]["holdings"]["IN"]["H100"], 40);
    assert_eq!(bundle.figures["entity"]["holdings"]["IN"]["A100"], 300);
    assert_eq!(bundle.figures["entity"]["hq_tier"], 2);
}

#[test]
fn every_single_byte_change_of_a_proof_fails() {
    let proved = proved();
    for (name, text) in [
        ("inclusion", &proved.inclusion),
        ("consistency", &proved.consistency),
        ("country bundle", &proved.country_bundle),
    ] {
        let bytes = text.as_bytes();
        let mut accepted = Vec::new();
        for position in 0..bytes.len() {
            for change in [0x01u8, 0x20] {
                let mut changed = bytes.to_vec();
                changed[position] ^= change;
                if changed == bytes {
                    continue;
                }
                let Ok(changed_text) = String::from_utf8(changed) else {
                    continue; // not text: read_text refuses it before any parsing
                };
                if verify(&changed_text, &proved.vkey).is_ok() {
                    accepted.push(position);
                }
            }
        }
        assert!(
            accepted.is_empty(),
            "{name}: changes at bytes {accepted:?} were accepted"
        );
    }
}

/// The bundle with one record left out, written back in canonical form (as a dishonest
/// operator would write it).
fn bundle_without(text: &str, seq: u64) -> String {
    let mut bundle: compliance::Bundle = serde_json::from_str(text).unwrap();
    let before = bundle.records.len();
    bundle.records.retain(|record| record.seq != seq);
    assert_eq!(
        bundle.records.len(),
        before - 1,
        "exactly one record left out"
    );
    serde_json::to_string(&bundle).unwrap() + "\n"
}

#[test]
fn a_bundle_with_one_record_left_out_fails() {
    let proved = proved();
    let bundle: compliance::Bundle = serde_json::from_str(&proved.entity_bundle).unwrap();
    let seqs: Vec<u64> = bundle.records.iter().map(|record| record.seq).collect();
    assert!(seqs.len() >= 6, "{seqs:?}");
    for seq in seqs {
        let without = bundle_without(&proved.entity_bundle, seq);
        let error = compliance::verify(&without, &proved.vkey)
            .expect_err(&format!("record {seq} left out"));
        let message = error.to_string();
        assert!(
            message.contains("missing")
                || message.contains("lacks")
                || message.contains("not the commitment"),
            "record {seq}: {message}"
        );
    }
    // Changing a figure is caught too.
    let mut changed: compliance::Bundle = serde_json::from_str(&proved.country_bundle).unwrap();
    changed.figures["country"]["allocation_used_tpp"] = serde_json::json!(1);
    let text = serde_json::to_string(&changed).unwrap() + "\n";
    assert!(
        compliance::verify(&text, &proved.vkey)
            .unwrap_err()
            .to_string()
            .contains("figures")
    );
}

#[test]
fn a_checkpoint_from_a_different_key_fails() {
    let proved = proved();
    let other = TestLedger::with(BASE);
    let other_vkey = std::fs::read_to_string(other.dir.join("verifier.key"))
        .unwrap()
        .trim()
        .to_string();
    for text in [
        &proved.checkpoint,
        &proved.inclusion,
        &proved.consistency,
        &proved.entity_bundle,
    ] {
        assert!(verify(text, &other_vkey).is_err());
    }
    // The other ledger's checkpoint spliced into this ledger's proof fails with either key.
    let path = other.path("other.checkpoint");
    other
        .run(&["checkpoint", "-o", path.to_str().unwrap()], None)
        .expect(0);
    let other_checkpoint = std::fs::read_to_string(&path).unwrap();
    let (head, _) = proved.inclusion.split_once("\n\n").unwrap();
    let spliced = format!("{head}\n\n{other_checkpoint}");
    assert!(inclusion::verify(&spliced, &proved.vkey).is_err());
    assert!(inclusion::verify(&spliced, &other_vkey).is_err());
    let run = common::run_in(
        None,
        &[
            "verify-proof",
            path.to_str().unwrap(),
            "--vkey",
            &proved.vkey,
        ],
        None,
        &[],
    )
    .expect(1);
    assert!(
        run.stderr.contains("signature does not verify"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_rewritten_history_cannot_prove_consistency_and_fails_verify_checkpoint() {
    // Ledger A: 13 events; a checkpoint is signed.
    let original = TestLedger::with(&format!("{BASE}{HISTORY}"));
    let checkpoint = original.path("a.checkpoint");
    original
        .run(&["checkpoint", "-o", checkpoint.to_str().unwrap()], None)
        .expect(0);

    // Ledger B, by someone holding A's key: the same genesis and first 9 records, then a 10th
    // that differs (T-1 moves 30 H100 instead of 40), then the rest.
    let rewritten = TestLedger::new();
    for name in ["signing.key", "verifier.key"] {
        std::fs::copy(original.dir.join(name), rewritten.dir.join(name)).unwrap();
    }
    let lines: Vec<String> = format!("{BASE}{HISTORY}")
        .lines()
        .map(str::to_string)
        .collect();
    let mut changed = lines.clone();
    assert!(changed[8].contains(r#""id":"T-1""#));
    changed[8] = changed[8].replace(r#""quantity":40"#, r#""quantity":30"#);
    changed.push(
        r#"{"type":"aia_certification","id":"C-9","effective":"2025-07-01","entity":"acme"}"#
            .to_string(),
    );
    rewritten
        .run(&["append", "-"], Some(&(changed.join("\n") + "\n")))
        .expect(0);
    let export = |ledger: &TestLedger| {
        ledger
            .run(&["--format", "json", "log"], None)
            .expect(0)
            .stdout
    };
    let (a, b) = (export(&original), export(&rewritten));
    let a_lines: Vec<&str> = a.lines().collect();
    let b_lines: Vec<&str> = b.lines().collect();
    assert_eq!(
        a_lines[..9],
        b_lines[..9],
        "the first nine records are the same"
    );
    assert_ne!(a_lines[9], b_lines[9], "the tenth record differs");

    // B cannot prove consistency with A's checkpoint...
    let run = rewritten
        .run(
            &[
                "prove",
                "consistency",
                "--old",
                checkpoint.to_str().unwrap(),
                "-o",
                rewritten.path("c.json").to_str().unwrap(),
            ],
            None,
        )
        .expect(1);
    assert!(
        run.stderr.contains("history differs") || run.stderr.contains("rewritten"),
        "{}",
        run.stderr
    );
    // ... nor pass `verify --checkpoint`, of the store or of its export.
    let run = rewritten
        .run(
            &["verify", "--checkpoint", checkpoint.to_str().unwrap()],
            None,
        )
        .expect(1);
    assert!(run.stderr.contains("rewritten"), "{}", run.stderr);
    let export_file = rewritten.path("b.ndjson");
    rewritten
        .run(&["export", "-o", export_file.to_str().unwrap()], None)
        .expect(0);
    let vkey = original.dir.join("verifier.key");
    common::run_in(
        None,
        &[
            "verify",
            "--export",
            export_file.to_str().unwrap(),
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--vkey",
            vkey.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .expect(1);
    // A consistency proof forged from B's tree does not verify either.
    let reader = chipledger::ledger::Reader::open(&rewritten.dir).unwrap();
    let old = proof::checkpoint::verify(
        &std::fs::read_to_string(&checkpoint).unwrap(),
        &std::fs::read_to_string(&vkey).unwrap(),
    )
    .unwrap();
    let new_size = reader.size();
    let signer = std::fs::read_to_string(rewritten.dir.join("signing.key")).unwrap();
    let new = proof::checkpoint::sign(
        signer.trim(),
        &old.origin,
        new_size,
        reader.root_at(new_size).unwrap(),
    )
    .unwrap();
    let forged = consistency::build(&old, &new, &reader.prove_tree(old.size, new_size).unwrap());
    drop(reader);
    assert!(consistency::verify(&forged, std::fs::read_to_string(&vkey).unwrap().trim()).is_err());
    // The original ledger, by contrast, verifies against its checkpoint.
    original
        .run(
            &["verify", "--checkpoint", checkpoint.to_str().unwrap()],
            None,
        )
        .expect(0);
}

#[test]
fn a_truncated_export_fails_against_a_checkpoint() {
    let ledger = TestLedger::with(&format!("{BASE}{HISTORY}"));
    let checkpoint = ledger.path("cp");
    ledger
        .run(&["checkpoint", "-o", checkpoint.to_str().unwrap()], None)
        .expect(0);
    let file = ledger.path("export.ndjson");
    ledger
        .run(&["export", "-o", file.to_str().unwrap()], None)
        .expect(0);
    let vkey = ledger.dir.join("verifier.key");
    let args = |path: &str| {
        vec![
            "verify".to_string(),
            "--export".to_string(),
            path.to_string(),
            "--checkpoint".to_string(),
            checkpoint.to_str().unwrap().to_string(),
            "--vkey".to_string(),
            vkey.to_str().unwrap().to_string(),
        ]
    };
    let full = args(file.to_str().unwrap());
    common::run_in(
        None,
        &full.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[],
    )
    .expect(0);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let short = ledger.path("short.ndjson");
    std::fs::write(&short, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let truncated = args(short.to_str().unwrap());
    let run = common::run_in(
        None,
        &truncated.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[],
    )
    .expect(1);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    // The state as known at the checkpoint.
    let state = ledger.state(&["--checkpoint", checkpoint.to_str().unwrap()]);
    let (size, _) = ledger.size_and_root();
    assert_eq!(state["size"].as_u64(), Some(size));
}
