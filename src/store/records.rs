//! The records file, `store/records`: the bytes of every entry bundle, appended (FORMAT.md
//! section 4). sled's `bundles` tree holds, for each bundle index, a [`Pointer`] to where its
//! latest version lies here, so sled writes 12 bytes per bundle instead of the bundle.
//!
//! Why: sled rewrites a leaf node (up to 17 bundles) at every tenth change of it and both
//! halves at every split, and copies all of it through its log; stored there, the records were
//! written about four times over, which cost an import about a sixth of its CPU. Here each
//! version of a bundle is written once (tools/bench/PROFILE.md, goal 1).
//!
//! Writes only append: a flush writes the new bundle versions after `end` (the length the last
//! committed sled transaction recorded in `meta/records`), fdatasyncs the file, and only then
//! commits the pointers to them in sled. Bytes after `end` are what a crash left before its
//! pointers were committed; nothing points at them, and the next flush writes over them.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StoreError, io_error};

pub const RECORDS_FILE: &str = "records";

/// A pointer's size in sled: offset `u64` big-endian, then length `u32` big-endian.
pub const POINTER_BYTES: usize = 12;

/// Where one version of a bundle lies in the records file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pointer {
    pub offset: u64,
    pub length: u32,
}

impl Pointer {
    pub fn encode(self) -> [u8; POINTER_BYTES] {
        let mut bytes = [0u8; POINTER_BYTES];
        bytes[..8].copy_from_slice(&self.offset.to_be_bytes());
        bytes[8..].copy_from_slice(&self.length.to_be_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<Pointer> {
        let bytes: &[u8; POINTER_BYTES] = bytes.try_into().ok()?;
        let (offset, length) = bytes.split_at(8);
        Some(Pointer {
            offset: u64::from_be_bytes(offset.try_into().ok()?),
            length: u32::from_be_bytes(length.try_into().ok()?),
        })
    }

    fn end(self) -> Option<u64> {
        self.offset.checked_add(u64::from(self.length))
    }
}

pub struct Records {
    /// `None` when the file is missing: a store of an earlier format, which the store's open
    /// names as such before [`Records::require`] calls it damage.
    file: Option<File>,
    /// The file's committed length: every pointer in sled lies before it.
    end: AtomicU64,
}

impl Records {
    /// Creates the empty records file of a new store (the caller syncs the directory).
    pub fn create(store: &Path) -> Result<(), StoreError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(store.join(RECORDS_FILE))
            .map_err(|error| io_error("creating the records file", error, store))?;
        file.sync_all()
            .map_err(|error| io_error("fsync of the records file", error, store))
    }

    /// Opens the records file of the store at `store`, whose committed length is `end`.
    pub fn open(store: &Path, end: u64) -> Result<Records, StoreError> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(store.join(RECORDS_FILE))
        {
            Ok(file) => Some(file),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_error("opening the records file", error, store)),
        };
        Ok(Records {
            file,
            end: AtomicU64::new(end),
        })
    }

    /// The file, or the error that it is missing.
    fn file(&self, store: &Path) -> Result<&File, StoreError> {
        self.file.as_ref().ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the records file {} is missing",
                store.join(RECORDS_FILE).display()
            ))
        })
    }

    /// Refuses a store without its records file.
    pub fn require(&self, store: &Path) -> Result<(), StoreError> {
        self.file(store).map(|_| ())
    }

    /// Sets the committed length, once the store has read it from sled.
    pub fn set_end(&self, end: u64) {
        self.end.store(end, Ordering::Release);
    }

    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Writes `bundles` one after another from the committed length on, then fdatasyncs the
    /// file; returns each one's pointer and the new length, which becomes the committed one
    /// when the caller's sled transaction records it. Only one commit at a time calls this.
    pub fn append<'a>(
        &self,
        bundles: impl Iterator<Item = &'a [u8]>,
        store: &Path,
    ) -> Result<(Vec<Pointer>, u64), StoreError> {
        let start = self.end();
        let mut bytes = Vec::new();
        let mut pointers = Vec::new();
        for bundle in bundles {
            // A bundle is at most 256 entries of at most 65,537 bytes each, so this cannot fail.
            let length = u32::try_from(bundle.len()).map_err(|_| {
                StoreError::Io(format!(
                    "an entry bundle of {} bytes is too long for its pointer",
                    bundle.len()
                ))
            })?;
            pointers.push(Pointer {
                offset: start + bytes.len() as u64,
                length,
            });
            bytes.extend_from_slice(bundle);
        }
        if bytes.is_empty() {
            return Ok((pointers, start));
        }
        let file = self.file(store)?;
        file.write_all_at(&bytes, start)
            .map_err(|error| io_error("writing the records file", error, store))?;
        file.sync_data()
            .map_err(|error| io_error("fdatasync of the records file", error, store))?;
        let end = start + bytes.len() as u64;
        // Readers may meet the new pointers as soon as sled's transaction makes them visible,
        // so the bytes count as committed from now on; until then nothing points at them.
        self.set_end(end);
        Ok((pointers, end))
    }

    /// The bytes of bundle `index` that `pointer` (sled's value for it) points to.
    pub fn read(&self, index: u64, pointer: &[u8], store: &Path) -> Result<Vec<u8>, StoreError> {
        let pointer = Pointer::decode(pointer).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the pointer of entry bundle {index} is {} bytes, not {POINTER_BYTES}",
                pointer.len()
            ))
        })?;
        if pointer.end().is_none_or(|end| end > self.end()) {
            return Err(StoreError::Corrupt(format!(
                "entry bundle {index} points past the end of the records file ({} bytes at {}, \
                 the file's committed length {})",
                pointer.length,
                pointer.offset,
                self.end()
            )));
        }
        let mut bytes = vec![0u8; pointer.length as usize];
        self.file(store)?
            .read_exact_at(&mut bytes, pointer.offset)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::UnexpectedEof => StoreError::Corrupt(format!(
                    "entry bundle {index} lies past the end of the records file"
                )),
                _ => io_error("reading the records file", error, store),
            })?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_round_trip_and_refuse_other_lengths() {
        let pointer = Pointer {
            offset: 0x0102_0304_0506_0708,
            length: 0x0A0B_0C0D,
        };
        assert_eq!(
            pointer.encode(),
            [1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D]
        );
        assert_eq!(Pointer::decode(&pointer.encode()), Some(pointer));
        assert_eq!(Pointer::decode(&[0; 11]), None);
        assert_eq!(Pointer::decode(&[0; 13]), None);
    }

    #[test]
    fn appends_after_the_committed_length_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        Records::create(dir.path()).unwrap();
        let records = Records::open(dir.path(), 0).unwrap();
        let (pointers, end) = records
            .append([&b"first"[..], &b"second!"[..]].into_iter(), dir.path())
            .unwrap();
        assert_eq!(end, 12);
        assert_eq!(records.end(), 12);
        assert_eq!(
            records.read(0, &pointers[1].encode(), dir.path()).unwrap(),
            b"second!"
        );
        // A crash before the pointers were committed: the store reopens at the old length,
        // and the next append writes over the bytes nothing points at.
        let records = Records::open(dir.path(), 5).unwrap();
        let (pointers, end) = records
            .append([&b"third"[..]].into_iter(), dir.path())
            .unwrap();
        assert_eq!(
            pointers[0],
            Pointer {
                offset: 5,
                length: 5
            }
        );
        assert_eq!(end, 10);
        assert_eq!(
            records.read(1, &pointers[0].encode(), dir.path()).unwrap(),
            b"third"
        );
        // Past the committed length, or malformed: named as corruption.
        let beyond = Pointer {
            offset: 8,
            length: 5,
        }
        .encode();
        let error = records.read(7, &beyond, dir.path()).unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt(reason) if reason.contains("entry bundle 7 points past")),
            "{error}"
        );
        let error = records.read(3, &[0; 5], dir.path()).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    }
}
