//! Reading and parsing an NDJSON file on helper threads, for `import`.
//!
//! Bad input must change nothing, so `import` reads its file before it writes anything.
//! [`check`] parses every line on every core, keeps the first bad line, and encodes every event
//! into the import's scratch files ([`super::spill`]). [`stream`] then reads them back on one
//! helper thread, a few blocks ahead of the ledger, and hands the events over in
//! file order: decoding them overlaps with deciding and writing, and costs a fraction of
//! parsing them again.

use std::io::BufRead;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Scope;

use super::spill::{self, Spill, SpillError, SpillWriter, Spilled};
use crate::affinity::Helpers;
use crate::input::{self, Lines};

/// Lines per block: large enough that a channel hand-over costs nothing per line, small enough
/// that a block's text stays in cache (at most 4,096 × 64 KiB in theory, about 1 MiB in practice).
const BLOCK_LINES: usize = 4096;
/// Blocks a reader may run ahead of the threads that consume them.
const BLOCKS_AHEAD: usize = 4;

/// A line that cannot be an event, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub number: u64,
    pub message: String,
}

/// Why [`check`] found no events to import.
#[derive(Debug)]
pub enum CheckError {
    /// The first bad line of the file.
    Bad(BadLine),
    /// The scratch files could not be written.
    Spill(SpillError),
}

/// Every line of the file checked and parsed.
pub struct Checked {
    pub events: u64,
    pub spill: Spill,
}

/// Consecutive lines of the file, the `index`th block of it: their text, and each line's
/// number, start in the file and span in the text.
struct RawBlock {
    index: usize,
    text: String,
    lines: Vec<(u64, u64, Range<usize>)>,
}

/// Consecutive events of the file, in order, with the scratch bytes they were decoded from
/// (each event's `content` is a range of them).
pub struct ParsedBlock {
    pub bytes: Vec<u8>,
    pub events: Vec<Spilled>,
}

/// Reads the file into blocks of lines and gives each to `send`, which returns false to stop;
/// the number of blocks read. `progress` sees the reader after each block, for progress bars.
fn read_blocks<R: BufRead>(
    lines: &mut Lines<R>,
    progress: &impl Fn(&Lines<R>),
    mut send: impl FnMut(RawBlock) -> bool,
) -> Result<usize, BadLine> {
    let mut block = RawBlock {
        index: 0,
        text: String::new(),
        lines: Vec::with_capacity(BLOCK_LINES),
    };
    while let Some((number, line)) = lines.next_line() {
        let line = line.map_err(|error| BadLine {
            number,
            message: error.to_string(),
        })?;
        let start = block.text.len();
        block.text.push_str(line);
        block
            .lines
            .push((number, lines.line_start(), start..block.text.len()));
        if block.lines.len() == BLOCK_LINES {
            progress(lines);
            // The next block's text starts at about this one's size (an eighth more, so that a
            // slightly longer block does not double it) rather than growing to it.
            let text_bytes = block.text.len() + block.text.len() / 8;
            let index = block.index + 1;
            let full = std::mem::replace(
                &mut block,
                RawBlock {
                    index,
                    text: String::with_capacity(text_bytes),
                    lines: Vec::with_capacity(BLOCK_LINES),
                },
            );
            if !send(full) {
                return Ok(block.index);
            }
        }
    }
    progress(lines);
    if block.lines.is_empty() {
        return Ok(block.index);
    }
    let blocks = block.index + 1;
    send(block);
    Ok(blocks)
}

/// Keeps the earliest of the bad lines found.
fn keep_first(slot: &Mutex<Option<BadLine>>, bad: BadLine) {
    let mut first = slot.lock().expect("no thread panics holding it");
    if first.as_ref().is_none_or(|kept| bad.number < kept.number) {
        *first = Some(bad);
    }
}

/// Parses every line of `lines` on `workers` threads and writes the events to scratch files
/// in `dir`; the events, or the first bad line. Blocks are handed out in file order, so when a
/// worker finds a bad line every earlier block is already taken; a worker skips only blocks
/// after the earliest bad line found so far, so every earlier block is finished and the
/// earliest bad line found is the file's first.
pub fn check<R: BufRead + Send>(
    mut lines: Lines<R>,
    workers: usize,
    dir: &std::path::Path,
    progress: impl Fn(&Lines<R>),
) -> Result<Checked, CheckError> {
    let first_bad: Mutex<Option<BadLine>> = Mutex::new(None);
    // The line number of the earliest bad line found so far (`u64::MAX`: none yet; 0: the
    // scratch files could not be written, and nothing more is worth checking).
    let earliest_bad = AtomicU64::new(u64::MAX);
    let spill_failed: Mutex<Option<SpillError>> = Mutex::new(None);
    let events = AtomicU64::new(0);
    let writer = SpillWriter::new(dir);
    let (sender, receiver) = sync_channel::<RawBlock>(BLOCKS_AHEAD);
    let receiver = Mutex::new(receiver);
    let blocks = std::thread::scope(|scope| {
        let receiver = &receiver;
        let (earliest_bad, first_bad, events) = (&earliest_bad, &first_bad, &events);
        let (writer, spill_failed) = (&writer, &spill_failed);
        for _ in 0..workers.max(1) {
            scope.spawn(move || {
                let mut bytes = Vec::new();
                'blocks: loop {
                    // The lock is held only to take a block, not to parse it.
                    let next = receiver.lock().expect("no thread panics holding it").recv();
                    let Ok(block) = next else { break };
                    // A block taken after a later block failed must still be checked: only
                    // blocks wholly after a bad line already found can be skipped.
                    let first_line = block.lines.first().map_or(u64::MAX, |(number, ..)| *number);
                    if first_line > earliest_bad.load(Ordering::Relaxed) {
                        continue;
                    }
                    bytes.clear();
                    for (number, start, span) in &block.lines {
                        match input::parse_event(&block.text[span.clone()]) {
                            Ok(submission) => {
                                let line = *start..start + span.len() as u64;
                                spill::push_event(&mut bytes, *number, line, &submission);
                            }
                            Err(error) => {
                                earliest_bad.fetch_min(*number, Ordering::Relaxed);
                                let message = error.to_string();
                                keep_first(
                                    first_bad,
                                    BadLine {
                                        number: *number,
                                        message,
                                    },
                                );
                                continue 'blocks;
                            }
                        }
                    }
                    if let Err(error) = writer.write_block(block.index, &bytes) {
                        *spill_failed.lock().expect("no thread panics holding it") = Some(error);
                        earliest_bad.store(0, Ordering::Relaxed);
                    }
                    events.fetch_add(block.lines.len() as u64, Ordering::Relaxed);
                }
            });
        }
        let read = read_blocks(&mut lines, &progress, |block| {
            // Blocks not read yet all come after any bad line found.
            earliest_bad.load(Ordering::Relaxed) == u64::MAX && sender.send(block).is_ok()
        });
        drop(sender);
        read.inspect_err(|bad| keep_first(first_bad, bad.clone()))
    });
    if let Some(error) = spill_failed
        .into_inner()
        .expect("the workers have finished")
    {
        return Err(CheckError::Spill(error));
    }
    match (
        first_bad.into_inner().expect("the workers have finished"),
        blocks,
    ) {
        (Some(bad), _) => Err(CheckError::Bad(bad)),
        (None, Ok(blocks)) => Ok(Checked {
            events: events.into_inner(),
            spill: writer.finish(blocks),
        }),
        (None, Err(_)) => unreachable!("a bad line read is kept"),
    }
}

/// Starts a thread that reads the scratch files back block by block, a few blocks ahead of the
/// receiver, and decodes the events. It stops at the end, at the first block it cannot read
/// back (sending the error), or when the receiver is dropped. It keeps to the processors of
/// `helpers`. `progress` sees how far into the input file each block ends, for progress bars.
pub fn stream<'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut spill: Spill,
    helpers: Helpers,
    progress: impl Fn(u64) + Send + 'scope,
) -> Receiver<Result<ParsedBlock, SpillError>> {
    let (sender, receiver) = sync_channel(BLOCKS_AHEAD);
    scope.spawn(move || {
        helpers.keep_this_thread();
        for index in 0..spill.blocks() {
            let block = spill.read_block(index).and_then(|bytes| {
                let events = spill::events(&bytes).collect::<Result<_, _>>()?;
                Ok(ParsedBlock { bytes, events })
            });
            let failed = block.is_err();
            if let Ok(block) = &block {
                progress(block.events.last().map_or(0, |event| event.line.end));
            }
            if sender.send(block).is_err() || failed {
                return;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Lines<std::io::Cursor<Vec<u8>>> {
        Lines::new(std::io::Cursor::new(text.as_bytes().to_vec()))
    }

    const GOOD: &str =
        r#"{"type":"aia_certification","id":"C-1","effective":"2025-02-01","entity":"acme"}"#;

    fn file(bad_at: &[usize], count: usize) -> String {
        (1..=count)
            .map(|number| {
                if bad_at.contains(&number) {
                    format!("{{\"type\":\"nonsense\",\"id\":\"X-{number}\"}}\n")
                } else {
                    GOOD.replace("C-1", &format!("C-{number}")) + "\n"
                }
            })
            .collect()
    }

    /// The check's result, with the directory its scratch files are made in.
    fn check_file(text: &str, workers: usize) -> (Result<Checked, CheckError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (check(lines(text), workers, dir.path(), |_| {}), dir)
    }

    #[test]
    fn check_counts_every_event_or_names_the_first_bad_line_whatever_the_workers() {
        for workers in [1, 2, 3] {
            let count = BLOCK_LINES * 3 + 17;
            let checked = check_file(&file(&[], count), workers).0.unwrap();
            assert_eq!(checked.events, count as u64);
            assert_eq!(checked.spill.blocks(), 4);
            // Bad lines in several blocks: the earliest is reported, never a later one, even
            // when a worker finishes a later block first (a race: try it several times).
            let text = file(&[BLOCK_LINES * 2 + 5, BLOCK_LINES + 9, 9_000], count);
            for round in 0..10 {
                let (Err(CheckError::Bad(bad)), _) = check_file(&text, workers) else {
                    panic!("{workers} workers, round {round}: no bad line found");
                };
                assert_eq!(
                    bad.number,
                    BLOCK_LINES as u64 + 9,
                    "{workers} workers, round {round}"
                );
            }
        }
    }

    #[test]
    fn stream_hands_back_every_checked_event_in_order_with_its_line() {
        // Blank lines and a line ending in "\r\n": numbers and places are the file's.
        let mut text = file(&[], BLOCK_LINES * 2 + 3);
        text.insert_str(0, "\n  \n");
        text = text.replacen("\"}\n", "\"}\r\n", 7);
        for workers in [1, 2, 3] {
            let (checked, _dir) = check_file(&text, workers);
            let checked = checked.unwrap();
            assert_eq!(checked.events, BLOCK_LINES as u64 * 2 + 3);
            let positions = Mutex::new(Vec::new());
            let positions = &positions;
            std::thread::scope(|scope| {
                let receiver = stream(scope, checked.spill, Helpers::anywhere(), move |position| {
                    positions.lock().unwrap().push(position)
                });
                let mut numbers = Vec::new();
                for block in receiver {
                    let block = block.unwrap();
                    for event in block.events {
                        let line = &text[event.line.start as usize..event.line.end as usize];
                        let parsed = input::parse_event(line).unwrap();
                        assert_eq!(event.submission.submission(), &parsed);
                        assert_eq!(
                            &block.bytes[event.content],
                            crate::codec::content_bytes(parsed.effective, &parsed.event)
                        );
                        assert_eq!(
                            line,
                            format!(
                                "{}",
                                GOOD.replace("C-1", &format!("C-{}", event.number - 2))
                            )
                        );
                        numbers.push(event.number);
                    }
                }
                assert_eq!(numbers, (3..BLOCK_LINES as u64 * 2 + 6).collect::<Vec<_>>());
                let positions = positions.lock().unwrap();
                assert_eq!(positions.len(), 3);
                assert_eq!(*positions.last().unwrap() as usize, text.trim_end().len());
            });
        }
    }

    #[test]
    fn scratch_files_hold_blocks_in_any_order_and_close_as_their_last_block_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SpillWriter::new(dir.path());
        let blocks = spill::SEGMENT_BLOCKS * 2 + 2;
        let submission = input::parse_event(GOOD).unwrap();
        // Written backwards, as a slow worker might leave an early block for last.
        for index in (0..blocks).rev() {
            let mut bytes = Vec::new();
            spill::push_event(&mut bytes, index as u64 + 1, 0..1, &submission);
            writer.write_block(index, &bytes).unwrap();
        }
        let mut spill = writer.finish(blocks);
        assert_eq!(spill.open_files(), 3);
        for index in 0..blocks {
            let bytes = spill.read_block(index).unwrap();
            let event = spill::events(&bytes).next().unwrap().unwrap();
            assert_eq!(event.number, index as u64 + 1);
            // A file closes with its last block; the last file with the input's last block.
            let closed = if index + 1 == blocks {
                3
            } else {
                (index + 1) / spill::SEGMENT_BLOCKS
            };
            assert_eq!(spill.open_files(), 3 - closed, "after block {index}");
        }
        // The files never had names.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_scratch_block_is_an_error_not_an_event() {
        let mut block = Vec::new();
        let submission = input::parse_event(GOOD).unwrap();
        spill::push_event(&mut block, 1, 0..GOOD.len() as u64, &submission);
        assert_eq!(spill::events(&block).count(), 1);
        for cut in 0..block.len() {
            let events: Vec<_> = spill::events(&block[..cut]).collect();
            // Nothing from nothing; from any part of an event, one error and no event.
            assert_eq!(events.len(), usize::from(cut > 0), "cut at {cut}");
            assert!(events.iter().all(Result::is_err), "cut at {cut}");
        }
        block[30] ^= 0xff;
        assert!(spill::events(&block).next().unwrap().is_err());
    }
}
