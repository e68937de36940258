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

/// `t` as an ISO 8601 UTC time to the millisecond (`2026-12-06T04:46:16.123Z`),
/// the form every human-facing time of nido takes.
pub(crate) fn iso8601(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date (the era-based
    // civil-from-days conversion: 400-year eras of 146,097 days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(super::iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796532376` : Sun Dec  6 04:46:16 UTC 2026
        assert_eq!(
            super::iso8601(UNIX_EPOCH + Duration::from_millis(1_796_532_376_123)),
            "2026-12-06T04:46:16.123Z"
        );
        // A leap day.
        assert_eq!(
            super::iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
