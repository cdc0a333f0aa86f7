//! A process allocator that keeps a few freed buffers of sled's for reuse.
//!
//! sled 0.34 writes its log through buffers of one segment each (4 MiB, the store's segment
//! size), allocated with an alignment of 8,192 bytes and freed once written, several per commit.
//! glibc hands each of them out as fresh pages (most likely a new mapping every time: its
//! dynamic mmap threshold rises to the size of the last mapped block freed, and an aligned
//! request asks for the size plus the alignment, just above it), so every byte sled writes lands
//! first on a page the kernel has to fault in and clear: about 340,000 faults in a
//! 1,000,000-event import, a quarter of its system time and half of its commit threads' samples
//! (tools/bench/PROFILE.md, goal 1). Its open does the
//! same with zeroed buffers of one segment, one after another: two to read the log's tail and
//! one per free segment to overwrite it, on every open, a query's included (goal 4).
//!
//! [`BufferPool`] passes every other allocation to the system allocator untouched. Of those two
//! kinds of block ([`Kind`]) it keeps freed ones, at most [`SLOTS`] in all and one zeroed
//! segment, and hands each back to the next request of exactly its layout, so what it holds is
//! bounded (16 MiB at sled's segment size). A zeroed segment is only taken back if it was handed
//! out zeroed: a vector that merely grows through the segment size is not kept.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// The alignment sled's write buffers ask for.
pub const POOLED_ALIGN: usize = 8192;
/// The smallest block of that alignment pooled: only whole write buffers.
pub const POOLED_MIN_BYTES: usize = 1 << 20;
/// The most freed blocks kept. One slot left 229,567 faults in a 1M import, two 139,025, four
/// 81,210 (tools/bench/PROFILE.md, goal 1).
pub const SLOTS: usize = 4;
/// The most zeroed segments handed out at once that the pool remembers (sled's open holds one
/// at a time); one it has forgotten is freed to the system, which is always safe.
const ZEROED_REMEMBERED: usize = 4;

/// The blocks the pool keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// sled's write buffers: 8,192-aligned, at least 1 MiB.
    WriteBuffer,
    /// A zeroed block of exactly one segment with a smaller alignment: sled's read and zero
    /// buffers at open.
    ZeroedSegment,
}

/// See the module documentation.
pub struct BufferPool {
    /// The lock is taken only for the layouts of [`Kind`], a few hundred times in an import,
    /// and allocates nothing, so the allocator never re-enters itself.
    state: Mutex<Pool>,
}

struct Pool {
    free: [Slot; SLOTS],
    /// Addresses of zeroed segments handed out and not yet freed; 0 is an empty entry.
    zeroed: [usize; ZEROED_REMEMBERED],
}

/// A freed block and the layout it was allocated with; `address` 0 is an empty slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    address: usize,
    size: usize,
    align: usize,
}

impl Slot {
    const EMPTY: Slot = Slot {
        address: 0,
        size: 0,
        align: 0,
    };

    fn holds(self, layout: Layout) -> bool {
        self.address != 0 && self.size == layout.size() && self.align == layout.align()
    }
}

impl Pool {
    /// Takes a held block of exactly `layout`.
    fn take(&mut self, layout: Layout) -> Option<*mut u8> {
        let slot = self.free.iter_mut().find(|slot| slot.holds(layout))?;
        let address = std::mem::take(slot).address;
        assert_eq!(
            address % layout.align(),
            0,
            "a pooled block keeps its alignment"
        );
        Some(address as *mut u8)
    }

    /// Keeps a freed block if a slot is free (and, for a zeroed segment, none is held yet).
    fn keep(&mut self, pointer: *mut u8, layout: Layout, kind: Kind) -> bool {
        let limit_reached = kind == Kind::ZeroedSegment
            && self
                .free
                .iter()
                .any(|slot| slot.address != 0 && Kind::of(layout_of(*slot)) == Some(kind));
        if limit_reached {
            return false;
        }
        match self.free.iter_mut().find(|slot| slot.address == 0) {
            Some(slot) => {
                *slot = Slot {
                    address: pointer as usize,
                    size: layout.size(),
                    align: layout.align(),
                };
                true
            }
            None => false,
        }
    }

    /// Forgets a zeroed segment the pool handed out, and says whether it had handed it out.
    fn forget_zeroed(&mut self, pointer: *mut u8) -> bool {
        match self
            .zeroed
            .iter_mut()
            .find(|address| **address == pointer as usize)
        {
            Some(address) => {
                *address = 0;
                true
            }
            None => false,
        }
    }

    fn remember_zeroed(&mut self, pointer: *mut u8) {
        if let Some(address) = self.zeroed.iter_mut().find(|address| **address == 0) {
            *address = pointer as usize;
        }
    }
}

fn layout_of(slot: Slot) -> Layout {
    Layout::from_size_align(slot.size, slot.align).expect("a slot holds a valid layout")
}

impl Kind {
    /// The kind of block `layout` describes, if the pool keeps such blocks.
    pub fn of(layout: Layout) -> Option<Kind> {
        if layout.align() == POOLED_ALIGN && layout.size() >= POOLED_MIN_BYTES {
            Some(Kind::WriteBuffer)
        } else if layout.size() == super::SEGMENT_BYTES && layout.align() < POOLED_ALIGN {
            Some(Kind::ZeroedSegment)
        } else {
            None
        }
    }
}

impl BufferPool {
    pub const fn new() -> BufferPool {
        BufferPool {
            state: Mutex::new(Pool {
                free: [Slot::EMPTY; SLOTS],
                zeroed: [0; ZEROED_REMEMBERED],
            }),
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // A panic while the lock is held cannot leave the pool inconsistent: every change is
        // one assignment of a slot or an address.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many freed blocks the pool holds.
    pub fn held(&self) -> usize {
        self.pool()
            .free
            .iter()
            .filter(|slot| slot.address != 0)
            .count()
    }

    /// Gives every held block back to the system.
    pub fn release(&self) {
        for slot in self.pool().free.iter_mut() {
            let slot = std::mem::take(slot);
            if slot.address != 0 {
                // SAFETY: the block came from `System` with this layout and nobody else holds it.
                unsafe { System.dealloc(slot.address as *mut u8, layout_of(slot)) };
            }
        }
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::new()
    }
}

// SAFETY: every block handed out comes from `System` with the same layout it is later freed or
// reallocated with: a held block is reused only for a request of its exact size and alignment,
// and a block is freed to `System` with the layout it was allocated with.
unsafe impl GlobalAlloc for BufferPool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Kind::of(layout) == Some(Kind::WriteBuffer) {
            if let Some(pointer) = self.pool().take(layout) {
                return pointer;
            }
        }
        // SAFETY: the caller's layout has a non-zero size, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if let Some(kind) = Kind::of(layout) {
            let mut pool = self.pool();
            let handed_out = kind == Kind::WriteBuffer || pool.forget_zeroed(pointer);
            if handed_out && pool.keep(pointer, layout, kind) {
                return;
            }
        }
        // SAFETY: `pointer` was allocated by `System` with `layout` (see the impl's comment).
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Kind::of(layout) {
            None => {
                // SAFETY: as for `alloc`.
                unsafe { System.alloc_zeroed(layout) }
            }
            Some(kind) => {
                let held = self.pool().take(layout);
                let pointer = match held {
                    Some(pointer) => {
                        // SAFETY: the block is `layout.size()` bytes and now the caller's.
                        unsafe { std::ptr::write_bytes(pointer, 0, layout.size()) };
                        pointer
                    }
                    // SAFETY: as for `alloc`.
                    None => unsafe { System.alloc_zeroed(layout) },
                };
                if kind == Kind::ZeroedSegment && !pointer.is_null() {
                    self.pool().remember_zeroed(pointer);
                }
                pointer
            }
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align(new_size, layout.align())
            .expect("the caller's new size fits its alignment");
        if Kind::of(layout).is_some() || Kind::of(new_layout).is_some() {
            // A kept block only ever changes hands whole: allocate, copy, free.
            // SAFETY: as for `alloc` and `dealloc`; the copy stays inside both blocks.
            unsafe {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(pointer, moved, layout.size().min(new_size));
                    self.dealloc(pointer, layout);
                }
                return moved;
            }
        }
        // SAFETY: neither layout is one the pool keeps, so `System` allocated `pointer` with
        // `layout`.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn all(pointer: *mut u8, bytes: usize, value: u8) -> bool {
        unsafe { std::slice::from_raw_parts(pointer, bytes) }
            .iter()
            .all(|byte| *byte == value)
    }

    #[test]
    fn a_freed_write_buffer_is_handed_back_and_the_pool_is_bounded() {
        let pool = BufferPool::new();
        let buffer = layout(4 << 20, POOLED_ALIGN);
        unsafe {
            let first = pool.alloc(buffer);
            assert_eq!(first as usize % POOLED_ALIGN, 0);
            first.write_bytes(7, buffer.size());
            pool.dealloc(first, buffer);
            assert_eq!(pool.held(), 1);
            // The same block comes back, cleared for a zeroed request.
            let again = pool.alloc_zeroed(buffer);
            assert_eq!(again, first);
            assert_eq!(pool.held(), 0);
            assert!(all(again, buffer.size(), 0));
            // A request of another size or alignment never gets it.
            pool.dealloc(again, buffer);
            let other = layout(2 << 20, POOLED_ALIGN);
            let smaller = pool.alloc(other);
            assert_ne!(smaller, again);
            pool.dealloc(smaller, other);
            assert_eq!(pool.held(), 2);
            // At most SLOTS blocks are kept; the rest go back to the system.
            let blocks: Vec<*mut u8> = (0..SLOTS + 2).map(|_| pool.alloc(buffer)).collect();
            assert_eq!(
                pool.held(),
                1,
                "the 2 MiB block stays; the 4 MiB one was taken"
            );
            for block in blocks {
                pool.dealloc(block, buffer);
            }
            assert_eq!(pool.held(), SLOTS);
            // Grown into the kept layout and shrunk out of it, the bytes survive.
            let small = layout(64, POOLED_ALIGN);
            let grown = pool.alloc(small);
            grown.write_bytes(9, 64);
            let grown = pool.realloc(grown, small, buffer.size());
            assert!(all(grown, 64, 9));
            let shrunk = pool.realloc(grown, buffer, 128);
            assert!(all(shrunk, 64, 9));
            pool.dealloc(shrunk, layout(128, POOLED_ALIGN));
            pool.release();
            assert_eq!(pool.held(), 0);
        }
    }

    #[test]
    fn only_segments_handed_out_zeroed_are_kept_and_only_one() {
        let pool = BufferPool::new();
        let segment = layout(crate::store::SEGMENT_BYTES, 1);
        unsafe {
            // A vector that grows through the segment size is not kept.
            let grown = pool.alloc(segment);
            pool.dealloc(grown, segment);
            assert_eq!(pool.held(), 0);
            // A zeroed one is, and comes back cleared.
            let zeroed = pool.alloc_zeroed(segment);
            assert!(all(zeroed, segment.size(), 0));
            zeroed.write_bytes(5, segment.size());
            pool.dealloc(zeroed, segment);
            assert_eq!(pool.held(), 1);
            let again = pool.alloc_zeroed(segment);
            assert_eq!(again, zeroed);
            assert!(all(again, segment.size(), 0));
            // A plain request of that layout does not take it.
            pool.dealloc(again, segment);
            let plain = pool.alloc(segment);
            assert_ne!(plain, again);
            pool.dealloc(plain, segment);
            assert_eq!(pool.held(), 1);
            // Two zeroed segments freed: the second goes back to the system.
            let first = pool.alloc_zeroed(segment);
            let second = pool.alloc_zeroed(segment);
            pool.dealloc(first, segment);
            pool.dealloc(second, segment);
            assert_eq!(pool.held(), 1);
            pool.release();
            assert_eq!(pool.held(), 0);
        }
    }

    #[test]
    fn ordinary_allocations_pass_through() {
        assert_eq!(Kind::of(layout(8 << 20, 16)), None);
        assert_eq!(Kind::of(layout(4096, POOLED_ALIGN)), None);
        assert_eq!(
            Kind::of(layout(POOLED_MIN_BYTES, POOLED_ALIGN)),
            Some(Kind::WriteBuffer)
        );
        assert_eq!(
            Kind::of(layout(crate::store::SEGMENT_BYTES, 1)),
            Some(Kind::ZeroedSegment)
        );
    }
}
