//! The page attribute table (Intel SDM Vol. 3A §11.12): entry 1 becomes
//! write-combining, so that a page mapped with PWT alone is WC (the
//! framebuffer console's pixels; Linux uses the same layout). The other
//! entries keep their power-on types; entry 1 was write-through, which no
//! mapping of this kernel uses.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::model_specific::Msr;

/// `IA32_PAT` (SDM Vol. 4, Table 2-2).
const IA32_PAT: u32 = 0x277;

/// Memory types (SDM Table 11-10).
const UC: u64 = 0x00;
const WC: u64 = 0x01;
const WT: u64 = 0x04;
const WB: u64 = 0x06;
const UC_MINUS: u64 = 0x07;

/// PA0..PA7: WB, WC, UC-, UC, WB, WT, UC-, UC.
const LAYOUT: [u64; 8] = [WB, WC, UC_MINUS, UC, WB, WT, UC_MINUS, UC];

static PROGRAMMED: AtomicBool = AtomicBool::new(false);

/// Programs this CPU's PAT (every CPU, first thing at its start, before it
/// maps anything with PWT alone). Without PAT support nothing changes.
pub fn init() {
    let has_pat = raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_pat());
    if !has_pat {
        return;
    }
    let value = LAYOUT
        .iter()
        .enumerate()
        .fold(0u64, |v, (i, t)| v | t << (8 * i));
    // SAFETY: IA32_PAT exists (CPUID.1:EDX.PAT); before any mapping selects
    // entry 1, no cached line or TLB entry of that type exists to go stale.
    unsafe { Msr::new(IA32_PAT).write(value) };
    PROGRAMMED.store(true, Ordering::Relaxed);
}

/// True if a page with PWT set and PCD clear is write-combining (the PAT
/// was programmed on this CPU; every CPU programs the same at its start).
pub fn write_combining() -> bool {
    PROGRAMMED.load(Ordering::Relaxed)
}
