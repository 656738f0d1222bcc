//! Register offsets and bit names (xHCI 1.2 §5.3-§5.6, §7).
#![allow(dead_code, reason = "complete vocabulary of the registers we touch")]

/// CAPLENGTH/HCIVERSION (§5.3.1, §5.3.2).
pub(crate) const CAP_CAPLENGTH: usize = 0x00;
/// HCSPARAMS1: MaxSlots 7:0, MaxIntrs 18:8, MaxPorts 31:24 (§5.3.3).
pub(crate) const CAP_HCSPARAMS1: usize = 0x04;
/// HCSPARAMS2: scratchpad counts (§5.3.4).
pub(crate) const CAP_HCSPARAMS2: usize = 0x08;
/// HCCPARAMS1: AC64, CSZ, xECP (§5.3.6).
pub(crate) const CAP_HCCPARAMS1: usize = 0x10;
/// Doorbell offset (§5.3.7).
pub(crate) const CAP_DBOFF: usize = 0x14;
/// Runtime register space offset (§5.3.8).
pub(crate) const CAP_RTSOFF: usize = 0x18;

/// HCCPARAMS1.CSZ: 64-byte contexts.
pub(crate) const HCCPARAMS1_CSZ: u32 = 1 << 2;

/// USBCMD (§5.4.1).
pub(crate) const OP_USBCMD: usize = 0x00;
/// USBSTS (§5.4.2).
pub(crate) const OP_USBSTS: usize = 0x04;
/// PAGESIZE (§5.4.3).
pub(crate) const OP_PAGESIZE: usize = 0x08;
/// CRCR (§5.4.5).
pub(crate) const OP_CRCR: usize = 0x18;
/// DCBAAP (§5.4.6).
pub(crate) const OP_DCBAAP: usize = 0x30;
/// CONFIG (§5.4.7).
pub(crate) const OP_CONFIG: usize = 0x38;

/// USBCMD Run/Stop.
pub(crate) const USBCMD_RUN: u32 = 1 << 0;
/// USBCMD Host Controller Reset.
pub(crate) const USBCMD_HCRST: u32 = 1 << 1;
/// USBCMD Interrupter Enable.
pub(crate) const USBCMD_INTE: u32 = 1 << 2;
/// USBCMD Host System Error Enable.
pub(crate) const USBCMD_HSEE: u32 = 1 << 3;

/// USBSTS HCHalted.
pub(crate) const USBSTS_HCH: u32 = 1 << 0;
/// USBSTS Host System Error (RW1C).
pub(crate) const USBSTS_HSE: u32 = 1 << 2;
/// USBSTS Event Interrupt (RW1C).
pub(crate) const USBSTS_EINT: u32 = 1 << 3;
/// USBSTS Port Change Detect (RW1C).
pub(crate) const USBSTS_PCD: u32 = 1 << 4;
/// USBSTS Controller Not Ready.
pub(crate) const USBSTS_CNR: u32 = 1 << 11;
/// USBSTS Host Controller Error.
pub(crate) const USBSTS_HCE: u32 = 1 << 12;

/// CRCR Ring Cycle State.
pub(crate) const CRCR_RCS: u32 = 1 << 0;
/// CRCR Command Stop.
pub(crate) const CRCR_CS: u32 = 1 << 1;
/// CRCR Command Abort.
pub(crate) const CRCR_CA: u32 = 1 << 2;
/// CRCR Command Ring Running.
pub(crate) const CRCR_CRR: u32 = 1 << 3;

/// Interrupter register offsets inside one interrupter set (§5.5.2).
pub(crate) const INTR_IMAN: usize = 0x00;
/// IMOD.
pub(crate) const INTR_IMOD: usize = 0x04;
/// ERSTSZ.
pub(crate) const INTR_ERSTSZ: usize = 0x08;
/// ERSTBA.
pub(crate) const INTR_ERSTBA: usize = 0x10;
/// ERDP.
pub(crate) const INTR_ERDP: usize = 0x18;

/// IMAN Interrupt Pending (RW1C).
pub(crate) const IMAN_IP: u32 = 1 << 0;
/// IMAN Interrupt Enable.
pub(crate) const IMAN_IE: u32 = 1 << 1;
/// ERDP Event Handler Busy (RW1C).
pub(crate) const ERDP_EHB: u64 = 1 << 3;

/// PORTSC bits (§5.4.8).
pub(crate) const PORTSC_CCS: u32 = 1 << 0;
/// Port Enabled/Disabled (RW1CS).
pub(crate) const PORTSC_PED: u32 = 1 << 1;
/// Port Reset (RW1S).
pub(crate) const PORTSC_PR: u32 = 1 << 4;
/// Port Power.
pub(crate) const PORTSC_PP: u32 = 1 << 9;
/// Port Indicator Control.
pub(crate) const PORTSC_PIC: u32 = 3 << 14;
/// Connect Status Change.
pub(crate) const PORTSC_CSC: u32 = 1 << 17;
/// Port Enabled/Disabled Change.
pub(crate) const PORTSC_PEC: u32 = 1 << 18;
/// Warm Port Reset Change.
pub(crate) const PORTSC_WRC: u32 = 1 << 19;
/// Over-current Change.
pub(crate) const PORTSC_OCC: u32 = 1 << 20;
/// Port Reset Change.
pub(crate) const PORTSC_PRC: u32 = 1 << 21;
/// Port Link State Change.
pub(crate) const PORTSC_PLC: u32 = 1 << 22;
/// Port Config Error Change.
pub(crate) const PORTSC_CEC: u32 = 1 << 23;
/// Wake on connect/disconnect/over-current enables.
pub(crate) const PORTSC_WAKE: u32 = 7 << 25;
/// Warm Port Reset (RW1S, USB3 only).
pub(crate) const PORTSC_WPR: u32 = 1 << 31;
/// All RW1C change bits.
pub(crate) const PORTSC_CHANGE_BITS: u32 =
    PORTSC_CSC | PORTSC_PEC | PORTSC_WRC | PORTSC_OCC | PORTSC_PRC | PORTSC_PLC | PORTSC_CEC;
/// RW bits preserved by [`super::Registers::write_portsc`].
pub(crate) const PORTSC_PRESERVE: u32 = PORTSC_PP | PORTSC_PIC | PORTSC_WAKE;
/// Bits the caller may set in a PORTSC write.
pub(crate) const PORTSC_WRITABLE: u32 = PORTSC_CHANGE_BITS | PORTSC_PR | PORTSC_PP | PORTSC_WPR;

/// Port speed field of PORTSC (bits 13:10).
pub(crate) fn portsc_speed(portsc: u32) -> u8 {
    ((portsc >> 10) & 0xf) as u8
}

/// Extended capability IDs (§7).
pub(crate) const XCAP_LEGACY: u8 = 1;
/// Supported Protocol capability (§7.2).
pub(crate) const XCAP_PROTOCOL: u8 = 2;
/// USBLEGSUP BIOS Owned Semaphore (§7.1.1).
pub(crate) const LEGSUP_BIOS_OWNED: u32 = 1 << 16;
/// USBLEGSUP OS Owned Semaphore.
pub(crate) const LEGSUP_OS_OWNED: u32 = 1 << 24;
/// USBLEGCTLSTS SMI enable bits (0, 4, 13, 14, 15) (§7.1.2).
pub(crate) const LEGCTLSTS_SMI_ENABLES: u32 =
    (1 << 0) | (1 << 4) | (1 << 13) | (1 << 14) | (1 << 15);
/// USBLEGCTLSTS RW1C SMI status bits (29-31).
pub(crate) const LEGCTLSTS_SMI_STATUS: u32 = 7 << 29;
