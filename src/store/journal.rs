//! The write-ahead journal: how a small batch (one `append`) becomes durable with one write
//! and one fdatasync of a file that never changes size, where sled's own path takes three
//! waits for the disk (its flush waits twice, then the sync of its file). FORMAT.md section 6.1
//! gives the layout and the crash cases.
//!
//! The journal is a fixed-size, zero-filled file of whole-page frames, each one batch. Frames
//! are written one after another from offset 0; the journal starts again at offset 0 only
//! after a batch was flushed into sled durably (sled's flush and the sync of its file), which
//! makes every journaled batch before it durable in sled too. That restart writes a *marker*
//! frame (no payload) naming the batch sled is durable at, so that the next open knows the
//! frames after it are all it needs.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec::{self, JOURNAL_HEADER_BYTES, JOURNAL_PAGE_BYTES};

use super::{StoreError, io_error};

/// The journal's file name inside the store directory.
pub const JOURNAL_FILE: &str = "journal";

/// The journal file's size, fixed when the store is created. It is written with zeroes then,
/// so that writing a frame later changes no file metadata and its fdatasync waits for one
/// write of data. An append's frame is one page (its values are written as changes,
/// [`super::delta`]), so 1 MiB holds about 250 appends: enough that flushing into sled (a few
/// ms) is rare, few enough that an open replays them in a few ms.
pub const JOURNAL_BYTES: u64 = 1 << 20;

/// The largest batch the journal takes, by the bytes of its keys and values. A larger batch (an import's thousands of events) is
/// flushed into sled directly: journaling it would write its bytes twice for a wait that the
/// batch's size makes small.
pub const JOURNAL_BATCH_MAX_BYTES: usize = 256 << 10;

/// The journal of one open store. Its owner holds it behind a lock for a whole commit.
pub(super) struct Journal {
    file: File,
    /// The number the next batch gets (batches are numbered from 1, the genesis batch).
    pub next_seq: u64,
    /// Where the next frame goes.
    next_offset: u64,
    /// Whether the next batch may go to the journal. False until a flushed batch restarts the
    /// journal, when the frames found at open cannot be continued (none were found, or the
    /// store holds batches after the last of them).
    accepting: bool,
}

/// The frames found at open: the unbroken run from offset 0.
#[derive(Default)]
pub(super) struct Run {
    /// The batch that sled was durable at when the run began: the marker's number, or the
    /// number before the first frame's. `None` when no frame was found.
    pub base: Option<u64>,
    /// The frames' batch numbers and payloads, in order, numbers consecutive from `base + 1`.
    pub frames: Vec<(u64, Vec<u8>)>,
    /// Where the run ends.
    end_offset: u64,
}

impl Journal {
    /// Creates the zero-filled journal of a new store, durably.
    pub fn create(store: &Path) -> Result<(), StoreError> {
        let path = store.join(JOURNAL_FILE);
        let io = |doing: &str, error| io_error(doing, error, store);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| io("creating the journal", error))?;
        let zeroes = vec![0u8; 1 << 20];
        let mut offset = 0u64;
        while offset < JOURNAL_BYTES {
            file.write_all_at(&zeroes, offset)
                .map_err(|error| io("writing the journal", error))?;
            offset += zeroes.len() as u64;
        }
        assert_eq!(offset, JOURNAL_BYTES);
        file.sync_all()
            .map_err(|error| io("fsync of the journal", error))?;
        File::open(store)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| io("fsync of the store directory", error))?;
        Ok(())
    }

    /// Opens the journal of the store at `store`. The caller reads its run of frames
    /// ([`Journal::read_run`]), replays the frames the store lacks, then calls
    /// [`Journal::resume`].
    pub fn open(store: &Path) -> Result<Journal, StoreError> {
        let path = store.join(JOURNAL_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Corrupt(format!(
                    "the journal {} is missing",
                    path.display()
                )));
            }
            Err(error) => return Err(io_error("opening the journal", error, store)),
        };
        let length = file
            .metadata()
            .map_err(|error| io_error("reading the journal's size", error, store))?
            .len();
        if length != JOURNAL_BYTES {
            return Err(StoreError::Corrupt(format!(
                "the journal is {length} bytes, not {JOURNAL_BYTES}"
            )));
        }
        Ok(Journal {
            file,
            next_seq: 0,
            next_offset: 0,
            accepting: false,
        })
    }

    /// Reads the run of frames, for a store whose sled holds batches through `sled_batch`.
    pub fn read_run(&self, sled_batch: u64, store: &Path) -> Result<Run, StoreError> {
        read_run(&self.file, sled_batch, store)
    }

    /// Sets where writing goes on after open, once the store holds every batch through
    /// `stored` (the frames it lacked replayed).
    pub fn resume(&mut self, run: &Run, stored: u64) {
        let last = run.frames.last().map(|(seq, _)| *seq).or(run.base);
        // The run can be continued only if it ends at the store's last batch: then after a
        // power loss the run still leads from a durable state of sled to every batch. If
        // sled holds batches after the run (a flushed batch, or a journaled one whose frame
        // never reached the file), the first commit must flush them durably first.
        self.accepting = last == Some(stored);
        self.next_offset = if self.accepting { run.end_offset } else { 0 };
        self.next_seq = stored + 1;
    }

    /// Whether the journal takes frames now (see [`Journal::resume`]).
    pub fn accepting(&self) -> bool {
        self.accepting
    }

    /// Whether a frame of `frame_bytes` may be written now.
    pub fn takes(&self, frame_bytes: usize) -> bool {
        self.accepting && self.next_offset + frame_bytes as u64 <= JOURNAL_BYTES
    }

    /// Writes a frame at the end of the run (not yet durable: see [`Journal::sync`]).
    pub fn write(&mut self, frame: &[u8], store: &Path) -> Result<(), StoreError> {
        assert!(self.takes(frame.len()));
        assert_eq!(frame.len() % JOURNAL_PAGE_BYTES, 0);
        assert_eq!(self.next_offset % JOURNAL_PAGE_BYTES as u64, 0);
        self.file
            .write_all_at(frame, self.next_offset)
            .map_err(|error| io_error("writing the journal", error, store))?;
        self.next_offset += frame.len() as u64;
        Ok(())
    }

    /// Makes every frame written so far durable.
    pub fn sync(&self, store: &Path) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|error| io_error("fdatasync of the journal", error, store))
    }

    /// Starts the journal again at offset 0 once sled is durable through batch `durable`: a
    /// marker frame there says so (FORMAT.md section 6.1).
    pub fn restart(&mut self, durable: u64, store: &Path) -> Result<(), StoreError> {
        let marker = codec::journal_frame(durable, &[]);
        self.file
            .write_all_at(&marker, 0)
            .map_err(|error| io_error("writing the journal", error, store))?;
        self.sync(store)?;
        self.next_offset = marker.len() as u64;
        self.accepting = true;
        Ok(())
    }
}

/// What a journal offset holds.
enum Found {
    /// No frame: zeroes, or bytes that are not a frame's header.
    Nothing,
    /// A frame's header whose frame does not check: torn, or damaged.
    Damaged { frame_bytes: usize },
    /// A whole frame.
    Whole {
        seq: u64,
        payload: Vec<u8>,
        frame_bytes: usize,
    },
}

fn frame_at(file: &File, offset: u64, store: &Path) -> Result<Found, StoreError> {
    let mut header = [0u8; JOURNAL_HEADER_BYTES];
    if offset + header.len() as u64 > JOURNAL_BYTES {
        return Ok(Found::Nothing);
    }
    file.read_exact_at(&mut header, offset)
        .map_err(|error| io_error("reading the journal", error, store))?;
    let Some(frame_bytes) = codec::journal_frame_bytes(&header) else {
        return Ok(Found::Nothing);
    };
    if offset + frame_bytes as u64 > JOURNAL_BYTES {
        return Ok(Found::Nothing);
    }
    let mut frame = vec![0u8; frame_bytes];
    file.read_exact_at(&mut frame, offset)
        .map_err(|error| io_error("reading the journal", error, store))?;
    Ok(match codec::journal_frame_payload(&frame) {
        Some((seq, payload)) => Found::Whole {
            seq,
            payload: payload.to_vec(),
            frame_bytes,
        },
        None => Found::Damaged { frame_bytes },
    })
}

/// Reads the unbroken run of frames from offset 0: each frame whole (its checksum matches),
/// the first either a marker or a batch, each later one a batch numbered one more than the
/// frame before. The run ends at the first frame that is not so: zeroes, a torn write, or a
/// frame left from before the journal last restarted. A frame that does not check followed by
/// the frame of a later batch was not torn (a batch's frame is written only after the frame
/// before it was synced, and a marker is synced before any frame follows it) but damaged on
/// disk: that is an error, not the run's end. "Later" is beyond the batch the damaged frame
/// stood for, or, for a damaged first frame (a marker), beyond `sled_batch`: frames left from
/// before a restart are all of batches sled holds durably.
fn read_run(file: &File, sled_batch: u64, store: &Path) -> Result<Run, StoreError> {
    let mut run = Run::default();
    // Bounded: every frame is at least one page long.
    for _ in 0..JOURNAL_BYTES / JOURNAL_PAGE_BYTES as u64 {
        let last = run.frames.last().map(|(seq, _)| *seq).or(run.base);
        let (seq, payload, frame_bytes) = match frame_at(file, run.end_offset, store)? {
            Found::Nothing => break,
            Found::Damaged { frame_bytes } => {
                let next = run.end_offset + frame_bytes as u64;
                let beyond = last.map_or(sled_batch, |last| last + 1);
                if let Found::Whole { seq, payload, .. } = frame_at(file, next, store)?
                    && seq > beyond
                    && !payload.is_empty()
                {
                    return Err(StoreError::Corrupt(format!(
                        "the journal's frame at offset {} is damaged, and the frame of batch \
                         {seq}, a later batch, follows it",
                        run.end_offset
                    )));
                }
                break;
            }
            Found::Whole {
                seq,
                payload,
                frame_bytes,
            } => (seq, payload, frame_bytes),
        };
        let follows = match last {
            None => true,
            Some(last) => seq == last + 1 && !payload.is_empty(),
        };
        if !follows {
            break;
        }
        run.end_offset += frame_bytes as u64;
        if run.base.is_none() {
            if payload.is_empty() {
                run.base = Some(seq);
                continue;
            }
            run.base = Some(seq.checked_sub(1).ok_or_else(|| {
                StoreError::Corrupt("the journal's first frame is numbered 0".into())
            })?);
        }
        run.frames.push((seq, payload));
    }
    assert!(run.end_offset <= JOURNAL_BYTES);
    Ok(run)
}
