//! `sled-floor --input FILE --dir PATH`: the raw storage floor. Stores the NDJSON lines in
//! sled 0.34 with 256 lines per value, 10,000 lines per transaction, each followed by
//! `flush()` and an fsync of sled's data file. Prints one JSON line:
//! `{"events":N,"seconds":S,"events_per_second":R,"db_bytes":B}`.
//!
//! `sled-floor --input FILE --file NEW_FILE`: the same bundles appended to a plain file instead,
//! each 10,000 lines one write and an fdatasync; prints the same JSON line.
//!
//! `sled-floor --fsync-probe DIR`: appends 4 KiB to a file in DIR and fsyncs it, 200 times, and
//! prints `{"fsync_samples":200,"median_us":M,...}`.

use std::path::Path;
use std::process::ExitCode;

use chipledger_bench::args::Args;
use chipledger_bench::floor;

const USAGE: &str = "usage: sled-floor --input FILE.ndjson --dir NEW_DIR\n       sled-floor --input FILE.ndjson --file NEW_FILE\n       sled-floor --fsync-probe DIR";
const PROBE_ROUNDS: usize = 200;

fn run(args: &Args) -> Result<String, floor::BoxError> {
    if let Some(dir) = args.get("fsync-probe") {
        if args.has("input") || args.has("dir") || args.has("file") {
            return Err("--fsync-probe takes no --input, --dir or --file".into());
        }
        let samples = floor::fsync_probe(Path::new(dir), PROBE_ROUNDS)?;
        let us = |q: f64| (floor::quantile_us(&samples, q) * 10.0).round() / 10.0;
        return Ok(serde_json::json!({
            "fsync_samples": samples.len(),
            "median_us": us(0.5),
            "p10_us": us(0.1),
            "p90_us": us(0.9),
            "min_us": us(0.0),
            "max_us": us(1.0),
        })
        .to_string());
    }
    let input = args.required("input")?;
    let run = match (args.get("dir"), args.get("file")) {
        (Some(dir), None) => floor::sled_floor(Path::new(input), Path::new(dir))?,
        (None, Some(file)) => floor::file_floor(Path::new(input), Path::new(file))?,
        _ => return Err("give one of --dir or --file".into()),
    };
    Ok(chipledger_bench::result_line(
        run.events,
        run.seconds,
        run.db_bytes,
    ))
}

fn main() -> ExitCode {
    let args = match Args::parse(
        std::env::args().skip(1),
        &["input", "dir", "file", "fsync-probe"],
        &["help"],
    ) {
        Ok(args) if !args.has("help") => args,
        Ok(_) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("sled-floor: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sled-floor: {error}");
            ExitCode::FAILURE
        }
    }
}
