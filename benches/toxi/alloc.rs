//! A counting global allocator: how many allocations the proxy's threads make, and how many
//! heap bytes the whole process holds.
//!
//! Threads of the proxy runtime call [`mark_proxy_thread`] when they start, so the proxy's
//! allocations can be told apart from the load generator's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

pub struct Counting;

thread_local! {
    static PROXY_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Allocations (and reallocations) made on proxy-runtime threads.
static PROXY_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Allocations made on any other thread (load generator, main).
static OTHER_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Heap bytes currently allocated by the whole process.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

fn note_alloc(size: usize) {
    let proxy = PROXY_THREAD.try_with(Cell::get).unwrap_or(false);
    if proxy {
        PROXY_ALLOCS.fetch_add(1, Relaxed);
    } else {
        OTHER_ALLOCS.fetch_add(1, Relaxed);
    }
    LIVE_BYTES.fetch_add(size as i64, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        LIVE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

/// Marks the calling thread as a proxy thread (call from `on_thread_start`).
pub fn mark_proxy_thread() {
    PROXY_THREAD.with(|c| c.set(true));
}

/// A reading of the counters.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub proxy_allocs: u64,
    pub other_allocs: u64,
    pub live_bytes: i64,
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        proxy_allocs: PROXY_ALLOCS.load(Relaxed),
        other_allocs: OTHER_ALLOCS.load(Relaxed),
        live_bytes: LIVE_BYTES.load(Relaxed),
    }
}
