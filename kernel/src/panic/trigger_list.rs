// Data only, no `use` and no inner attributes: the host runner compiles
// this same file (`include!` in `src/matrix.rs`). See `panic/mod.rs`.

/// Every trigger, with a one-line description.
pub const TRIGGERS: &[(&str, &str)] = &[
    ("plain", "panic!() in the calling thread"),
    (
        "lock",
        "another CPU holds the log lock the panic path needs",
    ),
    ("irq", "panic inside an interrupt handler"),
    ("ap", "panic on an application processor"),
    ("all", "every CPU panics at once"),
    ("cli", "another CPU spins forever with interrupts disabled"),
    ("nested", "a second panic inside the panic path"),
    ("fault", "a page fault in kernel code"),
    (
        "early",
        "panic during early boot (kernel command line only)",
    ),
    ("usb-lock", "another CPU holds the USB driver lock"),
    (
        "usb-cmd",
        "another CPU stopped with an xHCI command in flight",
    ),
    (
        "usb-enum",
        "panic while another CPU is enumerating a hot-plugged keyboard",
    ),
    (
        "usb-irq",
        "panic inside the xHCI interrupt handler (on the next key)",
    ),
    (
        "badstack",
        "the other CPUs spin with corrupted frame pointers (for `bt N`)",
    ),
    ("fmt", "a panic inside the formatting of the panic message"),
    (
        "deaf",
        "another CPU ignores the stop IPI and the NMI (it does not stop)",
    ),
    (
        "ap-start",
        "panic while an application processor is starting (kernel command line only)",
    ),
    (
        "nmi",
        "an unexpected NMI: the panic is raised on the NMI's IST stack",
    ),
];
