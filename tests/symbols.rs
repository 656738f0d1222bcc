//! Backtraces have names however the kernel is loaded (issue 17 item 7):
//! the symbol table is part of the kernel image (`ksyms`, the `.ksyms`
//! section), so the mission's own command line, which hands QEMU the kernel
//! and nothing else, names every frame.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::Config;

const BOOT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(30);

/// As near as the harness gets to `qemu-system-x86_64 -kernel kernel
/// -device qemu-xhci -device usb-kbd`: the default `pc` machine (a later
/// `-machine` wins), one CPU, QEMU's default 128 MiB, no dump disk, no
/// watchdog; only the serial console, QMP and the exit device are added.
fn mission_command_line(append: &str) -> Config {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 1;
    cfg.memory_mib = 128;
    cfg.dump_disk = None;
    cfg.watchdog = false;
    cfg.append = append.into();
    cfg.extra.extend(["-machine", "pc"].map(String::from));
    cfg
}

/// The bytes of the kernel ELF's `.ksyms` section and the file offset of
/// its section header's `sh_size` (from `readelf`-style parsing of the
/// section headers; ELF-64 little-endian).
fn ksyms_section(elf: &[u8]) -> (&[u8], usize) {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let names = u64_at(shoff + shstrndx * shentsize + 0x18);
    (0..shnum)
        .map(|i| shoff + i * shentsize)
        .find(|&h| elf[names + u32_at(h)..].starts_with(b".ksyms\0"))
        .map(|h| (&elf[u64_at(h + 0x18)..][..u64_at(h + 0x20)], h + 0x20))
        .expect("the kernel ELF has a .ksyms section")
}

/// The build filled the section with the kernel's own functions: every
/// function of `.symtab` looks up to its name, and filling it again
/// changes nothing.
#[test]
fn the_built_kernel_carries_its_own_function_table() {
    let elf = std::fs::read(KERNEL_ELF).expect("the kernel ELF");
    let (section, _) = ksyms_section(&elf);
    let table = ksyms::Table::parse(section).expect("a filled-in table");
    let functions = ksyms::elf::functions(&elf).expect("the kernel's .symtab");
    assert!(table.len() > 1000, "only {} symbols", table.len());
    let mut named = 0;
    for f in &functions {
        let (name, offset) = table
            .lookup(f.start + f.size - 1)
            .unwrap_or_else(|| panic!("{} at {:#x} has no entry", f.name, f.start));
        assert!(offset < f.size);
        named += usize::from(name == f.name);
    }
    // Aliases (several symbols at one address) keep one name.
    assert!(
        named * 100 >= functions.len() * 95,
        "{named} of {}",
        functions.len()
    );
    for want in [
        "kmain",
        "kernel::panic::trigger::run",
        "__rustc::rust_begin_unwind",
    ] {
        assert!(functions.iter().any(|f| f.name == want), "no {want}");
    }
    let mut again = elf.clone();
    ksyms::elf::embed(&mut again).expect("embedding again");
    assert!(again == elf, "embedding is not idempotent");
}

/// A table that outgrows the reservation fails the build and says which
/// constant to raise.
#[test]
fn a_table_too_large_for_its_section_is_refused() {
    let mut elf = std::fs::read(KERNEL_ELF).expect("the kernel ELF");
    let (_, sh_size) = ksyms_section(&elf);
    elf[sh_size..sh_size + 8].copy_from_slice(&4096u64.to_le_bytes());
    let err = ksyms::elf::embed(&mut elf).expect_err("a 4 KiB section is too small");
    assert!(
        err.to_string()
            .contains("raise KSYMS_SIZE in kernel/linker.ld"),
        "{err}"
    );
}

#[test]
fn a_plain_panic_names_its_frames_with_the_kernel_alone() {
    let cfg = mission_command_line("trigger=plain");
    let args = cfg.args();
    assert!(
        !args.iter().any(|a| a == "-initrd"),
        "the kernel must be all QEMU is given: {args:?}"
    );
    let mut vm = Vm::start("symbols-kernel-alone", cfg);
    vm.expect("symbols loaded", BOOT);
    vm.expect("PANIC on cpu 0", BOOT);
    vm.expect("backtrace:\n", STEP);
    // The frame lines, up to the first character of the line after them
    // (so that a backtrace still arriving is not cut short).
    let trace = vm.expect(r"(?:  #\d+ [^\n]*\n)+(?:  [^#]|[^ ])", STEP);
    let frames: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .collect();
    // `#N 0x... name+0xoff` or `#N 0x... ?`.
    let names: Vec<&str> = frames
        .iter()
        .map(|f| f.split_whitespace().nth(2).unwrap_or("?"))
        .collect();
    // Every frame from the panic handler to `kmain` is named; only the
    // assembly entry stub below `kmain` (no function symbol) may be `?`.
    let kmain = names
        .iter()
        .position(|n| n.starts_with("kmain+"))
        .unwrap_or_else(|| vm.fail(&format!("no kmain frame in the backtrace: {names:?}")));
    if let Some(unnamed) = names[..=kmain].iter().position(|n| *n == "?") {
        vm.fail(&format!("frame #{unnamed} has no name: {names:?}"));
    }
    for want in ["rust_begin_unwind+", "kernel::panic::trigger::run+"] {
        if !names.iter().any(|n| n.contains(want)) {
            vm.fail(&format!("no {want} frame in the backtrace: {names:?}"));
        }
    }
    vm.expect("db> ", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
