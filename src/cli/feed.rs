//! Reading and parsing an NDJSON file on helper threads, for `import`.
//!
//! Bad input must change nothing, so `import` reads its file twice. [`check`] parses every line
//! on every core and keeps nothing but the first bad line. [`stream`] parses again on one helper
//! thread, a few blocks ahead of the ledger, and hands the events over in file order: parsing
//! (a third of an event's cost) then overlaps with deciding and writing.

use std::io::BufRead;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;

use crate::input::{self, Lines, Submission};
use crate::ledger::HashedSubmission;

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

/// Consecutive lines of the file: their text, and each line's number and span in it.
struct RawBlock {
    text: String,
    lines: Vec<(u64, Range<usize>)>,
}

/// An event parsed from the file.
pub struct Parsed {
    pub number: u64,
    /// Its line in [`ParsedBlock::text`].
    pub span: Range<usize>,
    /// With its event id's index hash, computed here rather than on the ledger's thread.
    pub submission: HashedSubmission,
}

/// Consecutive events of the file, in order.
pub struct ParsedBlock {
    pub text: String,
    pub events: Vec<Parsed>,
}

/// Reads the file into blocks of lines and gives each to `send`, which returns false to stop.
/// `progress` sees the reader after each block, for progress bars.
fn read_blocks<R: BufRead>(
    lines: &mut Lines<R>,
    progress: &impl Fn(&Lines<R>),
    mut send: impl FnMut(RawBlock) -> bool,
) -> Result<(), BadLine> {
    let mut block = RawBlock {
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
        block.lines.push((number, start..block.text.len()));
        if block.lines.len() == BLOCK_LINES {
            progress(lines);
            // The next block's text starts at about this one's size (an eighth more, so that a
            // slightly longer block does not double it) rather than growing to it.
            let text_bytes = block.text.len() + block.text.len() / 8;
            let full = std::mem::replace(
                &mut block,
                RawBlock {
                    text: String::with_capacity(text_bytes),
                    lines: Vec::with_capacity(BLOCK_LINES),
                },
            );
            if !send(full) {
                return Ok(());
            }
        }
    }
    progress(lines);
    if !block.lines.is_empty() {
        send(block);
    }
    Ok(())
}

fn parse_line(text: &str, number: u64) -> Result<Submission, BadLine> {
    input::parse_event(text).map_err(|error| BadLine {
        number,
        message: error.to_string(),
    })
}

/// Keeps the earliest of the bad lines found.
fn keep_first(slot: &Mutex<Option<BadLine>>, bad: BadLine) {
    let mut first = slot.lock().expect("no thread panics holding it");
    if first.as_ref().is_none_or(|kept| bad.number < kept.number) {
        *first = Some(bad);
    }
}

/// Parses every line of `lines` on `workers` threads; the number of events, or the first bad
/// line. Blocks are handed out in file order, so when a worker finds a bad line every earlier
/// block is already taken; a worker skips only blocks after the earliest bad line found so far,
/// so every earlier block is finished and the earliest bad line found is the file's first.
pub fn check<R: BufRead + Send>(
    mut lines: Lines<R>,
    workers: usize,
    progress: impl Fn(&Lines<R>),
) -> Result<u64, BadLine> {
    let first_bad: Mutex<Option<BadLine>> = Mutex::new(None);
    // The line number of the earliest bad line found so far (`u64::MAX`: none yet).
    let earliest_bad = AtomicU64::new(u64::MAX);
    let events = AtomicU64::new(0);
    let (sender, receiver) = sync_channel::<RawBlock>(BLOCKS_AHEAD);
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        let receiver = &receiver;
        let (earliest_bad, first_bad, events) = (&earliest_bad, &first_bad, &events);
        for _ in 0..workers.max(1) {
            scope.spawn(move || {
                loop {
                    // The lock is held only to take a block, not to parse it.
                    let next = receiver.lock().expect("no thread panics holding it").recv();
                    let Ok(block) = next else { break };
                    // A block taken after a later block failed must still be checked: only
                    // blocks wholly after a bad line already found can be skipped.
                    let first_line = block.lines.first().map_or(u64::MAX, |(number, _)| *number);
                    if first_line > earliest_bad.load(Ordering::Relaxed) {
                        continue;
                    }
                    for (number, span) in &block.lines {
                        if let Err(bad) = parse_line(&block.text[span.clone()], *number) {
                            earliest_bad.fetch_min(*number, Ordering::Relaxed);
                            keep_first(first_bad, bad);
                            break;
                        }
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
        if let Err(bad) = read {
            keep_first(first_bad, bad);
        }
    });
    match first_bad.into_inner().expect("the workers have finished") {
        Some(bad) => Err(bad),
        None => Ok(events.into_inner()),
    }
}

/// Starts a thread that parses `lines` block by block, a few blocks ahead of the receiver. It
/// stops at the first bad line (sending it) or when the receiver is dropped.
pub fn stream<'scope, R: BufRead + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut lines: Lines<R>,
    progress: impl Fn(&Lines<R>) + Send + 'scope,
) -> Receiver<Result<ParsedBlock, BadLine>> {
    let (sender, receiver) = sync_channel(BLOCKS_AHEAD);
    scope.spawn(move || {
        let send_parsed = |sender: &SyncSender<Result<ParsedBlock, BadLine>>, block: RawBlock| {
            let mut events = Vec::with_capacity(block.lines.len());
            for (number, span) in block.lines {
                match parse_line(&block.text[span.clone()], number) {
                    Ok(submission) => events.push(Parsed {
                        number,
                        span,
                        submission: HashedSubmission::new(submission),
                    }),
                    Err(bad) => {
                        // The events before it first, then the bad line.
                        let text = block.text;
                        let _ = sender.send(Ok(ParsedBlock { text, events }));
                        let _ = sender.send(Err(bad));
                        return false;
                    }
                }
            }
            sender
                .send(Ok(ParsedBlock {
                    text: block.text,
                    events,
                }))
                .is_ok()
        };
        let read = read_blocks(&mut lines, &progress, |block| send_parsed(&sender, block));
        if let Err(bad) = read {
            let _ = sender.send(Err(bad));
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

    #[test]
    fn check_counts_every_event_or_names_the_first_bad_line_whatever_the_workers() {
        for workers in [1, 2, 3] {
            let count = BLOCK_LINES * 3 + 17;
            assert_eq!(
                check(lines(&file(&[], count)), workers, |_| {}),
                Ok(count as u64)
            );
            // Bad lines in several blocks: the earliest is reported, never a later one, even
            // when a worker finishes a later block first (a race: try it several times).
            let text = file(&[BLOCK_LINES * 2 + 5, BLOCK_LINES + 9, 9_000], count);
            for round in 0..10 {
                let bad = check(lines(&text), workers, |_| {}).unwrap_err();
                assert_eq!(
                    bad.number,
                    BLOCK_LINES as u64 + 9,
                    "{workers} workers, round {round}"
                );
            }
        }
    }

    #[test]
    fn stream_hands_over_every_event_in_order_then_the_bad_line() {
        let count = BLOCK_LINES * 2 + 3;
        let bad_at = BLOCK_LINES + 2;
        std::thread::scope(|scope| {
            let receiver = stream(scope, lines(&file(&[bad_at], count)), |_| {});
            let mut numbers = Vec::new();
            let mut bad = None;
            for block in receiver {
                match block {
                    Ok(block) => {
                        for event in block.events {
                            assert_eq!(
                                event.submission.submission().event.id.as_str(),
                                format!("C-{}", event.number)
                            );
                            assert!(
                                block.text[event.span].contains(&format!("C-{}", event.number))
                            );
                            numbers.push(event.number);
                        }
                    }
                    Err(line) => bad = Some(line.number),
                }
            }
            assert_eq!(numbers, (1..bad_at as u64).collect::<Vec<_>>());
            assert_eq!(bad, Some(bad_at as u64));
        });
    }
}
