//! Standard output. A reader that goes away early (`deployctl history <fn> | head`) ends deployctl quietly
//! and with success: it read what it wanted. Any other failure to write is an error, never ignored.

use std::io::Write;

/// Print one line on standard output (see the module doc for a closed pipe).
macro_rules! say {
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}
pub(crate) use say;

pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("deployctl: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
