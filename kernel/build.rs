//! Links the kernel with its own linker script when built for the bare-metal
//! target, and generates the 256 interrupt entry stubs.
use std::fmt::Write as _;

/// Vectors for which the CPU pushes an error code (Intel SDM Vol. 3A §6.13).
const HAS_ERROR_CODE: [u32; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
    let mut s = String::from(".section .text\n.balign 16\n");
    for v in 0..256u32 {
        writeln!(s, "vector_stub_{v}:").unwrap();
        if !HAS_ERROR_CODE.contains(&v) {
            writeln!(s, "    pushq $0").unwrap();
        }
        writeln!(s, "    pushq ${v}\n    jmp trap_common").unwrap();
    }
    s.push_str(".section .rodata\n.balign 8\n.global vector_stub_table\nvector_stub_table:\n");
    for v in 0..256u32 {
        writeln!(s, "    .quad vector_stub_{v}").unwrap();
    }
    std::fs::write(format!("{out}/vectors.s"), s).expect("write vectors.s");
}
