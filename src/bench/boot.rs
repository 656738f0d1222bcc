//! (f) Boot to `shell>` from QEMU's start, host-observed: PVH on qboot and
//! SeaBIOS (the median of five boots each), the GRUB image on SeaBIOS
//! and OVMF (UEFI) (one boot each), as ratios to PVH on qboot.
//!
//! Part of every figure is not the kernel's: QEMU's own start-up, the
//! firmware, and loading the ELF. The floor rows measure that part with the
//! same command line and a PVH kernel that writes one byte to COM1 at its
//! first instruction (`exit_kernel`), in boots alternated with the
//! kernel's, so that both see the same host load; each kernel row also
//! gives the median of (boot minus the floor boot run just before it) and
//! the kernel's own time line (`boot: ...; ... ms since the VM started`,
//! from the TSC, which under QEMU counts from the VM's start: firmware,
//! ELF load and kernel, without QEMU's own start-up).

use std::path::{Path, PathBuf};

use super::{BOOT, Row, STEP, boot, cfg};
use crate::qemu::Firmware;

/// Boots per PVH and floor row (the machine is shared: a median).
const REPS: usize = 5;

/// Milliseconds from QEMU's start to `pattern` on serial, woken as soon as
/// the bytes arrive (a 10 ms polling sleep would add up to 10 ms), and the
/// kernel's own figure from its boot time line (`N ms since the VM
/// started`, TSC), if it printed one.
fn time_to(
    name: &str,
    c: crate::qemu::Config,
    pattern: &str,
    poweroff: bool,
) -> Result<(f64, Option<f64>), String> {
    let mut vm = boot(name, c)?;
    vm.try_expect_at_once(pattern, BOOT)?;
    let ms = vm.elapsed().as_secs_f64() * 1000.0;
    let own = super::num(r"([0-9.]+) ms since the VM started", &vm.console());
    if poweroff {
        vm.send_serial("poweroff\r");
        let _ = vm.try_wait_exit(STEP);
    }
    Ok((ms, own))
}

/// A 32-bit ELF whose PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`, note type 18)
/// writes `!` to COM1 and halts: what a boot costs before any kernel code.
fn exit_kernel() -> Vec<u8> {
    const BASE: u32 = 0x10_0000;
    const PHDRS: u32 = 52;
    const NOTE: u32 = PHDRS + 2 * 32;
    const CODE: u32 = NOTE + 20;
    // mov dx, 0x3f8; mov al, '!'; out dx, al; 1: hlt; jmp 1b
    let code = [0x66, 0xba, 0xf8, 0x03, 0xb0, b'!', 0xee, 0xf4, 0xeb, 0xfd];
    let total = CODE + code.len() as u32;
    let mut e = Vec::new();
    let u16s = |e: &mut Vec<u8>, v: &[u16]| v.iter().for_each(|x| e.extend(x.to_le_bytes()));
    let u32s = |e: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| e.extend(x.to_le_bytes()));
    // ELF header: ELFCLASS32, little-endian, version 1; ET_EXEC, EM_386.
    e.extend([0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    u16s(&mut e, &[2, 3]);
    u32s(&mut e, &[1, BASE + CODE, PHDRS, 0, 0]);
    u16s(&mut e, &[52, 32, 2, 40, 0, 0]);
    // PT_LOAD of the whole file (R+X), then PT_NOTE (4-aligned).
    u32s(&mut e, &[1, 0, BASE, BASE, total, total, 5, 0x1000]);
    u32s(&mut e, &[4, NOTE, BASE + NOTE, BASE + NOTE, 20, 20, 4, 4]);
    // The note: namesz 4, descsz 4, type 18, "Xen\0", the entry.
    u32s(&mut e, &[4, 4, 18]);
    e.extend(b"Xen\0");
    u32s(&mut e, &[BASE + CODE]);
    e.extend(code);
    e
}

fn write_exit_kernel(dir: &Path) -> Result<PathBuf, String> {
    let p = dir.join("bench-floor.elf");
    std::fs::write(&p, exit_kernel()).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

/// One row's boots: host-observed figures, the kernel's own, the
/// differences to the floor boot run right before each, the last error.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    own: Vec<f64>,
    over_floor: Vec<f64>,
    err: Option<String>,
}

/// `median ms (min-max of n)`, or the error of the last failed boot.
fn summary(v: &[f64], err: &Option<String>) -> Option<(f64, String)> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let median = *v.get(v.len() / 2)?;
    let note = format!(
        "{:.0} to {:.0} ms over {} boots",
        v[0],
        v[v.len() - 1],
        v.len()
    );
    let note = match err {
        Some(e) => format!("{note}; a boot failed: {e}"),
        None => note,
    };
    Some((median, note))
}

/// The boot rows.
pub(super) fn boot_times(rows: &mut Vec<Row>) {
    let floor_kernel = write_exit_kernel(&crate::qemu::scratch_dir());
    let fws = [("qboot", Firmware::Qboot), ("SeaBIOS", Firmware::SeaBios)];
    let mut kernel: [Series; 2] = Default::default();
    let mut floor: [Series; 2] = Default::default();
    for _ in 0..REPS {
        for (i, (_, fw)) in fws.iter().enumerate() {
            let mut c = cfg(2, "");
            c.firmware = *fw;
            c.dump_disk = None;
            let mut floor_ms = None;
            if let Ok(k) = &floor_kernel {
                let mut f = c.clone();
                f.kernel = k.clone();
                match time_to("bench-floor", f, "!", false) {
                    Ok((ms, _)) => {
                        floor[i].ms.push(ms);
                        floor_ms = Some(ms);
                    }
                    Err(e) => floor[i].err = Some(e),
                }
            }
            match time_to("bench-boot", c, r"(?m)^shell> ", true) {
                Ok((ms, own)) => {
                    kernel[i].ms.push(ms);
                    kernel[i].own.extend(own);
                    kernel[i].over_floor.extend(floor_ms.map(|f| ms - f));
                }
                Err(e) => kernel[i].err = Some(e),
            }
        }
    }
    let mut base = None;
    for (i, (name, _)) in fws.iter().enumerate() {
        let label = format!("boot to shell>, PVH, {name}");
        match summary(&kernel[i].ms, &kernel[i].err) {
            Some((ms, note)) => {
                let ratio = match base {
                    None => {
                        base = Some(ms);
                        "host-observed, from QEMU's start".to_string()
                    }
                    Some(b) => format!("{:.2} x PVH on qboot", ms / b),
                };
                let mut extra = String::new();
                if let Some((m, n)) = summary(&kernel[i].over_floor, &None) {
                    extra += &format!("; minus the floor boot run just before it: {m:.0} ms ({n})");
                }
                if let Some((m, n)) = summary(&kernel[i].own, &None) {
                    extra += &format!(
                        "; the kernel's own time line, VM start to shell: {m:.0} ms ({n})"
                    );
                }
                rows.push(Row(
                    label,
                    format!("{ms:.0} ms"),
                    format!("{ratio}; median, {note}{extra}"),
                ));
            }
            None => rows.push(Row(
                label,
                "n/a".into(),
                kernel[i].err.clone().unwrap_or_default(),
            )),
        }
        let label = format!("floor: QEMU + {name} + PVH load, no kernel code");
        match (&floor_kernel, summary(&floor[i].ms, &floor[i].err)) {
            (Err(e), _) => rows.push(Row(label, "n/a".into(), e.clone())),
            (Ok(_), Some((ms, note))) => rows.push(Row(
                label,
                format!("{ms:.0} ms"),
                format!(
                    "a PVH kernel that writes one byte to COM1 at its first instruction; median, {note}"
                ),
            )),
            (Ok(_), None) => rows.push(Row(
                label,
                "n/a".into(),
                floor[i].err.clone().unwrap_or_default(),
            )),
        }
    }
    grub_rows(rows, base);
}

/// The GRUB image on SeaBIOS and OVMF, one boot each.
fn grub_rows(rows: &mut Vec<Row>, base: Option<f64>) {
    let image = crate::qemu::scratch_dir().join("bench.iso");
    let image_ok = crate::image::build(crate::KERNEL_ELF.as_ref(), "", &image);
    for (label, firmware) in [
        ("GRUB image, SeaBIOS", Firmware::SeaBios),
        ("GRUB image, OVMF (UEFI)", Firmware::Ovmf),
    ] {
        let label = format!("boot to shell>, {label}");
        if let Err(e) = &image_ok {
            rows.push(Row(label, "n/a".into(), e.clone()));
            continue;
        }
        let mut c = cfg(2, "");
        c.firmware = firmware;
        c.dump_disk = None;
        c.image = Some(image.clone());
        match time_to("bench-boot", c, r"(?m)^shell> ", true) {
            Ok((ms, _)) => {
                let note = base
                    .map(|b| format!("{:.2} x PVH on qboot; one boot", ms / b))
                    .unwrap_or_else(|| "one boot".into());
                rows.push(Row(label, format!("{ms:.0} ms"), note));
            }
            Err(e) => rows.push(Row(label, "n/a".into(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor kernel is a well-formed ELF32 whose PT_NOTE holds the PVH
    /// entry note, 4-aligned, pointing at the code.
    #[test]
    fn the_floor_kernel_has_a_pvh_entry_note() {
        let e = exit_kernel();
        assert_eq!(&e[..4], b"\x7fELF");
        let u32_at = |o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap());
        let entry = u32_at(24);
        // Second program header: PT_NOTE, 4-aligned.
        let ph = 52 + 32;
        assert_eq!(u32_at(ph), 4);
        assert_eq!(u32_at(ph + 28), 4);
        let note = u32_at(ph + 4) as usize;
        assert_eq!(
            (u32_at(note), u32_at(note + 4), u32_at(note + 8)),
            (4, 4, 18)
        );
        assert_eq!(&e[note + 12..note + 16], b"Xen\0");
        assert_eq!(u32_at(note + 16), entry);
        let code = (entry - 0x10_0000) as usize;
        assert_eq!(&e[code..code + 4], &[0x66, 0xba, 0xf8, 0x03]);
        // The load segment covers the whole file.
        assert_eq!(u32_at(52 + 16) as usize, e.len());
    }
}
