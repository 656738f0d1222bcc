//! Controllers that can only address 32 bits (issue 18 item 3): with 6 GiB
//! of RAM and `usb.dmahigh=1` (a test knob: the USB HAL takes DMA memory
//! as high as the driver's limit allows), `usb.dma32=1` (treat the
//! controller as one with Linux's `XHCI_NO_64BIT_SUPPORT` quirk) keeps
//! every DMA address of the driver below 4 GiB and typing works; without
//! it, under the same knob, the addresses lie above 4 GiB (qemu-xhci sets
//! AC64), so the limit is what keeps them low. `lsusb` shows the lowest and
//! highest DMA address.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(60);
const FOUR_GIB: u64 = 1 << 32;

fn boot(name: &str, append: &str) -> Vm {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.smp = 2;
    cfg.memory_mib = 6 * 1024;
    cfg.append = append.into();
    cfg.dump_disk = None;
    let mut vm = Vm::start(name, cfg);
    vm.expect(r"usb: xHCI [0-9a-f]{4}:[0-9a-f]{4} at 0x[0-9a-f]+", BOOT);
    vm.expect("shell> ", BOOT);
    vm
}

/// Waits for a configured keyboard in `lsusb`; returns the lowest and
/// highest DMA address and the limit it names (`64-bit`, `32-bit: ...`).
fn dma_span(vm: &mut Vm) -> (u64, u64, String) {
    let span = regex::Regex::new(r", DMA 0x([0-9a-f]+)-0x([0-9a-f]+) \(([^)]+)\)").expect("regex");
    for _ in 0..100 {
        vm.send_serial("lsusb\r");
        let out = vm.expect(r"(?s)xHCI .*?shell> ", STEP);
        if out.contains(", keyboard (") {
            let Some(c) = span.captures(&out) else {
                vm.fail(&format!("no DMA span in lsusb:\n{out}"));
            };
            let hex = |i: usize| u64::from_str_radix(&c[i], 16).expect("hex");
            return (hex(1), hex(2), c[3].to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.fail("HANG: waiting for a configured keyboard in lsusb")
}

fn typing_works(vm: &mut Vm) {
    vm.type_text("echo typed over usb\n");
    vm.expect("\ntyped over usb\n", STEP);
    vm.expect("shell> ", STEP);
}

#[test]
fn dma32_keeps_dma_below_4_gib_with_6_gib_of_ram() {
    let mut vm = boot("dma32-forced", "usb.dma32=1 usb.dmahigh=1");
    let (low, high, limit) = dma_span(&mut vm);
    println!("usb.dma32=1: DMA {low:#x}-{high:#x} ({limit})");
    if high >= FOUR_GIB || limit != "32-bit: forced" {
        vm.fail(&format!(
            "DMA {low:#x}-{high:#x} ({limit}): not below 4 GiB with usb.dma32=1"
        ));
    }
    typing_works(&mut vm);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn without_dma32_dma_goes_above_4_gib() {
    let mut vm = boot("dma32-off", "usb.dmahigh=1");
    let (low, high, limit) = dma_span(&mut vm);
    println!("no usb.dma32: DMA {low:#x}-{high:#x} ({limit})");
    if low < FOUR_GIB || limit != "64-bit" {
        vm.fail(&format!(
            "DMA {low:#x}-{high:#x} ({limit}): usb.dmahigh=1 did not put it above 4 GiB"
        ));
    }
    typing_works(&mut vm);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
