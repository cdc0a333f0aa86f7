//! Inclusion proofs in the C2SP `tlog-proof@v1` format, with the record's canonical bytes in
//! the `extra` line, so a third party needs nothing but the file and the verifier key.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the record bytes>
//! index <seq>
//! <base64 hash>            one per line, from the leaf's sibling up to the root's child
//!
//! <the signed checkpoint, verbatim>
//! ```

use super::checkpoint::{self, Verified};
use super::{failed, hash32, rfc6962};
use crate::codec::{self, Record};
use crate::error::Error;
use crate::view::base64;

pub const HEADER: &str = "c2sp.org/tlog-proof@v1\n";

/// Writes an inclusion proof file.
pub fn build(record_bytes: &[u8], index: u64, proof: &[[u8; 32]], checkpoint_note: &str) -> String {
    let mut text = String::from(HEADER);
    text.push_str(&format!("extra {}\n", base64(record_bytes)));
    text.push_str(&format!("index {index}\n"));
    for hash in proof {
        text.push_str(&base64(hash));
        text.push('\n');
    }
    text.push('\n');
    text.push_str(checkpoint_note);
    text
}

/// What a verified inclusion proof shows.
#[derive(Debug)]
pub struct Shown {
    pub checkpoint: Verified,
    pub record: Record,
    pub record_bytes: Vec<u8>,
}

/// Verifies an inclusion proof file with the ledger's verifier key.
pub fn verify(text: &str, vkey: &str) -> Result<Shown, Error> {
    let rest = text
        .strip_prefix(HEADER)
        .ok_or_else(|| failed("the file does not start with c2sp.org/tlog-proof@v1"))?;
    let (head, note) = rest
        .split_once("\n\n")
        .ok_or_else(|| failed("the proof has no blank line before its checkpoint"))?;
    let mut lines = head.split('\n');
    let extra = lines
        .next()
        .and_then(|line| line.strip_prefix("extra "))
        .ok_or_else(|| failed("the proof has no `extra` line with the record's bytes"))?;
    let record_bytes = crate::view::from_base64(extra)
        .map_err(|error| failed(format!("the extra data is {error}")))?;
    let index_text = lines
        .next()
        .and_then(|line| line.strip_prefix("index "))
        .ok_or_else(|| failed("the proof has no `index` line"))?;
    let index: u64 = index_text
        .parse()
        .ok()
        .filter(|index: &u64| index.to_string() == index_text)
        .ok_or_else(|| {
            failed(format!(
                "`{index_text}` is not an index (a decimal without leading zeros)"
            ))
        })?;
    let mut hashes = Vec::new();
    for (number, line) in lines.enumerate() {
        hashes.push(hash32(line, &format!("proof hash {number}"))?.to_vec());
    }
    let checkpoint = checkpoint::verify(note, vkey)?;
    let leaf = codec::leaf_hash(&record_bytes);
    rfc6962::verify_inclusion(index, checkpoint.size, &checkpoint.root, &leaf, &hashes)
        .map_err(|error| failed(format!("record {index}: {error}")))?;
    let record = codec::decode_record(&record_bytes)
        .map_err(|error| failed(format!("record {index}: the included bytes {error}")))?;
    if record.seq != index {
        return Err(failed(format!(
            "the included record says it is record {}, but the proof is for index {index}",
            record.seq
        )));
    }
    Ok(Shown {
        checkpoint,
        record,
        record_bytes,
    })
}
