//! The broker's global allocator: the system allocator, except that very
//! large allocations (at least [`LAZY_ALLOCATION_BYTES`]) are reserved as
//! lazily committed virtual memory (`mmap` with `MAP_NORESERVE`).
//!
//! Why: Kafka message decoders reserve a vector's capacity from the element
//! count written in the request, before reading any element. A request of
//! a few bytes claiming 2^31 elements asks for ~150 GB; the system
//! allocator refuses, and a refused allocation aborts the whole process.
//! Served lazily, the reservation succeeds without committing memory: only
//! pages actually written use RAM, and the frame (whose size is checked
//! against `socket.request.max.bytes`) runs out long before that matters.
//! Decoding then fails, the reservation is returned, and only the offending
//! connection is closed.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes are reserved lazily.
pub const LAZY_ALLOCATION_BYTES: usize = 1 << 30;
/// Largest alignment a page-aligned mapping satisfies.
const PAGE_BYTES: usize = 4096;

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrokerAllocator;

fn is_lazy(size: usize, align: usize) -> bool {
    size >= LAZY_ALLOCATION_BYTES && align <= PAGE_BYTES
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint touches no
    // existing memory; the result is checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every path returns memory of at least `layout.size()` bytes with
// `layout.align()` alignment (mappings are page-aligned and only used for
// alignments up to a page), and memory is always released by the same
// path that produced it, decided by the same size test.
unsafe impl GlobalAlloc for BrokerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(layout.size(), layout.align()) {
            map(layout.size())
        } else {
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(layout.size(), layout.align()) {
            // Anonymous mappings are zero-filled.
            map(layout.size())
        } else {
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(layout.size(), layout.align()) {
            // SAFETY: `ptr` came from `map` with this size.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
        } else {
            // SAFETY: `ptr` came from the system allocator with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_lazy = is_lazy(layout.size(), layout.align());
        let new_lazy = is_lazy(new_size, layout.align());
        match (old_lazy, new_lazy) {
            // SAFETY: both sides are the system allocator's.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: a fresh allocation, filled from the old one up to
                // the smaller size, then the old one is released by its own
                // path.
                unsafe {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_succeed_and_small_ones_are_normal() {
        let a = BrokerAllocator;
        // 150 GB, as a hostile array count asks for.
        let layout = Layout::from_size_align(150 << 30, 8).unwrap();
        // SAFETY: allocated, written at both ends, released with its layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7;
            *p.add((150 << 30) - 1) = 9;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
        let small = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: as above.
        unsafe {
            let p = a.alloc_zeroed(small);
            assert_eq!(*p, 0);
            let p = a.realloc(p, small, LAZY_ALLOCATION_BYTES);
            assert!(!p.is_null());
            let grown = Layout::from_size_align(LAZY_ALLOCATION_BYTES, 8).unwrap();
            let p = a.realloc(p, grown, 128);
            a.dealloc(p, Layout::from_size_align(128, 8).unwrap());
        }
    }
}
