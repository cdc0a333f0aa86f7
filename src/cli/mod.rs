//! The command line: argument definitions (one clap table, from which help, completions and
//! the man page are generated) and dispatch to the commands.

pub mod feed;
pub mod output;
pub mod proof;
pub mod read;
pub mod report;
pub mod spill;
pub mod write;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::date::Instant;
use crate::error::Error;

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Format {
    /// Human-readable text and tables.
    Table,
    /// Machine-readable JSON on standard output.
    Json,
}

impl Format {
    /// Whether a state view printed in this format needs each entity's chips by model: only
    /// JSON shows them ([`crate::view::Holdings`]).
    pub fn holdings(self) -> crate::view::Holdings {
        match self {
            Format::Json => crate::view::Holdings::Included,
            Format::Table => crate::view::Holdings::Omitted,
        }
    }
}

const AFTER_HELP: &str = "\
Examples:
  chipledger init --origin exports.example.com/ledger
  chipledger append shipment.json
  chipledger import events.ndjson --keep-going --rejects rejected.ndjson
  chipledger state --as-of 2026-06-30 --country MY
  chipledger verify
  chipledger export -o ledger.ndjson && chipledger verify --export ledger.ndjson
  chipledger report -o report.html

Exit codes: 0 success; 1 refused by a rule or verification failed; 2 bad input or usage;
3 ledger unavailable (missing, in use, corrupt, I/O error).
Environment: CHIPLEDGER_DIR (ledger directory), CHIPLEDGER_NOW (clock override for
simulations and tests: YYYY-MM-DD or RFC 3339; recorded as the recording time), NO_COLOR.";

/// chipledger: an append-only, hash-chained ledger of AI compute under the AI diffusion
/// export-control framework.
#[derive(Parser, Debug)]
#[command(name = "chipledger", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Ledger directory.
    #[arg(
        long,
        global = true,
        env = "CHIPLEDGER_DIR",
        default_value = "./chipledger-data"
    )]
    pub ledger: PathBuf,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub format: Format,
    /// No progress bars or notes on standard error.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print on standard error how long each step of `state` and `import` took (wall time), as
    /// one line starting `timings:`.
    #[arg(long, global = true)]
    pub timings: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a ledger: store, signing key (mode 0600), genesis record with the built-in ruleset.
    #[command(
        after_help = "Example:\n  chipledger --ledger ./ledger init --origin exports.example.com/ledger"
    )]
    Init {
        /// Checkpoint origin (the signing key's name); default chipledger.local/<random>.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Append one JSON event or NDJSON events as one atomic batch (all or none).
    #[command(after_help = "Examples:\n  chipledger append event.json\n  \
        echo '{\"type\":\"aia_certification\",\"id\":\"C-1\",\"effective\":\"2025-02-01\",\"entity\":\"acme\"}' | chipledger append -")]
    Append {
        /// File to read, or `-` (the default) for standard input.
        file: Option<PathBuf>,
    },
    /// Dry run of append: would each event be accepted, and why not. Writes nothing.
    #[command(after_help = "Example:\n  chipledger check planned-shipments.ndjson")]
    Check {
        /// File to read, or `-` (the default) for standard input.
        file: Option<PathBuf>,
    },
    /// Bulk NDJSON import in atomic batches; stops at the first refused line.
    #[command(after_help = "Examples:\n  chipledger import events.ndjson\n  \
        chipledger import events.ndjson --keep-going --rejects rejected.ndjson\n\n\
        The whole file is checked for bad input first; nothing is written if a line is malformed.\n\
        Re-running the same file skips events already recorded with identical content.\n\
        With --format json, one line is printed per durable batch, then a summary line.")]
    Import {
        file: PathBuf,
        /// Skip refused events and go on (exit code 1 if any was refused).
        #[arg(long)]
        keep_going: bool,
        /// Write refused lines to this file (implies --keep-going).
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Events per durable batch (one transaction and fsync each).
        #[arg(long, default_value_t = write::IMPORT_BATCH, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: u64,
    },
    /// List records.
    #[command(
        after_help = "Examples:\n  chipledger log --from 100 --to 200\n  chipledger log --entity acme --type shipment"
    )]
    Log {
        /// First sequence number.
        #[arg(long)]
        from: Option<u64>,
        /// Sequence number to stop before.
        #[arg(long)]
        to: Option<u64>,
        /// Only the record with this event id.
        #[arg(long)]
        id: Option<String>,
        /// Only records concerning this entity.
        #[arg(long)]
        entity: Option<String>,
        /// Only records concerning this country.
        #[arg(long)]
        country: Option<String>,
        /// Only records of this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
    },
    /// One record with its hashes and links.
    #[command(after_help = "Examples:\n  chipledger show S-1\n  chipledger show 42")]
    Show {
        /// An event id, or a sequence number.
        target: String,
    },
    /// Derived state: country allocations, entities, VEUs.
    #[command(
        after_help = "Examples:\n  chipledger state\n  chipledger state --as-of 2025-12-31 --country MY\n  \
        chipledger state --as-of 2025-12-31 --known-at 2026-01-15T00:00:00Z\n  \
        chipledger state --entity acme --format json"
    )]
    State {
        /// The date to fold up to (default: today).
        #[arg(long)]
        as_of: Option<String>,
        /// Only what the ledger knew then: a log size, or a date or RFC 3339 time.
        #[arg(long)]
        known_at: Option<String>,
        /// Only this entity.
        #[arg(long)]
        entity: Option<String>,
        /// Only this country (and entities headquartered or holding there).
        #[arg(long)]
        country: Option<String>,
        /// The answer as known at a signed checkpoint (its size and root).
        #[arg(long, conflicts_with = "known_at")]
        checkpoint: Option<PathBuf>,
    },
    /// Full audit: bytes, chain, Merkle root, every rule replayed; names the first bad record.
    #[command(
        after_help = "Examples:\n  chipledger verify\n  chipledger verify --export ledger.ndjson"
    )]
    Verify {
        /// Verify an export file instead of the ledger (no ledger needed).
        #[arg(long)]
        export: Option<PathBuf>,
        /// Also check against a signed checkpoint: the same root at its size, so a truncated
        /// or rewritten history is caught.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The verifier key for --checkpoint (text or file; default: the ledger's verifier.key).
        #[arg(long)]
        vkey: Option<String>,
    },
    /// The log as NDJSON, verifiable offline with `verify --export`.
    #[command(after_help = "Example:\n  chipledger export -o ledger.ndjson")]
    Export {
        /// Export only the first SIZE records.
        #[arg(long)]
        to: Option<u64>,
        /// Output file (default: standard output).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Sign a C2SP checkpoint of the log (after a commitment record) and print it.
    #[command(after_help = "Example:\n  chipledger checkpoint -o checkpoint.txt")]
    Checkpoint {
        /// Also write it to this file.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Proofs a third party checks with only the file and the verifier key.
    #[command(subcommand)]
    Prove(ProveCommand),
    /// Verify any proof file (inclusion, consistency, compliance, checkpoint) offline.
    #[command(
        after_help = "Example:\n  chipledger verify-proof S-1.tlog-proof --vkey ledger/verifier.key"
    )]
    VerifyProof {
        file: PathBuf,
        /// The ledger's verifier key: the C2SP vkey text, or a file holding it.
        #[arg(long)]
        vkey: String,
    },
    /// Write a self-contained HTML report with charts: Tier 2 allocations, Universal VEU
    /// ratios, installed TPP by tier over time, LPP use, and the full audit.
    #[command(after_help = "Examples:\n  chipledger report -o report.html\n  \
        chipledger report --as-of 2026-06-30 -o mid-2026.html\n  \
        chipledger --ledger ./ledger --format json report -o report.html\n\n\
        The page needs no network: its styles and SVG charts are inline and it has no script.\n\
        The full verify runs first. If it fails, the report is still written and shows the\n\
        failure, and the exit code is 1. The state is as of --as-of, from every record.")]
    Report {
        /// The date of the figures (default: today).
        #[arg(long)]
        as_of: Option<String>,
        /// The HTML file to write (replaced only once the report is complete).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Print a shell completion script on standard output.
    #[command(after_help = "Examples:\n  \
        chipledger completions bash > ~/.local/share/bash-completion/completions/chipledger\n  \
        chipledger completions zsh > ~/.zfunc/_chipledger\n  \
        chipledger completions fish > ~/.config/fish/completions/chipledger.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on standard output: chipledger's, or one command's.
    #[command(
        after_help = "Examples:\n  chipledger man > chipledger.1 && man ./chipledger.1\n  \
        chipledger man report > chipledger-report.1\n  \
        chipledger man | gzip > /usr/local/share/man/man1/chipledger.1.gz"
    )]
    Man {
        /// A command whose own page to print (default: the page of chipledger itself).
        command: Option<String>,
    },
    /// Build a realistic sample ledger, verify it, and print its state.
    #[command(after_help = "Example:\n  chipledger demo --dir ./demo-ledger")]
    Demo {
        /// Where to build it (default: a new directory under the system's temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProveCommand {
    /// A C2SP tlog-proof@v1 that a record is in the signed log (record bytes included).
    #[command(after_help = "Example:\n  chipledger prove inclusion S-1 -o S-1.tlog-proof")]
    Inclusion {
        /// An event id or a sequence number.
        target: String,
        /// Prove against this signed checkpoint (default: the last one, or a new one).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// A proof that a newer checkpoint extends an older one.
    #[command(
        after_help = "Example:\n  chipledger prove consistency --old checkpoint-2025.txt -o consistency.json"
    )]
    Consistency {
        #[arg(long)]
        old: PathBuf,
        /// The newer checkpoint (default: the last one signed, or a new one).
        #[arg(long)]
        new: Option<PathBuf>,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// A bundle proving a company's or a country's figures complete and correct.
    #[command(
        after_help = "Examples:\n  chipledger prove compliance --entity acme --as-of 2026-06-30 -o acme.json\n  \
        chipledger prove compliance --country MY -o my.json"
    )]
    Compliance {
        #[arg(long, conflicts_with = "country", required_unless_present = "country")]
        entity: Option<String>,
        #[arg(long)]
        country: Option<String>,
        /// The date of the figures (default: today).
        #[arg(long)]
        as_of: Option<String>,
        /// A signed checkpoint ending with a commitment (default: a new one).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// What every command gets besides its arguments.
pub struct Context {
    pub ledger: PathBuf,
    pub format: Format,
    pub quiet: bool,
    /// `--timings`: report each step's wall time on standard error.
    pub timings: bool,
    /// The recording clock: `CHIPLEDGER_NOW`, or the system clock.
    pub now: Instant,
}

/// The clock: `CHIPLEDGER_NOW` if set, else the system clock.
pub fn clock() -> Result<Instant, Error> {
    match std::env::var("CHIPLEDGER_NOW") {
        Ok(text) => Instant::parse(&text)
            .map_err(|message| Error::Usage(format!("CHIPLEDGER_NOW: {message}"))),
        Err(std::env::VarError::NotPresent) => Ok(Instant::now()),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::Usage("CHIPLEDGER_NOW is not valid Unicode".into()))
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let context = Context {
        ledger: cli.ledger,
        format: cli.format,
        quiet: cli.quiet,
        timings: cli.timings,
        now: clock()?,
    };
    match cli.command {
        Command::Init { origin } => write::init(&context, origin.as_deref()),
        Command::Append { file } => write::append(&context, file.as_deref()),
        Command::Check { file } => write::check(&context, file.as_deref()),
        Command::Import {
            file,
            keep_going,
            rejects,
            batch,
        } => write::import(
            &context,
            &file,
            write::ImportOptions {
                keep_going: keep_going || rejects.is_some(),
                rejects: rejects.as_deref(),
                batch,
            },
        ),
        Command::Log {
            from,
            to,
            id,
            entity,
            country,
            event_type,
        } => read::log(
            &context,
            read::LogFilter {
                from,
                to,
                id,
                entity,
                country,
                event_type,
            },
        ),
        Command::Show { target } => read::show(&context, &target),
        Command::State {
            as_of,
            known_at,
            entity,
            country,
            checkpoint,
        } => read::state(
            &context,
            read::StateQuery {
                as_of: as_of.as_deref(),
                known_at: known_at.as_deref(),
                entity: entity.as_deref(),
                country: country.as_deref(),
                checkpoint: checkpoint.as_deref(),
            },
        ),
        Command::Verify {
            export,
            checkpoint,
            vkey,
        } => read::verify(
            &context,
            export.as_deref(),
            checkpoint.as_deref(),
            vkey.as_deref(),
        ),
        Command::Checkpoint { output } => proof::sign(&context, output.as_deref()),
        Command::Prove(ProveCommand::Inclusion {
            target,
            checkpoint,
            output,
        }) => proof::inclusion(&context, &target, checkpoint.as_deref(), output.as_deref()),
        Command::Prove(ProveCommand::Consistency { old, new, output }) => {
            proof::consistency(&context, &old, new.as_deref(), output.as_deref())
        }
        Command::Prove(ProveCommand::Compliance {
            entity,
            country,
            as_of,
            checkpoint,
            output,
        }) => {
            let subject = match (entity, country) {
                (Some(entity), _) => crate::codec::Subject::Entity(
                    crate::name::Id::parse(&entity)
                        .map_err(|message| Error::Usage(format!("--entity: {message}")))?,
                ),
                (None, Some(country)) => crate::codec::Subject::Country(
                    crate::country::Country::parse(&country)
                        .map_err(|message| Error::Usage(format!("--country: {message}")))?,
                ),
                (None, None) => return Err(Error::Usage("give --entity or --country".into())),
            };
            proof::compliance(
                &context,
                subject,
                as_of.as_deref(),
                checkpoint.as_deref(),
                &output,
            )
        }
        Command::VerifyProof { file, vkey } => proof::verify_proof(&context, &file, &vkey),
        Command::Export { to, output } => read::export(&context, to, output.as_deref()),
        Command::Report { as_of, output } => report::report(&context, as_of.as_deref(), &output),
        Command::Completions { shell } => report::completions(shell),
        Command::Man { command } => report::man(command.as_deref()),
        Command::Demo { dir } => write::demo(&context, dir.as_deref()),
    }
}
