//! The rules of framework.md through the command line: one case per refusal code of section 11,
//! each with the figures in its message, and the worked examples of section 12.

mod common;

use common::{BASE, TestLedger};

/// Entities and baselines for the rule cases, on top of BASE.
const WORLD: &str = r#"{"type":"entity","id":"E-cn","effective":"2025-01-13","entity":"cn-lab","name":"CN Lab","hq":"CN"}
{"type":"entity","id":"E-sg","effective":"2025-01-13","entity":"sg-sub","name":"SG Subsidiary","hq":"SG","parent":"cn-lab"}
{"type":"entity","id":"E-fr","effective":"2025-01-13","entity":"fr-ai","name":"FR AI","hq":"FR"}
{"type":"entity","id":"E-ae","effective":"2025-01-13","entity":"ae-ai","name":"AE AI","hq":"AE"}
{"type":"entity","id":"E-us2","effective":"2025-01-13","entity":"us-uveu","name":"US UVEU Holder","hq":"US"}
{"type":"chip_model","id":"M-x1","effective":"2025-01-13","chip":"X1","tpp":1000000,"controlled":true}
"#;

struct Case {
    name: &'static str,
    setup: &'static str,
    event: &'static str,
    code: &'static str,
    words: &'static [&'static str],
    /// (before, after, limit, excess) in TPP, for quantitative refusals.
    figures: Option<(u64, u64, u64, u64)>,
}

fn check(case: &Case) {
    let ledger = TestLedger::with(&format!("{BASE}{WORLD}{}", case.setup));
    let before = ledger.size_and_root();
    let run = ledger
        .run(&["--format", "json", "append", "-"], Some(case.event))
        .expect(1);
    let value = run.json();
    assert_eq!(value["status"], "refused", "{}: {value}", case.name);
    assert_eq!(value["code"], case.code, "{}: {value}", case.name);
    let message = value["message"].as_str().unwrap();
    for word in case.words {
        assert!(
            message.contains(word),
            "{}: `{word}` not in: {message}",
            case.name
        );
    }
    assert!(
        run.stderr.contains(&format!("refused {}", case.code)),
        "{}: {}",
        case.name,
        run.stderr
    );
    if let Some((before_tpp, after_tpp, limit_tpp, excess_tpp)) = case.figures {
        let figures = &value["figures"];
        assert_eq!(
            figures["before_tpp"], before_tpp,
            "{}: {figures}",
            case.name
        );
        assert_eq!(figures["after_tpp"], after_tpp, "{}: {figures}", case.name);
        assert_eq!(figures["limit_tpp"], limit_tpp, "{}: {figures}", case.name);
        assert_eq!(
            figures["excess_tpp"], excess_tpp,
            "{}: {figures}",
            case.name
        );
        assert!(
            figures["excess_h100"].is_u64(),
            "{}: H100 equivalents",
            case.name
        );
    }
    assert_eq!(
        ledger.size_and_root(),
        before,
        "{}: a refusal changed the ledger",
        case.name
    );
}

#[test]
fn one_case_per_refusal_code() {
    let cases = [
        Case {
            name: "tier 3 destination",
            setup: "",
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"CN","chip":"H100","quantity":10}"#,
            code: "TIER3_DESTINATION",
            words: &["S-1", "CN", "Tier 3", "2025-03-01"],
            figures: None,
        },
        Case {
            name: "HQ in tier 3 through the parent",
            setup: "",
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"sg-sub","country":"SG","chip":"H100","quantity":10}"#,
            code: "HQ_TIER3",
            words: &["S-1", "sg-sub", "Tier 3"],
            figures: None,
        },
        Case {
            name: "country allocation (section 12)",
            setup: r#"{"type":"shipment","id":"S-0","effective":"2025-05-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":30000}
"#,
            event: r#"{"type":"shipment","id":"S-2","effective":"2026-02-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":20000}"#,
            code: "COUNTRY_ALLOCATION_EXCEEDED",
            words: &[
                "shipment S-2 would raise MY's allocation use to 791,550,000 TPP, over its 790,000,000 TPP allocation by 1,550,000 TPP (≈ 98 H100)",
            ],
            figures: Some((474_930_000, 791_550_000, 790_000_000, 1_550_000)),
        },
        Case {
            name: "LPP annual limit (section 12)",
            setup: r#"{"type":"shipment","id":"S-0","effective":"2025-06-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":1000}
"#,
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-09-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":700,"basis":"lpp"}"#,
            code: "LPP_ANNUAL_LIMIT",
            words: &["26,912,700 TPP", "26,900,000 TPP", "12,700 TPP", "2025"],
            figures: Some((15_831_000, 26_912_700, 26_900_000, 12_700)),
        },
        Case {
            name: "AIA certification",
            setup: "",
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"fr-ai","country":"FR","chip":"X1","quantity":253}"#,
            code: "AIA_CERTIFICATION_REQUIRED",
            words: &["fr-ai", "253,000,000 TPP", "no AIA certification"],
            figures: Some((0, 253_000_000, 253_000_000, 0)),
        },
        Case {
            name: "UVEU tier 1 share",
            setup: r#"{"type":"inventory","id":"I-1","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":800,"country":"US"}
{"type":"inventory","id":"I-2","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":70,"country":"AE"}
{"type":"inventory","id":"I-3","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":70,"country":"IN"}
{"type":"inventory","id":"I-4","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":70,"country":"MY"}
{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"us-uveu","scope":"universal"}
"#,
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"us-uveu","country":"BR","chip":"X1","quantity":70}"#,
            code: "UVEU_TIER1_SHARE",
            words: &["us-uveu", "Tier 1", "(74.07%)", "3/4"],
            // T = 1,080 units after the shipment, T1 = 800 (74.07%): 3/4 of T is 810.
            figures: Some((800_000_000, 800_000_000, 810_000_000, 10_000_000)),
        },
        Case {
            name: "UVEU country share (section 12)",
            setup: r#"{"type":"inventory","id":"I-1","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":9500,"country":"US"}
{"type":"inventory","id":"I-2","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":500,"country":"AE"}
{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"us-uveu","scope":"universal"}
"#,
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"us-uveu","country":"AE","chip":"X1","quantity":300}"#,
            code: "UVEU_COUNTRY_SHARE",
            words: &[
                "800,000,000 TPP",
                "10,300,000,000 TPP",
                "AE",
                "(7.77%)",
                "7/100",
            ],
            figures: Some((500_000_000, 800_000_000, 721_000_000, 79_000_000)),
        },
        Case {
            name: "UVEU US share",
            setup: r#"{"type":"inventory","id":"I-1","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":600,"country":"US"}
{"type":"inventory","id":"I-2","effective":"2025-01-13","entity":"us-uveu","chip":"X1","quantity":400,"country":"JP"}
{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"us-uveu","scope":"universal"}
"#,
            event: r#"{"type":"transfer","id":"T-1","effective":"2025-03-01","entity":"us-uveu","from_country":"US","to_country":"JP","chip":"X1","quantity":150}"#,
            code: "UVEU_US_SHARE",
            words: &["us-uveu", "headquartered in US", "1/2"],
            figures: Some((600_000_000, 450_000_000, 500_000_000, 50_000_000)),
        },
        Case {
            name: "national VEU cap",
            setup: r#"{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-AE","entity":"ae-ai","scope":"national","country":"AE"}
{"type":"shipment","id":"S-0","effective":"2025-03-01","exporter":"nvidia","consignee":"ae-ai","country":"AE","chip":"X1","quantity":1500}
"#,
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-04-01","exporter":"nvidia","consignee":"ae-ai","country":"AE","chip":"X1","quantity":100}"#,
            code: "NVEU_CAP_EXCEEDED",
            words: &["ae-ai", "AE", "2025 national VEU cap of 1,583,100,000 TPP"],
            figures: Some((1_500_000_000, 1_600_000_000, 1_583_100_000, 16_900_000)),
        },
        Case {
            name: "VEU eligibility",
            setup: "",
            event: r#"{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"my-dc","scope":"universal"}"#,
            code: "VEU_NOT_ELIGIBLE",
            words: &[
                "universal VEU needs headquarters in Tier 1",
                "my-dc",
                "Tier 2",
            ],
            figures: None,
        },
        Case {
            name: "basis not applicable",
            setup: "",
            event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":10,"basis":"aia"}"#,
            code: "BASIS_NOT_APPLICABLE",
            words: &["basis aia", "MY is not a Tier 1 country"],
            figures: None,
        },
        Case {
            name: "weights in tier 3",
            setup: "",
            event: r#"{"type":"weights_hosting","id":"W-1","effective":"2025-05-01","entity":"acme","model":"frontier","training_ops":"3e26","open_weights":false,"country":"CN","secured":true}"#,
            code: "WEIGHTS_TIER3",
            words: &["W-1", "CN", "Tier 3"],
            figures: None,
        },
        Case {
            name: "weights unauthorized",
            setup: "",
            event: r#"{"type":"weights_hosting","id":"W-1","effective":"2025-05-01","entity":"my-dc","model":"frontier","training_ops":"2e26","open_weights":false,"country":"AE","secured":true}"#,
            code: "WEIGHTS_UNAUTHORIZED",
            words: &["W-1", "AE", "my-dc", "no universal VEU"],
            figures: None,
        },
        Case {
            name: "insufficient holdings",
            setup: r#"{"type":"inventory","id":"I-1","effective":"2025-01-13","entity":"acme","chip":"H100","quantity":5,"country":"US"}
"#,
            event: r#"{"type":"transfer","id":"T-1","effective":"2025-03-01","entity":"acme","from_country":"US","to_country":"FR","chip":"H100","quantity":8}"#,
            code: "INSUFFICIENT_HOLDINGS",
            words: &["moves 8 H100", "holds 5", "short by 3"],
            figures: Some((79_155, 126_648, 79_155, 47_493)),
        },
        Case {
            name: "ruleset window",
            setup: "",
            event: r#"{"type":"shipment","id":"S-1","effective":"2024-12-31","exporter":"nvidia","consignee":"acme","country":"US","chip":"H100","quantity":10}"#,
            code: "RULESET_NOT_IN_FORCE",
            words: &["2024-12-31", "2025-01-13 to 2027-12-31"],
            figures: None,
        },
        Case {
            name: "unknown reference",
            setup: "",
            event: r#"{"type":"aia_certification","id":"C-1","effective":"2025-03-01","entity":"nobody"}"#,
            code: "UNKNOWN_REFERENCE",
            words: &["nobody", "not a registered entity"],
            figures: None,
        },
        Case {
            name: "duplicate id",
            setup: "",
            event: r#"{"type":"aia_certification","id":"E-acme","effective":"2025-03-01","entity":"acme"}"#,
            code: "DUPLICATE_ID",
            words: &["E-acme", "already record"],
            figures: None,
        },
        Case {
            name: "duplicate subject",
            setup: "",
            event: r#"{"type":"chip_model","id":"M-h100","effective":"2025-03-01","chip":"H100","tpp":20000,"controlled":true}"#,
            code: "DUPLICATE_SUBJECT",
            words: &["H100", "15,831 TPP"],
            figures: None,
        },
        Case {
            name: "already voided",
            setup: r#"{"type":"shipment","id":"S-0","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"US","chip":"H100","quantity":10}
{"type":"void","id":"X-0","effective":"2025-03-02","target":"S-0","reason":"typo"}
"#,
            event: r#"{"type":"void","id":"X-1","effective":"2025-03-03","target":"S-0","reason":"typo again"}"#,
            code: "ALREADY_VOIDED",
            words: &["S-0", "already voided"],
            figures: None,
        },
        Case {
            name: "future dated",
            setup: "",
            event: r#"{"type":"aia_certification","id":"C-1","effective":"2028-01-01","entity":"acme"}"#,
            code: "FUTURE_DATED",
            words: &["2028-01-01", "2027-12-31"],
            figures: None,
        },
    ];
    let mut codes: Vec<&str> = cases.iter().map(|case| case.code).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(
        codes.len(),
        chipledger::rules::Code::ALL.len(),
        "every code has a case"
    );
    for case in &cases {
        check(case);
    }
}

#[test]
fn a_whole_country_allocation_is_less_than_one_large_cluster() {
    // Section 12: one 20,000-GB200 cluster (800,000,000 TPP) exceeds a whole allocation.
    check(&Case {
        name: "20,000 GB200",
        setup: "",
        event: r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"GB200","quantity":20000}"#,
        code: "COUNTRY_ALLOCATION_EXCEEDED",
        words: &[
            "800,000,000 TPP",
            "790,000,000 TPP allocation by 10,000,000 TPP",
        ],
        figures: Some((0, 800_000_000, 790_000_000, 10_000_000)),
    });
    let ledger = TestLedger::with(BASE);
    let state = ledger.state(&["--country", "MY"]);
    assert_eq!(state["countries"].as_object().map(|c| c.len()), Some(0));
}

#[test]
fn lpp_worked_example() {
    // Section 12: 1,000 H100 on 2025-06-01; 699 more fit (26,896,869); on 2026-01-02 the
    // counter is back to zero.
    let ledger = TestLedger::with(&format!(
        "{BASE}{}",
        r#"{"type":"shipment","id":"S-0","effective":"2025-06-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":1000}
{"type":"shipment","id":"S-1","effective":"2025-09-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":699,"basis":"lpp"}
{"type":"shipment","id":"S-2","effective":"2026-01-02","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":1000,"basis":"lpp"}
"#
    ));
    let state = ledger.state(&["--entity", "in-dc"]);
    let lpp = &state["entities"]["in-dc"]["lpp_used_tpp"];
    assert_eq!(lpp["2025"], 26_896_869);
    assert_eq!(lpp["2026"], 15_831_000);
    // 700 instead of 699 would not fit; chosen automatically, it falls back to a licence.
    let run = ledger
        .run(&["--format", "json", "check", "-"], Some(r#"{"type":"shipment","id":"S-3","effective":"2025-10-01","exporter":"nvidia","consignee":"in-dc","country":"IN","chip":"H100","quantity":1}"#))
        .expect(0);
    let line: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["outcome"]["basis"], "license");
    assert_eq!(line["outcome"]["counts_allocation"], true);
}

#[test]
fn allocation_worked_example() {
    // Section 12: MY licences 30,000 H100 in 2025, 20,000 more in 2026 are refused; after an
    // allocation change to 1,580,000,000 they fit, leaving 788,450,000.
    let ledger = TestLedger::with(&format!(
        "{BASE}{}",
        r#"{"type":"shipment","id":"S-0","effective":"2025-05-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":30000}
"#
    ));
    let shipment = r#"{"type":"shipment","id":"S-2","effective":"2026-05-01","exporter":"nvidia","consignee":"my-dc","country":"MY","chip":"H100","quantity":20000}"#;
    let run = ledger.run(&["append", "-"], Some(shipment)).expect(1);
    assert!(
        run.stderr.contains("COUNTRY_ALLOCATION_EXCEEDED"),
        "{}",
        run.stderr
    );
    ledger
        .run(&["append", "-"], Some(r#"{"type":"allocation_change","id":"A-1","effective":"2026-04-01","country":"MY","allocation_tpp":1580000000}"#))
        .expect(0);
    ledger.run(&["append", "-"], Some(shipment)).expect(0);
    let my = &ledger.state(&["--country", "MY"])["countries"]["MY"];
    assert_eq!(my["allocation_tpp"], 1_580_000_000u64);
    assert_eq!(my["allocation_used_tpp"], 791_550_000u64);
    assert_eq!(my["allocation_remaining_tpp"], 788_450_000u64);
    // As of 2025 the allocation was the default one.
    let my_2025 = &ledger.state(&["--as-of", "2025-12-31", "--country", "MY"])["countries"]["MY"];
    assert_eq!(my_2025["allocation_tpp"], 790_000_000u64);
    assert_eq!(my_2025["allocation_used_tpp"], 474_930_000u64);
}

#[test]
fn cambodia_changes_tier_on_2026_02_03() {
    let ledger = TestLedger::with(&format!(
        "{BASE}{}",
        r#"{"type":"entity","id":"E-kh","effective":"2025-01-13","entity":"kh-dc","name":"KH DC","hq":"KH"}
"#
    ));
    let early = r#"{"type":"shipment","id":"S-1","effective":"2026-02-02","exporter":"nvidia","consignee":"kh-dc","country":"KH","chip":"H100","quantity":10}"#;
    let run = ledger.run(&["append", "-"], Some(early)).expect(1);
    assert!(run.stderr.contains("TIER3_DESTINATION"), "{}", run.stderr);
    let late = early.replace("2026-02-02", "2026-02-03");
    ledger.run(&["append", "-"], Some(&late)).expect(0);
    assert_eq!(
        ledger.state(&["--as-of", "2026-02-02"])["entities"]["kh-dc"]["hq_tier"],
        3
    );
    assert_eq!(
        ledger.state(&["--as-of", "2026-02-03"])["entities"]["kh-dc"]["hq_tier"],
        2
    );
    assert_eq!(
        ledger.state(&["--as-of", "2026-02-03"])["countries"]["KH"]["tier"],
        2
    );
}

#[test]
fn uncontrolled_chips_need_no_basis_and_count_nowhere() {
    let ledger = TestLedger::with(&format!(
        "{BASE}{WORLD}{}",
        r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"cn-lab","country":"CN","chip":"H20","quantity":5000}
"#
    ));
    let state = ledger.state(&["--entity", "cn-lab"]);
    assert_eq!(state["entities"]["cn-lab"]["holdings"]["CN"]["H20"], 5000);
    assert_eq!(state["entities"]["cn-lab"]["total_tpp"], 0);
    let run = ledger
        .run(&["append", "-"], Some(r#"{"type":"shipment","id":"S-2","effective":"2025-03-01","exporter":"nvidia","consignee":"cn-lab","country":"CN","chip":"H20","quantity":5,"basis":"license"}"#))
        .expect(1);
    assert!(
        run.stderr.contains("BASIS_NOT_APPLICABLE"),
        "{}",
        run.stderr
    );
}
