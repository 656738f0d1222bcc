//! Console command parsing: a line split into a command and its arguments,
//! the command found in a table for one console, the arguments checked, and
//! `help` written from the table. No allocation and no locks (the panic
//! console uses all of it).

#![forbid(unsafe_code)]

use core::fmt::{self, Display, Write};

/// The console a command runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The normal shell (`shell> `): locks, allocation and other threads.
    Shell,
    /// The panic console (`db> `): one CPU, no locks, no allocation.
    Panic,
}

/// The consoles that offer a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// `shell> ` only.
    Shell,
    /// `db> ` only.
    Panic,
    /// Both consoles.
    Both,
}

impl Offered {
    /// Does `console` offer a command offered here?
    pub const fn includes(self, console: Console) -> bool {
        matches!(
            (self, console),
            (Offered::Both, _)
                | (Offered::Shell, Console::Shell)
                | (Offered::Panic, Console::Panic)
        )
    }
}

/// What runs a command: its arguments, where its output goes, and which
/// console it runs in.
pub type Run = fn(&Args<'_>, &mut dyn Write, Console);

/// One entry of a command table.
pub struct Command {
    /// The word that runs it.
    pub name: &'static str,
    /// Its arguments as `help` shows them (`""` for none).
    pub synopsis: &'static str,
    /// One line for `help`.
    pub help: &'static str,
    /// The consoles that offer it.
    pub offered: Offered,
    /// Its body (in the kernel build only: the bodies reach the hardware).
    #[cfg(target_os = "none")]
    pub run: Run,
}

impl Command {
    /// `name synopsis`, as `help` shows it.
    fn label_len(&self) -> usize {
        match self.synopsis {
            "" => self.name.len(),
            s => self.name.len() + 1 + s.len(),
        }
    }
}

/// The arguments of one command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args<'a> {
    name: &'static str,
    rest: &'a str,
}

impl<'a> Args<'a> {
    /// The command these are arguments of.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Everything after the command word, leading whitespace removed (`echo`).
    pub fn rest(&self) -> &'a str {
        self.rest
    }

    /// The `i`th argument word (0 = the first after the command).
    pub fn get(&self, i: usize) -> Option<&'a str> {
        self.rest.split_whitespace().nth(i)
    }

    /// The first argument word.
    pub fn first(&self) -> Option<&'a str> {
        self.get(0)
    }

    fn error(&self, kind: ArgErrorKind) -> ArgError {
        ArgError {
            command: self.name,
            kind,
        }
    }
}

/// A line whose first word no command of its console has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unknown<'a>(pub &'a str);

impl Display for Unknown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown command: {}", self.0)
    }
}

/// Arguments a command refused; `Display` gives the line the console prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgError {
    command: &'static str,
    kind: ArgErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgErrorKind {
    /// `command: reason`.
    Reason(&'static str),
    /// `command: ADDR is not a canonical address`.
    NotCanonical(u64),
    /// The whole line as given.
    Line(&'static str),
}

impl Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ArgErrorKind::Reason(r) => write!(f, "{}: {r}", self.command),
            ArgErrorKind::NotCanonical(a) => {
                write!(f, "{}: {a:#x} is not a canonical address", self.command)
            }
            ArgErrorKind::Line(l) => f.write_str(l),
        }
    }
}

/// Finds the command of `line` among those `console` offers: `Ok(None)` for
/// a blank line, `Err` for a word no such command has.
pub fn lookup<'a>(
    table: &'static [Command],
    console: Console,
    line: &'a str,
) -> Result<Option<(&'static Command, Args<'a>)>, Unknown<'a>> {
    let line = line.trim_start();
    if line.is_empty() {
        return Ok(None);
    }
    let end = line.find(char::is_whitespace).unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    let command = table
        .iter()
        .find(|c| c.name == word && c.offered.includes(console))
        .ok_or(Unknown(word))?;
    let args = Args {
        name: command.name,
        rest: rest.trim_start(),
    };
    Ok(Some((command, args)))
}

/// Writes `help` for `console`: every command it offers, in table order.
pub fn write_help(table: &[Command], console: Console, w: &mut dyn Write) -> fmt::Result {
    let offered = || table.iter().filter(|c| c.offered.includes(console));
    let width = offered().map(Command::label_len).max().unwrap_or(0);
    writeln!(w, "commands:")?;
    for c in offered() {
        write!(w, "  {}", c.name)?;
        if !c.synopsis.is_empty() {
            write!(w, " {}", c.synopsis)?;
        }
        writeln!(w, "{:pad$}  {}", "", c.help, pad = width - c.label_len())?;
    }
    Ok(())
}

/// Parses a number: hex with `0x`, else decimal.
pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The CPU named by the first argument of `bt`/`regs`: none means `current`
/// (the panic CPU); otherwise a number below `count`.
pub fn cpu_number(args: &Args<'_>, current: usize, count: usize) -> Result<usize, ArgError> {
    match args.first() {
        None => Ok(current),
        Some(s) => {
            let n =
                parse_num(s).ok_or(args.error(ArgErrorKind::Reason("expected a CPU number")))?;
            if (n as usize) < count {
                Ok(n as usize)
            } else {
                Err(args.error(ArgErrorKind::Reason("no such CPU")))
            }
        }
    }
}

/// Longest `mem` dump.
pub const MEM_MAX: u64 = 4096;
/// `mem` length when none is given.
pub const MEM_DEFAULT: u64 = 64;

/// `mem ADDR [LEN]`: a canonical address and a length of 1 to [`MEM_MAX`]
/// bytes (longer ones are cut to it).
pub fn mem_range(args: &Args<'_>) -> Result<(u64, u64), ArgError> {
    let Some(addr) = args.first().and_then(parse_num) else {
        return Err(args.error(ArgErrorKind::Reason(
            "usage: mem ADDR [LEN] (ADDR in hex with 0x, or decimal)",
        )));
    };
    let len = match args.get(1).map(parse_num) {
        None => MEM_DEFAULT,
        Some(Some(n)) if n > 0 => n.min(MEM_MAX),
        Some(_) => return Err(args.error(ArgErrorKind::Reason("bad length"))),
    };
    if !is_canonical(addr) {
        return Err(args.error(ArgErrorKind::NotCanonical(addr)));
    }
    Ok((addr, len))
}

/// Is `addr` a canonical x86_64 address (48-bit, bits 63..47 all equal)?
pub fn is_canonical(addr: u64) -> bool {
    // Shift the sign bit (47) to the top and back: only a sign-extended
    // address survives unchanged.
    (((addr << 16) as i64) >> 16) as u64 == addr
}

/// `dump [full]`: is a full dump asked for?
pub fn dump_full(args: &Args<'_>) -> Result<bool, ArgError> {
    match args.first() {
        None => Ok(false),
        Some("full") => Ok(true),
        Some(_) => Err(args.error(ArgErrorKind::Reason("usage: dump [full]"))),
    }
}

/// Most load threads `spawn-load` starts.
pub const LOAD_MAX: usize = 64;

/// `spawn-load N`: how many load threads (at most [`LOAD_MAX`]).
pub fn load_count(args: &Args<'_>) -> Result<usize, ArgError> {
    match args.first().and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if n <= LOAD_MAX => Ok(n),
        _ => Err(args.error(ArgErrorKind::Line("usage: spawn-load N (N <= 64)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rest: &str) -> Args<'_> {
        Args { name: "cmd", rest }
    }

    fn message(r: Result<impl fmt::Debug, ArgError>) -> String {
        r.expect_err("an argument error").to_string()
    }

    #[test]
    fn parse_num_takes_hex_with_0x_and_decimal() {
        assert_eq!(parse_num("0x10"), Some(16));
        assert_eq!(parse_num("0X1f"), Some(31));
        assert_eq!(parse_num(" 42 "), Some(42));
        assert_eq!(parse_num("0x4000deadb000"), Some(0x4000_dead_b000));
        for bad in ["", "0x", "-1", "zz", "1f", "0x1g", "99999999999999999999"] {
            assert_eq!(parse_num(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn words_and_rest() {
        let a = args("one  two\tthree  ");
        assert_eq!(a.first(), Some("one"));
        assert_eq!(a.get(1), Some("two"));
        assert_eq!(a.get(2), Some("three"));
        assert_eq!(a.get(3), None);
        assert_eq!(a.rest(), "one  two\tthree  ");
        assert_eq!(args("").first(), None);
    }

    #[test]
    fn cpu_numbers() {
        assert_eq!(cpu_number(&args(""), 3, 4), Ok(3));
        assert_eq!(cpu_number(&args("0x1"), 0, 4), Ok(1));
        assert_eq!(cpu_number(&args("3 junk"), 0, 4), Ok(3));
        let a = Args {
            name: "bt",
            rest: "x",
        };
        assert_eq!(message(cpu_number(&a, 0, 4)), "bt: expected a CPU number");
        let a = Args {
            name: "regs",
            rest: "4",
        };
        assert_eq!(message(cpu_number(&a, 0, 4)), "regs: no such CPU");
    }

    #[test]
    fn mem_ranges() {
        let mem = |rest| mem_range(&Args { name: "mem", rest });
        assert_eq!(mem("0x8000 4"), Ok((0x8000, 4)));
        assert_eq!(mem("4096"), Ok((4096, MEM_DEFAULT)));
        assert_eq!(mem("0x1000 99999"), Ok((0x1000, MEM_MAX)));
        assert_eq!(
            mem("0xffff800000000000 16"),
            Ok((0xffff_8000_0000_0000, 16))
        );
        assert_eq!(
            message(mem("")),
            "mem: usage: mem ADDR [LEN] (ADDR in hex with 0x, or decimal)"
        );
        assert_eq!(message(mem("nope 16")), message(mem("")));
        assert_eq!(message(mem("0x1000 0")), "mem: bad length");
        assert_eq!(message(mem("0x1000 x")), "mem: bad length");
        assert_eq!(
            message(mem("0x8000000000000000")),
            "mem: 0x8000000000000000 is not a canonical address"
        );
        assert_eq!(
            message(mem("0x0000800000000000 4")),
            "mem: 0x800000000000 is not a canonical address"
        );
    }

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x0000_7fff_ffff_ffff));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(is_canonical(u64::MAX));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0xfff7_ffff_ffff_ffff));
    }

    #[test]
    fn dump_and_spawn_load_arguments() {
        let dump = |rest| dump_full(&Args { name: "dump", rest });
        assert_eq!(dump(""), Ok(false));
        assert_eq!(dump("full"), Ok(true));
        assert_eq!(message(dump("all")), "dump: usage: dump [full]");
        let load = |rest| {
            load_count(&Args {
                name: "spawn-load",
                rest,
            })
        };
        assert_eq!(load("8"), Ok(8));
        assert_eq!(load("64"), Ok(64));
        for bad in ["", "65", "-1", "x"] {
            assert_eq!(message(load(bad)), "usage: spawn-load N (N <= 64)");
        }
    }

    #[test]
    fn offered_includes() {
        assert!(Offered::Both.includes(Console::Shell) && Offered::Both.includes(Console::Panic));
        assert!(
            Offered::Shell.includes(Console::Shell) && !Offered::Shell.includes(Console::Panic)
        );
        assert!(
            Offered::Panic.includes(Console::Panic) && !Offered::Panic.includes(Console::Shell)
        );
    }
}
