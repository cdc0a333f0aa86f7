//! RFC 6962 / RFC 9162 proof verification over raw bytes, as the transparency-log ecosystem's
//! conformance vectors state them (`../shared/testdata/merkle`). Every proof chipledger
//! checks goes through these two functions; the hashing is `tlog_tiles`'.

use tlog_tiles::Hash;

fn hash(bytes: &[u8], what: &str) -> Result<Hash, String> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash)
        .map_err(|_| format!("{what} is {} bytes, not 32", bytes.len()))
}

fn hashes(proof: &[Vec<u8>]) -> Result<Vec<Hash>, String> {
    proof
        .iter()
        .enumerate()
        .map(|(index, bytes)| hash(bytes, &format!("proof hash {index}")))
        .collect()
}

/// Checks that `proof` shows the leaf with hash `leaf` at `index` in the tree of `size` leaves
/// with root `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    root: &[u8],
    leaf: &[u8],
    proof: &[Vec<u8>],
) -> Result<(), String> {
    if index >= size {
        return Err(format!("leaf {index} is outside a tree of {size} leaves"));
    }
    let root = hash(root, "the root")?;
    let leaf = hash(leaf, "the leaf hash")?;
    let proof = hashes(proof)?;
    tlog_tiles::check_record(&proof, size, root, index, leaf)
        .map_err(|error| format!("the inclusion proof does not lead to the root: {error}"))
}

/// Checks that `proof` shows the tree of `size1` leaves with root `root1` to be a prefix of the
/// tree of `size2` leaves with root `root2` (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[Vec<u8>],
) -> Result<(), String> {
    if size1 > size2 {
        return Err(format!(
            "the old size {size1} is larger than the new size {size2}"
        ));
    }
    if size1 == 0 {
        // Every tree extends the empty tree; a proof "from" it proves nothing and is refused,
        // as RFC 9162 verifiers do.
        return Err("a consistency proof from an empty tree is meaningless".into());
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err("equal sizes take an empty proof".into());
        }
        if root1 != root2 {
            return Err("equal sizes with different roots".into());
        }
        return Ok(());
    }
    let root1 = hash(root1, "the old root")?;
    let root2 = hash(root2, "the new root")?;
    let proof = hashes(proof)?;
    tlog_tiles::check_tree(&proof, size2, root2, size1, root1)
        .map_err(|error| format!("the consistency proof does not connect the roots: {error}"))
}
