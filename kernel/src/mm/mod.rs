//! Memory: the physical memory map, a frame allocator, the kernel page tables
//! (identity map) and the heap.

pub mod frame;
pub mod guard;
pub mod heap;
pub mod paging;
pub mod panic_stack;

pub use frame::{FRAMES, PAGE_SIZE};
