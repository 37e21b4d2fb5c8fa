//! A global allocator that counts live heap bytes, their peak, and the largest single
//! allocation, for tests that show memory stays bounded on hostile input.
//!
//! ```no_run
//! use backup_testkit::alloc::CountingAllocator;
//!
//! #[global_allocator]
//! static ALLOCATOR: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     let before = CountingAllocator::reset_peak();
//!     let data = vec![0u8; 1 << 20];
//!     assert!(CountingAllocator::peak() - before >= data.len());
//! }
//! ```
//!
//! `backup-core`'s own tests cannot depend on this crate (it depends on `backup-core`),
//! so they include this file by path: keep it free of other crate items.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Forwards every call to the system allocator and counts around it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

impl CountingAllocator {
    /// Heap bytes live now.
    pub fn live() -> usize {
        LIVE.load(Ordering::Relaxed)
    }

    /// The most heap bytes live at once since the last [`reset_peak`](Self::reset_peak).
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    /// The largest single allocation since the last [`reset_peak`](Self::reset_peak).
    pub fn largest() -> usize {
        LARGEST.load(Ordering::Relaxed)
    }

    /// Starts a new measurement: the peak becomes what is live now, the largest
    /// allocation 0. Returns what is live now.
    pub fn reset_peak() -> usize {
        let live = Self::live();
        PEAK.store(live, Ordering::Relaxed);
        LARGEST.store(0, Ordering::Relaxed);
        live
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}
