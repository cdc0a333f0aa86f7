//! Batches the journal made durable that sled does not hold yet: the latest value (or
//! removal) of every key they wrote. Every read consults them before sled, so a reader sees
//! exactly what a store that had applied each batch in turn would hold.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::RangeBounds;

use sled::IVec;

/// The store's four trees.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum TreeId {
    Bundles = 0,
    Tiles = 1,
    Meta = 2,
    Derived = 3,
}

pub(super) const TREES: [TreeId; 4] = [
    TreeId::Bundles,
    TreeId::Tiles,
    TreeId::Meta,
    TreeId::Derived,
];

/// A key's pending state: its new value, or `None` for a removal.
type Entry = (Vec<u8>, Option<IVec>);

/// One write of a batch: its tree, key, and new value or `None` for a removal.
pub(super) type Write = (TreeId, Vec<u8>, Option<IVec>);

#[derive(Default)]
pub(super) struct Pending {
    trees: [BTreeMap<Vec<u8>, Option<IVec>>; 4],
}

impl Pending {
    /// Records a batch's writes ([`super::Batch::writes`]), in order.
    pub fn add(&mut self, writes: Vec<Write>) {
        for (tree, key, value) in writes {
            self.trees[tree as usize].insert(key, value);
        }
    }

    /// The pending state of `key`: `None` when no pending batch wrote it.
    pub fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<IVec>> {
        self.trees[tree as usize].get(key).cloned()
    }

    /// The pending entries of `tree` in `range`, in key order.
    pub fn range(&self, tree: TreeId, range: impl RangeBounds<Vec<u8>>) -> Vec<Entry> {
        self.trees[tree as usize]
            .range(range)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// Every pending entry of `tree`, in key order.
    pub fn entries(&self, tree: TreeId) -> impl Iterator<Item = (&[u8], Option<&IVec>)> {
        self.trees[tree as usize]
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_ref()))
    }

    pub fn clear(&mut self) {
        self.trees.iter_mut().for_each(BTreeMap::clear);
    }
}

/// sled's entries merged with pending ones, in key order (or reverse key order): a pending
/// value replaces sled's for the same key, a pending removal hides it. Values are `V`: sled's
/// own, or what the caller made of them (an entry bundle read where sled's pointer says).
pub(super) struct Merged<V, E, I: Iterator<Item = Result<(IVec, V), E>>> {
    stored: Peekable<I>,
    pending: Peekable<std::vec::IntoIter<(Vec<u8>, Option<V>)>>,
    reverse: bool,
}

impl<V, E, I: Iterator<Item = Result<(IVec, V), E>>> Merged<V, E, I> {
    /// `stored` and `pending` must run in the same direction: ascending, or descending when
    /// `reverse`.
    pub fn new(stored: I, pending: Vec<(Vec<u8>, Option<V>)>, reverse: bool) -> Merged<V, E, I> {
        Merged {
            stored: stored.peekable(),
            pending: pending.into_iter().peekable(),
            reverse,
        }
    }
}

impl<V, E, I: Iterator<Item = Result<(IVec, V), E>>> Iterator for Merged<V, E, I> {
    type Item = Result<(IVec, V), E>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        // Bounded: each turn consumes at least one pending or stored entry.
        loop {
            let take_pending = match (self.stored.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => false,
                (None, Some(_)) => true,
                (Some(Ok((stored, _))), Some((pending, _))) => {
                    let order = stored.as_ref().cmp(pending.as_slice());
                    match if self.reverse { order.reverse() } else { order } {
                        Ordering::Less => false,
                        Ordering::Greater => true,
                        Ordering::Equal => {
                            self.stored.next();
                            true
                        }
                    }
                }
            };
            if !take_pending {
                return self.stored.next();
            }
            let (key, value) = self.pending.next().expect("peeked");
            if let Some(value) = value {
                return Some(Ok((IVec::from(key), value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        stored: &[(u8, u8)],
        pending: &[(u8, Option<u8>)],
        reverse: bool,
        expected: &[(u8, u8)],
    ) {
        let mut stored: Vec<sled::Result<(IVec, IVec)>> = stored
            .iter()
            .map(|(key, value)| Ok((IVec::from(&[*key][..]), IVec::from(&[*value][..]))))
            .collect();
        let mut pending: Vec<Entry> = pending
            .iter()
            .map(|(key, value)| (vec![*key], value.map(|value| IVec::from(&[value][..]))))
            .collect();
        if reverse {
            stored.reverse();
            pending.reverse();
        }
        let merged: Vec<(u8, u8)> = Merged::new(stored.into_iter(), pending, reverse)
            .map(|item| {
                let (key, value) = item.unwrap();
                (key[0], value[0])
            })
            .collect();
        let mut expected = expected.to_vec();
        if reverse {
            expected.reverse();
        }
        assert_eq!(merged, expected, "reverse: {reverse}");
    }

    #[test]
    fn pending_entries_replace_hide_and_join_stored_ones() {
        for reverse in [false, true] {
            check(&[], &[], reverse, &[]);
            check(&[(1, 10), (3, 30)], &[], reverse, &[(1, 10), (3, 30)]);
            check(&[], &[(2, Some(20)), (4, None)], reverse, &[(2, 20)]);
            check(
                &[(1, 10), (2, 20), (3, 30), (5, 50)],
                &[
                    (0, Some(1)),
                    (2, Some(21)),
                    (3, None),
                    (4, Some(40)),
                    (6, None),
                ],
                reverse,
                &[(0, 1), (1, 10), (2, 21), (4, 40), (5, 50)],
            );
        }
    }
}
