//! The signing key: created with mode 0600, refused (like ssh) when others may read it, never
//! printed, logged or exported; verifying needs only the public key.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{BASE, TestLedger};

#[test]
fn the_signing_key_is_private_and_never_leaves_its_file() {
    let ledger = TestLedger::with(BASE);
    let key_path = ledger.dir.join("signing.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the signing key is created owner-only");
    let secret = std::fs::read_to_string(&key_path).unwrap();
    let secret = secret.trim();
    assert!(secret.starts_with("PRIVATE+KEY+"));
    // PRIVATE+KEY+<name>+<id>+<base64>; the base64 itself may contain `+`.
    let key_material = secret.splitn(5, '+').nth(4).unwrap();
    assert!(key_material.len() >= 44, "{key_material}");

    // Nothing any command prints or writes contains the key.
    let export = ledger.path("export.ndjson");
    let checkpoint = ledger.path("checkpoint");
    let proof = ledger.path("proof");
    let bundle = ledger.path("bundle.json");
    let outputs = [
        ledger.run(&["checkpoint", "-o", checkpoint.to_str().unwrap()], None),
        ledger.run(&["--format", "json", "checkpoint"], None),
        ledger.run(&["export", "-o", export.to_str().unwrap()], None),
        ledger.run(
            &[
                "prove",
                "inclusion",
                "E-acme",
                "-o",
                proof.to_str().unwrap(),
            ],
            None,
        ),
        ledger.run(
            &[
                "prove",
                "compliance",
                "--entity",
                "acme",
                "-o",
                bundle.to_str().unwrap(),
            ],
            None,
        ),
        ledger.run(&["--format", "json", "log"], None),
        ledger.run(&["show", "0"], None),
        ledger.run(&["--format", "json", "state"], None),
        ledger.run(&["verify"], None),
    ];
    for run in outputs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            !run.stdout.contains(key_material) && !run.stderr.contains(key_material),
            "the key leaked: {key_material} in {} {}",
            run.stdout,
            run.stderr
        );
    }
    for file in [&export, &checkpoint, &proof, &bundle] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains(key_material),
            "{} holds the key",
            file.display()
        );
    }
    // The verifier key alone verifies the proofs, with no ledger.
    let vkey = std::fs::read_to_string(ledger.dir.join("verifier.key")).unwrap();
    common::run_in(
        None,
        &[
            "verify-proof",
            proof.to_str().unwrap(),
            "--vkey",
            vkey.trim(),
        ],
        None,
        &[],
    )
    .expect(0);
}

#[test]
fn a_signing_key_others_can_read_is_refused() {
    let ledger = TestLedger::with(BASE);
    let key_path = ledger.dir.join("signing.key");
    for mode in [0o640, 0o604, 0o644, 0o660] {
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).unwrap();
        let run = ledger.run(&["checkpoint"], None).expect(3);
        assert!(
            run.stderr.contains("must be private") && run.stderr.contains("chmod 600"),
            "{mode:o}: {}",
            run.stderr
        );
    }
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    ledger.run(&["checkpoint"], None).expect(0);
    // Refusing the key changed nothing: no commitment was appended for the refused attempts.
    let log = ledger
        .run(&["--format", "json", "log", "--type", "commitment"], None)
        .expect(0);
    assert_eq!(log.stdout.lines().count(), 1);
}
