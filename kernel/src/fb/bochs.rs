//! `fb=bochs`: a 1024x768, 32 bpp mode set through the Bochs VBE "DISPI"
//! registers (QEMU's `-vga std`, Bochs' VBE), and the console on its linear
//! framebuffer. A framebuffer for PVH boots, which get none from the
//! firmware, and for testing the framebuffer console under QEMU.
//!
//! The registers (Bochs `iodev/display/vga.h`, QEMU `hw/display/vga.c`):
//! 16-bit index at port 0x1CE, data at 0x1CF. The framebuffer is BAR0 of
//! the VGA PCI function 1234:1111.

use x86_64::instructions::port::Port;

use super::FramebufferInfo;

/// DISPI index port.
const INDEX_PORT: u16 = 0x1ce;
/// DISPI data port.
const DATA_PORT: u16 = 0x1cf;

/// DISPI register indices.
#[derive(Clone, Copy)]
#[repr(u16)]
enum Register {
    Id = 0,
    XResolution = 1,
    YResolution = 2,
    BitsPerPixel = 3,
    Enable = 4,
    Bank = 5,
    VirtualWidth = 6,
    VirtualHeight = 7,
    XOffset = 8,
    YOffset = 9,
}

/// `Id` values of the interface versions (0xB0C0 .. 0xB0C5).
const ID_FIRST: u16 = 0xb0c0;
const ID_LAST: u16 = 0xb0c5;
/// `Enable`: the mode is on.
const ENABLED: u16 = 0x01;
/// `Enable`: the linear framebuffer is on (with `ENABLED`: 0x41).
const LFB_ENABLED: u16 = 0x40;

/// The Bochs / QEMU standard VGA's PCI vendor and device.
const PCI_ID: (u16, u16) = (0x1234, 0x1111);

const WIDTH: u16 = 1024;
const HEIGHT: u16 = 768;
const BPP: u16 = 32;

fn write(r: Register, v: u16) {
    // SAFETY: the DISPI ports exist on every machine this runs on with
    // `fb=bochs` (the ID is checked first); on others, writes to unused
    // ports are ignored.
    unsafe {
        Port::<u16>::new(INDEX_PORT).write(r as u16);
        Port::<u16>::new(DATA_PORT).write(v);
    }
}

fn read(r: Register) -> u16 {
    // SAFETY: as in `write`; reading DISPI registers has no side effect.
    unsafe {
        Port::<u16>::new(INDEX_PORT).write(r as u16);
        Port::<u16>::new(DATA_PORT).read()
    }
}

/// Sets 1024x768x32 through DISPI and starts the framebuffer console on it
/// ([`super::init`]). At boot, while this is the only running CPU (it
/// touches PCI and the page tables).
pub fn init() -> Result<(), &'static str> {
    write(Register::Id, ID_LAST);
    let id = read(Register::Id);
    if !(ID_FIRST..=ID_LAST).contains(&id) {
        return Err("fb=bochs: no Bochs VBE (DISPI) interface at ports 0x1ce/0x1cf");
    }
    let dev = crate::pci::find(|d| (d.vendor, d.device) == PCI_ID)
        .ok_or("fb=bochs: no Bochs/QEMU VGA PCI function 1234:1111")?;
    let (phys, size) = crate::pci::mem_bar(&dev, 0).ok_or("fb=bochs: VGA BAR0 is not memory")?;
    crate::pci::enable(&dev);

    write(Register::Enable, 0);
    write(Register::BitsPerPixel, BPP);
    write(Register::XResolution, WIDTH);
    write(Register::YResolution, HEIGHT);
    write(Register::Bank, 0);
    write(Register::VirtualWidth, WIDTH);
    write(Register::VirtualHeight, HEIGHT);
    write(Register::XOffset, 0);
    write(Register::YOffset, 0);
    write(Register::Enable, ENABLED | LFB_ENABLED);
    let (x, y, bpp) = (
        read(Register::XResolution),
        read(Register::YResolution),
        read(Register::BitsPerPixel),
    );
    if (x, y, bpp) != (WIDTH, HEIGHT, BPP) {
        write(Register::Enable, 0);
        return Err("fb=bochs: the adapter refused 1024x768x32");
    }
    let pitch = read(Register::VirtualWidth) as u32 * 4;
    if pitch as u64 * HEIGHT as u64 > size {
        write(Register::Enable, 0);
        return Err("fb=bochs: 1024x768x32 does not fit in the VGA memory (BAR0)");
    }
    let info = FramebufferInfo {
        phys,
        pitch,
        width: WIDTH as u32,
        height: HEIGHT as u32,
        bpp: BPP as u8,
        // x8r8g8b8, little endian: blue in the first byte.
        red: (16, 8),
        green: (8, 8),
        blue: (0, 8),
    };
    super::init(info)
}
