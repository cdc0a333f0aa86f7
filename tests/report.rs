//! The HTML report (`chipledger report`), shell completions, the man page, output into a pipe
//! that closed early, `--timings`, and the state of many entities.
//!
//! Besides checks on the file's text, one test loads the report in a real headless Chromium and
//! fails on any console message (the page has no script, and its Content-Security-Policy turns
//! any attempt to load something into a console message). Without `/usr/bin/chromium` that test
//! says loudly that it was skipped, unless `CHIPLEDGER_REQUIRE_BROWSER=1`, when it fails.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::{BASE, TestLedger};

/// Writes the report of `ledger` to `name` beside it, with extra arguments; returns the run
/// and the page (empty when no file was written).
fn report(ledger: &TestLedger, name: &str, args: &[&str]) -> (common::Run, String) {
    let path = ledger.path(name);
    let path_text = path.to_str().expect("a UTF-8 path");
    let mut all = args.to_vec();
    all.extend_from_slice(&["report", "-o", path_text]);
    let run = ledger.run(&all, None);
    let page = std::fs::read_to_string(&path).unwrap_or_default();
    (run, page)
}

/// A ledger whose entities' display names are markup: every chart that names an entity must
/// show them as text.
fn hostile_names() -> TestLedger {
    let events = format!(
        "{BASE}{}",
        r#"{"type":"entity","id":"E-evil","effective":"2025-01-13","entity":"evil","name":"<script>alert(1)</script>","hq":"IN"}
{"type":"entity","id":"E-quote","effective":"2025-01-13","entity":"quote","name":"x\" onload=\"alert(2)","hq":"US"}
{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"evil","country":"IN","chip":"H100","quantity":100}
{"type":"inventory","id":"I-q","effective":"2025-01-13","entity":"quote","chip":"H100","quantity":1000,"country":"US"}
{"type":"veu_grant","id":"G-q","effective":"2025-02-01","veu":"V-Q","entity":"quote","scope":"universal"}
{"type":"shipment","id":"S-2","effective":"2025-04-01","exporter":"nvidia","consignee":"quote","country":"IN","chip":"H100","quantity":10,"basis":"lpp"}
"#
    );
    TestLedger::with(&events)
}

#[test]
fn entity_names_are_escaped_everywhere() {
    let ledger = hostile_names();
    let (run, page) = report(&ledger, "hostile.html", &[]);
    run.expect(0);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the name is not shown escaped"
    );
    assert!(!page.contains("<script>alert(1)</script>"));
    assert!(!page.contains("<script"), "the page has a script element");
    // The quote name appears in attribute-free text and in SVG titles; never as an attribute.
    assert!(page.contains("x&quot; onload=&quot;alert(2)"));
    assert!(!page.contains("onload=\"alert(2)"));
    // Both entities are where their names are shown: the LPP chart and the Universal VEU chart.
    let lpp = section(&page, "lpp");
    assert!(lpp.contains("&lt;script&gt;"), "{lpp}");
    let uveu = section(&page, "uveu");
    assert!(uveu.contains("x&quot; onload="), "{uveu}");
}

/// The text of `<section id="ID">` up to its end.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |end| start + end);
    &page[start..end]
}

const CHARTS: [&str; 4] = ["svg-allocations", "svg-uveu", "svg-timeline", "svg-lpp"];

/// The demo ledger, built by the binary, and its report.
fn demo_report() -> (TestLedger, String) {
    let ledger = TestLedger::new_uninitialized();
    common::run_in(
        None,
        &["--quiet", "demo", "--dir", ledger.dir.to_str().unwrap()],
        None,
        &[],
    )
    .expect(0);
    let (run, page) = report(&ledger, "demo.html", &["--format", "json"]);
    let summary = run.expect(0).json();
    assert_eq!(summary["status"], "written");
    assert_eq!(summary["verified"], true);
    assert_eq!(summary["bytes"].as_u64(), Some(page.len() as u64));
    assert_eq!(summary["as_of"], "2027-12-31");
    (ledger, page)
}

#[test]
fn the_demo_report_has_every_chart_and_section() {
    let (ledger, page) = demo_report();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains(
        "<title>chipledger report: demo.chipledger.example/ledger as of 2027-12-31</title>"
    ));
    for chart in CHARTS {
        assert!(
            page.contains(&format!("<svg id=\"{chart}\" class=\"chart\"")),
            "no {chart}"
        );
        assert!(page.contains(&format!("<title id=\"{chart}-title\">")));
        let figure = chart.replace("svg-", "chart-");
        assert!(
            page.contains(&format!("<figure id=\"{figure}\">")),
            "no {figure}"
        );
    }
    for section in ["allocations", "uveu", "timeline", "lpp", "audit-summary"] {
        assert!(
            page.contains(&format!("<section id=\"{section}\"")),
            "no {section}"
        );
    }
    assert_eq!(page.matches("<figcaption>").count(), 4);
    assert!(page.contains("id=\"audit-result\">verified</strong>"));

    // Self-contained: nothing to fetch, no script.
    for banned in [
        "<script", "<link", "src=", "href=", "url(", "@import", "https://",
    ] {
        assert!(!page.contains(banned), "the page contains {banned}");
    }
    assert!(page.contains("Content-Security-Policy"));

    // The figures are the state view's, with thousands separators.
    let state = ledger.state(&["--as-of", "2027-12-31"]);
    let malaysia = &state["countries"]["MY"];
    let grouped = |value: u64| chipledger::rules::refusal::grouped(u128::from(value));
    let expected = format!(
        "{} of {} TPP",
        grouped(malaysia["allocation_used_tpp"].as_u64().unwrap()),
        grouped(malaysia["allocation_tpp"].as_u64().unwrap())
    );
    assert!(
        section(&page, "allocations").contains(&expected),
        "{expected}"
    );
    let deccan = &state["entities"]["deccan-cloud"]["lpp_used_tpp"]["2025"];
    assert!(section(&page, "lpp").contains(&format!(
        "{} of 26,900,000 TPP",
        grouped(deccan.as_u64().unwrap())
    )));
    let acme = &state["entities"]["acme-cloud"]["uveu_ratios"];
    let bp = acme["tier1_share_bp"].as_u64().unwrap();
    assert!(section(&page, "uveu").contains(&format!("{}.{:02}% ≥ 75.00%", bp / 100, bp % 100)));

    // The last point of the tier chart is the state as of the date: the installed TPP of the
    // Tier 1 countries.
    let tier1: u64 = state["countries"]
        .as_object()
        .unwrap()
        .values()
        .filter(|country| country["tier"] == 1)
        .map(|country| country["installed_tpp"].as_u64().unwrap())
        .sum();
    assert!(
        section(&page, "timeline")
            .contains(&format!("Tier 1 on 2027-12-31: {} TPP", grouped(tier1)))
    );
}

#[test]
fn an_earlier_date_shows_the_state_then() {
    let (ledger, _) = demo_report();
    let path = ledger.path("early.html");
    let run = ledger
        .run(
            &[
                "report",
                "--as-of",
                "2025-06-30",
                "-o",
                path.to_str().unwrap(),
            ],
            None,
        )
        .expect(0);
    assert!(run.stderr.contains("wrote"), "{}", run.stderr);
    let page = std::fs::read_to_string(&path).unwrap();
    let state = ledger.state(&["--as-of", "2025-06-30"]);
    let used = state["countries"]["MY"]["allocation_used_tpp"]
        .as_u64()
        .unwrap();
    assert!(page.contains(&format!(
        "{} of 790,000,000 TPP",
        chipledger::rules::refusal::grouped(u128::from(used))
    )));
    // The tier chart stops at the date.
    assert!(page.contains("Tier 1 on 2025-06-30:"));
    assert!(!page.contains("on 2025-07-31:"));
}

#[test]
fn an_empty_ledger_says_so_instead_of_drawing() {
    let ledger = TestLedger::new();
    let (run, page) = report(&ledger, "empty.html", &[]);
    run.expect(0);
    for chart in [
        "chart-allocations",
        "chart-uveu",
        "chart-timeline",
        "chart-lpp",
    ] {
        assert!(
            page.contains(&format!("<figure id=\"{chart}\" class=\"no-data\">")),
            "{chart}"
        );
    }
    assert!(!page.contains("<svg"));
    assert!(page.contains("id=\"audit-result\">verified</strong>"));
}

#[test]
fn a_universal_veu_holder_without_chips_has_no_ratios_yet() {
    let ledger = TestLedger::with(&format!(
        "{BASE}{}",
        r#"{"type":"veu_grant","id":"G-1","effective":"2025-02-01","veu":"V-1","entity":"acme","scope":"universal"}
"#
    ));
    let (run, page) = report(&ledger, "idle.html", &[]);
    run.expect(0);
    let uveu = section(&page, "uveu");
    assert!(uveu.contains("class=\"ratio idle\""), "{uveu}");
    assert!(uveu.contains("not applicable: no controlled TPP"), "{uveu}");
    assert!(!uveu.contains("✓") && !uveu.contains("✗"), "{uveu}");
}

#[test]
fn a_checkpoint_is_shown_and_checked() {
    let ledger = TestLedger::with(BASE);
    ledger.run(&["checkpoint"], None).expect(0);
    let (run, page) = report(&ledger, "checkpoint.html", &[]);
    run.expect(0);
    let audit = section(&page, "audit-summary");
    assert!(
        audit.contains("signature valid; the log still has its root"),
        "{audit}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let ledger = TestLedger::with(BASE);
    let path = ledger.path("bad-date.html");
    let run = ledger
        .run(
            &[
                "report",
                "--as-of",
                "2025-02-30",
                "-o",
                path.to_str().unwrap(),
            ],
            None,
        )
        .expect(2);
    assert!(run.stderr.contains("--as-of"), "{}", run.stderr);
    assert!(!path.exists());

    let run = ledger
        .run(
            &["report", "-o", "/nonexistent-directory/report.html"],
            None,
        )
        .expect(3);
    assert!(
        run.stderr.contains("/nonexistent-directory/report.html"),
        "{}",
        run.stderr
    );
    let directory = ledger.path("");
    let run = ledger
        .run(&["report", "-o", directory.to_str().unwrap()], None)
        .expect(2);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);

    let json = ledger
        .run(
            &[
                "--format",
                "json",
                "report",
                "--as-of",
                "tomorrow",
                "-o",
                path.to_str().unwrap(),
            ],
            None,
        )
        .expect(2)
        .json();
    assert_eq!(json["status"], "error");
    assert_eq!(json["exit_code"], 2);

    // No ledger: unavailable, and no file left behind.
    let missing = TestLedger::new_uninitialized();
    let target = missing.path("missing.html");
    missing
        .run(&["report", "-o", target.to_str().unwrap()], None)
        .expect(3);
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(missing.path(""))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_ledger_that_fails_verification_gets_a_report_that_says_so_and_exit_1() {
    let ledger = TestLedger::with(BASE);
    {
        let store = chipledger::store::Store::open(&ledger.dir.join("store")).unwrap();
        let mut head = store.head().unwrap().unwrap();
        head.root[0] ^= 1;
        store
            .commit(&chipledger::store::Batch {
                head: Some(head),
                ..chipledger::store::Batch::default()
            })
            .unwrap();
    }
    let (run, page) = report(&ledger, "failed.html", &[]);
    let run = run.expect(1);
    assert!(
        run.stderr.contains("verification failed") && run.stderr.contains("was written"),
        "{}",
        run.stderr
    );
    assert!(
        page.contains("verification FAILED"),
        "no failure on the page"
    );
    assert!(page.contains("<span class=\"bad\">FAILED</span>"));
}

// ---------------------------------------------------------------------------------------------
// A real browser.

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium, or `None` after a loud note; a failure when `CHIPLEDGER_REQUIRE_BROWSER=1`.
fn chromium() -> Option<PathBuf> {
    if Path::new(CHROMIUM).exists() {
        return Some(PathBuf::from(CHROMIUM));
    }
    if std::env::var("CHIPLEDGER_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{CHROMIUM} not found, and CHIPLEDGER_REQUIRE_BROWSER=1 requires the browser test");
    }
    // Straight to the process's standard error: `eprintln!` is captured, and so hidden, in a
    // test that passes.
    let _ = writeln!(
        std::io::stderr(),
        "*** chromium not found: the browser test of the report was SKIPPED ***"
    );
    None
}

/// What Chromium made of a page.
struct Loaded {
    dom: String,
    log: String,
}

/// Loads `page` in headless Chromium with a fresh profile and no network services, and returns
/// the serialized DOM and the log (where console messages go). Killed after two minutes.
fn load(chromium: &Path, page: &Path) -> Loaded {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let dom_path = scratch.path().join("dom.html");
    let log_path = scratch.path().join("chromium.log");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 120 s; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let loaded = Loaded {
        dom: std::fs::read_to_string(&dom_path).unwrap_or_default(),
        log: std::fs::read_to_string(&log_path).unwrap_or_default(),
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        loaded.log
    );
    loaded
}

/// The console messages in a Chromium log. Chromium logs each one (whatever its level, errors
/// and uncaught exceptions included) as `[pid:tid:time:INFO:CONSOLE:LINE] "text", source: URL
/// (LINE)`; older builds wrote `INFO:CONSOLE(LINE)]`.
fn console_messages(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            line.starts_with('[')
                && line
                    .find(']')
                    .is_some_and(|end| line[..end].contains(":CONSOLE"))
        })
        .collect()
}

#[test]
fn the_console_parser_finds_messages_of_both_log_formats() {
    let log = "\
[1:1:1128/132143.003071:ERROR:dbus/bus.cc:405] Failed to connect to the bus: no socket
[1:1:1128/132143.612744:INFO:CONSOLE:1] \"hello\", source: file:///tmp/x.html (1)
[1:1:1128/132143.613072:INFO:CONSOLE(1)] \"Uncaught Error: x\", source: file:///tmp/x.html (1)
some text mentioning CONSOLE outside a log prefix
";
    let messages = console_messages(log);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[1].contains("Uncaught Error: x"));
    assert!(console_messages("[1:1:0:ERROR:gpu] no GPU\n").is_empty());
}

#[test]
fn the_browser_check_catches_a_broken_page() {
    let Some(chromium) = chromium() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let page = scratch.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>broken</title></head><body><p>x</p>\
         <script>throw new Error(\"x\")</script></body></html>",
    )
    .unwrap();
    let loaded = load(&chromium, &page);
    let messages = console_messages(&loaded.log);
    assert!(
        messages
            .iter()
            .any(|line| line.contains("Uncaught Error: x")),
        "the thrown error was not found in chromium's log, so the report test could not fail:\n{}",
        loaded.log
    );
}

#[test]
fn the_report_renders_in_a_browser_without_console_messages() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (ledger, _) = demo_report();
    let page = ledger.path("demo.html");
    let loaded = load(&chromium, &page);
    let messages = console_messages(&loaded.log);
    assert!(
        messages.is_empty(),
        "the report logged console messages:\n{}",
        messages.join("\n")
    );
    assert!(
        loaded.dom.contains("<title>chipledger report"),
        "{}",
        loaded.dom
    );
    for chart in CHARTS {
        let start = loaded
            .dom
            .find(&format!("<svg id=\"{chart}\""))
            .unwrap_or_else(|| panic!("{chart} is not in the DOM:\n{}", loaded.dom));
        let end = start + loaded.dom[start..].find("</svg>").expect("the svg ends");
        let svg = &loaded.dom[start..end];
        assert!(
            svg.contains("<rect") || svg.contains("<polyline"),
            "{chart} has nothing drawn: {svg}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Completions, man page, help.

#[test]
fn bash_completion_mentions_every_command() {
    let run = common::run_in(None, &["completions", "bash"], None, &[]).expect(0);
    let cli = chipledger::cli::Cli::command();
    let names: Vec<&str> = cli
        .get_subcommands()
        .map(|command| command.get_name())
        .collect();
    assert!(names.len() >= 16, "{names:?}");
    for name in &names {
        assert!(
            run.stdout.contains(&format!("chipledger,{name})")),
            "{name} is not in the bash completion"
        );
    }
    // Nested commands (`prove inclusion`) too.
    for parent in cli.get_subcommands() {
        for child in parent.get_subcommands() {
            let case = format!(
                "chipledger__subcmd__{},{})",
                parent.get_name(),
                child.get_name()
            );
            assert!(
                run.stdout.contains(&case),
                "{case} is not in the bash completion"
            );
        }
    }
    assert!(run.stdout.contains("report") && run.stdout.contains("--as-of"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = common::run_in(None, &["completions", shell], None, &[]).expect(0);
        assert!(run.stdout.contains("verify-proof"), "{shell}");
    }
    common::run_in(None, &["completions", "tcsh"], None, &[]).expect(2);
}

#[test]
fn the_man_page_is_roff_with_the_name_and_every_command() {
    let run = common::run_in(None, &["man"], None, &[]).expect(0);
    assert!(run.stdout.contains("\n.TH chipledger 1 "), "{}", run.stdout);
    assert!(run.stdout.contains(".SH NAME\nchipledger \\- an append"));
    for name in ["report", "verify\\-proof", "completions", "man"] {
        assert!(run.stdout.contains(name), "{name} is not in the page");
    }
    let page = common::run_in(None, &["man", "report"], None, &[]).expect(0);
    assert!(
        page.stdout.contains("\n.TH chipledger-report 1 "),
        "{}",
        page.stdout
    );
    assert!(page.stdout.contains("\\-\\-as\\-of"));
    let run = common::run_in(None, &["man", "nonsense"], None, &[]).expect(2);
    assert!(run.stderr.contains("not a command"), "{}", run.stderr);
}

#[test]
fn help_of_the_new_commands_has_examples() {
    for (command, example) in [
        (
            "report",
            "chipledger report --as-of 2026-06-30 -o mid-2026.html",
        ),
        ("completions", "chipledger completions bash"),
        ("man", "chipledger man > chipledger.1"),
    ] {
        let run = common::run_in(None, &[command, "--help"], None, &[]).expect(0);
        assert!(run.stdout.contains("Example"), "{command}: {}", run.stdout);
        assert!(run.stdout.contains(example), "{command}: {}", run.stdout);
    }
}

/// Every command that prints, with its standard output a pipe whose reader has already gone
/// (`chipledger state | head -1` once `head` is done): the command stops quietly with exit 0,
/// as other Unix tools do, instead of panicking with "Broken pipe".
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let ledger = TestLedger::with(BASE);
    for args in [
        &["state"][..],
        &["state", "--as-of", "2025-06-30"],
        &["--format", "json", "state"],
        &["log"],
        &["--format", "json", "log"],
        &["show", "1"],
        &["verify"],
        &["export"],
        &["man"],
        &["completions", "bash"],
    ] {
        let mut child = Command::new(common::BIN)
            .arg("--ledger")
            .arg(&ledger.dir)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // The reading end closes before the command writes anything.
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("the binary finishes");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `--timings` reports each step of `state` and `import` on standard error, one `timings:`
/// line, and leaves standard output exactly as it is without the flag.
#[test]
fn timings_name_each_step_on_stderr_and_change_no_answer() {
    let ledger = TestLedger::with(BASE);
    let step_names = |stderr: &str| -> Vec<String> {
        let line = stderr
            .lines()
            .find_map(|line| line.strip_prefix("timings: "))
            .unwrap_or_else(|| panic!("no timings line in {stderr:?}"));
        line.split(", ")
            .map(|step| {
                let time = step.strip_suffix(" ms").expect("milliseconds");
                let (name, number) = time.rsplit_once(' ').expect("a name and a number");
                assert!(number.parse::<f64>().unwrap() >= 0.0, "{step}");
                name.to_string()
            })
            .collect()
    };
    for args in [&["state"][..], &["state", "--as-of", "2025-06-30"]] {
        let plain = ledger.run(args, None).expect(0);
        let timed = ledger
            .run(&[&["--timings"][..], args].concat(), None)
            .expect(0);
        assert_eq!(timed.stdout, plain.stdout);
        assert!(!plain.stderr.contains("timings:"), "{}", plain.stderr);
        assert_eq!(
            step_names(&timed.stderr),
            ["open", "state", "view", "print"]
        );
    }
    let file = ledger.path("more.ndjson");
    std::fs::write(
        &file,
        r#"{"type":"aia_certification","id":"C-t","effective":"2025-03-01","entity":"acme"}
"#,
    )
    .unwrap();
    let run = ledger
        .run(&["--timings", "import", file.to_str().unwrap()], None)
        .expect(0);
    assert!(
        run.stdout.contains("imported 1 of 1 events"),
        "{}",
        run.stdout
    );
    assert_eq!(
        step_names(&run.stderr),
        ["open", "check", "import", "of which waiting for commits"]
    );
}

/// A state of many entities (enough that their views are built on two threads) shows each
/// entity exactly as a query for that entity alone does, every entity once, and filters by
/// country as a small state does.
#[test]
fn a_state_of_many_entities_shows_each_as_a_query_for_it_alone() {
    let countries = ["US", "MY", "FR", "IN"];
    let mut lines = String::new();
    for index in 0..700 {
        let hq = countries[index % countries.len()];
        lines.push_str(&format!(
            r#"{{"type":"entity","id":"E-{index}","effective":"2025-01-13","entity":"firm-{index:03}","name":"Firm {index}","hq":"{hq}"}}
{{"type":"inventory","id":"I-{index}","effective":"2025-02-01","entity":"firm-{index:03}","chip":"H100","quantity":{},"country":"{hq}"}}
"#,
            index + 1
        ));
    }
    let ledger = TestLedger::new();
    let file = ledger.path("many.ndjson");
    std::fs::write(&file, lines).unwrap();
    ledger
        .run(&["import", file.to_str().unwrap()], None)
        .expect(0);
    let full = ledger.state(&[]);
    let entities = full["entities"].as_object().expect("entities");
    let names: Vec<&String> = entities.keys().collect();
    let expected: Vec<String> = (0..700).map(|index| format!("firm-{index:03}")).collect();
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
    for index in [0, 1, 349, 350, 351, 698, 699] {
        let name = format!("firm-{index:03}");
        let alone = ledger.state(&["--entity", &name]);
        assert_eq!(alone["entities"].as_object().unwrap().len(), 1);
        assert_eq!(entities[&name], alone["entities"][&name], "{name}");
        assert_eq!(
            entities[&name]["holdings"][countries[index % 4]]["H100"],
            index as u64 + 1
        );
    }
    let french = ledger.state(&["--country", "FR"]);
    let french: Vec<&String> = french["entities"].as_object().unwrap().keys().collect();
    let expected: Vec<String> = (0..700)
        .filter(|index| index % 4 == 2)
        .map(|index| format!("firm-{index:03}"))
        .collect();
    assert_eq!(french, expected.iter().collect::<Vec<_>>());
}
