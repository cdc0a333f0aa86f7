//! `demo`: a sample ledger built from a bundled scenario, with a simulated clock.
//!
//! The scenario (`scenario.ndjson`) follows twenty companies in all three tiers from January 2025
//! to September 2027: baselines, VEU grants, shipments under every basis that approach their
//! limits, transfers, weights hosting, a government-to-government allocation increase, a late
//! record and a void. Two attempts the rules refuse (`refusals.ndjson`) are made along the way.

use std::path::{Path, PathBuf};

use crate::cli::output::{self, Style, paint};
use crate::cli::{Context, Format};
use crate::date::{Date, Instant};
use crate::error::Error;
use crate::input::{self, Submission};
use crate::ledger::{Admitted, Ledger};
use crate::rules::Refusal;
use crate::view;

pub const SCENARIO: &str = include_str!("scenario.ndjson");
pub const REFUSALS: &str = include_str!("refusals.ndjson");

/// Where each refused attempt is made: just before the scenario event with this id.
const ATTEMPT_BEFORE: [&str; 2] = ["T-0001", "A-MY"];

pub const ORIGIN: &str = "demo.chipledger.example/ledger";

/// The shipment the demo proves: a licence shipment against Malaysia's allocation.
const PROVED: &str = "S-0016";

fn parse_all(text: &str) -> Vec<Submission> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| input::parse_event(line).expect("the bundled scenario is valid input"))
        .collect()
}

/// The simulated recording time of an event: noon UTC on its effective date, never before the
/// previous recording (a late record is recorded after what came before it).
fn simulated_now(previous: Instant, effective: Date) -> Instant {
    let noon = Instant::parse(&format!("{effective}T12:00:00Z")).expect("valid time");
    let next = Instant::from_microseconds(previous.microseconds() + 60_000_000).expect("in range");
    noon.max(next)
}

/// What building the demo ledger produced.
pub struct Built {
    pub ledger: Ledger,
    pub recorded: u64,
    pub refusals: Vec<Refusal>,
    pub last_now: Instant,
}

/// Builds the demo ledger in `dir`.
pub fn build(dir: &Path) -> Result<Built, Error> {
    let scenario = parse_all(SCENARIO);
    let attempts = parse_all(REFUSALS);
    let start = Instant::parse("2025-01-13T09:00:00Z").expect("valid time");
    let (mut ledger, _) = Ledger::create(dir, Some(ORIGIN), start)?;
    let mut now = start;
    let mut recorded = 0;
    let mut refusals = Vec::new();
    for submission in &scenario {
        if let Some(index) = ATTEMPT_BEFORE
            .iter()
            .position(|id| *id == submission.event.id.as_str())
        {
            let attempt = &attempts[index];
            now = simulated_now(now, attempt.effective);
            match ledger.submit(attempt, now)? {
                Err(refusal) => refusals.push(refusal),
                Ok(_) => {
                    return Err(Error::Verification(format!(
                        "the demo expected {} to be refused",
                        attempt.event.id
                    )));
                }
            }
        }
        now = simulated_now(now, submission.effective);
        match ledger.submit(submission, now)? {
            Ok(Admitted::Recorded(_)) => recorded += 1,
            Ok(Admitted::AlreadyRecorded(_)) => {}
            Err(refusal) => {
                return Err(Error::Refused {
                    place: Some(format!("demo scenario event {}", submission.event.id)),
                    refusal: Box::new(refusal),
                });
            }
        }
        ledger.commit()?;
    }
    Ok(Built {
        ledger,
        recorded,
        refusals,
        last_now: now,
    })
}

fn fresh_directory() -> PathBuf {
    let mut random = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    std::env::temp_dir().join(format!(
        "chipledger-demo-{:02x}{:02x}{:02x}{:02x}",
        random[0], random[1], random[2], random[3]
    ))
}

pub fn run(context: &Context, dir: Option<&Path>) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(fresh_directory);
    let mut built = build(&dir)?;
    let store_path = built.ledger.reader().paths().store();
    // An auditor's view: the ledger signs a checkpoint, proves one shipment against it, and
    // the proof is checked the way a third party checks it, with the verifier key alone.
    let signed_at =
        Instant::from_microseconds(built.last_now.microseconds() + 60_000_000).expect("in range");
    let checkpoint = built.ledger.sign_checkpoint(signed_at)?;
    drop(built.ledger);
    let audit = crate::audit::verify_store(&store_path, None, |_, _| {})?;
    let reader = crate::ledger::Reader::open(&dir)?;
    let vkey = reader.verifier_key()?;
    let (proved_seq, proved, hash_count) = {
        let seq = reader
            .find_id(&crate::name::Id::parse(PROVED).expect("valid id"))?
            .ok_or_else(|| Error::Verification(format!("the demo has no record {PROVED}")))?;
        let (bytes, _) = reader.record_with_bytes(seq)?;
        let hashes = reader.prove_record(seq, checkpoint.size)?;
        (
            seq,
            crate::proof::inclusion::build(&bytes, seq, &hashes, &checkpoint.note),
            hashes.len(),
        )
    };
    let proof_path = dir.join(format!("{PROVED}.proof"));
    std::fs::write(&proof_path, &proved).map_err(Error::Output)?;
    let shown = crate::proof::inclusion::verify(&proved, &vkey)?;
    assert_eq!(
        shown.record.seq, proved_seq,
        "the proof is of the record asked for"
    );
    let h100_tpp = reader.params().h100_tpp();
    let end = Date::parse("2027-12-31").expect("valid date");
    let size = reader.size();
    let state = reader.state_at(end, size)?;
    let state_view = view::state_view(
        &state,
        end,
        size,
        reader.head().root,
        &view::Filter {
            holdings: context.format.holdings(),
            ..view::Filter::default()
        },
    );
    if context.format == Format::Json {
        return output::json(&serde_json::json!({
            "status": "built",
            "ledger": dir,
            "recorded": built.recorded,
            "refusals": built.refusals.iter().map(|refusal| view::refusal_json(refusal, h100_tpp, None)).collect::<Vec<_>>(),
            "audit": audit,
            "checkpoint": {"size": checkpoint.size, "root": view::base64(&checkpoint.root), "origin": checkpoint.origin},
            "inclusion_proof": {"id": PROVED, "seq": proved_seq, "file": proof_path, "bytes": proved.len(), "verified": true},
            "state": state_view,
        }));
    }
    let colour = output::stdout_colour();
    let bold = |text: &str| paint(colour, Style::Bold, text);
    output::line(&bold(&format!(
        "chipledger demo: a sample ledger in {}",
        dir.display()
    )))?;
    output::line(&format!(
        "Recorded {} events for 20 companies from 2025-01-13 to 2027-09-01, with a simulated clock \
         (each event recorded on its date; one inventory recorded late, one duplicate voided).",
        built.recorded
    ))?;
    output::line("")?;
    output::line(&bold(
        "Two attempts the rules refused (nothing was written for them):",
    ))?;
    for refusal in &built.refusals {
        output::line(&format!(
            "  {} {}: {}",
            paint(colour, Style::Red, "refused"),
            refusal.code,
            refusal.message
        ))?;
    }
    output::line("")?;
    output::line(&format!(
        "{} {} records: canonical bytes, chain, Merkle root {}, every rule replayed ({} late {}, {} {}).",
        paint(colour, Style::Green, "Verified"),
        audit.records,
        audit.root,
        audit.late_records,
        if audit.late_records == 1 {
            "record"
        } else {
            "records"
        },
        audit.voids,
        if audit.voids == 1 { "void" } else { "voids" },
    ))?;
    output::line(&format!(
        "{} a checkpoint of {} records (the last a commitment to every subject's state), root {}, \
         with the key of {}.",
        paint(colour, Style::Green, "Signed"),
        checkpoint.size,
        view::base64(&checkpoint.root),
        checkpoint.origin
    ))?;
    output::line(&format!(
        "{} {} ({} {}, effective {}) in that checkpoint: {} ({} bytes, {} hashes), {} with the \
         verifier key alone.",
        paint(colour, Style::Green, "Proved"),
        PROVED,
        shown.record.event.body.type_name(),
        shown.record.event.id,
        shown.record.effective,
        proof_path.display(),
        proved.len(),
        hash_count,
        paint(colour, Style::Green, "verified")
    ))?;
    output::line("")?;
    drop(state);
    crate::cli::read::print_state_view(&state_view)?;
    output::line("")?;
    output::line(&bold("Try next:"))?;
    let ledger = format!("--ledger {}", dir.display());
    for (command, what) in [
        (
            format!("chipledger {ledger} state --as-of 2025-12-31 --country MY"),
            "Malaysia's allocation at the end of 2025",
        ),
        (
            format!("chipledger {ledger} state --as-of 2025-12-31 --known-at 20"),
            "what the first 20 records said",
        ),
        (
            format!("chipledger {ledger} log --entity deccan-cloud"),
            "one company's history",
        ),
        (
            format!("chipledger {ledger} show S-0016"),
            "a record with its hashes and links",
        ),
        (
            format!(
                "chipledger {ledger} export -o demo.ndjson && chipledger verify --export demo.ndjson"
            ),
            "an offline audit",
        ),
        (
            format!(
                "chipledger verify-proof {} --vkey {}",
                proof_path.display(),
                dir.join("verifier.key").display()
            ),
            "check the shipment's proof as a third party would",
        ),
        (
            format!("chipledger {ledger} prove compliance --country MY -o my.json"),
            "Malaysia's allocation use with a proof that no record is left out",
        ),
        (
            format!("chipledger {ledger} report -o report.html"),
            "the whole picture as one HTML page with charts",
        ),
    ] {
        output::line(&format!("  {command}\n      {what}"))?;
    }
    output::note(
        context.quiet,
        &format!("built in {:.2} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}
