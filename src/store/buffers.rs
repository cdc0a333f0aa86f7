//! A process allocator that keeps a few freed I/O buffers of sled for reuse.
//!
//! sled 0.34 writes its log through buffers of one segment each (4 MiB, the store's segment size),
//! allocated with an alignment of 8,192 bytes and freed once written, several per commit. glibc
//! serves every one of them with a fresh `mmap`: its dynamic threshold rises to the size of the
//! last mapped block freed, but an aligned request asks for the size plus the alignment, just
//! above it. Every byte sled writes therefore lands first on a page the kernel has to fault in
//! and clear: about 340,000 faults in a 1,000,000-event import, a third of its system time and
//! most of its commit threads' samples (tools/bench/PROFILE.md, goal 1).
//!
//! [`BufferPool`] passes every allocation to the system allocator except blocks of at least
//! [`POOLED_MIN_BYTES`] with [`POOLED_ALIGN`]; of those it keeps up to [`SLOTS`] freed blocks
//! and hands one back to the next request of the same size and alignment. It never holds more
//! than `SLOTS` blocks, so what it keeps is bounded (16 MiB at sled's segment size).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// The alignment sled's I/O buffers ask for.
pub const POOLED_ALIGN: usize = 8192;
/// The smallest block pooled: only whole I/O buffers, nothing of the ledger's own.
pub const POOLED_MIN_BYTES: usize = 1 << 20;
/// The most freed blocks kept.
pub const SLOTS: usize = 4;

/// See the module documentation.
pub struct BufferPool {
    /// Freed blocks: (address, size). The lock is taken only for pooled layouts, a few hundred
    /// times in an import, and allocates nothing, so the allocator never re-enters itself.
    free: Mutex<[(usize, usize); SLOTS]>,
}

impl BufferPool {
    pub const fn new() -> BufferPool {
        BufferPool {
            free: Mutex::new([(0, 0); SLOTS]),
        }
    }

    fn pooled(layout: Layout) -> bool {
        layout.align() == POOLED_ALIGN && layout.size() >= POOLED_MIN_BYTES
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, [(usize, usize); SLOTS]> {
        // A panic while the lock is held cannot leave the slots inconsistent: each is one
        // assignment of a pair.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many freed blocks the pool holds.
    pub fn held(&self) -> usize {
        self.slots()
            .iter()
            .filter(|(address, _)| *address != 0)
            .count()
    }

    /// Gives every held block back to the system.
    pub fn release(&self) {
        for slot in self.slots().iter_mut() {
            let (address, size) = std::mem::take(slot);
            if address != 0 {
                let layout = Layout::from_size_align(size, POOLED_ALIGN).expect("a pooled layout");
                // SAFETY: the block came from `System` with this layout and nobody else holds it.
                unsafe { System.dealloc(address as *mut u8, layout) };
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
// reallocated with: a pooled block is reused only for a request of its exact size and of
// `POOLED_ALIGN`, and a block is freed to `System` with the layout it was allocated with.
unsafe impl GlobalAlloc for BufferPool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::pooled(layout) {
            let mut slots = self.slots();
            if let Some(slot) = slots
                .iter_mut()
                .find(|(address, size)| *address != 0 && *size == layout.size())
            {
                let (address, _) = std::mem::take(slot);
                assert_eq!(
                    address % POOLED_ALIGN,
                    0,
                    "a pooled block keeps its alignment"
                );
                return address as *mut u8;
            }
        }
        // SAFETY: the caller's layout has a non-zero size, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if Self::pooled(layout) {
            let mut slots = self.slots();
            if let Some(slot) = slots.iter_mut().find(|(address, _)| *address == 0) {
                *slot = (pointer as usize, layout.size());
                return;
            }
        }
        // SAFETY: `pointer` was allocated by `System` with `layout` (see the impl's comment).
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::pooled(layout) {
            // SAFETY: as for `alloc`; a reused block is cleared here, as the caller expects.
            let pointer = unsafe { self.alloc(layout) };
            if !pointer.is_null() {
                // SAFETY: the block is `layout.size()` bytes, owned by the caller from now on.
                unsafe { std::ptr::write_bytes(pointer, 0, layout.size()) };
            }
            return pointer;
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align(new_size, layout.align())
            .expect("the caller's new size fits its alignment");
        if Self::pooled(layout) || Self::pooled(new_layout) {
            // A pooled block only ever changes hands whole: allocate, copy, free.
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
        // SAFETY: neither layout is pooled, so `System` allocated `pointer` with `layout`.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_io_buffer_is_handed_back_and_the_pool_is_bounded() {
        let pool = BufferPool::new();
        let buffer = layout(4 << 20, POOLED_ALIGN);
        unsafe {
            let first = pool.alloc(buffer);
            assert_eq!(first as usize % POOLED_ALIGN, 0);
            first.write_bytes(7, buffer.size());
            pool.dealloc(first, buffer);
            assert_eq!(pool.held(), 1);
            // The same block comes back, and a zeroed request gets it cleared.
            let again = pool.alloc_zeroed(buffer);
            assert_eq!(again, first);
            assert_eq!(pool.held(), 0);
            assert!(
                std::slice::from_raw_parts(again, buffer.size())
                    .iter()
                    .all(|b| *b == 0)
            );
            // Another size never gets it.
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
                "the 2 MiB block stays; every 4 MiB one was taken"
            );
            for block in blocks {
                pool.dealloc(block, buffer);
            }
            assert_eq!(pool.held(), SLOTS);
            // Grown and shrunk across the pooled size, the bytes survive.
            let small = layout(64, POOLED_ALIGN);
            let grown = pool.alloc(small);
            grown.write_bytes(9, 64);
            let grown = pool.realloc(grown, small, buffer.size());
            assert!(
                std::slice::from_raw_parts(grown, 64)
                    .iter()
                    .all(|b| *b == 9)
            );
            let shrunk = pool.realloc(grown, buffer, 128);
            assert!(
                std::slice::from_raw_parts(shrunk, 64)
                    .iter()
                    .all(|b| *b == 9)
            );
            pool.dealloc(shrunk, layout(128, POOLED_ALIGN));
            pool.release();
            assert_eq!(pool.held(), 0);
        }
    }

    #[test]
    fn small_or_ordinary_allocations_pass_through() {
        assert!(!BufferPool::pooled(layout(4 << 20, 16)));
        assert!(!BufferPool::pooled(layout(4096, POOLED_ALIGN)));
        assert!(BufferPool::pooled(layout(POOLED_MIN_BYTES, POOLED_ALIGN)));
    }
}
