//! The log of the long-running commands (`network serve`, `dcs serve`):
//! one line per record on stderr, filtered by `NIDO_LOG` (default `info`).
//!
//! A server logs a line per device event, thousands a second at fleet
//! scale. The lines go through a queue to one writer thread, which writes
//! whatever has queued with one system call and flushes as soon as the
//! queue is empty: a line is on stderr moments after it was logged, and a
//! busy protocol thread never waits on a `write` per line.
//!
//! Invariants: no line is dropped while the server runs (a full queue,
//! 128,000 lines, makes the logger wait rather than lose one). When the
//! [`Guard`] returned by [`init`] drops, the writer gets about a second to
//! write what is queued (tracing-appender's limit), so the caller holds it
//! until it returns. A process that aborts (the crash-point hooks of the
//! durability tests) loses the lines still queued, as it would lose a
//! buffered stderr's.

use std::io::{BufWriter, Stderr};

use anyhow::{Result, anyhow};

/// Keeps the writer thread; dropping it writes the queued lines and stops
/// the thread.
pub(crate) type Guard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the log for this process. Call it once, and hold the guard.
pub(crate) fn init() -> Result<Guard> {
    let out: BufWriter<Stderr> = BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("nido-log")
        .finish(out);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIDO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .map_err(|e| anyhow!("logging: {e}"))?;
    Ok(guard)
}
