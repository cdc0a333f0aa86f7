//! The RFC 6962 Merkle tree over records, kept as C2SP tlog-tiles of height 8.
//!
//! A tile at level L, index N holds the hashes at tree level 8·L for leaves N·256^(L+1) onward:
//! 256 hashes when full, fewer on the right edge. Full tiles never change; the right-edge
//! partial tiles (one per level, at most) are rewritten as the log grows. The tree keeps the
//! right edge in memory and reads full tiles from a [`TileSource`]. All hashing is done by
//! `tlog_tiles` (record_hash, node hashing in `Tile::subtree_hash`, `tree_hash`,
//! `prove_record`, `prove_tree`); this module only routes hashes to tiles.

use tlog_tiles::{Hash, HashReader, Tile};

/// Tile height: 2^8 = 256 hashes per tile, the C2SP tlog-tiles value.
pub const TILE_HEIGHT: u8 = 8;
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;
const HASH_BYTES: usize = 32;

/// Where full tiles come from (the store, or an export being verified).
pub trait TileSource {
    /// The hashes of the full tile at `level`, `index` (256 × 32 bytes), if present.
    fn full_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String>;
}

/// A tile whose contents changed: `width` hashes at `level`, `index`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TileWrite {
    pub level: u8,
    pub index: u64,
    pub data: Vec<u8>,
}

/// The tree's size and right edge.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    size: u64,
    /// `edge[l]`: the hashes of the partial tile at tile level `l` (fewer than 256).
    edge: Vec<Vec<u8>>,
}

impl Tree {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Rebuilds the right edge of a tree of `size` leaves from its stored partial tiles.
    /// `partial(level, index, width)` must return that tile's first `width` hashes.
    pub fn from_edge(
        size: u64,
        mut partial: impl FnMut(u8, u64, usize) -> Result<Vec<u8>, String>,
    ) -> Result<Tree, String> {
        let mut edge = Vec::new();
        let mut level = 0u8;
        while level_count(size, level) > 0 {
            let count = level_count(size, level);
            let width = (count % TILE_WIDTH as u64) as usize;
            let data = if width == 0 {
                Vec::new()
            } else {
                let data = partial(level, count / TILE_WIDTH as u64, width)?;
                if data.len() != width * HASH_BYTES {
                    return Err(format!(
                        "tile {level}/{} has {} bytes, expected {}",
                        count / TILE_WIDTH as u64,
                        data.len(),
                        width * HASH_BYTES
                    ));
                }
                data
            };
            edge.push(data);
            level += 1;
        }
        Ok(Tree { size, edge })
    }

    /// Appends a leaf hash; returns the tiles that changed (completed tiles, and the partial
    /// tiles of the new right edge are reported by [`Tree::edge_tiles`]).
    pub fn push(&mut self, leaf: [u8; 32], completed: &mut Vec<TileWrite>) {
        let mut hash = leaf;
        let mut level = 0usize;
        loop {
            if self.edge.len() <= level {
                self.edge.push(Vec::with_capacity(TILE_WIDTH * HASH_BYTES));
            }
            let tile = &mut self.edge[level];
            tile.extend_from_slice(&hash);
            if tile.len() < TILE_WIDTH * HASH_BYTES {
                break;
            }
            // The tile is full: it is written once, and its root is one hash of the level above.
            // The next tile of this level starts at its full size rather than growing to it.
            let data = std::mem::replace(tile, Vec::with_capacity(TILE_WIDTH * HASH_BYTES));
            let index = (self.size >> (u32::from(TILE_HEIGHT) * level as u32)) / TILE_WIDTH as u64;
            hash = Tile::subtree_hash(&data).0;
            completed.push(TileWrite {
                level: level as u8,
                index,
                data,
            });
            level += 1;
        }
        self.size += 1;
    }

    /// The current partial tiles of the right edge.
    pub fn edge_tiles(&self) -> Vec<TileWrite> {
        self.edge
            .iter()
            .enumerate()
            .filter(|(_, data)| !data.is_empty())
            .map(|(level, data)| TileWrite {
                level: level as u8,
                index: level_count(self.size, level as u8) / TILE_WIDTH as u64,
                data: data.clone(),
            })
            .collect()
    }

    /// The RFC 6962 root of the whole tree.
    pub fn root(&self) -> [u8; 32] {
        let reader = EdgeReader { tree: self };
        tlog_tiles::tree_hash(self.size, &reader)
            .expect("the right edge holds every hash the root needs")
            .0
    }

    /// A reader of any hash of this tree, the right edge from memory, full tiles from `source`.
    pub fn reader<'a, S: TileSource>(&'a self, source: &'a S) -> TreeReader<'a, S> {
        TreeReader { tree: self, source }
    }
}

/// A whole tree in memory: for small trees built on the fly (a commitment's subject tree).
#[derive(Default)]
pub struct MemoryTree {
    tree: Tree,
    tiles: std::collections::HashMap<(u8, u64), Vec<u8>>,
}

impl MemoryTree {
    pub fn from_leaves(leaves: impl IntoIterator<Item = [u8; 32]>) -> MemoryTree {
        let mut memory = MemoryTree::default();
        let mut completed = Vec::new();
        for leaf in leaves {
            memory.tree.push(leaf, &mut completed);
            for tile in completed.drain(..) {
                memory.tiles.insert((tile.level, tile.index), tile.data);
            }
        }
        memory
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    pub fn root(&self) -> [u8; 32] {
        self.tree.root()
    }

    /// The RFC 6962 inclusion proof of leaf `index`.
    pub fn prove(&self, index: u64) -> Result<Vec<[u8; 32]>, String> {
        let reader = self.tree.reader(self);
        tlog_tiles::prove_record(self.tree.size(), index, &reader)
            .map(|proof| proof.into_iter().map(|hash| hash.0).collect())
            .map_err(|error| error.to_string())
    }
}

impl TileSource for MemoryTree {
    fn full_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
        Ok(self.tiles.get(&(level, index)).cloned())
    }
}

/// How many hashes tree level `8 · level` has in a tree of `size` leaves.
fn level_count(size: u64, level: u8) -> u64 {
    let shift = u32::from(TILE_HEIGHT) * u32::from(level);
    if shift >= 64 { 0 } else { size >> shift }
}

/// The hash at a stored-hash index, from the tile that holds it.
fn hash_in_tile(
    index: u64,
    level: u8,
    tile_index: u64,
    data: &[u8],
) -> Result<Hash, tlog_tiles::Error> {
    let width =
        u32::try_from(data.len() / HASH_BYTES).map_err(|_| tlog_tiles::Error::InvalidTile)?;
    if width == 0 || width as usize > TILE_WIDTH {
        return Err(tlog_tiles::Error::InvalidTile);
    }
    Tile::new(TILE_HEIGHT, level, tile_index, width, false).hash_at_index(data, index)
}

struct EdgeReader<'a> {
    tree: &'a Tree,
}

impl HashReader for EdgeReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&index| {
                let tile = Tile::from_index(TILE_HEIGHT, index);
                let level = tile.level();
                let data = self
                    .tree
                    .edge
                    .get(usize::from(level))
                    .filter(|data| !data.is_empty())
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                hash_in_tile(index, level, tile.level_index(), data)
            })
            .collect()
    }
}

/// Reads hashes of a tree: the right edge from memory, everything else from full tiles.
pub struct TreeReader<'a, S> {
    tree: &'a Tree,
    source: &'a S,
}

impl<S: TileSource> HashReader for TreeReader<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&index| {
                let tile = Tile::from_index(TILE_HEIGHT, index);
                let level = tile.level();
                let count = level_count(self.tree.size, level);
                let edge_index = count / TILE_WIDTH as u64;
                if tile.level_index() == edge_index {
                    let data = self
                        .tree
                        .edge
                        .get(usize::from(level))
                        .filter(|data| !data.is_empty())
                        .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                    return hash_in_tile(index, level, edge_index, data);
                }
                if tile.level_index() > edge_index {
                    return Err(tlog_tiles::Error::IndexesNotInTree);
                }
                let data = self
                    .source
                    .full_tile(level, tile.level_index())
                    .map_err(tlog_tiles::Error::InvalidInput)?
                    .ok_or(tlog_tiles::Error::InconsistentTile)?;
                if data.len() != TILE_WIDTH * HASH_BYTES {
                    return Err(tlog_tiles::Error::InconsistentTile);
                }
                hash_in_tile(index, level, tile.level_index(), &data)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Memory(HashMap<(u8, u64), Vec<u8>>);

    impl TileSource for Memory {
        fn full_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.get(&(level, index)).cloned())
        }
    }

    /// The RFC 6962 root computed the slow, obvious way, to check the tiled tree against.
    fn reference_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => tlog_tiles::EMPTY_HASH.0,
            1 => leaves[0],
            n => {
                // RFC 6962: the largest power of two smaller than n.
                let split = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                tlog_tiles::node_hash(
                    Hash(reference_root(&leaves[..split])),
                    Hash(reference_root(&leaves[split..])),
                )
                .0
            }
        }
    }

    #[test]
    fn roots_and_proofs_match_the_reference_at_every_size() {
        let mut tree = Tree::default();
        let mut store = Memory::default();
        let mut leaves = Vec::new();
        for size in 1..=70_000u64 {
            let leaf = tlog_tiles::record_hash(&size.to_le_bytes()).0;
            leaves.push(leaf);
            let mut completed = Vec::new();
            tree.push(leaf, &mut completed);
            for tile in completed {
                store.0.insert((tile.level, tile.index), tile.data);
            }
            let interesting = size < 600 || size % 4099 == 0 || size == 65_536 || size == 65_537;
            if !interesting {
                continue;
            }
            let root = tree.root();
            assert_eq!(root, reference_root(&leaves), "root at size {size}");
            let reader = tree.reader(&store);
            for leaf_index in [0, size / 2, size - 1] {
                let proof = tlog_tiles::prove_record(size, leaf_index, &reader).unwrap();
                tlog_tiles::check_record(
                    &proof,
                    size,
                    Hash(root),
                    leaf_index,
                    Hash(leaves[leaf_index as usize]),
                )
                .unwrap();
            }
            // Rebuilding from stored partial tiles gives the same tree.
            let edge = tree.edge_tiles();
            let rebuilt = Tree::from_edge(size, |level, index, width| {
                let tile = edge
                    .iter()
                    .find(|tile| tile.level == level && tile.index == index)
                    .unwrap();
                assert_eq!(tile.data.len(), width * 32);
                Ok(tile.data.clone())
            })
            .unwrap();
            assert_eq!(rebuilt.root(), root);
        }
    }
}
