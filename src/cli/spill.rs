//! The import's scratch files: every event of the input as the check parsed it.
//!
//! Bad input must change nothing, so `import` checks the whole file before it writes anything.
//! The check parses every line anyway, so its workers also encode each event here, a block at a
//! time in whatever order they finish; the import then reads the blocks back in file order and
//! decodes each event instead of parsing its JSON a second time, which costs several times more
//! (tools/bench/PROFILE.md, goal 1). The import records exactly what was checked, even if the
//! input file changes in between.
//!
//! The blocks go to a series of files, [`SEGMENT_BLOCKS`] blocks each, with no name
//! (`tempfile::tempfile_in`, in the ledger's directory, where the user made room), so they are
//! gone when the import ends or dies. Each file is closed as soon as the import has read its
//! last block: the kernel then drops its pages unwritten, where one file for the whole input
//! was written out to the disk as its pages aged (about 1 GB during an import of 10,000,000
//! events). Only this process writes and reads them; the layout is in schemas/FORMAT.md, "The
//! import's scratch files".

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::codec;
use crate::date::Date;
use crate::input::Submission;
use crate::ledger::HashedSubmission;

/// Bytes before each event's content: its line number, the line's start and length in the
/// input, and the content's length.
const HEADER_BYTES: usize = 8 + 8 + 4 + 4;

/// Blocks per scratch file: about 26 MB of events each, so that few files are open at once
/// (at most about 40 for 10,000,000 events) and each is closed soon after it was written.
pub const SEGMENT_BLOCKS: usize = 64;

/// The scratch files being written by the check's workers.
pub struct SpillWriter {
    /// Where the files are made.
    dir: PathBuf,
    layout: Mutex<Layout>,
}

/// Each file made so far with the length written to it, and where each block went, by its
/// place in the input (block 0 first).
#[derive(Default)]
struct Layout {
    segments: Vec<Option<(Arc<File>, u64)>>,
    blocks: Vec<Option<Range<u64>>>,
}

/// The scratch files once every block is written.
pub struct Spill {
    /// Each file until its last block is read.
    segments: Vec<Option<Arc<File>>>,
    blocks: Vec<Range<u64>>,
}

/// The scratch files could not be written or read back, or what was read back is not what was
/// written.
#[derive(Debug)]
pub struct SpillError(pub String);

impl std::fmt::Display for SpillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the import's scratch files: {}", self.0)
    }
}

/// An event read back from a block.
pub struct Spilled {
    pub number: u64,
    /// Where the line's text is in the input file, in bytes.
    pub line: Range<u64>,
    /// Where its content (`codec::content_bytes`) is in the block.
    pub content: Range<usize>,
    /// With its event id's index hash, computed here, on the reading thread, rather than on
    /// the ledger's.
    pub submission: HashedSubmission,
}

/// Appends one parsed event to a block's bytes: line `number`, whose text is at `line` in the
/// input file.
pub fn push_event(block: &mut Vec<u8>, number: u64, line: Range<u64>, submission: &Submission) {
    let line_bytes = u32::try_from(line.end - line.start).expect("a line is at most 64 KiB");
    block.extend_from_slice(&number.to_le_bytes());
    block.extend_from_slice(&line.start.to_le_bytes());
    block.extend_from_slice(&line_bytes.to_le_bytes());
    let length_at = block.len();
    block.extend_from_slice(&[0; 4]);
    codec::append_bytes(&(submission.effective, &submission.event), block);
    let content_bytes = u32::try_from(block.len() - length_at - 4).expect("an event is small");
    block[length_at..length_at + 4].copy_from_slice(&content_bytes.to_le_bytes());
}

/// Reads back the events of one block, in order.
pub fn events(block: &[u8]) -> impl Iterator<Item = Result<Spilled, SpillError>> + '_ {
    let mut position = 0;
    // Each event takes at least its header, so this bounds the loop by the block; one more
    // turns a last piece shorter than a header into an error rather than nothing.
    (0..=block.len() / HEADER_BYTES).map_while(move |_| {
        if position >= block.len() {
            return None;
        }
        let event = next_event(block, &mut position);
        if event.is_err() {
            // Nothing after a damaged event can be found: the error is the last item.
            position = block.len();
        }
        Some(event)
    })
}

fn next_event(block: &[u8], position: &mut usize) -> Result<Spilled, SpillError> {
    let damaged = || {
        SpillError(format!(
            "the event at byte {position} of a block is damaged"
        ))
    };
    let header = block
        .get(*position..*position + HEADER_BYTES)
        .ok_or_else(damaged)?;
    let (number, rest) = header.split_first_chunk::<8>().expect("24 bytes");
    let (start, rest) = rest.split_first_chunk::<8>().expect("16 bytes");
    let (line_bytes, rest) = rest.split_first_chunk::<4>().expect("8 bytes");
    let content_bytes = u32::from_le_bytes(rest.try_into().expect("4 bytes")) as usize;
    let content = *position + HEADER_BYTES..*position + HEADER_BYTES + content_bytes;
    let (effective, event) =
        codec::from_bytes::<(Date, _)>(block.get(content.clone()).ok_or_else(damaged)?)
            .map_err(|error| SpillError(format!("{} ({error})", damaged().0)))?;
    *position = content.end;
    let start = u64::from_le_bytes(*start);
    Ok(Spilled {
        number: u64::from_le_bytes(*number),
        line: start..start + u64::from(u32::from_le_bytes(*line_bytes)),
        content,
        submission: HashedSubmission::new(Submission { effective, event }),
    })
}

impl SpillWriter {
    /// Scratch files made in `dir` as blocks come.
    pub fn new(dir: &Path) -> SpillWriter {
        SpillWriter {
            dir: dir.to_path_buf(),
            layout: Mutex::new(Layout::default()),
        }
    }

    /// Writes block `index` (counted from the start of the input). Blocks may come in any order.
    pub fn write_block(&self, index: usize, bytes: &[u8]) -> Result<(), SpillError> {
        let segment = index / SEGMENT_BLOCKS;
        let (file, start) = {
            let mut layout = self.layout.lock().expect("no thread panics holding it");
            if layout.segments.len() <= segment {
                layout.segments.resize(segment + 1, None);
            }
            if layout.segments[segment].is_none() {
                let file = tempfile::tempfile_in(&self.dir).map_err(|error| {
                    SpillError(format!(
                        "cannot create one in {}: {error}",
                        self.dir.display()
                    ))
                })?;
                layout.segments[segment] = Some((Arc::new(file), 0));
            }
            let (file, end) = layout.segments[segment].as_mut().expect("made above");
            let start = *end;
            *end += bytes.len() as u64;
            let file = Arc::clone(file);
            if layout.blocks.len() <= index {
                layout.blocks.resize(index + 1, None);
            }
            assert!(
                layout.blocks[index].is_none(),
                "block {index} written twice"
            );
            layout.blocks[index] = Some(start..start + bytes.len() as u64);
            (file, start)
        };
        // Outside the lock: each block has its own place, so the workers write side by side.
        file.write_all_at(bytes, start)
            .map_err(|error| SpillError(format!("cannot write: {error}")))
    }

    /// The files with every block written: blocks 0 to `blocks - 1`, none missing.
    pub fn finish(self, blocks: usize) -> Spill {
        let layout = self
            .layout
            .into_inner()
            .expect("no thread panics holding it");
        assert!(layout.blocks.len() <= blocks, "more blocks than were read");
        let mut written = layout.blocks;
        written.resize(blocks, None);
        Spill {
            segments: layout
                .segments
                .into_iter()
                .map(|segment| segment.map(|(file, _)| file))
                .collect(),
            blocks: written
                .into_iter()
                .enumerate()
                .map(|(index, place)| {
                    place.unwrap_or_else(|| panic!("block {index} was not written"))
                })
                .collect(),
        }
    }
}

impl Spill {
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The scratch files still open: those with a block not read yet.
    #[cfg(test)]
    pub fn open_files(&self) -> usize {
        self.segments.iter().flatten().count()
    }

    /// The bytes of block `index`. Blocks are read in order: once the last block of a file is
    /// read, the file is closed.
    pub fn read_block(&mut self, index: usize) -> Result<Vec<u8>, SpillError> {
        let place = &self.blocks[index];
        let segment = index / SEGMENT_BLOCKS;
        let file = self.segments[segment]
            .as_ref()
            .unwrap_or_else(|| panic!("block {index} is read once, in order"));
        let mut bytes = vec![0; (place.end - place.start) as usize];
        file.read_exact_at(&mut bytes, place.start)
            .map_err(|error| SpillError(format!("cannot read block {index}: {error}")))?;
        if index % SEGMENT_BLOCKS == SEGMENT_BLOCKS - 1 || index + 1 == self.blocks.len() {
            // Its pages go without being written out: the file has no name, and this is the
            // last handle to it.
            self.segments[segment] = None;
        }
        Ok(bytes)
    }
}
