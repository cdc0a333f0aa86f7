//! A journal frame's payload: a batch whose values are written as changes to the values they
//! replace (FORMAT.md section 6.1). An append rewrites whole values that grew by a few bytes
//! (the open bundle gains a record, the open id-index chunk 8 bytes, the edge tile 32), so a
//! frame that held them whole would be tens of KB where the change is a few hundred bytes, and
//! the journal's fdatasync waits for every page of the frame.

use super::{Batch, Bytes, Head, StoreError};

/// A value as the bytes it keeps of the value it replaces, then its own.
#[derive(bincode::Encode, bincode::Decode, Debug, PartialEq, Eq)]
pub(super) struct Delta {
    /// How many leading bytes of the replaced value (the store's value before the batch) the
    /// new value starts with; 0 when there was none.
    keep: u32,
    /// The bytes after them.
    rest: Vec<u8>,
}

impl Delta {
    /// `new` as a change of `old`.
    pub fn between(old: Option<&[u8]>, new: &[u8]) -> Delta {
        let keep = old.map_or(0, |old| {
            old.iter()
                .zip(new)
                .take_while(|(old, new)| old == new)
                .count()
        });
        Delta {
            keep: u32::try_from(keep).expect("a value is under 4 GiB"),
            rest: new[keep..].to_vec(),
        }
    }

    /// The value this delta makes of `old`, or `None` if `old` is shorter than what it keeps.
    pub fn apply(&self, old: Option<&[u8]>) -> Option<Vec<u8>> {
        let keep = self.keep as usize;
        let kept = match old {
            Some(old) => old.get(..keep)?,
            None if keep == 0 => &[][..],
            None => return None,
        };
        let mut value = Vec::with_capacity(keep + self.rest.len());
        value.extend_from_slice(kept);
        value.extend_from_slice(&self.rest);
        Some(value)
    }
}

/// A [`Batch`] with its values as [`Delta`]s against the store's values before it.
#[derive(bincode::Encode, bincode::Decode)]
pub(super) struct DeltaBatch {
    bundles: Vec<(u64, Delta)>,
    tiles: Vec<(u8, u64, Delta)>,
    head: Option<Head>,
    derived_puts: Vec<(Vec<u8>, Delta)>,
    derived_deletes: Vec<Vec<u8>>,
    checkpoint: Option<Vec<u8>>,
}

/// The values a batch replaces: what a read of the store returned before the batch.
pub(super) trait Before {
    fn bundle(&self, index: u64) -> Result<Option<Bytes>, StoreError>;
    fn tile(&self, level: u8, index: u64) -> Result<Option<Bytes>, StoreError>;
    fn derived(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
}

impl DeltaBatch {
    pub fn of(batch: &Batch, before: &impl Before) -> Result<DeltaBatch, StoreError> {
        let mut bundles = Vec::with_capacity(batch.bundles.len());
        for (index, bytes) in &batch.bundles {
            let old = before.bundle(*index)?;
            bundles.push((*index, Delta::between(old.as_deref(), bytes)));
        }
        let mut tiles = Vec::with_capacity(batch.tiles.len());
        for (level, index, bytes) in &batch.tiles {
            let old = before.tile(*level, *index)?;
            tiles.push((*level, *index, Delta::between(old.as_deref(), bytes)));
        }
        let mut derived_puts = Vec::with_capacity(batch.derived_puts.len());
        for (key, bytes) in &batch.derived_puts {
            let old = before.derived(key)?;
            derived_puts.push((key.clone(), Delta::between(old.as_deref(), bytes)));
        }
        Ok(DeltaBatch {
            bundles,
            tiles,
            head: batch.head.clone(),
            derived_puts,
            derived_deletes: batch.derived_deletes.clone(),
            checkpoint: batch.checkpoint.clone(),
        })
    }

    /// The batch again, from the same values before it; `seq` names it in errors.
    pub fn batch(self, before: &impl Before, seq: u64) -> Result<Batch, StoreError> {
        let short = |what: String| {
            StoreError::Corrupt(format!(
                "the journal's batch {seq} changes {what}, but the store's value is shorter \
                 than the bytes it keeps"
            ))
        };
        let mut bundles = Vec::with_capacity(self.bundles.len());
        for (index, delta) in self.bundles {
            let old = before.bundle(index)?;
            let value = delta
                .apply(old.as_deref())
                .ok_or_else(|| short(format!("bundle {index}")))?;
            bundles.push((index, value));
        }
        let mut tiles = Vec::with_capacity(self.tiles.len());
        for (level, index, delta) in self.tiles {
            let old = before.tile(level, index)?;
            let value = delta
                .apply(old.as_deref())
                .ok_or_else(|| short(format!("tile {level}/{index}")))?;
            tiles.push((level, index, value));
        }
        let mut derived_puts = Vec::with_capacity(self.derived_puts.len());
        for (key, delta) in self.derived_puts {
            let old = before.derived(&key)?;
            let value = delta
                .apply(old.as_deref())
                .ok_or_else(|| short(format!("a derived entry ({} bytes of key)", key.len())))?;
            derived_puts.push((key, value));
        }
        Ok(Batch {
            bundles,
            tiles,
            head: self.head,
            derived_puts,
            derived_deletes: self.derived_deletes,
            checkpoint: self.checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_keeps_the_common_prefix_and_rebuilds_the_value() {
        // (the value before, the value after, the bytes kept)
        type Case<'a> = (Option<&'a [u8]>, &'a [u8], u32);
        let cases: [Case; 5] = [
            (None, b"abc", 0),
            (Some(b"abc"), b"abcdef", 3),
            (Some(b"abcxyz"), b"abcdef", 3),
            (Some(b"abcdef"), b"abc", 3),
            (Some(b"xyz"), b"abc", 0),
        ];
        for (old, new, keep) in cases {
            let delta = Delta::between(old, new);
            assert_eq!(delta.keep, keep, "{old:?} -> {new:?}");
            assert_eq!(delta.apply(old).as_deref(), Some(new));
        }
        let delta = Delta::between(Some(b"abcdef"), b"abcdefg");
        assert_eq!(
            delta.apply(Some(b"abc")),
            None,
            "an older value is too short"
        );
        assert_eq!(delta.apply(None), None);
    }
}
