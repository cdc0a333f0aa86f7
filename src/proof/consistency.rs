//! Consistency proofs between two signed checkpoints of the same ledger: the newer log extends
//! the older one, so nothing in the older history was changed or removed.
//!
//! A compact JSON object (schema `schemas/consistency-proof.schema.json`) followed by one
//! newline; any other form is refused, so no byte of the file can change unnoticed.

use super::checkpoint::{self, Verified};
use super::{canonical_json, failed, hash32, rfc6962};
use crate::error::Error;
use crate::view::base64;

pub const FORMAT: &str = "chipledger/consistency-proof@v1";

/// The file's content.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[schemars(title = "chipledger consistency proof")]
pub struct ConsistencyProof {
    /// Always `chipledger/consistency-proof@v1`.
    pub format: String,
    /// The older signed checkpoint, verbatim.
    pub old_checkpoint: String,
    /// The newer signed checkpoint, verbatim.
    pub new_checkpoint: String,
    /// RFC 6962 section 2.1.2 consistency proof, base64 SHA-256 hashes in order.
    pub proof: Vec<String>,
}

pub fn build(old: &Verified, new: &Verified, proof: &[[u8; 32]]) -> String {
    let content = ConsistencyProof {
        format: FORMAT.to_string(),
        old_checkpoint: old.note.clone(),
        new_checkpoint: new.note.clone(),
        proof: proof.iter().map(|hash| base64(hash)).collect(),
    };
    serde_json::to_string(&content).expect("proofs serialize") + "\n"
}

/// Verifies a consistency proof file; returns the two checkpoints.
pub fn verify(text: &str, vkey: &str) -> Result<(Verified, Verified), Error> {
    let content: ConsistencyProof = canonical_json(text, "consistency proof")?;
    if content.format != FORMAT {
        return Err(failed(format!(
            "the format is `{}`, not {FORMAT}",
            content.format
        )));
    }
    let old = checkpoint::verify(&content.old_checkpoint, vkey)?;
    let new = checkpoint::verify(&content.new_checkpoint, vkey)?;
    let hashes = content
        .proof
        .iter()
        .enumerate()
        .map(|(index, hash)| hash32(hash, &format!("proof hash {index}")).map(|hash| hash.to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    rfc6962::verify_consistency(old.size, new.size, &old.root, &new.root, &hashes).map_err(|error| {
        failed(format!(
            "the checkpoint of {} records is not a prefix of the checkpoint of {} records: {error}",
            old.size, new.size
        ))
    })?;
    Ok((old, new))
}
