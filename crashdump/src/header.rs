//! The on-disk dump header (sector 0) and the core checksum.
//!
//! Layout (little-endian, 512 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `PBDUMP\0\n` |
//! | 8 | 4 | version |
//! | 12 | 4 | status (1 in progress, 2 complete, 3 aborted) |
//! | 16 | 8 | header checksum (this field taken as zero) |
//! | 24 | 8 | core size in bytes (planned) |
//! | 32 | 8 | core bytes written |
//! | 40 | 8 | core checksum ([`Checksum::sampled`] of the written bytes) |
//! | 48 | 8 | wall-clock time of the panic (Unix seconds, from the RTC) |
//! | 56 | 8 | uptime at the panic (microseconds) |
//! | 64 | 4 | CPUs in the core |
//! | 68 | 4 | the panic CPU |
//! | 72 | 4 | length of the panic message |
//! | 76 | 4 | flags (bit 0: full dump) |
//! | 80 | 256 | panic message (UTF-8, truncated) |

use crate::SECTOR;

/// Magic bytes at the start of sector 0.
pub const MAGIC: [u8; 8] = *b"PBDUMP\0\n";
/// Current header version.
pub const VERSION: u32 = 3;
/// Longest panic message kept in the header.
pub const MESSAGE_MAX: usize = 256;
/// Flag: the dump holds all RAM (`dump full`), not the minidump.
pub const FLAG_FULL: u32 = 1;

/// State of the dump recorded in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Written before the core: a dump that stays in this state was torn.
    InProgress = 1,
    /// Every byte of the core was written and the checksum is final.
    Complete = 2,
    /// Cut short on purpose (Ctrl-C) or by an I/O error.
    Aborted = 3,
}

impl Status {
    /// Human-readable name (`savecore` output).
    pub fn name(self) -> &'static str {
        match self {
            Self::InProgress => "in progress (torn: the dump never finished)",
            Self::Complete => "complete",
            Self::Aborted => "aborted",
        }
    }

    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::InProgress),
            2 => Some(Self::Complete),
            3 => Some(Self::Aborted),
            _ => None,
        }
    }
}

/// Why a sector 0 is not a usable header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 512 bytes.
    Short,
    /// No dump magic: the disk never held a dump.
    NoMagic,
    /// A version this reader does not know.
    Version(u32),
    /// The header's own checksum does not match (torn header write).
    BadHeaderChecksum,
    /// An unknown status value.
    BadStatus(u32),
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short => write!(f, "header shorter than one sector"),
            Self::NoMagic => write!(f, "no dump header (magic missing): the disk holds no dump"),
            Self::Version(v) => write!(f, "unknown dump header version {v}"),
            Self::BadHeaderChecksum => write!(f, "header checksum mismatch (torn header)"),
            Self::BadStatus(s) => write!(f, "unknown dump status {s}"),
        }
    }
}

/// The dump header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// State of the dump.
    pub status: Status,
    /// Planned size of the core in bytes.
    pub core_size: u64,
    /// Core bytes actually written.
    pub written: u64,
    /// [`Checksum::sampled`] of the `written` bytes.
    pub checksum: u64,
    /// Wall-clock time of the panic (Unix seconds; 0 if unknown).
    pub unix_time: u64,
    /// Uptime at the panic in microseconds.
    pub uptime_us: u64,
    /// CPUs in the core (one `NT_PRSTATUS` each).
    pub cpus: u32,
    /// The CPU that panicked.
    pub panic_cpu: u32,
    /// Flags ([`FLAG_FULL`]).
    pub flags: u32,
    message: [u8; MESSAGE_MAX],
    message_len: usize,
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get32(b: &[u8], off: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn get64(b: &[u8], off: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// A new in-progress header for a core of `core_size` bytes.
    pub fn new(core_size: u64, message: &str) -> Self {
        let mut h = Self {
            status: Status::InProgress,
            core_size,
            written: 0,
            checksum: Checksum::sampled().value(),
            unix_time: 0,
            uptime_us: 0,
            cpus: 0,
            panic_cpu: 0,
            flags: 0,
            message: [0; MESSAGE_MAX],
            message_len: 0,
        };
        h.set_message(message);
        h
    }

    /// Stores `message`, truncated to [`MESSAGE_MAX`] bytes on a character boundary.
    pub fn set_message(&mut self, message: &str) {
        let mut n = message.len().min(MESSAGE_MAX);
        while !message.is_char_boundary(n) {
            n -= 1;
        }
        self.message = [0; MESSAGE_MAX];
        self.message[..n].copy_from_slice(&message.as_bytes()[..n]);
        self.message_len = n;
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        core::str::from_utf8(&self.message[..self.message_len]).unwrap_or("<invalid UTF-8>")
    }

    /// Encodes the header into one sector.
    pub fn encode(&self) -> [u8; SECTOR] {
        let mut b = [0u8; SECTOR];
        b[..8].copy_from_slice(&MAGIC);
        put32(&mut b, 8, VERSION);
        put32(&mut b, 12, self.status as u32);
        put64(&mut b, 24, self.core_size);
        put64(&mut b, 32, self.written);
        put64(&mut b, 40, self.checksum);
        put64(&mut b, 48, self.unix_time);
        put64(&mut b, 56, self.uptime_us);
        put32(&mut b, 64, self.cpus);
        put32(&mut b, 68, self.panic_cpu);
        put32(&mut b, 72, self.message_len as u32);
        put32(&mut b, 76, self.flags);
        b[80..80 + MESSAGE_MAX].copy_from_slice(&self.message);
        let sum = Checksum::of(&b);
        put64(&mut b, 16, sum);
        b
    }

    /// Decodes and verifies a header.
    pub fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < SECTOR {
            return Err(HeaderError::Short);
        }
        let b = &b[..SECTOR];
        if b[..8] != MAGIC {
            return Err(HeaderError::NoMagic);
        }
        let version = get32(b, 8);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let mut copy = [0u8; SECTOR];
        copy.copy_from_slice(b);
        put64(&mut copy, 16, 0);
        if Checksum::of(&copy) != get64(b, 16) {
            return Err(HeaderError::BadHeaderChecksum);
        }
        let status = Status::from_u32(get32(b, 12)).ok_or(HeaderError::BadStatus(get32(b, 12)))?;
        let mut message = [0; MESSAGE_MAX];
        message.copy_from_slice(&b[80..80 + MESSAGE_MAX]);
        Ok(Self {
            status,
            core_size: get64(b, 24),
            written: get64(b, 32),
            checksum: get64(b, 40),
            unix_time: get64(b, 48),
            uptime_us: get64(b, 56),
            cpus: get32(b, 64),
            panic_cpu: get32(b, 68),
            flags: get32(b, 76),
            message,
            message_len: (get32(b, 72) as usize).min(MESSAGE_MAX),
        })
    }
}

/// Independent lanes of [`Checksum`].
const LANES: usize = 8;
/// Bytes between two words read by [`Checksum::sampled`]: one per 4 KiB
/// page of the core.
const SAMPLE_STRIDE: u64 = 4096;

/// FNV-1a-style checksum over 64-bit little-endian words, the `k`-th word
/// read going to lane `k % LANES` (so a swapped pair of words or pages
/// changes the result), folded with the byte count. Input may be split into
/// any pieces; a final partial word is zero-padded.
///
/// Two strides:
/// - [`Checksum::new`] reads every word (the header checks itself with it);
/// - [`Checksum::sampled`] reads the first word of every 4 KiB page of the
///   core. The dump writes the core in requests of whole pages (the core
///   starts on a page of the disk, its headers and memory runs are whole
///   pages), so this proves that every request of a core was written by this
///   dump and landed where it belongs: a lost, stale (older dump) or
///   misplaced request and a truncated core change sampled words, unless the
///   old data starts every page with the same words. It does not prove that
///   no bit flipped inside a page. The dump uses it to keep up with the disk:
///   under TCG every word the CPU reads costs about 7 ns and every page it
///   touches about 80 ns (measured: one word per 64-byte line held the dump
///   at about half the disk's rate; one per page costs about 5% of it).
#[derive(Clone, Copy, Debug)]
pub struct Checksum {
    lanes: [u64; LANES],
    /// Bytes between two words read: 8 (all) or [`SAMPLE_STRIDE`].
    stride: u64,
    /// The word being read when an update ended inside it.
    word: [u8; 8],
    /// Bytes fed so far.
    total: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

fn fnv(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(FNV_PRIME)
}

/// The little-endian word at `at` (`at + 8 <= b.len()`).
fn word_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Checksum {
    const fn with_stride(stride: u64) -> Self {
        let mut lanes = [FNV_OFFSET; LANES];
        let mut i = 0;
        while i < LANES {
            lanes[i] ^= i as u64 + stride;
            i += 1;
        }
        Self {
            lanes,
            stride,
            word: [0; 8],
            total: 0,
        }
    }

    /// An empty checksum over every word.
    pub const fn new() -> Self {
        Self::with_stride(8)
    }

    /// An empty checksum over the first word of every 4 KiB page (crash dump
    /// cores).
    pub const fn sampled() -> Self {
        Self::with_stride(SAMPLE_STRIDE)
    }

    /// The full checksum of one buffer.
    pub fn of(data: &[u8]) -> u64 {
        let mut c = Self::new();
        c.update(data);
        c.value()
    }

    /// The sampled checksum of one buffer (a dump's core).
    pub fn sampled_of(data: &[u8]) -> u64 {
        let mut c = Self::sampled();
        c.update(data);
        c.value()
    }

    /// Folds the word that starts at byte `at` of the input.
    fn fold(&mut self, at: u64, word: u64) {
        let lane = ((at / self.stride) % LANES as u64) as usize;
        self.lanes[lane] = fnv(self.lanes[lane], word);
    }

    /// Feeds more bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let pos = self.total % self.stride;
            let stride = self.stride as usize;
            let lane = (self.total / self.stride) % LANES as u64;
            if pos == 0 && lane == 0 && data.len() >= LANES * stride {
                // Whole rounds (one word for each lane) from a round boundary:
                // the common case, with the lanes in locals, so the words
                // are read independently of each other (under TCG every
                // memory access is a software-TLB lookup, and each sample
                // is on a page of its own).
                let mut rounds = data.chunks_exact(LANES * stride);
                let mut lanes = self.lanes;
                for r in &mut rounds {
                    for (i, l) in lanes.iter_mut().enumerate() {
                        *l = fnv(*l, word_at(r, i * stride));
                    }
                }
                self.lanes = lanes;
                let done = data.len() - rounds.remainder().len();
                self.total += done as u64;
                data = rounds.remainder();
            } else if pos == 0 && data.len() >= stride {
                // One whole stride.
                self.fold(self.total, word_at(data, 0));
                self.total += stride as u64;
                data = &data[stride..];
            } else if pos < 8 {
                // Inside a sampled word that an update boundary split.
                let p = pos as usize;
                let n = (8 - p).min(data.len());
                self.word[p..p + n].copy_from_slice(&data[..n]);
                self.total += n as u64;
                data = &data[n..];
                if p + n == 8 {
                    self.fold(self.total - 8, u64::from_le_bytes(self.word));
                }
            } else {
                // Between two sampled words.
                let n = ((self.stride - pos) as usize).min(data.len());
                self.total += n as u64;
                data = &data[n..];
            }
        }
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        let mut c = *self;
        let pos = (c.total % c.stride) as usize;
        if (1..8).contains(&pos) {
            c.word[pos..].fill(0);
            c.fold(c.total - pos as u64, u64::from_le_bytes(c.word));
        }
        let h = c.lanes.iter().fold(FNV_OFFSET, |h, &l| fnv(h, l));
        fnv(h, c.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut h = Header::new(123 << 20, "test: plain panic");
        h.status = Status::Complete;
        h.written = 123 << 20;
        h.checksum = 0xdead_beef_1234_5678;
        h.unix_time = 1_700_000_000;
        h.uptime_us = 42;
        h.cpus = 4;
        h.panic_cpu = 2;
        h.flags = FLAG_FULL;
        let b = h.encode();
        let d = Header::decode(&b).unwrap();
        assert_eq!(d, h);
        assert_eq!(d.message(), "test: plain panic");
    }

    #[test]
    fn long_message_truncated_on_char_boundary() {
        let s = "é".repeat(200);
        let h = Header::new(0, &s);
        assert!(h.message().len() <= MESSAGE_MAX);
        assert!(h.message().chars().all(|c| c == 'é'));
        assert_eq!(Header::decode(&h.encode()).unwrap().message(), h.message());
    }

    #[test]
    fn torn_or_foreign_headers_rejected() {
        let h = Header::new(4096, "x");
        let mut b = h.encode();
        b[100] ^= 1;
        assert_eq!(Header::decode(&b), Err(HeaderError::BadHeaderChecksum));
        assert_eq!(Header::decode(&[0u8; 512]), Err(HeaderError::NoMagic));
        assert_eq!(Header::decode(&[0u8; 10]), Err(HeaderError::Short));
        let mut b = h.encode();
        b[8] = 9;
        assert_eq!(Header::decode(&b), Err(HeaderError::Version(9)));
    }

    #[test]
    fn checksum_is_split_independent_and_length_sensitive() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = Checksum::of(&data);
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            let mut c = Checksum::new();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.value(), whole, "split at {split}");
        }
        let mut byte_by_byte = Checksum::new();
        for b in &data {
            byte_by_byte.update(core::slice::from_ref(b));
        }
        assert_eq!(byte_by_byte.value(), whole);
        assert_ne!(Checksum::of(&data[..999]), whole);
        assert_ne!(Checksum::of(&[0; 8]), Checksum::of(&[0; 16]));
        let mut flipped = data.clone();
        flipped[500] ^= 0x10;
        assert_ne!(Checksum::of(&flipped), whole);
    }

    #[test]
    fn sampled_checksum_splits_and_catches_lost_stale_or_misplaced_pages() {
        const PAGE: usize = 4096;
        // Eight pages, not periodic: every page differs from every other.
        let core: std::vec::Vec<u8> = (0..8 * PAGE as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let whole = Checksum::sampled_of(&core);
        assert_ne!(whole, Checksum::of(&core), "the two strides differ");
        for split in [
            0, 1, 7, 8, 9, 511, 512, 4095, 4096, 4097, 4100, 12288, 32767,
        ] {
            let mut c = Checksum::sampled();
            c.update(&core[..split]);
            c.update(&core[split..]);
            assert_eq!(c.value(), whole, "split at {split}");
        }
        let mut byte_by_byte = Checksum::sampled();
        for b in &core {
            byte_by_byte.update(core::slice::from_ref(b));
        }
        assert_eq!(byte_by_byte.value(), whole);
        // A final partial word is zero-padded, and the length still counts.
        assert_ne!(
            Checksum::sampled_of(&core[..PAGE + 3]),
            Checksum::sampled_of(&core[..PAGE + 4])
        );
        // A page left over from an older dump (different data).
        let mut stale = core.clone();
        stale[PAGE..2 * PAGE].copy_from_slice(&[0xee; PAGE]);
        assert_ne!(Checksum::sampled_of(&stale), whole);
        // A page that was never written (zeros) or a lost last page.
        let mut missing = core.clone();
        missing[4 * PAGE..5 * PAGE].fill(0);
        assert_ne!(Checksum::sampled_of(&missing), whole);
        assert_ne!(Checksum::sampled_of(&core[..7 * PAGE]), whole);
        // Two pages swapped (a misplaced write).
        let mut swapped = core.clone();
        swapped.copy_within(0..PAGE, 2 * PAGE);
        swapped[..PAGE].copy_from_slice(&core[2 * PAGE..3 * PAGE]);
        assert_ne!(Checksum::sampled_of(&swapped), whole);
        // Any change to a sampled word (the first of each page).
        for page in 0..8 {
            let mut c = core.clone();
            c[page * PAGE + 3] ^= 1;
            assert_ne!(Checksum::sampled_of(&c), whole, "page {page}");
        }
        // The documented limit: a change inside a page, past its first
        // word, is not seen (the dump never writes less than a page).
        let mut inside = core.clone();
        inside[PAGE + 512] ^= 1;
        assert_eq!(Checksum::sampled_of(&inside), whole);
    }
}
