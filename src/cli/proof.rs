//! Commands for proofs: checkpoint, prove, verify-proof.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::output::{self, Style, paint};
use super::{Context, Format};
use crate::codec::Subject;
use crate::date::Date;
use crate::error::Error;
use crate::ledger::{Ledger, Reader};
use crate::proof::checkpoint::{self, Verified};
use crate::proof::{self as proofs, Kind, compliance, consistency, inclusion};
use crate::view;

fn read_text(path: &Path, what: &str) -> Result<String, Error> {
    let metadata = std::fs::metadata(path).map_err(|error| {
        Error::Usage(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })?;
    // Bound what a proof file may be before reading it: a 1,000,000-record subject's bundle
    // is far below this.
    const MAX_PROOF_BYTES: u64 = 4 << 30;
    if metadata.len() > MAX_PROOF_BYTES {
        return Err(Error::Usage(format!(
            "{} is larger than 4 GiB",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|error| {
        Error::Usage(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Verification(format!("{} is not UTF-8 text", path.display())))
}

/// Writes a proof to `-o FILE`, or to standard output.
fn emit(output_path: Option<&Path>, text: &str) -> Result<(), Error> {
    match output_path {
        Some(path) => std::fs::write(path, text).map_err(|error| {
            Error::Output(std::io::Error::new(
                error.kind(),
                format!("{}: {error}", path.display()),
            ))
        }),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).map_err(Error::Output)?;
            out.flush().map_err(Error::Output)
        }
    }
}

/// A checkpoint given on the command line, verified with this ledger's key and matched against
/// its log: the same root at that size, or the history was rewritten.
fn given_checkpoint(reader: &Reader, path: &Path) -> Result<Verified, Error> {
    let text = read_text(path, "checkpoint")?;
    let checkpoint = checkpoint::verify(&text, &reader.verifier_key()?)?;
    matches_log(reader, &checkpoint)?;
    Ok(checkpoint)
}

fn matches_log(reader: &Reader, checkpoint: &Verified) -> Result<(), Error> {
    if checkpoint.size > reader.size() {
        return Err(Error::Verification(format!(
            "the checkpoint covers {} records but the ledger has {}: it was truncated or rolled back",
            checkpoint.size,
            reader.size()
        )));
    }
    if reader.root_at(checkpoint.size)? != checkpoint.root {
        return Err(Error::Verification(format!(
            "the ledger's first {} records do not have the checkpoint's root: its history differs \
             from what was signed (rewritten)",
            checkpoint.size
        )));
    }
    Ok(())
}

pub fn sign(context: &Context, output_path: Option<&Path>) -> Result<(), Error> {
    let mut ledger = Ledger::open(&context.ledger)?;
    let signed = ledger.sign_checkpoint(context.now)?;
    if context.format == Format::Json {
        if let Some(path) = output_path {
            emit(Some(path), &signed.note)?;
        }
        return output::json(&json!({
            "status": "signed",
            "origin": signed.origin,
            "size": signed.size,
            "root": view::base64(&signed.root),
            "checkpoint": signed.note,
        }));
    }
    emit(output_path, &signed.note)?;
    output::note(
        context.quiet,
        &format!(
            "signed a checkpoint of {} records (the last one, record {}, commits to every subject's state)",
            signed.size,
            signed.size - 1
        ),
    );
    Ok(())
}

/// A checkpoint covering at least `size` records: the given one, the last signed one, or a new one.
fn checkpoint_covering(
    context: &Context,
    given: Option<&Path>,
    size: u64,
    end_with_commitment: bool,
) -> Result<Verified, Error> {
    {
        let reader = Reader::open(&context.ledger)?;
        if let Some(path) = given {
            return given_checkpoint(&reader, path);
        }
        if let Some(note) = reader.last_checkpoint()? {
            let last = checkpoint::verify(&note, &reader.verifier_key()?)?;
            if last.size >= size && !end_with_commitment {
                matches_log(&reader, &last)?;
                return Ok(last);
            }
        }
    }
    let mut ledger = Ledger::open(&context.ledger)?;
    ledger.sign_checkpoint(context.now)
}

pub fn inclusion(
    context: &Context,
    target: &str,
    given: Option<&Path>,
    output_path: Option<&Path>,
) -> Result<(), Error> {
    let seq = {
        let reader = Reader::open(&context.ledger)?;
        super::read::find_record(&reader, target)?.1.seq
    };
    let checkpoint = checkpoint_covering(context, given, seq + 1, false)?;
    let reader = Reader::open_until_exit(&context.ledger)?;
    if seq >= checkpoint.size {
        return Err(Error::Usage(format!(
            "record {seq} is not covered by the checkpoint of {} records",
            checkpoint.size
        )));
    }
    let (bytes, record) = reader.record_with_bytes(seq)?;
    let started = std::time::Instant::now();
    let proof = reader.prove_record(seq, checkpoint.size)?;
    let elapsed = started.elapsed();
    let text = inclusion::build(&bytes, seq, &proof, &checkpoint.note);
    emit(output_path, &text)?;
    // With the proof on standard output, nothing else may go there.
    if context.format == Format::Json && output_path.is_some() {
        return output::json(&json!({
            "status": "proved",
            "seq": seq,
            "id": record.event.id,
            "type": record.event.body.type_name(),
            "size": checkpoint.size,
            "root": view::base64(&checkpoint.root),
            "hashes": proof.len(),
            "bytes": text.len(),
            "milliseconds": elapsed.as_secs_f64() * 1000.0,
        }));
    }
    output::note(
        context.quiet || output_path.is_none(),
        &format!(
            "proved record {seq} ({} {}) in the checkpoint of {} records: {} hashes, {} bytes, {:.3} ms",
            record.event.body.type_name(),
            record.event.id,
            checkpoint.size,
            proof.len(),
            text.len(),
            elapsed.as_secs_f64() * 1000.0
        ),
    );
    Ok(())
}

pub fn consistency(
    context: &Context,
    old: &Path,
    new: Option<&Path>,
    output_path: Option<&Path>,
) -> Result<(), Error> {
    let old_checkpoint = {
        let reader = Reader::open(&context.ledger)?;
        let text = read_text(old, "old checkpoint")?;
        let checkpoint = checkpoint::verify(&text, &reader.verifier_key()?)?;
        matches_log(&reader, &checkpoint)?;
        checkpoint
    };
    // Without --new: a checkpoint of the whole log as it is now (signed if the log grew since
    // the last one), which is what an auditor holding an old checkpoint asks about.
    let current = Reader::open(&context.ledger)?.size();
    let new_checkpoint = checkpoint_covering(context, new, current, false)?;
    if new_checkpoint.size < old_checkpoint.size {
        return Err(Error::Usage(format!(
            "the new checkpoint ({} records) is older than the old one ({} records)",
            new_checkpoint.size, old_checkpoint.size
        )));
    }
    let reader = Reader::open_until_exit(&context.ledger)?;
    let proof = if new_checkpoint.size == old_checkpoint.size {
        Vec::new()
    } else {
        reader.prove_tree(old_checkpoint.size, new_checkpoint.size)?
    };
    let text = consistency::build(&old_checkpoint, &new_checkpoint, &proof);
    emit(output_path, &text)?;
    if context.format == Format::Json && output_path.is_some() {
        return output::json(&json!({
            "status": "proved",
            "old": {"size": old_checkpoint.size, "root": view::base64(&old_checkpoint.root)},
            "new": {"size": new_checkpoint.size, "root": view::base64(&new_checkpoint.root)},
            "hashes": proof.len(),
            "bytes": text.len(),
        }));
    }
    output::note(
        context.quiet || output_path.is_none(),
        &format!(
            "proved the checkpoint of {} records a prefix of the checkpoint of {}: {} hashes, {} bytes",
            old_checkpoint.size,
            new_checkpoint.size,
            proof.len(),
            text.len()
        ),
    );
    Ok(())
}

pub fn compliance(
    context: &Context,
    subject: Subject,
    as_of: Option<&str>,
    given: Option<&Path>,
    output_path: &Path,
) -> Result<(), Error> {
    let date = match as_of {
        Some(text) => {
            Date::parse(text).map_err(|message| Error::Usage(format!("--as-of: {message}")))?
        }
        None => Date::of_instant(context.now),
    };
    let checkpoint = checkpoint_covering(context, given, 0, given.is_none())?;
    let reader = Reader::open_until_exit(&context.ledger)?;
    let started = std::time::Instant::now();
    // Gathering a busy subject's records and proofs takes seconds on a large log.
    let spinner = output::spinner(
        context.quiet,
        &format!("proving the compliance of {subject} as of {date}"),
    );
    let built = compliance::build(&reader, &subject, date, &checkpoint);
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let text = built?;
    // What is written must verify: check it the way a third party will.
    let shown = compliance::verify(&text, &reader.verifier_key()?)?;
    emit(Some(output_path), &text)?;
    if context.format == Format::Json {
        return output::json(&json!({
            "status": "proved",
            "subject": subject.to_string(),
            "as_of": date,
            "records": shown.records,
            "bytes": text.len(),
            "seconds": started.elapsed().as_secs_f64(),
            "figures": shown.figures,
        }));
    }
    output::note(
        context.quiet,
        &format!(
            "wrote {}: {} as of {date}, {} records with inclusion proofs, {} bytes, in {:.2} s",
            output_path.display(),
            subject,
            shown.records,
            text.len(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

pub fn verify_proof(context: &Context, file: &Path, vkey: &str) -> Result<(), Error> {
    let vkey = proofs::load_vkey(vkey)?;
    let text = read_text(file, "proof")?;
    let colour = output::stdout_colour();
    let ok = paint(colour, Style::Green, "verified");
    let (kind, summary, details) = match proofs::kind_of(&text) {
        Kind::Inclusion => {
            let shown = inclusion::verify(&text, &vkey)?;
            let record = &shown.record;
            (
                "inclusion",
                format!(
                    "record {} ({} {}, effective {}) is in the log of {} records signed by {}",
                    record.seq,
                    record.event.body.type_name(),
                    record.event.id,
                    record.effective,
                    shown.checkpoint.size,
                    shown.checkpoint.origin
                ),
                json!({"record": view::record_json(record), "checkpoint": {"origin": shown.checkpoint.origin, "size": shown.checkpoint.size, "root": view::base64(&shown.checkpoint.root)}}),
            )
        }
        Kind::Consistency => {
            let (old, new) = consistency::verify(&text, &vkey)?;
            (
                "consistency",
                format!(
                    "the log of {} records (root {}) is a prefix of the log of {} records (root {}), both signed by {}",
                    old.size,
                    view::base64(&old.root),
                    new.size,
                    view::base64(&new.root),
                    new.origin
                ),
                json!({"old": {"size": old.size, "root": view::base64(&old.root)}, "new": {"size": new.size, "root": view::base64(&new.root)}}),
            )
        }
        Kind::Compliance => {
            let shown = compliance::verify(&text, &vkey)?;
            let failing: Vec<String> = shown.figures["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|rule| rule["pass"] == false)
                .map(|rule| {
                    format!(
                        "{} ({})",
                        rule["rule"].as_str().unwrap_or(""),
                        rule["detail"].as_str().unwrap_or("")
                    )
                })
                .collect();
            (
                "compliance",
                format!(
                    "{} as of {}: {} records, complete per the commitment in the log of {} records signed by {}; figures recomputed; {}",
                    shown.subject,
                    shown.as_of,
                    shown.records,
                    shown.checkpoint.size,
                    shown.checkpoint.origin,
                    if failing.is_empty() {
                        "every rule passes".to_string()
                    } else {
                        format!("failing: {}", failing.join(", "))
                    }
                ),
                json!({"subject": shown.subject.to_string(), "as_of": shown.as_of, "records": shown.records, "figures": shown.figures}),
            )
        }
        Kind::Checkpoint => {
            let checkpoint = checkpoint::verify(&text, &vkey)?;
            (
                "checkpoint",
                format!(
                    "a checkpoint of {} records with root {}, signed by {}",
                    checkpoint.size,
                    view::base64(&checkpoint.root),
                    checkpoint.origin
                ),
                json!({"size": checkpoint.size, "root": view::base64(&checkpoint.root), "origin": checkpoint.origin}),
            )
        }
    };
    match context.format {
        Format::Json => {
            output::json(&json!({"status": "verified", "kind": kind, "details": details}))
        }
        Format::Table => output::line(&format!("{ok} {kind} proof: {summary}")),
    }
}

/// `verify --checkpoint`: the root at the checkpoint's size must be the checkpoint's root.
pub fn check_against(
    checkpoint_path: &Path,
    vkey: &str,
    roots: &dyn Fn(u64) -> Result<Option<[u8; 32]>, Error>,
    records: u64,
) -> Result<Verified, Error> {
    let text = read_text(checkpoint_path, "checkpoint")?;
    let checkpoint = checkpoint::verify(&text, vkey)?;
    if checkpoint.size > records {
        return Err(Error::Verification(format!(
            "the log has {records} records but the checkpoint covers {}: it was truncated",
            checkpoint.size
        )));
    }
    match roots(checkpoint.size)? {
        Some(root) if root == checkpoint.root => Ok(checkpoint),
        _ => Err(Error::Verification(format!(
            "the first {} records do not have the checkpoint's root {}: the history was rewritten",
            checkpoint.size,
            view::base64(&checkpoint.root)
        ))),
    }
}
