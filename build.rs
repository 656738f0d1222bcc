//! Builds the kernel for `x86_64-unknown-none` with a nested cargo (the host
//! package cannot depend on a bare-metal binary directly), fills its
//! `.ksyms` section with its own symbol table (`ksyms::elf::embed`, in place:
//! no address moves) and exports its path as `KERNEL_ELF` to the runner and
//! the tests.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    for dir in [
        "kernel/src",
        "kernel/Cargo.toml",
        "kernel/build.rs",
        "kernel/linker.ld",
        "driver/src",
        "driver/Cargo.toml",
        "ksyms/src",
        "ksyms/Cargo.toml",
        ".cargo/config.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target_dir = root.join("target").join("kernel");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "-p",
            "kernel",
            "--bin",
            "kernel",
            "--target",
            "x86_64-unknown-none",
            "--target-dir",
        ])
        .arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("failed to run cargo for the kernel");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("building the kernel failed (see the cargo output above)");
    }
    let elf = target_dir
        .join("x86_64-unknown-none")
        .join(if release { "release" } else { "debug" })
        .join("kernel");
    embed_symbols(&elf);
    println!("cargo:rustc-env=KERNEL_ELF={}", elf.display());
}

/// Writes the kernel's symbol table into its `.ksyms` section. Only the
/// section's bytes are written, in place (the same inode: cargo hard-links
/// the file to its `deps/` copy), and only when they change, so a kernel
/// that was not relinked is left untouched.
fn embed_symbols(elf: &Path) {
    let original = std::fs::read(elf).unwrap_or_else(|e| panic!("reading {}: {e}", elf.display()));
    let mut patched = original.clone();
    let table = ksyms::elf::embed(&mut patched)
        .unwrap_or_else(|e| panic!("embedding the symbol table in {}: {e}", elf.display()));
    let section = table.offset..table.offset + table.capacity;
    if patched[section.clone()] != original[section.clone()] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(elf)
            .unwrap_or_else(|e| panic!("opening {}: {e}", elf.display()));
        f.seek(SeekFrom::Start(table.offset as u64))
            .and_then(|_| f.write_all(&patched[section]))
            .unwrap_or_else(|e| panic!("writing {}: {e}", elf.display()));
    }
}
