//! What the command-line tests share: a ledger in a temporary directory, and one way to run
//! the binary and look at what it did.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_chipledger");

/// The simulated clock every test ledger uses unless a test says otherwise.
pub const NOW: &str = "2027-12-31T12:00:00Z";

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!("stdout is not one JSON value ({error}):\n{}", self.stdout)
        })
    }
}

/// Runs the binary with `args` and optional standard input, with the test clock.
pub fn run_in(dir: Option<&Path>, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(BIN);
    if let Some(dir) = dir {
        command.arg("--ledger").arg(dir);
    }
    command
        .args(args)
        .env("CHIPLEDGER_NOW", NOW)
        .env_remove("CHIPLEDGER_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the binary runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let text = stdin.unwrap_or("").to_string();
    let writer = std::thread::spawn(move || {
        // The child may exit before reading everything (a refusal); that is fine.
        let _ = pipe.write_all(text.as_bytes());
    });
    let output = child.wait_with_output().expect("the binary finishes");
    writer.join().expect("stdin writer");
    Run::from(output)
}

/// A ledger in a fresh temporary directory.
pub struct TestLedger {
    _temp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl TestLedger {
    pub fn new() -> TestLedger {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("ledger");
        let ledger = TestLedger { _temp: temp, dir };
        ledger
            .run(&["init", "--origin", "test.example/ledger"], None)
            .expect(0);
        ledger
    }

    /// A temporary directory for a ledger that the test creates itself.
    pub fn new_uninitialized() -> TestLedger {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("ledger");
        TestLedger { _temp: temp, dir }
    }

    /// A fresh ledger created with the clock at `now`.
    pub fn created_at(now: &str) -> TestLedger {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("ledger");
        let ledger = TestLedger { _temp: temp, dir };
        ledger
            .run_env(
                &["init", "--origin", "test.example/ledger"],
                None,
                &[("CHIPLEDGER_NOW", now)],
            )
            .expect(0);
        ledger
    }

    /// A fresh ledger holding the given NDJSON events.
    pub fn with(events: &str) -> TestLedger {
        let ledger = TestLedger::new();
        ledger.run(&["append", "-"], Some(events)).expect(0);
        ledger
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run_in(Some(&self.dir), args, stdin, &[])
    }

    pub fn run_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        run_in(Some(&self.dir), args, stdin, env)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .parent()
            .expect("the ledger has a parent")
            .join(name)
    }

    /// The log's size and root, from `state --format json`.
    pub fn size_and_root(&self) -> (u64, String) {
        let state = self
            .run(&["--format", "json", "state"], None)
            .expect(0)
            .json();
        (
            state["size"].as_u64().expect("size"),
            state["root"].as_str().expect("root").to_string(),
        )
    }

    /// The event ids in the log, in order, without the genesis record.
    pub fn logged_ids(&self) -> Vec<String> {
        self.run(&["--format", "json", "log", "--from", "1"], None)
            .expect(0)
            .stdout
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    pub fn state(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--format", "json", "state"];
        all.extend_from_slice(args);
        self.run(&all, None).expect(0).json()
    }
}

/// Entities and a little history that many tests start from.
pub const BASE: &str = r#"{"type":"entity","id":"E-nv","effective":"2025-01-13","entity":"nvidia","name":"NVIDIA","hq":"US"}
{"type":"entity","id":"E-acme","effective":"2025-01-13","entity":"acme","name":"Acme Cloud","hq":"US"}
{"type":"entity","id":"E-my","effective":"2025-01-13","entity":"my-dc","name":"MY Data Centres","hq":"MY"}
{"type":"entity","id":"E-in","effective":"2025-01-13","entity":"in-dc","name":"IN Data Centres","hq":"IN"}
"#;

/// Cases per property test: the test's own number in the normal run, or
/// `CHIPLEDGER_PROPTEST_CASES` when that is larger (the gated run; the command is in README.md).
pub fn proptest_cases(normal: u32) -> u32 {
    std::env::var("CHIPLEDGER_PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse::<u32>().ok())
        .map_or(normal, |gated| gated.max(normal))
}
