//! Bad input is refused with exit code 2, a message naming the line and the field, and the
//! ledger exactly as it was (same size, same root), through `append`, `check` and `import`.

mod common;

use common::{BASE, TestLedger};

const GOOD: &str = r#"{"type":"shipment","id":"S-ok","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"US","chip":"H100","quantity":10}"#;

/// (what, bad line, field named in the message or "" for the whole line, words in the message)
fn cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let shipment = |fields: &str| {
        format!(
            r#"{{"type":"shipment","id":"S-bad","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"MY","chip":"H100",{fields}}}"#
        )
    };
    vec![
        ("malformed JSON", r#"{"type":"shipment","id":"S-bad""#.to_string(), "", "not valid JSON"),
        ("trailing garbage", format!("{GOOD} x"), "", "not valid JSON"),
        ("not an object", "[1,2,3]".to_string(), "", "JSON object"),
        ("unknown field", shipment(r#""quantity":1,"colour":"red""#), "colour", "not a field"),
        ("field of another type", shipment(r#""quantity":1,"tier":2"#), "tier", "does not belong"),
        ("repeated field", shipment(r#""quantity":1,"quantity":2"#), "quantity", "more than once"),
        ("unknown type", r#"{"type":"gift","id":"G-1","effective":"2025-03-01"}"#.to_string(), "type", "not an event type"),
        ("missing type", r#"{"id":"G-1","effective":"2025-03-01"}"#.to_string(), "type", "missing"),
        ("missing field", shipment(r#""basis":"lpp""#), "quantity", "missing"),
        ("lowercase country", shipment(r#""quantity":1"#).replace(r#""country":"MY""#, r#""country":"my""#), "country", "uppercase"),
        ("unassigned country", shipment(r#""quantity":1"#).replace(r#""country":"MY""#, r#""country":"XX""#), "country", "not an assigned"),
        ("UK for GB", shipment(r#""quantity":1"#).replace(r#""country":"MY""#, r#""country":"UK""#), "country", "GB"),
        ("impossible date", shipment(r#""quantity":1"#).replace("2025-03-01", "2025-02-30"), "effective", "not a calendar date"),
        ("malformed date", shipment(r#""quantity":1"#).replace("2025-03-01", "03/01/2025"), "effective", "YYYY-MM-DD"),
        ("negative number", shipment(r#""quantity":-5"#), "quantity", "negative"),
        ("fractional number", shipment(r#""quantity":2.5"#), "quantity", "whole number"),
        ("exponent number", shipment(r#""quantity":1e3"#), "quantity", "whole number"),
        ("overflowing number", shipment(r#""quantity":18446744073709551616"#), "quantity", "whole number"),
        ("number out of range", shipment(r#""quantity":1000000001"#), "quantity", "out of range"),
        ("number as string", shipment(r#""quantity":"10""#), "quantity", "found the string"),
        ("zero quantity", shipment(r#""quantity":0"#), "quantity", "out of range"),
        ("id with a space", shipment(r#""quantity":1"#).replace("S-bad", "S bad"), "id", "identifiers use only"),
        ("id too long", shipment(r#""quantity":1"#).replace("S-bad", &"x".repeat(129)), "id", "at most 128"),
        ("empty id", shipment(r#""quantity":1"#).replace("S-bad", ""), "id", "empty"),
        ("unknown basis", shipment(r#""quantity":1,"basis":"gift""#), "basis", "not a basis"),
        ("tier out of range", r#"{"type":"tier_change","id":"T-1","effective":"2025-03-01","country":"MY","tier":4}"#.to_string(), "tier", "out of range"),
        ("bad training_ops", r#"{"type":"weights_hosting","id":"W-1","effective":"2025-05-01","entity":"acme","model":"m","training_ops":"3x26","open_weights":false,"country":"AE","secured":true}"#.to_string(), "training_ops", "whole number of operations"),
        ("national VEU without country", r#"{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"acme","scope":"national"}"#.to_string(), "country", "national VEU names"),
        ("control character in a name", r#"{"type":"entity","id":"E-x","effective":"2025-01-13","entity":"x","name":"bad\u0007name","hq":"US"}"#.to_string(), "name", "control character"),
        ("empty object", "{}".to_string(), "type", "missing"),
        ("null", "null".to_string(), "", "JSON object"),
        ("type as a number", r#"{"type":7,"id":"x","effective":"2025-03-01"}"#.to_string(), "type", "found the number 7"),
        ("repeated type", r#"{"type":"void","type":"void","id":"x","effective":"2025-03-01","target":"S","reason":"r"}"#.to_string(), "type", "more than once"),
        ("object for a number", shipment(r#""quantity":{"a":1}"#), "quantity", "found an object"),
        ("array for an id", shipment(r#""quantity":1"#).replace(r#""id":"S-bad""#, r#""id":["S"]"#), "id", "found an array"),
        ("boolean for a number", shipment(r#""quantity":true"#), "quantity", "found true"),
        ("reserved id", shipment(r#""quantity":1"#).replace("S-bad", "chipledger:forged"), "id", "reserved"),
        ("universal VEU with a country", r#"{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"acme","scope":"universal","country":"US"}"#.to_string(), "country", "leave `country` out"),
        ("unknown scope", r#"{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"acme","scope":"galactic"}"#.to_string(), "scope", "not a scope"),
        ("year before 1900", shipment(r#""quantity":1"#).replace("2025-03-01", "1899-12-31"), "effective", "outside 1900"),
        ("date with a time", shipment(r#""quantity":1"#).replace("2025-03-01", "2025-03-01T10:00:00Z"), "effective", "YYYY-MM-DD"),
        ("zero TPP", r#"{"type":"chip_model","id":"M-1","effective":"2025-01-13","chip":"Z1","tpp":0,"controlled":true}"#.to_string(), "tpp", "out of range"),
        ("TPP too large", r#"{"type":"chip_model","id":"M-1","effective":"2025-01-13","chip":"Z1","tpp":1000000001,"controlled":true}"#.to_string(), "tpp", "out of range"),
        ("negative allocation", r#"{"type":"allocation_change","id":"A-1","effective":"2025-03-01","country":"MY","allocation_tpp":-1}"#.to_string(), "allocation_tpp", "negative"),
        ("fractional training_ops", r#"{"type":"weights_hosting","id":"W-1","effective":"2025-05-01","entity":"acme","model":"m","training_ops":"1.5","open_weights":false,"country":"AE","secured":true}"#.to_string(), "training_ops", "whole number"),
        ("training_ops beyond 2^128", r#"{"type":"weights_hosting","id":"W-1","effective":"2025-05-01","entity":"acme","model":"m","training_ops":"1e39","open_weights":false,"country":"AE","secured":true}"#.to_string(), "training_ops", "larger than 2^128"),
        ("name too long", format!(r#"{{"type":"entity","id":"E-x","effective":"2025-01-13","entity":"x","name":"{}","hq":"US"}}"#, "n".repeat(600)), "name", "at most 512"),
        ("blank name", r#"{"type":"entity","id":"E-x","effective":"2025-01-13","entity":"x","name":"   ","hq":"US"}"#.to_string(), "name", "empty"),
        ("string for a boolean", r#"{"type":"chip_model","id":"M-1","effective":"2025-01-13","chip":"Z1","tpp":5,"controlled":"yes"}"#.to_string(), "controlled", "true or false"),
        ("line over 64 KiB", format!(r#"{{"type":"entity","id":"E-x","effective":"2025-01-13","entity":"x","name":"{}","hq":"US"}}"#, "a".repeat(70_000)), "", "longer than 65536 bytes"),
    ]
}

#[test]
fn the_corpus_has_at_least_40_cases() {
    assert!(cases().len() >= 40, "{} cases", cases().len());
}

#[test]
fn invalid_utf8_is_refused_naming_the_line() {
    let ledger = TestLedger::with(BASE);
    let before = ledger.size_and_root();
    let file = ledger.path("latin1.ndjson");
    let mut bytes = format!("{GOOD}\n").into_bytes();
    bytes.extend_from_slice(b"{\"type\":\"entity\",\"id\":\"E-\xe9\"}\n");
    std::fs::write(&file, bytes).unwrap();
    for command in ["append", "import"] {
        let run = ledger
            .run(&[command, file.to_str().unwrap()], None)
            .expect(2);
        assert!(
            run.stderr.contains("line 2") && run.stderr.contains("UTF-8"),
            "{command}: {}",
            run.stderr
        );
    }
    assert_eq!(ledger.size_and_root(), before);
}

#[test]
fn append_refuses_each_bad_input_class_and_changes_nothing() {
    let ledger = TestLedger::with(BASE);
    let before = ledger.size_and_root();
    for (what, line, field, words) in cases() {
        // The bad line comes second, after a good one, so the batch must be refused whole.
        let input = format!("{GOOD}\n{line}\n");
        let run = ledger.run(&["append", "-"], Some(&input)).expect(2);
        assert!(
            run.stderr.contains("line 2"),
            "{what}: no line number in {}",
            run.stderr
        );
        if !field.is_empty() {
            assert!(
                run.stderr.contains(&format!("field `{field}`")),
                "{what}: field `{field}` not named in {}",
                run.stderr
            );
        }
        assert!(
            run.stderr.contains(words),
            "{what}: `{words}` not in {}",
            run.stderr
        );
        assert_eq!(ledger.size_and_root(), before, "{what}: the ledger changed");
    }
}

#[test]
fn import_checks_the_whole_file_before_writing_anything() {
    let ledger = TestLedger::with(BASE);
    let before = ledger.size_and_root();
    let file = ledger.path("bad.ndjson");
    for (what, line, field, words) in cases() {
        // Many good lines first: none of them may be written.
        let mut text = String::new();
        for index in 0..50 {
            text.push_str(&GOOD.replace("S-ok", &format!("S-ok-{index}")));
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        std::fs::write(&file, text).unwrap();
        let run = ledger
            .run(&["import", file.to_str().unwrap()], None)
            .expect(2);
        assert!(run.stderr.contains("line 51"), "{what}: {}", run.stderr);
        if !field.is_empty() {
            assert!(
                run.stderr.contains(&format!("field `{field}`")),
                "{what}: {}",
                run.stderr
            );
        }
        assert!(run.stderr.contains(words), "{what}: {}", run.stderr);
        assert_eq!(ledger.size_and_root(), before, "{what}: the ledger changed");
    }
}

#[test]
fn check_reports_bad_input_like_append() {
    let ledger = TestLedger::with(BASE);
    let before = ledger.size_and_root();
    let run = ledger
        .run(
            &["check", "-"],
            Some(&GOOD.replace("2025-03-01", "2025-13-01")),
        )
        .expect(2);
    assert!(
        run.stderr.contains("line 1") && run.stderr.contains("field `effective`"),
        "{}",
        run.stderr
    );
    assert_eq!(ledger.size_and_root(), before);
}

#[test]
fn json_format_reports_bad_input_on_stdout() {
    let ledger = TestLedger::with(BASE);
    let run = ledger
        .run(
            &["--format", "json", "append", "-"],
            Some(r#"{"type":"shipment","oops":1}"#),
        )
        .expect(2);
    let value = run.json();
    assert_eq!(value["status"], "error");
    assert_eq!(value["exit_code"], 2);
    assert!(value["message"].as_str().unwrap().contains("line 1"));
}

#[test]
fn empty_input_and_usage_errors_exit_2() {
    let ledger = TestLedger::with(BASE);
    ledger.run(&["append", "-"], Some("")).expect(2);
    ledger.run(&["append", "-"], Some("\n\n")).expect(2);
    ledger
        .run(&["state", "--as-of", "yesterday"], None)
        .expect(2);
    ledger.run(&["state", "--country", "ZZ"], None).expect(2);
    ledger.run(&["log", "--type", "gift"], None).expect(2);
    ledger.run(&["frobnicate"], None).expect(2);
    let run = common::run_in(
        None,
        &["state", "--as-of", "2025-01-01"],
        None,
        &[("CHIPLEDGER_NOW", "not a time")],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn duplicate_ids_and_unknown_references_are_refused_by_the_rules() {
    let ledger = TestLedger::with(BASE);
    let before = ledger.size_and_root();
    // A second record under an existing id with different content.
    let run = ledger
        .run(&["append", "-"], Some(r#"{"type":"entity","id":"E-acme","effective":"2025-01-13","entity":"acme2","name":"Other","hq":"US"}"#))
        .expect(1);
    assert!(
        run.stderr.contains("refused DUPLICATE_ID"),
        "{}",
        run.stderr
    );
    // The same content again is a no-op.
    let run = ledger
        .run(&["append", "-"], Some(r#"{"type":"entity","id":"E-acme","effective":"2025-01-13","entity":"acme","name":"Acme Cloud","hq":"US"}"#))
        .expect(0);
    assert!(run.stdout.contains("already recorded"), "{}", run.stdout);
    // References to things that do not exist.
    for (line, words) in [
        (
            r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"ghost","country":"US","chip":"H100","quantity":1}"#,
            "ghost",
        ),
        (
            r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"US","chip":"Z9000","quantity":1}"#,
            "Z9000",
        ),
        (
            r#"{"type":"void","id":"X-1","effective":"2025-03-01","target":"S-nothing","reason":"oops"}"#,
            "S-nothing",
        ),
        (
            r#"{"type":"veu_revoke","id":"R-1","effective":"2025-03-01","veu":"V-none"}"#,
            "V-none",
        ),
    ] {
        let run = ledger.run(&["append", "-"], Some(line)).expect(1);
        assert!(
            run.stderr.contains("refused UNKNOWN_REFERENCE") && run.stderr.contains(words),
            "{}",
            run.stderr
        );
    }
    assert_eq!(ledger.size_and_root(), before);
}

/// An import decides ids as `append` does: a line that repeats an earlier one exactly, in the
/// log or earlier in the same file, is skipped; an id already used with other content stops
/// the import there, refused: the lines before it are recorded, none after it.
#[test]
fn an_import_skips_repeated_lines_and_refuses_a_reused_id() {
    let ledger = TestLedger::with(BASE);
    let acme = r#"{"type":"entity","id":"E-acme","effective":"2025-01-13","entity":"acme","name":"Acme Cloud","hq":"US"}"#;
    let file = ledger.path("repeats.ndjson");
    let lines = [
        GOOD.to_string(),
        acme.to_string(),
        GOOD.to_string(),
        GOOD.replace("S-ok", "S-ok-2"),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let run = ledger
        .run(
            &["--format", "json", "import", file.to_str().unwrap()],
            None,
        )
        .expect(0);
    // A progress line per committed batch, then the summary.
    let last = run.stdout.trim().lines().last().unwrap();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(
        (&summary["recorded"], &summary["already_recorded"]),
        (&serde_json::json!(2), &serde_json::json!(2)),
        "{}",
        run.stdout
    );
    let before = ledger.size_and_root();
    let lines = [
        GOOD.replace("S-ok", "S-ok-3"),
        GOOD.replace("\"quantity\":10", "\"quantity\":11"),
        GOOD.replace("S-ok", "S-ok-4"),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let run = ledger
        .run(&["import", file.to_str().unwrap()], None)
        .expect(1);
    assert!(
        run.stderr.contains("line 2") && run.stderr.contains("refused DUPLICATE_ID"),
        "{}",
        run.stderr
    );
    assert_eq!(ledger.size_and_root().0, before.0 + 1);
}

/// `import --keep-going --rejects FILE` records every event it can and copies each refused line
/// to FILE as the input has it (spacing, field order and all, without its line ending), in
/// input order, for the operator to fix and import again.
#[test]
fn keep_going_records_the_rest_and_copies_each_refused_line_verbatim() {
    let ledger = TestLedger::with(BASE);
    let embargoed = r#"{ "country": "CN", "type": "shipment", "id": "S-cn", "effective": "2025-03-01", "exporter": "nvidia", "consignee": "acme", "chip": "H100", "quantity": 10 }"#;
    let reused = GOOD.replace("\"quantity\":10", "\"quantity\":12");
    let file = ledger.path("mixed.ndjson");
    let rejects = ledger.path("rejects.ndjson");
    let text = [
        GOOD.to_string(),
        String::new(),
        format!("{embargoed}\r"),
        GOOD.replace("S-ok", "S-ok-2"),
        reused.clone(),
        GOOD.replace("S-ok", "S-ok-3"),
    ]
    .join("\n")
        + "\n";
    std::fs::write(&file, text).unwrap();
    let before = ledger.size_and_root().0;
    let run = ledger
        .run(
            &[
                "--format",
                "json",
                "import",
                file.to_str().unwrap(),
                "--keep-going",
                "--rejects",
                rejects.to_str().unwrap(),
            ],
            None,
        )
        .expect(1);
    // Progress lines, the summary, then the error that gives the exit code.
    let summary = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["status"] == "imported")
        .unwrap();
    assert_eq!(
        (&summary["recorded"], &summary["refused"]),
        (&serde_json::json!(3), &serde_json::json!(2)),
        "{}",
        run.stdout
    );
    assert_eq!(ledger.size_and_root().0, before + 3);
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        format!("{embargoed}\n{reused}\n")
    );
}
