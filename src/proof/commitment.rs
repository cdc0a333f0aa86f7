//! Commitment records: at checkpoint time, a Merkle root over every subject's latest record
//! and state digest, so that a compliance bundle can prove it left nothing out.
//!
//! The subject tree is an RFC 6962 tree whose leaves are, in subject order, the canonical bytes
//! of `(subject, latest seq, digest)` (`rules::subject::leaf_bytes`). Every subject with a
//! record is a leaf, and the `tiers` subject always is (with no latest record when no tier
//! change was ever recorded), so a bundle can always prove the tier changes complete.

use crate::codec::{CommitmentEvent, Subject, leaf_hash};
use crate::ledger::Links;
use crate::merkle::MemoryTree;
use crate::rules::State;
use crate::rules::subject::{digest, leaf_bytes, project};

/// One subject's leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub subject: Subject,
    pub latest: Option<u64>,
    pub digest: [u8; 32],
}

impl Leaf {
    pub fn bytes(&self) -> Vec<u8> {
        leaf_bytes(&self.subject, self.latest, &self.digest)
    }
}

/// The leaves for a state and its links, in subject order.
pub fn leaves(state: &State, links: &Links) -> Vec<Leaf> {
    let mut subjects: Vec<&Subject> = links.last.keys().collect();
    let tiers = Subject::Tiers;
    if !links.last.contains_key(&tiers) {
        subjects.push(&tiers);
    }
    subjects.sort();
    subjects
        .into_iter()
        .map(|subject| Leaf {
            subject: subject.clone(),
            latest: links.last.get(subject).copied(),
            digest: digest(&project(state, subject)),
        })
        .collect()
}

pub fn tree(leaves: &[Leaf]) -> MemoryTree {
    MemoryTree::from_leaves(leaves.iter().map(|leaf| leaf_hash(&leaf.bytes())))
}

/// The commitment event for the first `size` records.
pub fn event(size: u64, leaves: &[Leaf]) -> CommitmentEvent {
    CommitmentEvent {
        size,
        subject_count: leaves.len() as u64,
        subjects_root: tree(leaves).root(),
    }
}
