//! Key files: the signing key (secret, mode 0600) and the verifier key (public).
//!
//! The signing key is refused, as ssh refuses a private key, when anyone but its owner can
//! read it. It is never printed, logged or exported; `verify-proof` needs only the verifier key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::Error;
use crate::store::StoreError;

fn io(path: &Path, error: std::io::Error) -> Error {
    Error::Store(StoreError::Io(format!("{}: {error}", path.display())))
}

/// Creates a secret file readable and writable by its owner only; fails if it exists.
pub fn write_new_secret(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| io(path, error))?;
    file.write_all(bytes).map_err(|error| io(path, error))?;
    file.sync_all().map_err(|error| io(path, error))
}

/// Creates a public file (mode 0644); fails if it exists.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|error| io(path, error))?;
    file.write_all(bytes).map_err(|error| io(path, error))?;
    file.sync_all().map_err(|error| io(path, error))
}

/// Reads the signing key, refusing it when group or others may read or write it.
pub fn read_secret(path: &Path) -> Result<String, Error> {
    let metadata = std::fs::metadata(path).map_err(|error| io(path, error))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Store(StoreError::Io(format!(
            "{} is accessible by others (mode {:o}); the signing key must be private: \
             chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ))));
    }
    let text = std::fs::read_to_string(path).map_err(|error| io(path, error))?;
    Ok(text.trim_end().to_string())
}
