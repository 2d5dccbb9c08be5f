//! Counts the heap allocations the Rust code of this extension makes on
//! each thread, so a test can hold a path to "no allocation per call"
//! (`read_into`): `tracemalloc` sees Python's allocator only, not a `Vec`.
//! The counting allocator is built only with the `count-allocations`
//! feature (`make develop`); without it `_rust_allocations()` is `None`.

use pyo3::prelude::*;

#[cfg(feature = "count-allocations")]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        // Const-initialised and without a destructor: reading it never
        // allocates, and works while a thread is being torn down.
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    fn count() {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    /// The system allocator, counting each allocation on its thread.
    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator;
    // the count is a thread-local integer that never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: the caller's contract is forwarded unchanged.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: the caller's contract is forwarded unchanged.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            // SAFETY: the caller's contract is forwarded unchanged.
            unsafe { System.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is forwarded unchanged.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations made on this thread so far.
    pub(super) fn on_this_thread() -> u64 {
        COUNT.try_with(Cell::get).unwrap_or(0)
    }
}

/// The Rust heap allocations made on the calling thread so far, or `None`
/// when the extension was built without `count-allocations`.
#[pyfunction]
pub fn _rust_allocations() -> Option<u64> {
    #[cfg(feature = "count-allocations")]
    {
        Some(counting::on_this_thread())
    }
    #[cfg(not(feature = "count-allocations"))]
    {
        None
    }
}
