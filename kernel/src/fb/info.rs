//! What the boot code knows about a linear framebuffer, and its checks.

#![forbid(unsafe_code)]

/// A linear framebuffer as the boot path found it: Multiboot2's framebuffer
/// tag (type 8) with `framebuffer_type` 1, "direct RGB" (Multiboot2 spec
/// §3.6.12), or a mode the kernel set itself (`fb=bochs`). One type with the
/// boot information's.
pub use crate::bootinfo::Framebuffer as FramebufferInfo;

/// How a colour is stored in one pixel: its bytes (little endian, as on
/// x86) and where each channel's bits sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bytes per pixel (2, 3 or 4).
    pub bytes: usize,
    /// Red, green, blue: (field position, mask size) in bits.
    pub channels: [(u8, u8); 3],
}

impl PixelFormat {
    /// The pixel value of an 8-bit-per-channel colour: each channel scaled
    /// to its mask size and shifted to its position.
    pub fn encode(&self, rgb: [u8; 3]) -> u32 {
        let mut v = 0u32;
        for (&(pos, size), &c) in self.channels.iter().zip(rgb.iter()) {
            let max = (1u64 << size) - 1;
            let scaled = (c as u64 * max + 127) / 255;
            v |= (scaled << pos) as u32;
        }
        v
    }
}

/// Checks `info` for a console: a supported depth, a non-empty size, rows
/// that fit their pitch, channels inside the pixel; returns the pixel
/// format and the size in bytes (`pitch * height`).
pub fn validate(info: &FramebufferInfo) -> Result<(PixelFormat, usize), &'static str> {
    let bytes = match info.bpp {
        16 => 2,
        24 => 3,
        32 => 4,
        _ => return Err("framebuffer: unsupported depth (only 16, 24 and 32 bits per pixel)"),
    };
    if info.width == 0 || info.height == 0 {
        return Err("framebuffer: zero width or height");
    }
    if info.phys == 0 {
        return Err("framebuffer: no physical address");
    }
    if (info.pitch as u64) < info.width as u64 * bytes as u64 {
        return Err("framebuffer: pitch smaller than width * bytes per pixel");
    }
    let channels = [info.red, info.green, info.blue];
    for &(pos, size) in &channels {
        if size == 0 || pos as u32 + size as u32 > info.bpp as u32 {
            return Err("framebuffer: a colour field is empty or lies outside the pixel");
        }
    }
    let len = info.pitch as u64 * info.height as u64;
    if info.phys.checked_add(len).is_none() || len > isize::MAX as u64 {
        return Err("framebuffer: size overflows the address space");
    }
    Ok((PixelFormat { bytes, channels }, len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's Bochs VBE mode: 1024x768, 32 bpp, x8r8g8b8.
    fn xrgb(width: u32, height: u32) -> FramebufferInfo {
        FramebufferInfo {
            phys: 0xfd00_0000,
            pitch: width * 4,
            width,
            height,
            bpp: 32,
            red: (16, 8),
            green: (8, 8),
            blue: (0, 8),
        }
    }

    #[test]
    fn accepts_the_usual_formats() {
        let (f, len) = validate(&xrgb(1024, 768)).unwrap();
        assert_eq!((f.bytes, len), (4, 4096 * 768));
        assert_eq!(f.encode([0x12, 0x34, 0x56]), 0x0012_3456);
        let rgb565 = FramebufferInfo {
            bpp: 16,
            pitch: 2 * 640,
            red: (11, 5),
            green: (5, 6),
            blue: (0, 5),
            ..xrgb(640, 480)
        };
        let (f, _) = validate(&rgb565).unwrap();
        assert_eq!(f.encode([255, 255, 255]), 0xffff);
        assert_eq!(f.encode([255, 0, 0]), 0xf800);
        assert_eq!(f.encode([0, 0, 0]), 0);
    }

    #[test]
    fn rejects_bad_info_with_a_clear_error() {
        let bad = |i: FramebufferInfo| validate(&i).unwrap_err();
        assert!(
            bad(FramebufferInfo {
                bpp: 8,
                ..xrgb(640, 480)
            })
            .contains("depth")
        );
        assert!(
            bad(FramebufferInfo {
                bpp: 15,
                ..xrgb(640, 480)
            })
            .contains("depth")
        );
        assert!(bad(xrgb(0, 480)).contains("zero"));
        assert!(bad(xrgb(640, 0)).contains("zero"));
        assert!(
            bad(FramebufferInfo {
                pitch: 640 * 4 - 1,
                ..xrgb(640, 480)
            })
            .contains("pitch")
        );
        assert!(
            bad(FramebufferInfo {
                phys: 0,
                ..xrgb(640, 480)
            })
            .contains("address")
        );
        assert!(
            bad(FramebufferInfo {
                red: (28, 8),
                ..xrgb(640, 480)
            })
            .contains("colour")
        );
        assert!(
            bad(FramebufferInfo {
                phys: u64::MAX - 100,
                ..xrgb(640, 480)
            })
            .contains("overflow")
        );
    }
}
