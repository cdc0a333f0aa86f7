//! The two programs chipledger is measured against, as library functions so that they can be
//! tested: what a user would build instead ([`sqlite_baseline`]), and the raw storage floor of
//! the store chipledger is built on ([`sled_floor`]) and the same bundles in a plain file
//! ([`file_floor`]); plus the cost of one fsync ([`fsync_probe`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rows per SQLite transaction, and lines per sled transaction.
pub const BATCH_LINES: usize = 10_000;
/// Lines per sled value (the C2SP tlog-tiles entry-bundle shape chipledger uses).
pub const BUNDLE_LINES: usize = 256;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one throughput run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    pub events: u64,
    pub seconds: f64,
    pub db_bytes: u64,
}

/// Reads the non-blank lines of an NDJSON file, without their line ends, calling `visit` with
/// each. The read is part of what is timed, as it is for `chipledger import`.
fn for_each_line(
    input: &Path,
    mut visit: impl FnMut(&str) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let file = File::open(input).map_err(|error| format!("{}: {error}", input.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        visit(text)?;
    }
}

/// The SQLite baseline: for each NDJSON line, parse it as JSON, extend a BLAKE3 hash chain
/// (hash of the previous chain hash ‖ the line's bytes) and insert a row, in WAL mode with
/// `synchronous=FULL` and 10,000-row transactions, into a table with a UNIQUE index on the
/// event id. No rules. `db` must not exist yet.
pub fn sqlite_baseline(input: &Path, db: &Path) -> Result<Run, BoxError> {
    if db.exists() {
        return Err(format!("{} already exists; give a new path", db.display()).into());
    }
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(db)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("SQLite refused WAL mode (journal_mode is {mode})").into());
    }
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE events (
             seq INTEGER PRIMARY KEY,
             id TEXT NOT NULL,
             type TEXT NOT NULL,
             effective TEXT NOT NULL,
             body TEXT NOT NULL,
             chain BLOB NOT NULL
         );
         CREATE UNIQUE INDEX events_id ON events(id);",
    )?;
    let mut chain = [0u8; 32];
    let mut seq: u64 = 0;
    let mut pending: Vec<String> = Vec::with_capacity(BATCH_LINES);
    let flush = |conn: &mut rusqlite::Connection,
                 pending: &mut Vec<String>,
                 chain: &mut [u8; 32],
                 seq: &mut u64|
     -> Result<(), BoxError> {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO events (seq, id, type, effective, body, chain) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for line in pending.iter() {
                let value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|error| format!("line {}: {error}", *seq + 1))?;
                let field = |name: &str| -> Result<&str, BoxError> {
                    value
                        .get(name)
                        .and_then(serde_json::Value::as_str)
                        .ok_or_else(|| format!("line {}: no string `{name}`", *seq + 1).into())
                };
                let (id, kind, effective) = (field("id")?, field("type")?, field("effective")?);
                let mut hasher = blake3::Hasher::new();
                hasher.update(chain);
                hasher.update(line.as_bytes());
                *chain = *hasher.finalize().as_bytes();
                *seq += 1;
                insert.execute(rusqlite::params![
                    *seq as i64,
                    id,
                    kind,
                    effective,
                    line,
                    &chain[..]
                ])?;
            }
        }
        tx.commit()?;
        pending.clear();
        Ok(())
    };
    for_each_line(input, |line| {
        pending.push(line.to_string());
        if pending.len() == BATCH_LINES {
            flush(&mut conn, &mut pending, &mut chain, &mut seq)?;
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        flush(&mut conn, &mut pending, &mut chain, &mut seq)?;
    }
    conn.close().map_err(|(_, error)| error)?;
    let seconds = started.elapsed().as_secs_f64();
    // After the last connection closes SQLite checkpoints and removes the WAL; count it if not.
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = crate::disk_bytes(Path::new(&wal));
    Ok(Run {
        events: seq,
        seconds,
        db_bytes: crate::disk_bytes(db) + wal_bytes,
    })
}

/// Frames `line` onto `bundle`: a 2-byte big-endian length, then the bytes (at most 65,535).
pub fn push_framed(bundle: &mut Vec<u8>, line: &[u8]) {
    let line = &line[..line.len().min(usize::from(u16::MAX))];
    bundle.extend_from_slice(&(line.len() as u16).to_be_bytes());
    bundle.extend_from_slice(line);
}

/// Splits a bundle back into its lines (the inverse of [`push_framed`]).
pub fn unframe(mut bundle: &[u8]) -> Option<Vec<&[u8]>> {
    let mut lines = Vec::new();
    while !bundle.is_empty() {
        let length = usize::from(u16::from_be_bytes([*bundle.first()?, *bundle.get(1)?]));
        let line = bundle.get(2..2 + length)?;
        lines.push(line);
        bundle = &bundle[2 + length..];
    }
    Some(lines)
}

/// Frames the input's lines into bundles of [`BUNDLE_LINES`] and, every [`BATCH_LINES`] lines
/// and after the last, calls `commit` with the bundles filled since the last call (which it
/// must take) and the partial bundle, which the next call sees again, longer. Returns the
/// number of lines.
fn commit_bundles(
    input: &Path,
    mut commit: impl FnMut(&mut Vec<Vec<u8>>, &[u8]) -> Result<(), BoxError>,
) -> Result<u64, BoxError> {
    let mut full: Vec<Vec<u8>> = Vec::new();
    let mut bundle: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut in_bundle = 0usize;
    let mut in_batch = 0usize;
    let mut events: u64 = 0;
    for_each_line(input, |line| {
        push_framed(&mut bundle, line.as_bytes());
        events += 1;
        in_bundle += 1;
        if in_bundle == BUNDLE_LINES {
            full.push(std::mem::take(&mut bundle));
            in_bundle = 0;
        }
        in_batch += 1;
        if in_batch == BATCH_LINES {
            commit(&mut full, &bundle)?;
            in_batch = 0;
        }
        Ok(())
    })?;
    if in_batch > 0 {
        commit(&mut full, &bundle)?;
    }
    Ok(events)
}

/// The raw sled floor: the NDJSON lines stored in sled 0.34 with 256 lines per value (key: the
/// bundle index, u64 big-endian; value: the lines framed by [`push_framed`]), 10,000 lines per
/// transaction, each followed by `flush()` and an fsync of sled's `db` file, the same
/// durability protocol chipledger's store follows. The partial last bundle is rewritten by the
/// next transaction. `dir` must not exist yet.
pub fn sled_floor(input: &Path, dir: &Path) -> Result<Run, BoxError> {
    if dir.exists() {
        return Err(format!("{} already exists; give a new path", dir.display()).into());
    }
    let started = Instant::now();
    let db = sled::Config::new()
        .path(dir)
        .segment_size(4 << 20)
        .cache_capacity(64 << 20)
        .open()?;
    let data_file = dir.join("db");
    // The index of the first bundle not yet written whole.
    let mut next_index: u64 = 0;
    let events = commit_bundles(input, |full, partial| {
        db.transaction(|tx| {
            for (offset, value) in full.iter().enumerate() {
                tx.insert(
                    &(next_index + offset as u64).to_be_bytes(),
                    value.as_slice(),
                )?;
            }
            if !partial.is_empty() {
                let index = next_index + full.len() as u64;
                tx.insert(&index.to_be_bytes(), partial)?;
            }
            Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(|error| format!("sled transaction: {error:?}"))?;
        next_index += full.len() as u64;
        full.clear();
        db.flush()?;
        File::open(&data_file)
            .and_then(|file| file.sync_all())
            .map_err(|error| format!("fsync {}: {error}", data_file.display()))?;
        Ok(())
    })?;
    drop(db);
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        events,
        seconds,
        db_bytes: crate::disk_bytes(dir),
    })
}

/// The same bundles as [`sled_floor`] without sled: appended to a plain file, the partial last
/// bundle written at its place and overwritten by the next transaction, each transaction of
/// 10,000 lines one write and an fdatasync. What storing the records costs when each is written
/// once; the gap to [`sled_floor`] is what sled's log and tree add. `path` must not exist yet.
pub fn file_floor(input: &Path, path: &Path) -> Result<Run, BoxError> {
    use std::os::unix::fs::FileExt;
    let started = Instant::now();
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    // Where the partial bundle starts: every full bundle before it is written for good.
    let mut settled_bytes: u64 = 0;
    let mut write: Vec<u8> = Vec::new();
    let events = commit_bundles(input, |full, partial| {
        write.clear();
        for bundle in full.drain(..) {
            write.extend_from_slice(&bundle);
        }
        let full_bytes = write.len() as u64;
        write.extend_from_slice(partial);
        file.write_all_at(&write, settled_bytes)?;
        file.sync_data()
            .map_err(|error| format!("fdatasync {}: {error}", path.display()))?;
        settled_bytes += full_bytes;
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        events,
        seconds,
        db_bytes: crate::disk_bytes(path),
    })
}

/// The cost of one fsync on the disk holding `dir`: 200 times, append 4 KiB to a file and
/// fsync it; the durations of each write + fsync, sorted.
pub fn fsync_probe(dir: &Path, rounds: usize) -> Result<Vec<Duration>, BoxError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".fsync-probe-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let page = [0xA5u8; 4096];
    let mut samples = Vec::with_capacity(rounds);
    let result = (|| -> Result<(), BoxError> {
        for _ in 0..rounds {
            let started = Instant::now();
            file.write_all(&page)?;
            file.sync_all()?;
            samples.push(started.elapsed());
        }
        Ok(())
    })();
    drop(file);
    let _ = std::fs::remove_file(&path);
    result?;
    samples.sort();
    Ok(samples)
}

/// The sample at quantile `q` (0.0 to 1.0) of sorted samples, in microseconds.
pub fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = "{\"type\":\"entity\",\"id\":\"e-1\",\"effective\":\"2025-01-13\",\"entity\":\"a\",\"name\":\"A\",\"hq\":\"US\"}\n\
        \n\
        {\"type\":\"void\",\"id\":\"x-1\",\"effective\":\"2025-01-14\",\"target\":\"s\",\"reason\":\"r\"}\r\n";

    fn input(dir: &Path, copies: usize) -> std::path::PathBuf {
        let path = dir.join("in.ndjson");
        let mut text = String::new();
        for n in 0..copies {
            text.push_str(
                &LINES
                    .replace("e-1", &format!("e-{n}"))
                    .replace("x-1", &format!("x-{n}")),
            );
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn frames_round_trip_and_truncate() {
        let mut bundle = Vec::new();
        push_framed(&mut bundle, b"abc");
        push_framed(&mut bundle, b"");
        let long = vec![b'x'; 70_000];
        push_framed(&mut bundle, &long);
        let lines = unframe(&bundle).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], b"abc");
        assert_eq!(lines[1], b"");
        assert_eq!(lines[2].len(), 65_535);
        assert!(unframe(&bundle[..bundle.len() - 1]).is_none());
    }

    #[test]
    fn sqlite_baseline_inserts_every_line_with_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let input = input(dir.path(), 6_000);
        let db = dir.path().join("base.sqlite");
        let run = sqlite_baseline(&input, &db).unwrap();
        assert_eq!(run.events, 12_000);
        assert!(run.db_bytes > 0);
        let conn = rusqlite::Connection::open(&db).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 12_000);
        let (body, chain): (String, Vec<u8>) = conn
            .query_row("SELECT body, chain FROM events WHERE seq = 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[0u8; 32]);
        hasher.update(body.as_bytes());
        assert_eq!(chain, hasher.finalize().as_bytes().to_vec());
        assert!(
            sqlite_baseline(&input, &db).is_err(),
            "refuses an existing db"
        );
    }

    #[test]
    fn sled_floor_stores_bundles_of_256_lines() {
        let dir = tempfile::tempdir().unwrap();
        let input = input(dir.path(), 6_000);
        let store = dir.path().join("floor");
        let run = sled_floor(&input, &store).unwrap();
        assert_eq!(run.events, 12_000);
        // sled releases a closed database's lock through deferred reclamation: a reopen in the
        // same process a moment later may still find it held, so retry briefly.
        let config = sled::Config::new().path(&store).segment_size(4 << 20);
        let db = (0..100)
            .find_map(|_| {
                config.open().ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("the floor's store reopens");
        assert_eq!(db.len(), 12_000usize.div_ceil(BUNDLE_LINES));
        let first = db.get(0u64.to_be_bytes()).unwrap().unwrap();
        let lines = unframe(&first).unwrap();
        assert_eq!(lines.len(), BUNDLE_LINES);
        assert!(lines[1].starts_with(b"{\"type\":\"void\""));
        let last = db.get((46u64).to_be_bytes()).unwrap().unwrap();
        assert_eq!(unframe(&last).unwrap().len(), 12_000 - 46 * BUNDLE_LINES);
    }

    #[test]
    fn file_floor_writes_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let input = input(dir.path(), 6_000);
        let path = dir.path().join("floor.bin");
        let run = file_floor(&input, &path).unwrap();
        assert_eq!(run.events, 12_000);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(run.db_bytes, bytes.len() as u64);
        let lines = unframe(&bytes).unwrap();
        assert_eq!(lines.len(), 12_000);
        assert!(lines[0].starts_with(b"{\"type\":\"entity\",\"id\":\"e-0\""));
        assert!(lines[11_999].starts_with(b"{\"type\":\"void\",\"id\":\"x-5999\""));
        assert!(
            file_floor(&input, &path).is_err(),
            "refuses an existing file"
        );
    }

    #[test]
    fn fsync_probe_returns_sorted_samples() {
        let dir = tempfile::tempdir().unwrap();
        let samples = fsync_probe(dir.path(), 5).unwrap();
        assert_eq!(samples.len(), 5);
        assert!(samples.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!(quantile_us(&samples, 0.5) > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
