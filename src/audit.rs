//! Auditing a whole ledger or an export with [`Replay`](crate::verify::Replay): what `verify`
//! runs. Over the store it also checks every stored tile, the head, and every derived index
//! and snapshot against the replay, so that tampering with any stored byte is found.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use crate::codec::{self, BUNDLE_RECORDS, CodecError, Record};
use crate::error::Error;
use crate::ledger::index::{
    self, ID_CHUNK, IDS_PREFIX, LATE_PREFIX, POSITION_CHUNK, POSITIONS_PREFIX, Position,
    SNAPSHOT_PREFIX,
};
use crate::ledger::reader::PrefixSnapshot;
use crate::ledger::window::{RecordBytes, SharedBytes};
use crate::merkle::{TILE_WIDTH, Tree};
use crate::rules::snapshot;
use crate::store::{Bytes, Head, Store};
use crate::verify::{Decoded, Failure, RecordSource, Replay};
use crate::view;

/// What a successful audit saw.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Audit {
    pub records: u64,
    pub root: String,
    pub late_records: u64,
    pub voids: u64,
    pub seconds: f64,
    /// The root of the first `root_at` records, when asked for (to check a checkpoint).
    #[serde(skip)]
    pub root_at: Option<(u64, [u8; 32])>,
}

fn failed(failure: Failure) -> Error {
    Error::Verification(failure.to_string())
}

fn store_failure(message: impl Into<String>) -> Error {
    Error::Verification(message.into())
}

struct StoreSource<'a> {
    store: &'a Store,
}

impl RecordSource for StoreSource<'_> {
    fn record(&self, seq: u64) -> Result<Record, String> {
        let bundle = self
            .store
            .bundle(seq / BUNDLE_RECORDS)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("bundle {} is missing", seq / BUNDLE_RECORDS))?;
        // One entry, not the whole bundle: late records walk back through many bundles.
        let entry = codec::bundle_entry(&bundle, (seq % BUNDLE_RECORDS) as usize)
            .map_err(|error| format!("bundle {}: {error}", seq / BUNDLE_RECORDS))?;
        let record = codec::decode_record(entry).map_err(|error| error.to_string())?;
        if record.seq != seq {
            return Err(format!(
                "the record at position {seq} says it is record {}",
                record.seq
            ));
        }
        Ok(record)
    }
}

/// Bundles read and decoded ahead of the replay, each about 50 KiB and its decoded records
/// about 130 KiB more. 8 until the two threads came near even (tools/bench/PROFILE.md, goal 3):
/// then each waited on the other now and then, both busy less than 90% of the time, and a
/// deeper queue rides out the replay's slower stretches (a snapshot compared, a late record's
/// walk). 1M `verify`, ABBA: medians 1.349 against 1.275 s, 1.496 against 1.452 s, and on a
/// slow, noisy hour 1.822 against 1.880 s; the fastest run lower in all three series.
const READ_AHEAD_BUNDLES: usize = 32;

/// With at least this many bundles waiting for the replay, the reading thread also computes
/// the Merkle leaf hashes and the id index's hashes of the bundles it reads
/// ([`Decoded::hash_leaf`], [`Decoded::hash_id`]), which the replaying thread computes
/// otherwise. Which of the two threads sets `verify`'s pace changes from run to run, and with
/// every cut in either one's work (tools/bench/PROFILE.md, goal 3); a queue this deep says it
/// is the replay, and the hashes then move to the thread with time to spare until the queue is
/// shallow again. 16 until the leaf hashes could move too; then, 1M `verify`, 8 rounds
/// interleaved: 0 (the reader always hashes) 1.185 s, 1 1.123 s, 2 1.099 s, 4 1.096 s, 16
/// 1.121 s.
const HASH_AHEAD_BUNDLES: usize = 4;

/// A stored entry bundle as the helper thread hands it to the replay: its bytes, and each
/// entry's range in them with what the entry's bytes alone give ([`Decoded`]), or why the
/// bundle's framing is broken.
struct AheadBundle {
    index: u64,
    /// Shared with the replay's window of recent records, which keeps a bundle rather than a
    /// copy of its records' bytes.
    bytes: SharedBytes,
    entries: Result<Vec<(Range<usize>, Decoded)>, CodecError>,
}

/// The helper thread of [`verify_store`]: reads every bundle in key order, splits and decodes
/// it, and sends it on, until the replay stops taking them or a bundle cannot be read or split
/// (the replay reports that bundle when it reaches it). Bundles come back through `spent` so
/// that their decoded records are freed here, where they were allocated; their bytes, which the
/// replay's window may still hold, are freed by whichever thread lets go of them last.
fn read_ahead(
    store: &Store,
    sender: SyncSender<Result<AheadBundle, Error>>,
    spent: Receiver<AheadBundle>,
    waiting: &AtomicUsize,
) -> Option<StoredIndexes> {
    let mut read_all = true;
    for item in store.bundles_from(0) {
        spent.try_iter().for_each(drop);
        let bundle = item.map_err(Error::from).map(|(index, bytes)| {
            let hash_ahead = waiting.load(Ordering::Relaxed) >= HASH_AHEAD_BUNDLES;
            AheadBundle {
                index,
                entries: decode_entries(&bytes, hash_ahead),
                bytes: Arc::new(bytes),
            }
        });
        let last = bundle
            .as_ref()
            .map_or(true, |bundle| bundle.entries.is_err());
        // A closed channel means the replay stopped: so does the reader.
        waiting.fetch_add(1, Ordering::Relaxed);
        if sender.send(bundle).is_err() || last {
            read_all = false;
            break;
        }
    }
    // While the replay works through the last bundles, the indexes it checks at the end.
    let indexes = read_all.then(|| StoredIndexes {
        ids: stored_index(store, IDS_PREFIX).collect(),
        positions: stored_index(store, POSITIONS_PREFIX).collect(),
        late: stored_index(store, LATE_PREFIX).collect(),
    });
    // The replay's loop ends when this sender is gone; then it hands back its last bundles
    // and closes the return channel.
    drop(sender);
    spent.iter().for_each(drop);
    indexes
}

/// The entries of the derived index under `prefix`, up to the first error.
fn stored_index<'a>(
    store: &'a Store,
    prefix: &'static [u8],
) -> impl Iterator<Item = DerivedEntry> + use<'a> {
    let mut failed = false;
    store
        .derived_from(prefix, &index::key(prefix, 0))
        .take_while(move |entry| !std::mem::replace(&mut failed, entry.is_err()))
}

/// The derived indexes [`check_derived`] compares with the replay, as the store holds them:
/// read by the helper once it has read every bundle, while the replay works through the last
/// ones, rather than by the replay after them.
struct StoredIndexes {
    ids: Vec<DerivedEntry>,
    positions: Vec<DerivedEntry>,
    late: Vec<DerivedEntry>,
}

/// Splits a bundle and decodes each entry as it is found, while its bytes are in the cache
/// (`codec::BundleEntries`), with its leaf and id hashes too if `hash_ahead`. A plain loop into
/// a vector sized for a full bundle: collecting through `Result` adapters moved each 400-byte
/// `Decoded` several times, and those copies were about 8% of the reading thread
/// (tools/bench/PROFILE.md, goal 3).
fn decode_entries(
    bytes: &[u8],
    hash_ahead: bool,
) -> Result<Vec<(Range<usize>, Decoded)>, CodecError> {
    let mut entries = Vec::with_capacity(BUNDLE_RECORDS as usize);
    for entry in codec::BundleEntries::new(bytes) {
        let range = entry?;
        let mut decoded = Decoded::decode(&bytes[range.clone()]);
        if hash_ahead {
            decoded.hash_leaf(&bytes[range.clone()]);
            let _ = decoded.hash_id();
        }
        entries.push((range, decoded));
    }
    Ok(entries)
}

/// Verifies the ledger in `store_dir` from its bytes up.
pub fn verify_store(
    store_dir: &Path,
    want_root_at: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Audit, Error> {
    let started = std::time::Instant::now();
    let store = Store::open(store_dir)?;
    let head = store
        .head()?
        .ok_or_else(|| store_failure("the store has no head"))?;
    let source = StoreSource { store: &store };
    let mut snapshots = StoredSnapshots {
        entries: store
            .derived_from(SNAPSHOT_PREFIX, SNAPSHOT_PREFIX)
            .peekable(),
        bytes: Vec::new(),
    };
    // Built once the reading thread has started: reserving the replay's tables takes a few
    // milliseconds.
    let mut replay = Replay::new();
    let mut voids = 0u64;
    let mut root_at = None;
    // Bundles sent by the reading thread and not yet taken by the replay.
    let waiting = AtomicUsize::new(0);
    let mut tree = Tree::default();
    let mut completed = Vec::new();
    let indexes = std::thread::scope(|scope| {
        let (sender, ahead) = std::sync::mpsc::sync_channel(READ_AHEAD_BUNDLES);
        // Replayed bundles go back to the helper so that their decoded records are freed on
        // the thread that allocated them, as in `Reader::for_each` (tools/bench/PROFILE.md,
        // goal 2).
        let (spent_sender, spent) = std::sync::mpsc::sync_channel(READ_AHEAD_BUNDLES);
        let store = &store;
        let waiting = &waiting;
        let reader = scope.spawn(move || read_ahead(store, sender, spent, waiting));
        replay = Replay::with_capacity(head.size);
        for (expected_bundle, item) in (0u64..).zip(ahead) {
            waiting.fetch_sub(1, Ordering::Relaxed);
            let mut bundle: AheadBundle = item?;
            if bundle.index != expected_bundle {
                return Err(store_failure(format!(
                    "record {}: entry bundle {expected_bundle} is missing (the next stored bundle is {})",
                    expected_bundle * BUNDLE_RECORDS,
                    bundle.index
                )));
            }
            let entries = bundle.entries.as_mut().map_err(|error| {
                store_failure(format!(
                    "record {}: bundle {}: {error}",
                    bundle.index * BUNDLE_RECORDS,
                    bundle.index
                ))
            })?;
            let count = entries.len() as u64;
            replay.warm(entries.iter_mut().map(|(_, decoded)| decoded));
            for (range, decoded) in entries {
                let record = replay
                    .push(
                        RecordBytes::Within(&bundle.bytes, range.clone()),
                        decoded,
                        &source,
                    )
                    .map_err(failed)?;
                if matches!(record.event.body, codec::Body::Void(_)) {
                    voids += 1;
                }
                // Each tile is checked once the replay has accepted the record that completed it.
                let bytes: &[u8] = (*bundle.bytes).as_ref();
                tree.push(decoded.hash_leaf(&bytes[range.clone()]), &mut completed);
                for tile in completed.drain(..) {
                    check_tile(store, tile.level, tile.index, &tile.data)?;
                }
                if want_root_at == Some(tree.size()) {
                    root_at = Some((tree.size(), tree.root()));
                }
                if snapshots.next_size()? == Some(replay.size()) {
                    check_snapshot(snapshots.take(replay.size())?, &replay)?;
                }
            }
            if count != BUNDLE_RECORDS && (bundle.index + 1) * BUNDLE_RECORDS < head.size {
                return Err(store_failure(format!(
                    "record {}: entry bundle {} holds {count} records; a full bundle holds 256",
                    bundle.index * BUNDLE_RECORDS + count,
                    bundle.index
                )));
            }
            progress(replay.size(), head.size);
            // When the helper's queue is full (or it has stopped), the bundle is freed here.
            let _ = spent_sender.try_send(bundle);
        }
        // The helper has sent every bundle (the loop ends when its sender is gone); it returns
        // once the return channel closes.
        drop(spent_sender);
        Ok(reader.join().expect("the reading thread does not panic"))
    })?;
    assert_eq!(
        tree.size(),
        replay.size(),
        "the tree holds every replayed record"
    );
    replay.release_window();
    check_head(&store, &head, &replay, &tree)?;
    match indexes {
        Some(indexes) => check_derived(
            &replay,
            snapshots,
            indexes.ids.into_iter(),
            indexes.positions.into_iter(),
            indexes.late.into_iter(),
        )?,
        None => check_derived(
            &replay,
            snapshots,
            stored_index(&store, IDS_PREFIX),
            stored_index(&store, POSITIONS_PREFIX),
            stored_index(&store, LATE_PREFIX),
        )?,
    }
    Ok(Audit {
        records: replay.size(),
        root: view::base64(&tree.root()),
        late_records: replay.late().len() as u64,
        voids,
        seconds: started.elapsed().as_secs_f64(),
        root_at,
    })
}

fn check_tile(store: &Store, level: u8, index: u64, expected: &[u8]) -> Result<(), Error> {
    match store.tile(level, index)? {
        Some(stored) if *stored == *expected => Ok(()),
        Some(_) => Err(store_failure(format!(
            "Merkle tile {level}/{index} differs from the hashes of records {} to {}",
            index << (8 * (u32::from(level) + 1)),
            ((index + 1) << (8 * (u32::from(level) + 1))) - 1
        ))),
        None => Err(store_failure(format!(
            "Merkle tile {level}/{index} is missing"
        ))),
    }
}

/// An entry of the store's derived tree, as [`Store::derived_from`] gives it.
type DerivedEntry = Result<(Vec<u8>, Bytes), crate::store::StoreError>;

/// The stored prefix snapshots, in log order, each read once as the replay reaches its size.
/// Where the writer placed them depends on the state's size, so the replay takes the sizes from
/// the keys; [`check_derived`] refuses any left over (at 0 records, or beyond the log). Listing
/// the sizes before the replay read every snapshot twice, and sled kept what the listing read:
/// about 250 MB of heap early in the 10,000,000-record `verify` (tools/bench/PROFILE.md, goal 6).
struct StoredSnapshots<I: Iterator<Item = DerivedEntry>> {
    entries: std::iter::Peekable<I>,
    /// The last snapshot taken, its chunks end to end. One buffer for all: a fresh one for
    /// each snapshot (about 1 MiB on the 1M ledger) had every page of it fault in anew.
    bytes: Vec<u8>,
}

impl<I: Iterator<Item = DerivedEntry>> StoredSnapshots<I> {
    /// The number of records the next stored snapshot claims, if one is left.
    fn next_size(&mut self) -> Result<Option<u64>, Error> {
        match self.entries.peek() {
            None => Ok(None),
            Some(Ok((key, _))) => index::number_after(SNAPSHOT_PREFIX, key)
                .map(Some)
                .ok_or_else(|| store_failure("a prefix-snapshot key is malformed")),
            Some(Err(_)) => match self.entries.next() {
                Some(Err(error)) => Err(error.into()),
                _ => unreachable!("the peeked entry is an error"),
            },
        }
    }

    /// The bytes of the snapshot at `size`: its chunks, in order.
    fn take(&mut self, size: u64) -> Result<&[u8], Error> {
        let prefix = index::key(SNAPSHOT_PREFIX, size);
        self.bytes.clear();
        while let Some(entry) = self.entries.next_if(|entry| {
            entry
                .as_ref()
                .map_or(true, |(key, _)| key.starts_with(&prefix))
        }) {
            self.bytes.extend_from_slice(&entry?.1);
        }
        Ok(&self.bytes)
    }
}

fn check_snapshot(bytes: &[u8], replay: &Replay) -> Result<(), Error> {
    let size = replay.size();
    if bytes.is_empty() {
        return Err(store_failure(format!(
            "the prefix snapshot at {size} records is missing"
        )));
    }
    // The stored bytes are compared with the replay's state and links as they are encoded,
    // without encoding the state into a buffer first.
    let state = replay.state().expect("genesis replayed");
    let matches = PrefixSnapshot::split(bytes).is_some_and(|(state_bytes, links_bytes)| {
        snapshot::encodes_to(state, state_bytes)
            && codec::encodes_to(&replay.links().encode(), links_bytes)
    });
    if !matches {
        return Err(store_failure(format!(
            "the prefix snapshot at {size} records differs from the replay of records 0 to {}",
            size - 1
        )));
    }
    Ok(())
}

fn check_head(store: &Store, head: &Head, replay: &Replay, tree: &Tree) -> Result<(), Error> {
    if head.size != replay.size() {
        return Err(store_failure(format!(
            "the head says the log has {} records; the bundles hold {}",
            head.size,
            replay.size()
        )));
    }
    if head.root != tree.root() {
        return Err(store_failure(format!(
            "the head's Merkle root {} is not the root of the records, {}",
            view::base64(&head.root),
            view::base64(&tree.root())
        )));
    }
    if head.last_chain != replay.last_chain()
        || Some(head.last_recorded_at) != replay.last_recorded_at()
        || Some(head.max_date) != replay.max_date()
    {
        return Err(store_failure(
            "the head's chain hash, last recording time or latest date differs from the records",
        ));
    }
    for tile in tree.edge_tiles() {
        check_tile(store, tile.level, tile.index, &tile.data)?;
    }
    // No tile beyond the tree.
    for item in store.tiles() {
        let (level, index, data) = item?;
        let count = replay.size() >> (8 * u32::from(level));
        let tiles_at_level = count.div_ceil(TILE_WIDTH as u64);
        if index >= tiles_at_level || (data.len() % 32) != 0 {
            return Err(store_failure(format!(
                "Merkle tile {level}/{index} lies outside the tree"
            )));
        }
    }
    Ok(())
}

/// Checks the derived indexes against the replay, and that no prefix snapshot is left that the
/// replay did not reach (one at 0 records, or beyond the log).
fn check_derived<I: Iterator<Item = DerivedEntry>>(
    replay: &Replay,
    mut snapshots: StoredSnapshots<I>,
    ids: impl Iterator<Item = DerivedEntry>,
    positions: impl Iterator<Item = DerivedEntry>,
    late: impl Iterator<Item = DerivedEntry>,
) -> Result<(), Error> {
    let size = replay.size();
    if let Some(left) = snapshots.next_size()? {
        return Err(store_failure(format!(
            "a prefix snapshot claims {left} records; the log has {size}"
        )));
    }
    // Id index.
    let mut chunks = 0u64;
    for item in ids {
        let (key, bytes) = item?;
        let chunk = index::number_after(IDS_PREFIX, &key).unwrap_or(u64::MAX);
        if chunk != chunks || *bytes != *replay.ids().chunk_bytes(chunk) {
            return Err(store_failure(format!(
                "id-index chunk {chunk} (records {} to {}) differs from the records",
                chunk * ID_CHUNK,
                (chunk + 1) * ID_CHUNK - 1
            )));
        }
        chunks += 1;
    }
    if chunks != size.div_ceil(ID_CHUNK) {
        return Err(store_failure("the id index does not cover the log"));
    }
    // Positions.
    let replayed_positions = replay_positions(replay);
    let mut chunks = 0u64;
    for item in positions {
        let (key, bytes) = item?;
        let chunk = index::number_after(POSITIONS_PREFIX, &key).unwrap_or(u64::MAX);
        if chunk != chunks || *bytes != *index::positions_chunk_bytes(&replayed_positions, chunk) {
            return Err(store_failure(format!(
                "position-index chunk {chunk} (bundles {} to {}) differs from the records",
                chunk * POSITION_CHUNK,
                (chunk + 1) * POSITION_CHUNK - 1
            )));
        }
        chunks += 1;
    }
    if chunks != (replayed_positions.len() as u64).div_ceil(POSITION_CHUNK) {
        return Err(store_failure("the position index does not cover the log"));
    }
    // Late records.
    let mut expected = replay.late().iter();
    for item in late {
        let (key, value) = item?;
        let seq = index::number_after(LATE_PREFIX, &key).unwrap_or(u64::MAX);
        let stored = index::parse_late_value(&value);
        match expected.next() {
            Some((want_seq, want_date, want_chain))
                if *want_seq == seq
                    && stored.is_some_and(|(date, bytes)| {
                        date == *want_date && codec::chain_hash(bytes) == *want_chain
                    }) => {}
            _ => {
                return Err(store_failure(format!(
                    "the late-record index entry for record {seq} differs from the records"
                )));
            }
        }
    }
    if let Some((seq, _, _)) = expected.next() {
        return Err(store_failure(format!(
            "the late-record index lacks record {seq}"
        )));
    }
    Ok(())
}

fn replay_positions(replay: &Replay) -> Vec<Position> {
    replay.positions()
}

/// The longest export line accepted (a record of 64 KiB in base64, plus its readable view).
const MAX_EXPORT_LINE: u64 = 1 << 20;

struct ExportSource {
    path: std::path::PathBuf,
    offsets: std::cell::RefCell<Vec<u64>>,
}

impl RecordSource for ExportSource {
    fn record(&self, seq: u64) -> Result<Record, String> {
        let offset = *self
            .offsets
            .borrow()
            .get(seq as usize)
            .ok_or_else(|| format!("line of record {seq} not found"))?;
        let mut file = File::open(&self.path).map_err(|error| error.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|error| error.to_string())?;
        let mut line = String::new();
        BufReader::new(file.take(MAX_EXPORT_LINE))
            .read_line(&mut line)
            .map_err(|error| error.to_string())?;
        let (_, bytes) = parse_export_line(&line).map_err(|error| error.1)?;
        codec::decode_record(&bytes).map_err(|error| error.to_string())
    }
}

/// Splits an export line into its JSON object and its record bytes.
fn parse_export_line(line: &str) -> Result<(serde_json::Value, Vec<u8>), (Option<()>, String)> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|error| (None, format!("not valid JSON: {error}")))?;
    let bytes = value
        .get("record")
        .and_then(|record| record.as_str())
        .ok_or((
            None,
            "has no `record` field with the record's bytes".to_string(),
        ))
        .and_then(|text| {
            view::from_base64(text).map_err(|error| (None, format!("`record` is {error}")))
        })?;
    Ok((value, bytes))
}

/// Verifies an export file with no ledger at hand.
pub fn verify_export(
    path: &Path,
    want_root_at: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Audit, Error> {
    let started = std::time::Instant::now();
    let name = path.display().to_string();
    let file =
        File::open(path).map_err(|error| Error::input(&name, format!("cannot open: {error}")))?;
    let total = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let source = ExportSource {
        path: path.to_path_buf(),
        offsets: std::cell::RefCell::new(Vec::new()),
    };
    let mut replay = Replay::new();
    let mut tree = Tree::default();
    let mut completed_tiles = Vec::new();
    let mut offset = 0u64;
    let mut line = String::new();
    let mut number = 0u64;
    let mut voids = 0u64;
    let mut root_at = None;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_EXPORT_LINE + 1)
            .read_line(&mut line)
            .map_err(|error| Error::input(&name, format!("cannot read: {error}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        let seq = replay.size();
        if read as u64 > MAX_EXPORT_LINE {
            return Err(store_failure(format!(
                "record {seq}: line {number} is longer than 1 MiB"
            )));
        }
        if line.trim().is_empty() {
            offset += read as u64;
            continue;
        }
        let (value, bytes) = parse_export_line(&line).map_err(|(_, message)| {
            store_failure(format!("record {seq}: line {number} {message}"))
        })?;
        source.offsets.borrow_mut().push(offset);
        let mut decoded = Decoded::of(&bytes);
        let record = replay
            .push(RecordBytes::Copy(&bytes), &mut decoded, &source)
            .map_err(|failure| store_failure(format!("{failure} (line {number})")))?;
        let expected = view::export_line(record, &bytes);
        if value != expected {
            let field = differing_field(&value, &expected);
            return Err(store_failure(format!(
                "record {seq}: field `{field}` of line {number} does not match the record's bytes"
            )));
        }
        if matches!(record.event.body, codec::Body::Void(_)) {
            voids += 1;
        }
        // An export holds no tiles to check: only the tree's root is wanted.
        tree.push(decoded.hash_leaf(&bytes), &mut completed_tiles);
        completed_tiles.clear();
        if want_root_at == Some(tree.size()) {
            root_at = Some((tree.size(), tree.root()));
        }
        offset += read as u64;
        if number % 4096 == 0 {
            progress(offset, total);
        }
    }
    if replay.size() == 0 {
        return Err(store_failure(format!("{name} holds no records")));
    }
    Ok(Audit {
        records: replay.size(),
        root: view::base64(&tree.root()),
        late_records: replay.late().len() as u64,
        voids,
        seconds: started.elapsed().as_secs_f64(),
        root_at,
    })
}

fn differing_field(found: &serde_json::Value, expected: &serde_json::Value) -> String {
    match (found, expected) {
        (serde_json::Value::Object(found), serde_json::Value::Object(expected)) => {
            for (key, value) in expected {
                match found.get(key) {
                    None => return key.clone(),
                    Some(other) if other != value => {
                        let inner = differing_field(other, value);
                        return if inner.is_empty() {
                            key.clone()
                        } else {
                            format!("{key}.{inner}")
                        };
                    }
                    Some(_) => {}
                }
            }
            found
                .keys()
                .find(|key| !expected.contains_key(*key))
                .cloned()
                .unwrap_or_default()
        }
        _ => String::new(),
    }
}
