//! Kernel symbols for backtraces, from the table embedded in the kernel
//! image itself: the linker script reserves the `.ksyms` section and the
//! workspace's `build.rs` fills it in after linking (the `ksyms` crate
//! defines the format). It is loaded with the rest of the image, so frames
//! have names however the kernel was booted. Lookup is a bounds-checked
//! binary search in place: no allocation, no lock, usable from the panic
//! path; a damaged table gives no name, never a fault.

unsafe extern "C" {
    /// First byte of `.ksyms` (`kernel/linker.ld`).
    static __ksyms_start: u8;
    /// One past its last byte.
    static __ksyms_end: u8;
}

/// The `.ksyms` section's bytes.
fn section() -> &'static [u8] {
    let start = &raw const __ksyms_start;
    let len = (&raw const __ksyms_end as usize).saturating_sub(start as usize);
    // SAFETY: the linker script defines both symbols around the `.ksyms`
    // section, which lies in the kernel image's read-only segment: loaded,
    // identity mapped, reserved from the frame allocator and never written.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// True if the image carries a filled-in, non-empty symbol table (a kernel
/// linked without the workspace's `build.rs` has only the reservation).
pub fn available() -> bool {
    ksyms::Table::parse(section()).is_ok_and(|t| !t.is_empty())
}

/// The function containing `addr`: its name (demangled, without the hash)
/// and `addr`'s offset into it.
pub fn lookup(addr: u64) -> Option<(&'static str, u64)> {
    ksyms::Table::parse(section()).ok()?.lookup(addr)
}
