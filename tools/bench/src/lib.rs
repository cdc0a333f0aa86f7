//! The chipledger benchmark harness: a seeded workload generator ([`workload`]), and the
//! shared pieces of the two comparison programs, the SQLite baseline and the raw sled floor
//! ([`floor`]).
//!
//! The binaries in `src/bin/` are thin: argument parsing and printing. See README.md.

pub mod args;
pub mod floor;
pub mod suite;
pub mod workload;

pub use floor::BoxError;

use std::path::Path;

/// Total size in bytes of the files under `path` (a file or a directory, recursively).
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| disk_bytes(&entry.path()))
        .sum()
}

/// The one-line JSON result every throughput run prints on stdout.
pub fn result_line(events: u64, seconds: f64, db_bytes: u64) -> String {
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    serde_json::json!({
        "events": events,
        "seconds": (seconds * 1e6).round() / 1e6,
        "events_per_second": rate.round() as u64,
        "db_bytes": db_bytes,
    })
    .to_string()
}
