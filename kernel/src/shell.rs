//! The interactive shell (`shell> `), fed by the console input queue (serial
//! and USB keyboard). The commands are [`crate::command::COMMANDS`].

use crate::command::Console;
use crate::lineedit::{ByteDecoder, Edit, LineEditor};
use crate::print;

/// The shell prompt.
pub const PROMPT: &str = "shell> ";

struct Echo;

impl core::fmt::Write for Echo {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::console::_print(format_args!("{s}"));
        Ok(())
    }
}

/// Runs the shell forever on the calling thread.
pub fn run() -> ! {
    let mut dec = ByteDecoder::new();
    let mut ed = alloc::boxed::Box::new(LineEditor::new());
    print!("{PROMPT}");
    loop {
        let b = crate::console::read_byte();
        let Some(k) = dec.feed(b) else { continue };
        match ed.key(k, &mut Echo) {
            Edit::Pending => continue,
            Edit::Cancelled => {}
            Edit::Done => {
                let line = alloc::string::String::from(ed.line());
                ed.clear();
                execute(&line);
            }
        }
        print!("{PROMPT}");
    }
}

/// Runs one shell command line.
pub fn execute(line: &str) {
    crate::command::execute(Console::Shell, line, &mut Echo);
}
