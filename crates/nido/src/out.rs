//! Standard output of every command. Commands print with [`out!`] and
//! [`outln!`] instead of `print!`/`println!`: when the reader of the
//! output goes away (`nido network subscriptions --json | head -2`), the
//! write fails with `BrokenPipe` (Rust ignores SIGPIPE, so the write
//! returns EPIPE instead of killing the process), and `println!` would
//! panic with "failed printing to stdout". Here that ends the process
//! quietly, as a Unix tool killed by SIGPIPE ends: no message, exit status
//! [`CLOSED_PIPE_EXIT`]. Any other write error is reported on stderr with
//! exit status 1.

use std::fmt;
use std::io::{self, Write};

/// The exit status when stdout was closed: 128 + SIGPIPE (13), what a
/// shell reports for a tool that SIGPIPE ended.
pub(crate) const CLOSED_PIPE_EXIT: i32 = 128 + 13;

/// Writes `args` (and a newline if `newline`) to stdout and flushes it;
/// see the module documentation for what a failed write does.
pub(crate) fn write(args: fmt::Arguments<'_>, newline: bool) {
    let mut stdout = io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                stdout.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        drop(stdout);
        exit_on(&e);
    }
}

/// Ends the process after a failed write to stdout: quietly for a closed
/// pipe, with a message otherwise.
fn exit_on(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_PIPE_EXIT);
    }
    // stderr may be gone too; nothing more can be said then.
    let _ = writeln!(io::stderr(), "nido: writing to stdout: {e}");
    std::process::exit(1);
}

/// `print!` for commands: a closed stdout ends the process quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), false)
    };
}

/// `println!` for commands: a closed stdout ends the process quietly.
macro_rules! outln {
    () => {
        $crate::out::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), true)
    };
}

/// ISO 8601 UTC to the millisecond, the form every human-facing time of
/// nido takes (one definition: nido-deliver's, which owners' data carries).
pub(crate) use nido_deliver::iso8601;
