//! `cargo run -- savecore [DISK] [-o vmcore]`: checks a dump disk's header
//! and checksum, writes the ELF core for `gdb`, and prints a summary. A torn
//! (still "in progress"), aborted or corrupt dump is reported as such and
//! never written out as a good core.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crashdump::elf::parse;
use crashdump::{CORE_OFFSET, Checksum, Header, SECTOR, Status};

/// What a good dump contained.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The verified header.
    pub header: Header,
    /// Where the core was written.
    pub output: PathBuf,
    /// `pr_pid`s of the `NT_PRSTATUS` notes (CPU index + 1), in order.
    pub threads: Vec<u32>,
    /// `PT_LOAD` segments.
    pub loads: usize,
}

/// Why a dump was not saved.
#[derive(Debug)]
pub enum Error {
    /// Reading the disk or writing the core failed.
    Io(String),
    /// The header is missing or damaged.
    Header(crashdump::HeaderError),
    /// The header says the dump did not finish (torn or aborted).
    Incomplete(Box<Header>),
    /// The core does not match its checksum or is not a valid core.
    Corrupt(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Header(e) => write!(f, "{e}"),
            Self::Incomplete(h) => write!(
                f,
                "dump {}: {} of {} bytes written; panic: {}; not saved",
                h.status.name(),
                h.written,
                h.core_size,
                h.message()
            ),
            Self::Corrupt(e) => write!(f, "dump corrupt: {e}; not saved"),
        }
    }
}

/// Formats Unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn format_time(t: u64) -> String {
    if t == 0 {
        return "unknown".into();
    }
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads and checks the dump on `disk`, writes the core to `output`.
pub fn save(disk: &Path, output: &Path) -> Result<Summary, Error> {
    let io = |what: &str, e: std::io::Error| Error::Io(format!("{what}: {e}"));
    let mut f = File::open(disk).map_err(|e| io(&format!("opening {}", disk.display()), e))?;
    let mut sector = [0u8; SECTOR];
    f.read_exact(&mut sector)
        .map_err(|e| io("reading the header", e))?;
    let header = Header::decode(&sector).map_err(Error::Header)?;
    if header.status != Status::Complete || header.written != header.core_size {
        return Err(Error::Incomplete(Box::new(header)));
    }
    let size = usize::try_from(header.core_size)
        .map_err(|_| Error::Corrupt("core size too large".into()))?;
    let mut core = vec![0u8; size];
    f.seek(SeekFrom::Start(CORE_OFFSET))
        .map_err(|e| io("seeking to the core", e))?;
    f.read_exact(&mut core)
        .map_err(|e| io("reading the core (disk shorter than the header says)", e))?;
    let sum = Checksum::sampled_of(&core);
    if sum != header.checksum {
        return Err(Error::Corrupt(format!(
            "checksum {sum:#018x}, header says {:#018x}",
            header.checksum
        )));
    }
    let phnum =
        parse::phnum(&core).ok_or_else(|| Error::Corrupt("not an x86_64 ELF core".into()))?;
    let mut threads = Vec::new();
    let mut loads = 0;
    for i in 0..phnum {
        let p = parse::phdr(&core, i)
            .ok_or_else(|| Error::Corrupt(format!("program header {i} out of bounds")))?;
        if p.offset
            .checked_add(p.filesz)
            .is_none_or(|e| e > core.len() as u64)
        {
            return Err(Error::Corrupt(format!(
                "segment {i} runs past the end of the core"
            )));
        }
        match p.kind {
            1 => loads += 1,
            4 => threads.extend(
                parse::notes(&core, &p)
                    .filter(|n| n.kind == crashdump::elf::NT_PRSTATUS)
                    .filter_map(|n| parse::prstatus(n.desc).map(|(pid, _)| pid)),
            ),
            _ => {}
        }
    }
    std::fs::write(output, &core).map_err(|e| io(&format!("writing {}", output.display()), e))?;
    Ok(Summary {
        header,
        output: output.to_path_buf(),
        threads,
        loads,
    })
}

/// Prints a summary of a saved dump.
pub fn print_summary(s: &Summary) {
    let h = &s.header;
    println!("savecore: dump complete, checksum ok");
    println!("  panic:    {}", h.message());
    println!(
        "  time:     {} (uptime {}.{:03} s)",
        format_time(h.unix_time),
        h.uptime_us / 1_000_000,
        h.uptime_us / 1000 % 1000
    );
    println!(
        "  cpus:     {} (panic on cpu {}; gdb threads = LWP cpu+1)",
        h.cpus, h.panic_cpu
    );
    println!(
        "  size:     {} bytes ({:.1} MiB), {} dump, {} memory segments",
        h.core_size,
        h.core_size as f64 / (1 << 20) as f64,
        if h.flags & crashdump::header::FLAG_FULL != 0 {
            "full"
        } else {
            "minimal"
        },
        s.loads
    );
    println!("  core:     {}", s.output.display());
}

const USAGE: &str = "usage: cargo run -- savecore [DISK] [-o VMCORE]
  DISK defaults to the runner's dump disk (target/dump-disk.img), VMCORE to ./vmcore.
  Then: gdb target/kernel/x86_64-unknown-none/debug/kernel VMCORE";

/// `savecore` subcommand; returns the process exit code (0 = good dump saved).
pub fn main(args: &[String]) -> i32 {
    let mut disk = None;
    let mut output = PathBuf::from("vmcore");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => match it.next() {
                Some(o) => output = PathBuf::from(o),
                None => {
                    eprintln!("savecore: -o needs a path\n{USAGE}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            s if disk.is_none() && !s.starts_with('-') => disk = Some(PathBuf::from(s)),
            other => {
                eprintln!("savecore: unexpected argument {other:?}\n{USAGE}");
                return 2;
            }
        }
    }
    let disk = disk.unwrap_or_else(crate::qemu::default_dump_disk);
    match save(&disk, &output) {
        Ok(s) => {
            print_summary(&s);
            0
        }
        Err(e) => {
            eprintln!("savecore: {}: {e}", disk.display());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0), "unknown");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    fn disk_with(header: &Header, core: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "savecore-test-{}-{}.img",
            std::process::id(),
            header.checksum ^ header.written
        ));
        let mut img = header.encode().to_vec();
        img.resize(CORE_OFFSET as usize, 0);
        img.extend_from_slice(core);
        std::fs::write(&p, img).unwrap();
        p
    }

    #[test]
    fn good_torn_aborted_and_corrupt_dumps() {
        let cpus = [
            crashdump::CpuRegs {
                cpu: 1,
                regs: Default::default(),
            },
            crashdump::CpuRegs {
                cpu: 0,
                regs: Default::default(),
            },
        ];
        let layout = crashdump::elf::CoreLayout::new(&cpus, "boom", &[]);
        let mut core = vec![0u8; layout.total_size() as usize];
        layout.write_headers(&mut core).unwrap();
        let mut h = Header::new(core.len() as u64, "boom");
        h.status = Status::Complete;
        h.written = core.len() as u64;
        h.checksum = Checksum::sampled_of(&core);
        h.cpus = 2;
        let out = std::env::temp_dir().join(format!("savecore-test-{}.vmcore", std::process::id()));
        let disk = disk_with(&h, &core);
        let s = save(&disk, &out).unwrap();
        assert_eq!(s.threads, vec![2, 1]);
        assert_eq!(std::fs::read(&out).unwrap(), core);
        // Torn: the header still says in progress.
        let mut torn = h;
        torn.status = Status::InProgress;
        torn.written = 0;
        assert!(matches!(
            save(&disk_with(&torn, &core), &out),
            Err(Error::Incomplete(_))
        ));
        // Aborted.
        let mut ab = h;
        ab.status = Status::Aborted;
        ab.written = 4096;
        let e = save(&disk_with(&ab, &core), &out).unwrap_err();
        assert!(e.to_string().contains("aborted"), "{e}");
        // Corrupt data behind a complete header.
        let mut bad = core.clone();
        bad[100] ^= 1;
        let mut hb = h;
        hb.checksum ^= 0; // same header, different data
        let p = disk_with(&hb, &bad);
        assert!(matches!(save(&p, &out), Err(Error::Corrupt(_))));
        let _ = std::fs::remove_file(out);
    }
}
