//! The commands of `shell> ` and `db> `, each once. Table order is `help`
//! order.
//!
//! `mem` is two entries, one per console: the shell's shows the memory map,
//! the panic console's dumps RAM. Names are unique within each console.

#![forbid(unsafe_code)]

use core::fmt::Write;

use super::parse::{Args, Command, Console, Offered, write_help};

/// One table entry; the body is named in the kernel build only.
macro_rules! command {
    ($name:literal, $synopsis:literal, $offered:ident, $run:path, $help:literal) => {
        Command {
            name: $name,
            synopsis: $synopsis,
            help: $help,
            offered: Offered::$offered,
            #[cfg(target_os = "none")]
            run: $run,
        }
    };
}

/// Every console command.
pub static COMMANDS: &[Command] = &[
    command!("help", "", Both, help, "this list"),
    command!("echo", "TEXT", Shell, super::shell::echo, "print TEXT"),
    command!("uptime", "", Shell, super::shell::uptime, "time since boot"),
    command!(
        "mem",
        "",
        Shell,
        super::shell::mem,
        "memory map and allocator use"
    ),
    command!(
        "cpus",
        "",
        Both,
        super::shared::cpus,
        "CPUs: APIC id, state, ticks, and the thread or (at panic) RIP"
    ),
    command!(
        "bt",
        "[cpu]",
        Panic,
        super::debug::bt,
        "backtrace of the panic thread or of a stopped CPU"
    ),
    command!(
        "regs",
        "[cpu]",
        Panic,
        super::debug::regs,
        "registers of the panic CPU or of a stopped CPU"
    ),
    command!(
        "ps",
        "",
        Both,
        super::shared::ps,
        "threads: state, CPU, run time"
    ),
    command!(
        "mem",
        "ADDR [LEN]",
        Panic,
        super::debug::mem,
        "hex dump of RAM (unmapped addresses and devices are refused)"
    ),
    command!("log", "", Panic, super::debug::log, "recent kernel log"),
    command!(
        "spawn-load",
        "N",
        Shell,
        super::shell::spawn_load,
        "start N busy threads hammering shared locks"
    ),
    command!("kill-load", "", Shell, super::shell::kill_load, "stop them"),
    command!(
        "panic",
        "[KIND]",
        Both,
        super::shell::panic,
        "panic now (`panic help` lists kinds; at a break-in: becomes a panic)"
    ),
    command!(
        "break",
        "",
        Shell,
        super::shell::break_in,
        "break into the debugger (`continue` there resumes)"
    ),
    command!(
        "sleep",
        "MS",
        Shell,
        super::shell::sleep,
        "sleep MS ms (break-ins meanwhile do not count)"
    ),
    command!(
        "cli-spin",
        "SECS",
        Shell,
        super::shell::cli_spin,
        "test: another CPU spins with interrupts off for SECS s"
    ),
    command!(
        "continue",
        "",
        Panic,
        super::debug::continue_,
        "resume the system after a break-in"
    ),
    command!(
        "bench",
        "",
        Shell,
        super::shell::bench,
        "lock, context switch and IPI figures"
    ),
    command!(
        "lsusb",
        "",
        Both,
        super::shared::lsusb,
        "USB controller, ports and devices"
    ),
    command!(
        "kbd",
        "",
        Both,
        super::shared::kbd,
        "keyboard layout, repeat, LEDs, counters"
    ),
    command!(
        "dump",
        "[full]",
        Panic,
        super::debug::dump,
        "write a crash dump (minimal, or all RAM); Ctrl-C aborts"
    ),
    command!(
        "reboot",
        "",
        Both,
        super::shared::reboot,
        "reset the machine"
    ),
    command!(
        "halt",
        "",
        Panic,
        super::debug::halt,
        "stop here for good (no reset, no power-off)"
    ),
    command!(
        "poweroff",
        "",
        Both,
        super::shared::poweroff,
        "switch the machine off"
    ),
];

/// `help`: the commands of this console.
pub fn help(_: &Args<'_>, w: &mut dyn Write, console: Console) {
    let _ = write_help(COMMANDS, console, w);
}

/// Runs one command line in `console`, output to `w`.
#[cfg(target_os = "none")]
pub fn execute(console: Console, line: &str, w: &mut dyn Write) {
    match super::parse::lookup(COMMANDS, console, line) {
        Ok(None) => {}
        Ok(Some((command, args))) => (command.run)(&args, w, console),
        Err(unknown) => {
            let _ = writeln!(w, "{unknown}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{cpu_number, dump_full, load_count, lookup, mem_range};
    use super::*;

    const BOTH: [Console; 2] = [Console::Shell, Console::Panic];

    fn offered(console: Console) -> Vec<&'static str> {
        COMMANDS
            .iter()
            .filter(|c| c.offered.includes(console))
            .map(|c| c.name)
            .collect()
    }

    fn help_text(console: Console) -> String {
        let mut s = String::new();
        help(&found(console, "help").1, &mut s, console);
        s
    }

    fn found(console: Console, line: &str) -> (&'static Command, Args<'_>) {
        lookup(COMMANDS, console, line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .unwrap_or_else(|| panic!("{line:?}: blank"))
    }

    #[test]
    fn names_are_single_words_unique_in_each_console() {
        for console in BOTH {
            let names = offered(console);
            for (i, n) in names.iter().enumerate() {
                assert!(!n.is_empty() && !n.contains(char::is_whitespace), "{n:?}");
                assert!(!names[..i].contains(n), "{n} twice in {console:?}");
            }
        }
    }

    #[test]
    fn every_entry_has_one_line_of_help() {
        for c in COMMANDS {
            assert!(!c.help.trim().is_empty(), "{}: no help", c.name);
            assert!(
                !c.help.contains('\n') && !c.synopsis.contains('\n'),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn each_console_offers_its_commands() {
        assert_eq!(
            offered(Console::Shell),
            [
                "help",
                "echo",
                "uptime",
                "mem",
                "cpus",
                "ps",
                "spawn-load",
                "kill-load",
                "panic",
                "break",
                "sleep",
                "cli-spin",
                "bench",
                "lsusb",
                "kbd",
                "reboot",
                "poweroff"
            ]
        );
        assert_eq!(
            offered(Console::Panic),
            [
                "help", "cpus", "bt", "regs", "ps", "mem", "log", "panic", "continue", "lsusb",
                "kbd", "dump", "reboot", "halt", "poweroff"
            ]
        );
    }

    #[test]
    fn help_lists_exactly_the_commands_of_its_console() {
        for console in BOTH {
            let text = help_text(console);
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("commands:"));
            let listed: Vec<&str> = lines
                .map(|l| {
                    assert!(l.starts_with("  "), "{l:?}");
                    l.split_whitespace().next().unwrap()
                })
                .collect();
            assert_eq!(listed, offered(console), "{console:?}:\n{text}");
            // The help column lines up.
            let at: Vec<usize> = text
                .lines()
                .skip(1)
                .zip(COMMANDS.iter().filter(|c| c.offered.includes(console)))
                .map(|(l, c)| l.find(c.help).unwrap())
                .collect();
            assert!(at.windows(2).all(|w| w[0] == w[1]), "{text}");
        }
        assert!(help_text(Console::Shell).contains("  spawn-load N "));
        assert!(help_text(Console::Panic).contains("  mem ADDR [LEN] "));
    }

    #[test]
    fn lookup_finds_each_entry_in_its_consoles() {
        for c in COMMANDS {
            for console in BOTH.into_iter().filter(|&k| c.offered.includes(k)) {
                let (e, args) = found(console, c.name);
                assert!(core::ptr::eq(e, c), "{} in {console:?}", c.name);
                assert_eq!(args.name(), c.name);
                assert_eq!(args.first(), None);
            }
        }
        assert_eq!(found(Console::Shell, "mem").0.synopsis, "");
        assert_eq!(found(Console::Panic, "mem 0x1000").0.synopsis, "ADDR [LEN]");
        let (e, args) = found(Console::Panic, "  bt\t 1  ");
        assert_eq!((e.name, args.first(), args.get(1)), ("bt", Some("1"), None));
    }

    #[test]
    fn blank_lines_run_nothing() {
        for console in BOTH {
            for line in ["", "   ", "\t "] {
                assert!(matches!(lookup(COMMANDS, console, line), Ok(None)));
            }
        }
    }

    #[test]
    fn unknown_commands_say_so() {
        let unknown = |console, line| match lookup(COMMANDS, console, line) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{line:?} found in {console:?}"),
        };
        assert_eq!(
            unknown(Console::Shell, "no-such-thing"),
            "unknown command: no-such-thing"
        );
        assert_eq!(
            unknown(Console::Panic, "bogus x y"),
            "unknown command: bogus"
        );
        assert_eq!(unknown(Console::Shell, "abCDEF"), "unknown command: abCDEF");
        assert_eq!(unknown(Console::Shell, "HELP"), "unknown command: HELP");
        // Offered by the other console only.
        assert_eq!(unknown(Console::Shell, "bt 1"), "unknown command: bt");
        assert_eq!(unknown(Console::Shell, "halt"), "unknown command: halt");
        assert_eq!(unknown(Console::Panic, "echo hi"), "unknown command: echo");
        assert_eq!(
            unknown(Console::Panic, "spawn-load 8"),
            "unknown command: spawn-load"
        );
    }

    #[test]
    fn echo_gets_the_rest_of_the_line() {
        let rest = |line| found(Console::Shell, line).1.rest();
        assert_eq!(rest("echo Hello, serial world!"), "Hello, serial world!");
        assert_eq!(rest("  echo   two  spaces  "), "two  spaces  ");
        assert_eq!(rest("echo"), "");
    }

    #[test]
    fn arguments_are_checked_with_the_existing_messages() {
        let err = |line: &str, f: fn(&Args<'_>) -> Option<String>| {
            f(&found(Console::Panic, line).1).unwrap()
        };
        let cpu = |a: &Args<'_>| cpu_number(a, 0, 2).err().map(|e| e.to_string());
        assert_eq!(err("bt x", cpu), "bt: expected a CPU number");
        assert_eq!(err("bt 99", cpu), "bt: no such CPU");
        assert_eq!(err("regs 2", cpu), "regs: no such CPU");
        assert_eq!(cpu_number(&found(Console::Panic, "regs 1").1, 0, 2), Ok(1));
        let mem = |a: &Args<'_>| mem_range(a).err().map(|e| e.to_string());
        assert_eq!(
            err("mem 0x8000000000000000", mem),
            "mem: 0x8000000000000000 is not a canonical address"
        );
        assert_eq!(
            mem_range(&found(Console::Panic, "mem 0x4000deadb000 16").1),
            Ok((0x4000_dead_b000, 16))
        );
        let dump = |a: &Args<'_>| dump_full(a).err().map(|e| e.to_string());
        assert_eq!(err("dump all", dump), "dump: usage: dump [full]");
        let load = load_count(&found(Console::Shell, "spawn-load 65").1);
        assert_eq!(
            load.unwrap_err().to_string(),
            "usage: spawn-load N (N <= 64)"
        );
    }
}
