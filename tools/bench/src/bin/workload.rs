//! `workload --events N --seed S -o FILE`: a seeded, realistic NDJSON workload for chipledger,
//! valid under the rules by construction (every event is filtered through a real temporary
//! ledger). The same N and seed always give the same file. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use chipledger_bench::args::Args;
use chipledger_bench::workload::{self, Config, MAX_EVENTS, MIN_EVENTS};

const USAGE: &str = "usage: workload --events N --seed S -o FILE.ndjson [--scratch DIR] [--quiet]
  --events N     events to write, 10,000 to 10,000,000
  --seed S       the seed (default 1)
  -o, --output   the NDJSON file to write (- for stdout)
  --scratch DIR  where to create the temporary ledger (default: the system temp directory)
  --quiet        no progress lines on stderr (the summary is still printed)";

fn run(args: &Args) -> Result<(), workload::BoxError> {
    let events = args.number("events")?.ok_or("--events is required")?;
    if !(MIN_EVENTS..=MAX_EVENTS).contains(&events) {
        return Err(format!("--events must be from {MIN_EVENTS} to {MAX_EVENTS}").into());
    }
    let seed = args.number("seed")?.unwrap_or(1);
    let output = args.required("output")?;
    let config = Config {
        events,
        seed,
        scratch: args.get("scratch").map(PathBuf::from),
        progress: !args.has("quiet"),
    };
    let stats = if output == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        workload::generate(&config, &mut lock)?
    } else {
        let path = PathBuf::from(output);
        let partial = path.with_extension("partial");
        let mut file = std::fs::File::create(&partial)
            .map_err(|error| format!("{}: {error}", partial.display()))?;
        let stats = workload::generate(&config, &mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&partial, &path)?;
        stats
    };
    eprint!(
        "workload: {events} events, seed {seed}\n{}",
        stats.summary()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse(
        std::env::args().skip(1),
        &["events", "seed", "output", "scratch"],
        &["quiet", "help"],
    ) {
        Ok(args) if !args.has("help") => args,
        Ok(_) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("workload: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("workload: {error}");
            ExitCode::FAILURE
        }
    }
}
