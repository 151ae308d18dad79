//! After warm-up, `decide` does not touch the heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use opticlaw_intent::Classifier;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn deciding_allocates_nothing_after_warm_up() {
    let classifier = Classifier::shipped();
    let mut scratch = classifier.scratch();
    let huge = "word ".repeat(10_000);
    let messages = [
        "set an alarm for 7 am",
        "",
        "🙂🙂🙂",
        "книга 書 book مرحبا",
        huge.as_str(),
        "\u{0}\u{1}\u{7f}binary\u{fffd}",
    ];
    classifier.decide("warm up", &mut scratch);
    let before = ALLOCATIONS.with(Cell::get);
    for m in messages {
        std::hint::black_box(classifier.decide(m, &mut scratch));
    }
    let after = ALLOCATIONS.with(Cell::get);
    assert_eq!(
        after - before,
        0,
        "decide allocated {} times",
        after - before
    );
}
