//! C2SP tlog-checkpoints in C2SP signed notes, signed with the ledger's Ed25519 key.

use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use super::failed;
use crate::error::Error;

/// A checkpoint whose signature was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The signed note, verbatim.
    pub note: String,
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

/// Signs a checkpoint of a log of `size` records with root `root`.
pub fn sign(signer_key: &str, origin: &str, size: u64, root: [u8; 32]) -> Result<Verified, Error> {
    let signer = StandardSigner::new(signer_key)
        .map_err(|error| Error::Usage(format!("the signing key is not usable: {error}")))?;
    let checkpoint = Checkpoint::new(origin, size, Hash(root), "")
        .map_err(|error| Error::Usage(format!("cannot make a checkpoint: {error}")))?;
    let mut note = Note::new(&checkpoint.to_bytes(), &[])
        .map_err(|error| Error::Usage(format!("cannot make a note: {error}")))?;
    note.add_sigs(&[&signer])
        .map_err(|error| Error::Usage(format!("cannot sign: {error}")))?;
    let text = String::from_utf8(note.to_bytes()).expect("notes are UTF-8");
    Ok(Verified {
        note: text,
        origin: origin.to_string(),
        size,
        root,
    })
}

/// Verifies a signed checkpoint against a verifier key; its origin must be the key's name.
pub fn verify(note_text: &str, vkey: &str) -> Result<Verified, Error> {
    let verifier = StandardVerifier::new(vkey.trim())
        .map_err(|error| Error::Usage(format!("the verifier key is not usable: {error}")))?;
    let note = Note::from_bytes(note_text.as_bytes()).map_err(|error| {
        failed(format!(
            "the checkpoint is not a valid signed note: {error}"
        ))
    })?;
    let key_name = signed_note::Verifier::name(&verifier).to_string();
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|error| {
            failed(format!(
                "the checkpoint's signature does not verify with {key_name}: {error}"
            ))
        })?;
    let checkpoint = Checkpoint::from_bytes(note.text())
        .map_err(|error| failed(format!("the signed text is not a checkpoint: {error}")))?;
    if checkpoint.origin() != key_name {
        return Err(failed(format!(
            "the checkpoint's origin `{}` is not the key's name `{key_name}`",
            checkpoint.origin()
        )));
    }
    Ok(Verified {
        note: note_text.to_string(),
        origin: checkpoint.origin().to_string(),
        size: checkpoint.size(),
        root: checkpoint.hash().0,
    })
}
