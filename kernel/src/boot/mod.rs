//! The bootstrap processor's path from the entry (PVH or Multiboot2) to the
//! shell.

pub mod entry;

use core::sync::atomic::Ordering;

use crate::arch::cpu::{self, CpuState};
use crate::arch::{apic, gdt, idt, smp};
use crate::bootinfo::{BootInfo, Protocol};
use crate::mm::frame::{PAGE_SIZE, Region};
use crate::{cmdline, console, mm, println, sched, time};

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __data_start: u8;
    /// The page below the boot stack (`entry.rs`).
    static boot_stack_guard: u8;
}

/// What the boot loader handed over (read once, at entry).
static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// TSC deadline for the bootstrap processor to reach the shell (0: none).
pub static BOOT_DEADLINE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Called on every timer tick of an application processor: a boot that
/// stalls (the bootstrap CPU stuck with interrupts off) becomes a panic
/// whose report shows where CPU 0 is (stopped by NMI), instead of a silent hang.
pub fn check_boot_progress() {
    let d = BOOT_DEADLINE.load(Ordering::Relaxed);
    if d != 0 && crate::time::passed(d) && BOOT_DEADLINE.swap(0, Ordering::Relaxed) != 0 {
        panic!("boot watchdog: the bootstrap CPU did not reach the shell within 30 s");
    }
}

/// Rust entry of the bootstrap processor, called by the entry stub with
/// `ebx` (`info`) and `eax` (`magic`) from the boot loader.
#[unsafe(no_mangle)]
extern "C" fn kmain(info: u32, magic: u32) -> ! {
    let mut steps = Steps::new(time::rdtsc());
    cpu::install(0, 0);
    crate::vga::clear();
    console::init();
    console::init_log();
    if !crate::serial::present() {
        log::warn!("serial: no UART at COM1; the console is on the screen only");
    }
    steps.mark("console");
    gdt::init(cpu::this());
    idt::init();
    install_hooks();
    steps.mark("tables");
    crate::arch::tsc::calibrate();
    steps.mark("calibration");
    println!();
    println!("panic-proof kernel booting");

    // SAFETY: the registers from entry, read once, before any allocation.
    let bi = match unsafe { entry::boot_info(info, magic) } {
        Ok(bi) => BOOT_INFO.call_once(|| bi),
        Err(e) => {
            println!("fatal: {e}");
            crate::power::poweroff(false);
        }
    };
    log::info!(
        "boot: {} ({} memory map entries{})",
        match bi.protocol {
            Protocol::Pvh => "PVH",
            Protocol::Multiboot2 => "Multiboot2",
        },
        bi.region_count,
        if bi.skipped > 0 {
            ", some malformed entries skipped"
        } else {
            ""
        }
    );
    let opts = options(bi);
    steps.mark("boot info");
    memory(bi);
    steps.mark("memory");
    let cpus = interrupt_controllers(bi);
    steps.mark("acpi+apic");
    crate::pci::set_scan_all(opts.pci_scan_all);
    crate::pci::init();
    steps.mark("pci");
    framebuffer(bi, &opts);
    devices(&opts);
    steps.mark("devices");
    start_cpus(&opts, &cpus);
    steps.mark("cpus");
    steps.print();
    if opts.bench_ipi {
        crate::bench::print_halted_ipi();
    }
    if let Some(kind) = opts.trigger {
        println!("trigger: panic {kind}");
        if let Err(e) = crate::panic::trigger::run(kind) {
            log::warn!("trigger={kind}: {e}");
        }
    }
    if let Some(name) = opts.test {
        crate::scenarios::run(name);
    }
    crate::shell::run()
}

/// Microseconds shown as milliseconds with one decimal (`12.3`), in
/// integer arithmetic: the float formatting this replaced was the only one
/// of a boot, and under TCG translating it cost about 1 ms of the path to
/// `shell>` (the line took 4.0-4.9 ms, now 2.8-3.8).
struct Ms(u64);

impl core::fmt::Display for Ms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let tenths = (self.0 + 50) / 100;
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

/// The boot's time line, one TSC stamp per step, printed as one log line
/// (`boot: ... ms`): where the time to `shell>` goes. Under QEMU the TSC
/// counts from the start of the VM, so the first figure is the firmware
/// and the loader.
struct Steps {
    entry: u64,
    last: u64,
    marks: [(&'static str, u64); 12],
    count: usize,
}

impl Steps {
    fn new(entry: u64) -> Self {
        Self {
            entry,
            last: entry,
            marks: [("", 0); 12],
            count: 0,
        }
    }

    /// Records the time since the previous mark as step `name`.
    fn mark(&mut self, name: &'static str) {
        let now = time::rdtsc();
        if self.count < self.marks.len() {
            self.marks[self.count] = (name, now - self.last);
            self.count += 1;
        }
        self.last = now;
    }

    fn print(&self) {
        let ms = |c: u64| Ms(time::cycles_to_us(c));
        let mut line = alloc::format!("boot: firmware+loader {} ms", ms(self.entry));
        for (name, c) in &self.marks[..self.count] {
            line += &alloc::format!(", {name} {}", ms(*c));
        }
        log::info!(
            "{line}; kernel {} ms, {} ms since the VM started",
            ms(self.last - self.entry),
            ms(self.last)
        );
    }
}

/// Wires the layers together: whatever a lower layer calls up to, it calls
/// through a table or hook filled here (`arch`'s trap table and AP hooks,
/// the scheduler's tick hooks, the panic path's console). Runs first, before
/// anything can fault or tick.
fn install_hooks() {
    crate::panic::install_trap_handlers();
    sched::install_trap_handlers();
    crate::bench::install_trap_handler();
    crate::debugger::install_trap_handlers();
    crate::gdb::install(&GDB_DEBUGGER);
    crate::panic::set_console(crate::debugger::run);
    let ticks = [
        // USB key repeat and hot-plug run on the bootstrap CPU's ticks.
        |cpu: usize, ticks: u64| {
            if cpu == 0 {
                crate::usb::tick(ticks);
            }
        },
        // gdb's Ctrl-C while the kernel runs, peeked at on COM2.
        |cpu: usize, _| {
            if cpu == 0 {
                crate::gdb::tick();
            }
        },
        // The boot watchdog runs on the others' (CPU 0 may be the one stuck).
        |cpu: usize, _| {
            if cpu != 0 {
                check_boot_progress();
            }
        },
    ];
    for hook in ticks {
        sched::tick::register(hook).expect("tick hook table has room at boot");
    }
}

/// The debugger as the gdb stub calls it (the debugger's loop polls the
/// stub, so the stub reaches the debugger through this table).
static GDB_DEBUGGER: crate::gdb::Debugger = crate::gdb::Debugger {
    enter: |frame, cause| {
        use crate::debugger::Why;
        let why = match cause {
            crate::gdb::Cause::Breakpoint => Why::Breakpoint,
            crate::gdb::Cause::SingleStep => Why::SingleStep,
            crate::gdb::Cause::Interrupt => Why::GdbInterrupt,
        };
        crate::debugger::enter(frame, why)
    },
    break_in: |_| crate::arch::trap::request_break(crate::arch::trap::BREAK_GDB),
    resume: crate::debugger::resume_or_reason,
    resume_alone: crate::debugger::resume_alone,
    active: crate::debugger::active,
    join: crate::debugger::answer_stop_in_trap,
    frame: |cpu| Some(crate::debugger::frame_of(cpu)).filter(|f| !f.is_null()),
    step_held: crate::debugger::step_held,
};

/// What an application processor runs around its bring-up.
static AP_HOOKS: smp::ApHooks = smp::ApHooks {
    stopping: crate::panic::panicking,
    park: crate::panic::stop::park_on_arrival,
    init: |index| sched::init_cpu(&alloc::format!("ap/{index}")),
    run: sched::exit,
};

/// The kernel command line, applied: logging, fault injection, keyboard
/// layout and polling period, panic policy.
fn options(bi: &'static BootInfo) -> cmdline::Options<'static> {
    log::info!("kernel command line: {:?}", bi.cmdline());
    let opts = cmdline::Options::parse(bi.cmdline());
    for w in opts.unknown.iter().flatten() {
        log::warn!("kernel command line: ignoring `{w}`");
    }
    console::set_quiet(opts.quiet);
    if opts.power_fault == Some("stuck") {
        crate::power::FAULT_STUCK.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    if opts.dump_fault == Some("stall") {
        crate::dump::FAULT_STALL.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    if let Some(l) = opts.layout
        && !crate::usb::set_layout(l)
    {
        log::warn!("layout={l}: unknown keyboard layout, using us");
    }
    if let Some(ms) = opts.kbpoll_ms {
        crate::usb::set_kbpoll(ms);
    }
    crate::usb::hal::set_dma_options(opts.usb_dma32, opts.usb_dma_high);
    if let Some(p) = opts.panic {
        crate::panic::set_policy(match p {
            "reboot" => crate::panic::Policy::Reboot,
            "halt" => crate::panic::Policy::Halt,
            "dump" => crate::panic::Policy::Dump,
            _ => crate::panic::Policy::Console,
        });
    }
    opts
}

/// Memory: the loader's map, minus the kernel image and the boot
/// information; the heap, the page tables, what the dump must snapshot, the
/// panic's reserves.
fn memory(bi: &BootInfo) {
    let mut regions = [Region::default(); 64];
    let n = bi.regions().len().min(regions.len());
    for (r, m) in regions.iter_mut().zip(bi.regions()) {
        *r = Region {
            start: m.start,
            len: m.len,
            kind: m.kind,
        };
    }
    let kstart = &raw const __kernel_start as u64;
    let kend = &raw const __kernel_end as u64;
    let page = |(start, len): (u64, u64)| (start & !(PAGE_SIZE - 1), start + len);
    let reserved = [(kstart, kend), page(bi.info_range)];
    {
        let mut f = mm::FRAMES.lock();
        f.init(&regions[..n], &reserved);
        let ram_top = f.ram_top();
        let heap_size = ((f.total as u64 * PAGE_SIZE) / 8).clamp(8 << 20, 64 << 20);
        let heap = f.alloc_contiguous((heap_size / PAGE_SIZE) as usize, 2 << 20);
        drop(f);
        let Some(heap) = heap else {
            println!("fatal: no memory for the heap");
            crate::power::poweroff(false);
        };
        mm::heap::init(heap, heap_size);
        mm::paging::init(ram_top);
    }
    // Statics change while a dump runs; code and constants do not. Nor do
    // the two largest statics once the other CPUs are parked (halted with
    // interrupts off): the IST stacks (the dumping CPU's own are added at
    // dump time) and the frame bitmap (nothing allocates after a panic).
    let data_start = &raw const __data_start as u64;
    crate::dump::volatile::note_except(
        data_start,
        kend,
        &mut [crate::arch::gdt::ist_stacks(), mm::frame::bitmap_range()],
    );
    crate::usb::hal::reserve_panic_pool();
    mm::panic_stack::reserve();
    // The boot stack (256 KiB, `entry.rs`) lies right above the boot page
    // tables: in a debug build the controller bring-up alone takes tens of
    // KiB of it, and an overflow used to rewrite the page tables.
    if !mm::guard::unmap(&raw const boot_stack_guard as u64) {
        log::warn!("boot stack: could not unmap its guard page");
    }
    log::info!(
        "memory: {} MiB usable, kernel {:#x}-{:#x}, symbols {}",
        (mm::FRAMES.lock().total * 4096) >> 20,
        kstart,
        kend,
        if crate::panic::symbols::available() {
            "loaded"
        } else {
            "absent"
        }
    );
}

/// The CPUs from the MADT, and the interrupt controllers.
struct Cpus {
    ids: [u32; cpu::MAX_CPUS],
    count: usize,
    /// ISA IRQ -> (GSI, active low) after the MADT's overrides.
    isa_gsi: [(u8, bool); 16],
}

/// CPUs and interrupt controllers (ACPI's MADT), then the scheduler on this
/// CPU.
fn interrupt_controllers(bi: &BootInfo) -> Cpus {
    let bsp_apic = apic::current_apic_id();
    cpu::cpu(0).apic_id.store(bsp_apic, Ordering::Relaxed);
    let topo = crate::acpi::init(bi.rsdp, bsp_apic);
    let mut ids = [bsp_apic; cpu::MAX_CPUS];
    let mut count = 1;
    let mut isa_gsi = core::array::from_fn::<_, 16, _>(|i| (i as u8, false));
    if let Some(t) = &topo {
        apic::set_xapic_base(mm::paging::map_mmio(t.lapic_base, 4096));
        if t.ioapic_base != 0 {
            apic::set_ioapic_base(mm::paging::map_mmio(t.ioapic_base, 4096));
        }
        ids = t.apic_ids;
        count = t.count;
        isa_gsi = t.isa_gsi;
        apic::set_all_apics_listed(t.skipped == 0);
        if t.skipped > 0 {
            log::warn!(
                "{} CPUs beyond the {} supported are skipped",
                t.skipped,
                cpu::MAX_CPUS
            );
        }
    } else {
        log::warn!("no ACPI MADT: running on the bootstrap CPU only");
    }
    cpu::set_cpus(&ids[..count]);
    apic::disable_8259();
    apic::init_cpu();
    sched::init_cpu("main");
    cpu::this().set_state(CpuState::Online);
    sched::start();

    Cpus {
        ids,
        count,
        isa_gsi,
    }
}

/// The framebuffer console: the one the boot loader set up (Multiboot2's
/// framebuffer tag: every UEFI PC, where there is no VGA text), else the
/// Bochs display's on `fb=bochs`. Before the other CPUs start (`fb::init`
/// flushes only this CPU's TLB).
fn framebuffer(bi: &BootInfo, opts: &cmdline::Options<'_>) {
    let r = match (bi.framebuffer, opts.fb) {
        (Some(f), _) => {
            log::info!(
                "framebuffer: {}x{}x{} at {:#x} from the boot loader",
                f.width,
                f.height,
                f.bpp,
                f.phys
            );
            crate::fb::init(f)
        }
        (None, Some("bochs")) => crate::fb::bochs::init(),
        (None, _) => Ok(()),
    };
    if let Err(e) = r {
        log::warn!("{e}");
    }
}

/// The devices, while this is the only running CPU.
fn devices(opts: &cmdline::Options<'_>) {
    // The dump disk and the watchdog first, so that even an early panic
    // (before USB and the other CPUs) can be dumped.
    crate::dump::init();
    crate::watchdog::init();
    crate::usb::prepare();

    if opts.trigger == Some("early") {
        crate::panic::trigger::run("early").ok();
    }

    // Every PCI change that moves memory mappings (BAR sizing and
    // assignment, command register, virtio's notification eventfds) happens
    // here and in `dump::init` above, while this is the only running CPU.
    // QEMU 7.2's TCG races a memory-map update against MMIO on another vCPU
    // (seen as a SIGSEGV in `memory_region_dispatch_write` or a stall, about
    // 1 boot in 600, when the dump disk was probed while the `usb` thread and
    // the LAPIC timers ran). The controllers' own start (`usb::init`: their
    // registers and DMA memory only) overlaps the first AP's (`start_cpus`).
    crate::usb::route_interrupts();
}

/// The other CPUs (and meanwhile the USB controllers), the serial
/// interrupt, the USB thread; interrupts on.
fn start_cpus(opts: &cmdline::Options<'_>, cpus: &Cpus) {
    let Cpus {
        ids,
        count,
        isa_gsi,
    } = cpus;
    let count = *count;
    BOOT_DEADLINE.store(time::deadline_after_us(30_000_000), Ordering::Relaxed);
    if opts.trigger == Some("ap-start") {
        smp::PANIC_WHILE_STARTING.store(true, Ordering::Relaxed);
    }
    let t = time::rdtsc();
    let started = smp::start_aps(&ids[..count], &AP_HOOKS, crate::usb::init);
    log::info!(
        "cpus: {} of {} online ({}) in {} us (the USB controllers' start overlapped)",
        started + 1,
        count,
        if apic::is_x2apic() { "x2APIC" } else { "xAPIC" },
        time::cycles_to_us(time::rdtsc() - t)
    );

    if let Some(v) = crate::arch::trap::register_device_handler(console::serial_irq) {
        let (gsi, low) = isa_gsi[4];
        apic::route_irq(gsi, v, low);
    }
    let (gsi, low) = isa_gsi[1];
    crate::panic::ps2::start_normal(gsi, low);
    crate::usb::start_thread();
    let rehearsed = crate::panic::stop::rehearse() as usize;
    if rehearsed < started {
        log::warn!("stop rehearsal: {rehearsed} of {started} CPUs took the NMI within 100 ms");
    }
    x86_64::instructions::interrupts::enable();
    BOOT_DEADLINE.store(0, Ordering::Relaxed);
    // Off the path to `shell>`: on the last CPU, as a thread of its own.
    let last = cpu::all()
        .iter()
        .rev()
        .find(|c| c.state() == CpuState::Online)
        .map(|c| c.index());
    sched::spawn_on("panic-rehearsal", last, || {
        crate::panic::rehearse_report();
    });
}
