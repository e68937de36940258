//! What a person running `cargo test` sees: this test binary runs itself
//! again (only its `probe` test, libtest capturing output as it does by
//! default) with the environment of a tier or of a machine without a tool,
//! and reads the child's standard error and exit status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::process::{Command, Output};

/// Set in the child: which check `probe` makes.
const PROBE: &str = "NIDO_TESTKIT_PROBE";

/// In the child, one check; in a plain run, nothing.
#[test]
fn probe() {
    match std::env::var(PROBE).as_deref() {
        Ok("tshark") => {
            if nido_testkit::tool("probe", "tshark").is_none() {
                return;
            }
            println!("tshark found");
        }
        Ok("pycrate-then-openssl") => {
            if !nido_testkit::pycrate("probe") || nido_testkit::tool("probe", "openssl").is_none() {
                return;
            }
            println!("both found");
        }
        Ok("slow") => {
            if !nido_testkit::slow_tier("probe") {
                return;
            }
            println!("slow body ran");
        }
        Ok("postgres") => {
            if nido_testkit::postgres("probe").is_none() {
                return;
            }
            println!("postgres found");
        }
        _ => {}
    }
}

fn child(probe: &str, env: &[(&str, &str)]) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe", "--test-threads", "1"])
        .env(PROBE, probe)
        .env_remove("NIDO_REQUIRE_TOOLS")
        .env_remove("NIDO_TEST_TIER")
        .env_remove("NIDO_TOOLS_MISSING")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn skipped_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("SKIPPED"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_missing_tool_is_one_skipped_line_that_libtest_does_not_capture() {
    let out = child("tshark", &[("NIDO_TOOLS_MISSING", "tshark")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(skipped_lines(&out), ["SKIPPED probe: tshark not installed"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("tshark found"));
}

#[test]
fn a_test_with_two_missing_tools_says_so_once() {
    let out = child("pycrate-then-openssl", &[("NIDO_TOOLS_MISSING", "all")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        skipped_lines(&out),
        ["SKIPPED probe: pycrate not installed"]
    );
}

#[test]
fn a_missing_tool_fails_the_test_when_tools_are_required() {
    let out = child(
        "tshark",
        &[
            ("NIDO_TOOLS_MISSING", "tshark"),
            ("NIDO_REQUIRE_TOOLS", "1"),
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(skipped_lines(&out).is_empty());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("tshark not installed, and NIDO_REQUIRE_TOOLS is set"),
        "{out:?}"
    );
}

#[test]
fn an_absent_postgres_is_skipped_with_its_url_and_no_password() {
    let out = child(
        "postgres",
        &[(
            "NIDO_TEST_POSTGRES",
            "postgres://nido:s3cret@127.0.0.1:1/nido",
        )],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        skipped_lines(&out),
        ["SKIPPED probe: PostgreSQL (postgres://nido@127.0.0.1:1/nido) not installed"]
    );
}

#[test]
fn slow_tests_run_in_the_slow_tier_only() {
    let fast = child("slow", &[]);
    assert!(fast.status.success(), "{fast:?}");
    assert_eq!(
        skipped_lines(&fast),
        ["SKIPPED probe: slow tier (NIDO_TEST_TIER=slow)"]
    );
    for tier in ["slow", "all"] {
        let out = child(
            "slow",
            &[("NIDO_TEST_TIER", tier), ("NIDO_REQUIRE_TOOLS", "1")],
        );
        assert!(out.status.success(), "{out:?}");
        assert!(skipped_lines(&out).is_empty(), "{out:?}");
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "probe", "--nocapture"])
            .env(PROBE, "slow")
            .env("NIDO_TEST_TIER", tier)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("slow body ran"),
            "{out:?}"
        );
    }
    let typo = child("slow", &[("NIDO_TEST_TIER", "slwo")]);
    assert!(!typo.status.success(), "{typo:?}");
}
