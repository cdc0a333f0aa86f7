//! `sqlite-baseline --input FILE --db PATH`: what a user would build instead of chipledger.
//! Parses each NDJSON line, extends a BLAKE3 hash chain and inserts a row into SQLite (WAL,
//! `synchronous=FULL`, 10,000-row transactions, UNIQUE index on the id). Prints one JSON line:
//! `{"events":N,"seconds":S,"events_per_second":R,"db_bytes":B}`.

use std::path::Path;
use std::process::ExitCode;

use chipledger_bench::args::Args;
use chipledger_bench::floor;

const USAGE: &str = "usage: sqlite-baseline --input FILE.ndjson --db NEW.sqlite";

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1), &["input", "db"], &["help"]) {
        Ok(args) if !args.has("help") => args,
        Ok(_) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("sqlite-baseline: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = args
        .required("input")
        .and_then(|input| args.required("db").map(|db| (input, db)))
        .map_err(Into::into)
        .and_then(|(input, db)| floor::sqlite_baseline(Path::new(input), Path::new(db)));
    match run {
        Ok(run) => {
            println!(
                "{}",
                chipledger_bench::result_line(run.events, run.seconds, run.db_bytes)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sqlite-baseline: {error}");
            ExitCode::FAILURE
        }
    }
}
