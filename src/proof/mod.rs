//! Proofs an auditor checks offline: signed checkpoints, inclusion and consistency proofs,
//! commitments and compliance bundles (formats in `schemas/PROOFS.md`).
//!
//! Signing and note parsing are `signed_note`'s; tree hashing and proof checking are
//! `tlog_tiles`'. This module composes them and defines what a file must contain.
//! A verification failure is an [`Error::Verification`]; every problem with a proof file's
//! content, malformed or not, is one.

pub mod checkpoint;
pub mod commitment;
pub mod compliance;
pub mod consistency;
pub mod inclusion;
pub mod rfc6962;

use std::path::Path;

use crate::error::Error;

/// Reads a verifier key: the C2SP vkey text itself, or a file holding it.
pub fn load_vkey(text_or_path: &str) -> Result<String, Error> {
    let path = Path::new(text_or_path);
    let text = if path.is_file() {
        std::fs::read_to_string(path)
            .map_err(|error| Error::Usage(format!("cannot read {}: {error}", path.display())))?
    } else {
        text_or_path.to_string()
    };
    let key = text.trim().to_string();
    signed_note::StandardVerifier::new(&key).map_err(|error| {
        Error::Usage(format!(
            "`{}` is not a verifier key (C2SP vkey such as name+1234abcd+AQ...) nor a file holding one: {error}",
            crate::country::printable(text_or_path)
        ))
    })?;
    Ok(key)
}

/// The origin (key name) of a verifier key.
pub fn vkey_origin(vkey: &str) -> &str {
    vkey.split('+').next().unwrap_or("")
}

fn failed(message: impl Into<String>) -> Error {
    Error::Verification(message.into())
}

/// Decodes standard base64 of exactly 32 bytes.
fn hash32(text: &str, what: &str) -> Result<[u8; 32], Error> {
    let bytes =
        crate::view::from_base64(text).map_err(|error| failed(format!("{what} is {error}")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        failed(format!(
            "{what} is {} bytes, not a 32-byte hash",
            bytes.len()
        ))
    })
}

/// Reads a JSON proof file, insisting on its canonical form: the file must be exactly what
/// chipledger writes for its content (compact JSON and one newline), so that no byte of it can
/// change without the verification failing.
fn canonical_json<T: serde::de::DeserializeOwned + serde::Serialize>(
    text: &str,
    what: &str,
) -> Result<T, Error> {
    let value: T = serde_json::from_str(text)
        .map_err(|error| failed(format!("the {what} is not valid: {error}")))?;
    let again = serde_json::to_string(&value).expect("proof files serialize") + "\n";
    if again != text {
        return Err(failed(format!(
            "the {what} is not in canonical form (it was changed after it was written)"
        )));
    }
    Ok(value)
}

/// What a proof file is, by its first bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Inclusion,
    Consistency,
    Compliance,
    Checkpoint,
}

pub fn kind_of(text: &str) -> Kind {
    if text.starts_with(inclusion::HEADER) {
        Kind::Inclusion
    } else if text.starts_with(&format!("{{\"format\":\"{}\"", consistency::FORMAT)) {
        Kind::Consistency
    } else if text.starts_with(&format!("{{\"format\":\"{}\"", compliance::FORMAT)) {
        Kind::Compliance
    } else {
        Kind::Checkpoint
    }
}
