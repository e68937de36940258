//! Every command that prints ends quietly when its reader is gone
//! (`nido network subscriptions --json | head -2`): no "failed printing to
//! stdout", no panic or backtrace, exit status 141 (128 + SIGPIPE) as for a
//! Unix tool that SIGPIPE ended. The tests give `nido` a stdout whose read
//! end is already closed, so its first write fails with EPIPE whatever the
//! timing; the same command with an open stdout is the control.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Scratch, ok};

/// The exit status of a command whose stdout was closed.
const CLOSED_PIPE: i32 = 141;

/// Runs `nido args` in `cwd` with a stdout nobody reads (the pipe's read
/// end closed before the process starts).
fn closed_stdout(args: &[&str], cwd: &Path) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// `nido args` printed something with an open stdout, and with a closed
/// one ended quietly with status 141.
fn quiet_on_closed_pipe(args: &[&str], cwd: &Path) {
    let printed = ok(args, cwd);
    assert!(!printed.is_empty(), "nido {args:?} prints nothing");
    assert_quiet(args, &closed_stdout(args, cwd));
}

/// `out` is that of a command that ended quietly on its closed stdout.
fn assert_quiet(args: &[&str], out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(CLOSED_PIPE),
        "nido {args:?}: {:?}, stderr: {stderr}",
        out.status
    );
    for noise in ["Broken pipe", "panicked", "failed printing", "backtrace"] {
        assert!(
            !stderr.contains(noise),
            "nido {args:?} said {noise:?}: {stderr}"
        );
    }
    assert!(stderr.is_empty(), "nido {args:?}: {stderr}");
}

#[test]
fn one_shot_commands_end_quietly_when_their_reader_is_gone() {
    let s = Scratch::new("closed-pipe-once");
    let d = &s.0;
    // A REGISTRATION REJECT #22 with T3346 10 min (TS 24.501 §8.2.9).
    quiet_on_closed_pipe(&["nas", "decode", "7e0044165f012a"], d);
    quiet_on_closed_pipe(&["nas", "decode", "--json", "7e0044165f012a"], d);
    // TS 35.208 test set 1.
    quiet_on_closed_pipe(
        &[
            "crypto",
            "milenage",
            "--k",
            "465b5ce8b199b49faa5f0a2ee238a6bc",
            "--op",
            "cdc202d5123e20f62b6d676ac72cb318",
            "--rand",
            "23553cbe9637a89d218ae64dae47bf35",
            "--sqn",
            "ff9bb4d0b607",
            "--amf",
            "b9b9",
        ],
        d,
    );
    // Commands that create something print once: each with a closed
    // stdout, then the work it did before printing is checked.
    let init = ["mfr", "init", "--dir", "mfr", "--name", "Acme Sensors"];
    assert_quiet(&init, &closed_stdout(&init, d));
    let issue = [
        "mfr", "issue", "--dir", "mfr", "--count", "1", "--out", "f1", "--json",
    ];
    assert_quiet(&issue, &closed_stdout(&issue, d));
    assert!(d.join("f1").is_dir());
}
