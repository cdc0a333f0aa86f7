//! Commands that write (or rehearse writing): init, append, check, import, demo.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::Instant as Clock;

use serde_json::json;

use super::output::{self, Style, paint};
use super::{Context, Format, feed, spill};
use crate::codec::{Outcome, Record, content_bytes};
use crate::error::Error;
use crate::input::{self, Lines, Submission};
use crate::ledger::{Admitted, Ledger, Staged};
use crate::rules::Refusal;
use crate::store::StoreError;
use crate::view;

/// The most an `append` or `check` call reads: larger inputs belong to `import`.
const MAX_APPEND_BYTES: u64 = 64 << 20;
/// Events whose duplicate-id probes an import readies at a time ([`Ledger::warm_ids`]): their
/// table lines (two per event) stay in cache while the events are decided.
const WARM_EVENTS: usize = 64;
/// Events per durable batch during `import`, unless `--batch` says otherwise.
pub const IMPORT_BATCH: u64 = 10_000;

pub struct ImportOptions<'a> {
    pub keep_going: bool,
    pub rejects: Option<&'a Path>,
    pub batch: u64,
}

/// A parsed event with where it came from.
pub struct Numbered {
    pub line: u64,
    pub submission: Submission,
}

fn place(source: &str, line: u64) -> String {
    format!("{source} line {line}")
}

fn source_name(file: Option<&Path>) -> String {
    match file {
        None => "standard input".to_string(),
        Some(path) if path == Path::new("-") => "standard input".to_string(),
        Some(path) => path.display().to_string(),
    }
}

/// Reads one JSON event, or NDJSON events, from a file or standard input.
pub fn read_events(file: Option<&Path>) -> Result<Vec<Numbered>, Error> {
    let source = source_name(file);
    let reader: Box<dyn Read> = match file {
        None => Box::new(std::io::stdin()),
        Some(path) if path == Path::new("-") => Box::new(std::io::stdin()),
        Some(path) => Box::new(
            File::open(path)
                .map_err(|error| Error::input(&source, format!("cannot open: {error}")))?,
        ),
    };
    let mut text = Vec::new();
    reader
        .take(MAX_APPEND_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|error| Error::input(&source, format!("cannot read: {error}")))?;
    if text.len() as u64 > MAX_APPEND_BYTES {
        return Err(Error::input(
            &source,
            "is larger than 64 MiB; use `chipledger import` for bulk loads",
        ));
    }
    // One JSON object spread over several lines is one event.
    if let Ok(whole) = std::str::from_utf8(&text) {
        let trimmed = whole.trim();
        if trimmed.starts_with('{')
            && trimmed.contains('\n')
            && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok()
        {
            let submission = input::parse_event(trimmed)
                .map_err(|error| Error::input(&source, error.to_string()))?;
            return Ok(vec![Numbered {
                line: 1,
                submission,
            }]);
        }
    }
    let mut events = Vec::new();
    let mut lines = Lines::new(text.as_slice());
    while let Some((number, line)) = lines.next_line() {
        let line = line.map_err(|error| Error::input(place(&source, number), error.to_string()))?;
        let submission = input::parse_event(line)
            .map_err(|error| Error::input(place(&source, number), error.to_string()))?;
        events.push(Numbered {
            line: number,
            submission,
        });
    }
    if events.is_empty() {
        return Err(Error::input(&source, "holds no events"));
    }
    Ok(events)
}

pub fn init(context: &Context, origin: Option<&str>) -> Result<(), Error> {
    let (ledger, created) = Ledger::create(&context.ledger, origin, context.now)?;
    let head = ledger.reader().head().clone();
    match context.format {
        Format::Json => output::json(&json!({
            "status": "created",
            "ledger": context.ledger,
            "origin": created.origin,
            "verifier_key": created.verifier_key,
            "size": head.size,
            "root": view::base64(&head.root),
        })),
        Format::Table => {
            output::line(&format!("created ledger {}", context.ledger.display()))?;
            output::line(&format!("origin:       {}", created.origin))?;
            output::line(&format!("verifier key: {}", created.verifier_key))?;
            output::line(&format!(
                "signing key:  {} (mode 0600; keep it private)",
                ledger.reader().paths().signing_key().display()
            ))?;
            output::line(&format!(
                "genesis:      ruleset {} v{}, root {}",
                ledger.reader().params().ruleset.name,
                ledger.reader().params().ruleset.version,
                view::base64(&head.root)
            ))
        }
    }
}

/// A short description of what a record resolved.
pub fn outcome_text(record: &Record, h100_tpp: u64) -> String {
    match &record.outcome {
        Outcome::Chips(chips) if chips.controlled => format!(
            "basis {}, {} TPP (≈ {} H100){}",
            chips.basis.name(),
            output::tpp(chips.amount_tpp),
            output::h100(chips.amount_tpp, h100_tpp),
            if chips.counts_allocation {
                ", counts against the allocation"
            } else {
                ""
            }
        ),
        Outcome::Chips(chips) => format!("uncontrolled, {} TPP", output::tpp(chips.amount_tpp)),
        Outcome::Weights(weights) if weights.controlled => {
            format!(
                "controlled weights, authorized by {}",
                weights.authority.name()
            )
        }
        Outcome::Weights(_) => "uncontrolled weights".to_string(),
        Outcome::Void(void) => format!(
            "voids record {} ({})",
            void.target_seq, void.target_event.id
        ),
        Outcome::Revoke(revoke) => format!("ends {}'s VEU", revoke.holder),
        Outcome::None => String::new(),
    }
}

fn refused(source: &str, line: u64, refusal: Refusal) -> Error {
    Error::Refused {
        place: Some(place(source, line)),
        refusal: Box::new(refusal),
    }
}

pub fn append(context: &Context, file: Option<&Path>) -> Result<(), Error> {
    let events = read_events(file)?;
    let source = source_name(file);
    let mut ledger = Ledger::open(&context.ledger)?;
    let mut results = Vec::with_capacity(events.len());
    for event in &events {
        match ledger.submit(&event.submission, context.now)? {
            Ok(admitted) => results.push((event.line, admitted)),
            Err(refusal) => {
                ledger.rollback()?;
                return Err(refused(&source, event.line, refusal));
            }
        }
    }
    ledger.commit()?;
    let head = ledger.reader().head().clone();
    let h100_tpp = ledger.reader().params().h100_tpp();
    match context.format {
        Format::Json => {
            let items: Vec<_> = results
                .iter()
                .map(|(line, admitted)| match admitted {
                    Admitted::Recorded(record) => json!({
                        "line": line, "status": "recorded", "seq": record.seq, "id": record.event.id,
                        "type": record.event.body.type_name(), "outcome": view::outcome_json(&record.outcome),
                    }),
                    Admitted::AlreadyRecorded(seq) => json!({"line": line, "status": "already_recorded", "seq": seq}),
                })
                .collect();
            output::json(&json!({
                "status": "recorded",
                "events": items,
                "size": head.size,
                "root": view::base64(&head.root),
            }))
        }
        Format::Table => {
            let colour = output::stdout_colour();
            for (_, admitted) in &results {
                match admitted {
                    Admitted::Recorded(record) => output::line(&format!(
                        "{} {} {} as record {}{}",
                        paint(colour, Style::Green, "recorded"),
                        record.event.body.type_name(),
                        record.event.id,
                        record.seq,
                        match outcome_text(record, h100_tpp) {
                            text if text.is_empty() => String::new(),
                            text => format!(": {text}"),
                        }
                    ))?,
                    Admitted::AlreadyRecorded(seq) => output::line(&format!(
                        "already recorded as record {seq} (identical content); nothing to do"
                    ))?,
                }
            }
            output::line(&format!(
                "log size {}, root {}",
                head.size,
                view::base64(&head.root)
            ))
        }
    }
}

pub fn check(context: &Context, file: Option<&Path>) -> Result<(), Error> {
    let events = read_events(file)?;
    let source = source_name(file);
    let mut ledger = Ledger::open(&context.ledger)?;
    let h100_tpp = ledger.reader().params().h100_tpp();
    let colour = output::stdout_colour();
    let mut refusals = 0usize;
    let mut first_refusal = None;
    for event in &events {
        let result = ledger.submit(&event.submission, context.now)?;
        match (context.format, &result) {
            (Format::Json, Ok(Admitted::Recorded(record))) => output::json(&json!({
                "line": event.line, "status": "accepted", "id": record.event.id,
                "type": record.event.body.type_name(), "outcome": view::outcome_json(&record.outcome),
            }))?,
            (Format::Json, Ok(Admitted::AlreadyRecorded(seq))) => output::json(&json!({
                "line": event.line, "status": "already_recorded", "id": event.submission.event.id, "seq": seq,
            }))?,
            (Format::Json, Err(refusal)) => {
                output::json(&view::refusal_json(refusal, h100_tpp, Some(event.line)))?
            }
            (Format::Table, Ok(Admitted::Recorded(record))) => output::line(&format!(
                "{}: {} {} {} {}",
                place(&source, event.line),
                paint(colour, Style::Green, "accepted"),
                record.event.body.type_name(),
                record.event.id,
                outcome_text(record, h100_tpp)
            ))?,
            (Format::Table, Ok(Admitted::AlreadyRecorded(seq))) => output::line(&format!(
                "{}: already recorded as record {seq}",
                place(&source, event.line)
            ))?,
            (Format::Table, Err(refusal)) => output::line(&format!(
                "{}: {} {}: {}",
                place(&source, event.line),
                paint(colour, Style::Red, "refused"),
                refusal.code,
                refusal.message
            ))?,
        }
        if let Err(refusal) = result {
            refusals += 1;
            first_refusal.get_or_insert((event.line, refusal));
        }
    }
    ledger.rollback()?;
    if refusals > 0 {
        let (line, refusal) = first_refusal.expect("counted");
        // The lines above already gave each refusal in full; a table ends with the count.
        if context.format == Format::Table {
            return Err(Error::SomeRefused(format!(
                "{refusals} of {} events would be refused (the first on line {line}, {}); nothing \
                 was written",
                events.len(),
                refusal.code
            )));
        }
        return Err(Error::Refused {
            place: Some(format!("{} (first refusal)", place(&source, line))),
            refusal: Box::new(refusal),
        });
    }
    output::note(
        context.quiet || context.format == Format::Json,
        &format!(
            "all {} events would be accepted; nothing was written",
            events.len()
        ),
    );
    Ok(())
}

/// Progress through an input file of `total_bytes`.
fn progress(context: &Context, total_bytes: u64, message: &str) -> Option<indicatif::ProgressBar> {
    let bar = output::bar(context.quiet, message, output::Unit::Bytes)?;
    bar.set_length(total_bytes);
    Some(bar)
}

/// Counts the bytes a reader has consumed, for the progress bar.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes += read as u64;
        Ok(read)
    }
}

fn open_lines(file: &Path) -> Result<Lines<BufReader<Counted<File>>>, Error> {
    let source = file.display().to_string();
    let handle =
        File::open(file).map_err(|error| Error::input(&source, format!("cannot open: {error}")))?;
    Ok(Lines::new(BufReader::with_capacity(
        1 << 20,
        Counted {
            inner: handle,
            bytes: 0,
        },
    )))
}

/// Checks every line of the file for bad input, so that a malformed line changes nothing, and
/// keeps the parsed events in scratch files in the ledger's directory for the import.
fn check_syntax(context: &Context, file: &Path, total: u64) -> Result<feed::Checked, Error> {
    let source = file.display().to_string();
    let bar = progress(context, total, "checking");
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let checked = feed::check(open_lines(file)?, workers, &context.ledger, |lines| {
        if let Some(bar) = &bar {
            bar.set_position(lines.get_ref().get_ref().bytes);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    checked.map_err(|error| match error {
        feed::CheckError::Bad(bad) => Error::input(place(&source, bad.number), bad.message),
        feed::CheckError::Spill(error) => scratch_error(error),
    })
}

fn scratch_error(error: spill::SpillError) -> Error {
    Error::Store(StoreError::Io(error.to_string()))
}

/// Copies a refused line to the rejects file, read again from the input at `line`. Its content
/// must be what was checked and refused (`content`), or the input changed during the import.
fn write_reject(
    out: &mut impl Write,
    input: &File,
    place: &str,
    line: std::ops::Range<u64>,
    content: &[u8],
) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let mut text = vec![0; (line.end - line.start) as usize];
    let same = input.read_exact_at(&mut text, line.start).is_ok()
        && std::str::from_utf8(&text)
            .ok()
            .and_then(|text| input::parse_event(text).ok())
            .is_some_and(|again| content_bytes(again.effective, &again.event) == content);
    if !same {
        return Err(Error::input(
            place,
            "the file changed during the import, so the refused line cannot be copied to the rejects \
             file; events before it may be recorded, and importing the file again skips those",
        ));
    }
    out.write_all(&text)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(Error::Output)
}

/// What an import did, line by line.
#[derive(Default)]
struct Tally {
    recorded: u64,
    skipped: u64,
    refused: u64,
    by_code: std::collections::BTreeMap<&'static str, u64>,
    /// The refused line that stopped the import, without `--keep-going`.
    stop: Option<(u64, Refusal)>,
    shown: usize,
    last_line: u64,
}

pub fn import(context: &Context, file: &Path, options: ImportOptions<'_>) -> Result<(), Error> {
    let ImportOptions {
        keep_going,
        rejects,
        batch,
    } = options;
    let started = Clock::now();
    let mut timings = output::Timings::start(context.timings);
    let source = file.display().to_string();
    let total = std::fs::metadata(file)
        .map_err(|error| Error::input(&source, format!("cannot open: {error}")))?
        .len();
    let mut ledger = Ledger::open(&context.ledger)?;
    timings.step("open");
    let feed::Checked { events, spill } = check_syntax(context, file, total)?;
    timings.step("check");
    ledger.reserve(events);
    // This thread decides the events in order; reading them back and sealing them run on the
    // other processors.
    let helpers = crate::affinity::Helpers::of_this_thread();
    ledger.keep_helpers(helpers);
    let mut rejects_file = match rejects {
        Some(path) => Some(std::io::BufWriter::new(File::create(path).map_err(
            |error| Error::Store(StoreError::Io(format!("{}: {error}", path.display()))),
        )?)),
        None => None,
    };
    let h100_tpp = ledger.reader().params().h100_tpp();
    let bar = progress(context, total, "importing");
    let mut tally = Tally::default();
    // Only to copy refused lines to the rejects file.
    let input = match rejects {
        Some(_) => Some(
            File::open(file)
                .map_err(|error| Error::input(&source, format!("cannot open: {error}")))?,
        ),
        None => None,
    };
    let bar_for_reader = bar.clone();
    // The last line of each batch being made durable in the background, oldest first.
    let mut in_flight: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    std::thread::scope(|scope| -> Result<(), Error> {
        let blocks = feed::stream(scope, spill, helpers, move |position| {
            if let Some(bar) = &bar_for_reader {
                bar.set_position(position);
            }
        });
        'blocks: for block in blocks {
            let feed::ParsedBlock { bytes, events } = block.map_err(scratch_error)?;
            let id_hashes: Vec<u64> = events
                .iter()
                .map(|event| event.submission.id_hash())
                .collect();
            for (position, event) in events.into_iter().enumerate() {
                if position % WARM_EVENTS == 0 {
                    let next = position..(position + WARM_EVENTS).min(id_hashes.len());
                    ledger.warm_ids(id_hashes[next].iter().copied());
                }
                let spill::Spilled {
                    number,
                    line,
                    content,
                    submission,
                } = event;
                tally.last_line = number;
                match ledger.submit_hashed(submission, context.now)? {
                    Ok(Staged::Recorded(_)) => tally.recorded += 1,
                    Ok(Staged::AlreadyRecorded(_)) => tally.skipped += 1,
                    Err(refusal) => {
                        tally.refused += 1;
                        *tally.by_code.entry(refusal.code.as_str()).or_default() += 1;
                        if !keep_going {
                            tally.stop = Some((number, refusal));
                            break 'blocks;
                        }
                        if let (Some(out), Some(input)) = (rejects_file.as_mut(), &input) {
                            let place = place(&source, number);
                            write_reject(out, input, &place, line, &bytes[content])?;
                        }
                        if tally.shown < 10 && !context.quiet && context.format == Format::Table {
                            eprintln!("{}: {refusal}", place(&source, number));
                            tally.shown += 1;
                        }
                    }
                }
                if ledger.staged_count() >= batch {
                    // The disk writes this batch while the next one is decided; a batch is
                    // acknowledged once it is durable.
                    for size in ledger.commit_in_background()? {
                        let line = in_flight.pop_front().expect("a batch was handed over");
                        acknowledge(context, line, size)?;
                    }
                    in_flight.push_back(number);
                }
            }
        }
        Ok(())
    })?;
    let Tally {
        recorded,
        skipped,
        refused: refused_count,
        by_code,
        stop,
        last_line,
        ..
    } = tally;
    for size in ledger.finish_background()? {
        let line = in_flight.pop_front().expect("a batch was handed over");
        acknowledge(context, line, size)?;
    }
    if ledger.commit()? > 0 {
        let through = stop.as_ref().map_or(last_line, |(line, _)| line - 1);
        acknowledge(context, through, ledger.reader().size())?;
    }
    timings.step("import");
    timings.part("of which waiting for commits", ledger.commit_wait());
    timings.report();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(mut out) = rejects_file {
        out.flush().map_err(Error::Output)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let head = ledger.reader().head().clone();
    let rate = (recorded + skipped) as f64 / seconds.max(1e-9);
    match context.format {
        Format::Json => output::json(&json!({
            "status": if stop.is_some() { "stopped" } else { "imported" },
            "lines": events,
            "recorded": recorded,
            "already_recorded": skipped,
            "refused": refused_count,
            "refused_by_code": by_code,
            "seconds": seconds,
            "events_per_second": rate,
            "size": head.size,
            "root": view::base64(&head.root),
            "stopped_at": stop.as_ref().map(|(line, refusal)| view::refusal_json(refusal, h100_tpp, Some(*line))),
        }))?,
        Format::Table => {
            output::line(&format!(
                "imported {} of {events} events ({skipped} already recorded, {refused_count} refused) in {seconds:.2} s ({} events/s)",
                recorded,
                output::tpp(rate as u64)
            ))?;
            for (code, count) in &by_code {
                output::line(&format!("  refused {code}: {count}"))?;
            }
            output::line(&format!(
                "log size {}, root {}",
                head.size,
                view::base64(&head.root)
            ))?;
        }
    }
    if let Some((line, refusal)) = stop {
        return Err(Error::Refused {
            place: Some(format!(
                "{}; events before it were recorded, the rest were not",
                place(&source, line)
            )),
            refusal: Box::new(refusal),
        });
    }
    if refused_count > 0 {
        return Err(Error::SomeRefused(format!(
            "{refused_count} events were refused{}; the others were recorded",
            rejects
                .map(|path| format!(" and written to {}", path.display()))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// With `--format json`, says that every event up to `line` is durable, the log `size` long.
fn acknowledge(context: &Context, line: u64, size: u64) -> Result<(), Error> {
    if context.format != Format::Json {
        return Ok(());
    }
    output::json(&json!({
        "status": "committed",
        "through_line": line,
        "size": size,
    }))
}

pub fn demo(context: &Context, dir: Option<&Path>) -> Result<(), Error> {
    crate::demo::run(context, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_line_is_copied_only_if_the_input_still_holds_what_was_checked() {
        let line =
            r#"{"type":"aia_certification","id":"C-1","effective":"2025-02-01","entity":"acme"}"#;
        let mut input = tempfile::tempfile().unwrap();
        write!(input, "\n{line}\r\n").unwrap();
        let checked = input::parse_event(line).unwrap();
        let content = content_bytes(checked.effective, &checked.event);
        let place = 1..1 + line.len() as u64;
        let mut out = Vec::new();
        write_reject(&mut out, &input, "f line 2", place.clone(), &content).unwrap();
        assert_eq!(out, format!("{line}\n").into_bytes());
        // The same line now says another date, or the file is shorter: nothing is copied.
        let other = input::parse_event(&line.replace("02-01", "02-02")).unwrap();
        let other = content_bytes(other.effective, &other.event);
        let mut out = Vec::new();
        let error = write_reject(&mut out, &input, "f line 2", place.clone(), &other).unwrap_err();
        assert!(
            error.to_string().contains("f line 2: the file changed"),
            "{error}"
        );
        input.set_len(10).unwrap();
        assert!(write_reject(&mut out, &input, "f line 2", place, &content).is_err());
        assert!(out.is_empty());
    }
}
