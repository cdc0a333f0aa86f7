//! `benchmark`: runs every goal of the benchmark side by side with its baseline and writes
//! BENCHMARKS.md. Start it through `tools/benchmark` (which builds everything first); see
//! README.md. The `--child-*` modes are this program re-run as a fresh process for the
//! in-process figures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chipledger_bench::args::Args;
use chipledger_bench::suite::{self, Plan};

const USAGE: &str = "usage: benchmark [--sizes 100000,1000000,10000000] [--runs 3] [--seed 1] \
[--work DIR] [-o BENCHMARKS.md]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Child modes: one in-process measurement of one ledger, one JSON line on stdout.
    if let [mode, ledger] = argv.as_slice() {
        let ledger = Path::new(ledger);
        let answer = match mode.as_str() {
            "--child-open" => Some(suite::child::open(ledger)),
            "--child-store-figures" => Some(suite::child::store_figures(ledger)),
            "--child-replay" => Some(suite::child::replay(ledger)),
            "--child-proofs" => Some(suite::child::proofs(ledger)),
            "--child-appends" => Some(suite::child::appends(ledger)),
            _ => None,
        };
        if let Some(answer) = answer {
            return match answer {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("benchmark {mode}: {error}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    let args = match Args::parse(
        argv.clone(),
        &["sizes", "runs", "seed", "work", "output"],
        &["help"],
    ) {
        Ok(args) if !args.has("help") => args,
        Ok(_) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("benchmark: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match plan(&args, &argv).and_then(|plan| suite::run_plan(&plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("benchmark: {error}");
            ExitCode::FAILURE
        }
    }
}

fn plan(args: &Args, argv: &[String]) -> Result<Plan, chipledger_bench::BoxError> {
    let binaries = std::env::current_exe()?
        .parent()
        .ok_or("the benchmark program has no directory")?
        .to_path_buf();
    let sizes = args
        .get("sizes")
        .unwrap_or("100000,1000000,10000000")
        .split(',')
        .map(|size| size.trim().replace('_', "").parse::<u64>())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|error| format!("--sizes: {error}"))?;
    if sizes.is_empty() || sizes.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err("--sizes: give increasing sizes, such as 100000,1000000".into());
    }
    let runs = args
        .get("runs")
        .unwrap_or("3")
        .parse::<usize>()
        .map_err(|error| format!("--runs: {error}"))?;
    if runs == 0 {
        return Err("--runs: at least 1".into());
    }
    let seed = args
        .get("seed")
        .unwrap_or("1")
        .parse::<u64>()
        .map_err(|error| format!("--seed: {error}"))?;
    let work = PathBuf::from(args.get("work").unwrap_or("target/bench-work"));
    let output = PathBuf::from(args.get("output").unwrap_or("BENCHMARKS.md"));
    let command = if argv.is_empty() {
        "tools/benchmark".to_string()
    } else {
        format!("tools/benchmark {}", argv.join(" "))
    };
    Ok(Plan {
        binaries,
        work,
        sizes,
        runs,
        seed,
        output,
        command,
    })
}
