//! The GRUB image (`cargo run -- image`): one hybrid ISO that boots through
//! Multiboot2 on a BIOS PC (SeaBIOS) and a UEFI PC (OVMF, where OVMF's own
//! xHCI driver ran the controller until `ExitBootServices`), with the USB
//! keyboard working at `shell>` and at `db>`.

use std::path::PathBuf;
use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::ocr::{check_tools, expect_display};
use panicbench::qemu::{Config, Firmware, scratch_dir};

/// OVMF under TCG takes several seconds before GRUB runs.
const BOOT: Duration = Duration::from_secs(180);
const STEP: Duration = Duration::from_secs(60);
/// The command line baked into the image's grub.cfg.
const APPEND: &str = "layout=us panic=console";

fn image(name: &str, append: &str) -> PathBuf {
    let out = scratch_dir().join(format!("{name}.iso"));
    if let Err(e) = panicbench::image::build(KERNEL_ELF.as_ref(), append, &out) {
        panic!("building the image: {e}");
    }
    out
}

/// Boots `iso` on `firmware`, types on the USB keyboard at `shell>`, panics
/// with `panic cli` and types `cpus` at `db>`, checked on serial and (with
/// `screen`: a UEFI machine has no VGA text, so this is the framebuffer
/// console on GRUB's framebuffer) on the display, by OCR.
fn boot_and_type(name: &str, firmware: Firmware, iso: PathBuf, screen: bool) {
    if screen {
        check_tools();
    }
    let stem = scratch_dir().join(name);
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = firmware;
    cfg.image = Some(iso);
    cfg.smp = 2;
    cfg.dump_disk = None;
    let mut vm = Vm::start(name, cfg);
    vm.expect(r"INFO  boot: Multiboot2", BOOT);
    // The command line came through GRUB, and nothing else with it.
    vm.expect(r#"kernel command line: "layout=us panic=console""#, STEP);
    if screen {
        vm.expect(
            r"framebuffer: \d+x\d+x32 at 0x[0-9a-f]+ from the boot loader",
            STEP,
        );
    }
    vm.expect(r"(?m)^shell> ", BOOT);
    assert!(
        !vm.console().contains("kernel command line: ignoring"),
        "GRUB's command line was not understood:\n{}",
        vm.console()
    );
    vm.wait_until_usb_types("shell>", STEP);
    vm.type_text("echo typed-on-usb\n");
    vm.expect(r"(?m)^typed-on-usb\r?$", STEP);
    if screen {
        expect_display(
            &mut vm,
            &stem,
            "the echo",
            |t| t.lines().any(|l| l.trim() == "typed-on-usb"),
            STEP,
        );
    }
    vm.type_text("panic cli\n");
    vm.expect(
        r"PANIC on cpu \d+ [^\n]*another CPU spins with interrupts disabled",
        STEP,
    );
    // Symbols come with the image too (embedded in the kernel).
    vm.expect(r"kernel::panic::trigger::run", STEP);
    vm.expect(r"(?m)^db> ", STEP);
    vm.wait_until_usb_types("db>", STEP);
    vm.type_text("cpus\n");
    vm.expect(r"cpu 1: apic \d+ stopped \(nmi\)", STEP);
    if screen {
        expect_display(
            &mut vm,
            &stem,
            "the panic report and db>",
            |t| t.contains("PANIC") && t.contains("db>") && t.contains("stopped (nmi)"),
            STEP,
        );
    }
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}

#[test]
fn the_image_boots_on_uefi_and_the_usb_keyboard_types() {
    boot_and_type(
        "image-ovmf",
        Firmware::Ovmf,
        image("image-ovmf", APPEND),
        true,
    );
}

#[test]
fn the_image_boots_on_bios_and_the_usb_keyboard_types() {
    boot_and_type(
        "image-seabios",
        Firmware::SeaBios,
        image("image-seabios", APPEND),
        false,
    );
}
