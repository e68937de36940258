//! `nido`: one binary for every nido job. This file only parses the command
//! line and maps errors to exit codes; each subcommand lives in `cmd/`.
//!
//! Exit codes: 0 success, 1 the operation failed (a MAC that does not
//! verify, a malformed PDU), 2 bad usage (bad hex, wrong length, bad flag),
//! 141 (128 + SIGPIPE) stdout was closed before the output was written
//! (`nido ... | head`): the command ends quietly, as Unix tools do (see
//! `out.rs`; commands print with `out!`/`outln!`, never `outln!`).

#[macro_use]
mod out;
mod args;
mod cmd;
mod log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nido: bring cellular IoT devices that hold only a manufacturer certificate
/// into a 5G network: onboarding, provisioning, validation, cheap data bursts.
#[derive(Parser)]
#[command(name = "nido", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole system in one process: a manufacturer, a network, an
    /// owner, a fleet of devices (seven of them to be refused: revoked,
    /// expired, foreign, clone, ...) over a simulated link; every good device
    /// onboards, gets its subscription, validates it, sends a burst. Prints
    /// a report (`--json`: documented fields).
    Demo(cmd::demo::DemoArgs),
    /// 3GPP security functions for debugging a SIM or a core: MILENAGE,
    /// NEA/NIA, SUCI de-concealment, the 5G key chain. Prints JSON.
    #[command(subcommand)]
    Crypto(cmd::crypto::Crypto),
    /// 5GS NAS messages: decode (and verify/decipher) a PDU.
    #[command(subcommand)]
    Nas(cmd::nas::Nas),
    /// The manufacturer's PKI: root and issuing CA, device IDevIDs and
    /// factory bundles, claim-code labels and the signed claims file, the DCS
    /// certificate, revocation, CRLs.
    #[command(subcommand)]
    Mfr(cmd::mfr::Mfr),
    /// A manufacturer's DCS as a RADIUS server that every operator's
    /// network asks: EAP-TLS 1.3 over RADIUS, Access-Accept with the MSK
    /// and the device serial, an audit trail per operator.
    #[command(subcommand)]
    Dcs(cmd::dcs::Dcs),
    /// An operator's network: init, enroll manufacturers, serve devices
    /// over UDP, list devices, subscriptions and the audit trail.
    #[command(subcommand)]
    Network(cmd::network::Network),
    /// Owners: accounts, device claims, third-party credentials.
    #[command(subcommand)]
    Owner(cmd::owner::OwnerCmd),
    /// A fleet of simulated devices (from factory bundles) against a running
    /// `nido network serve`, with faults on the link; prints a report.
    Sim(cmd::sim::SimArgs),
    /// A device process from its factory bundle.
    #[command(subcommand)]
    Device(cmd::device::DeviceCmd),
    /// Load generators that measure a server from outside: `bench radius`
    /// (EAP-TLS 1.3 over RADIUS against `nido dcs serve` or FreeRADIUS).
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(&a),
        Command::Sim(a) => cmd::sim::run(&a),
        Command::Crypto(c) => cmd::crypto::run(c),
        Command::Nas(c) => cmd::nas::run(c),
        Command::Mfr(c) => cmd::mfr::run(c),
        Command::Dcs(c) => cmd::dcs::run(c),
        Command::Network(c) => cmd::network::run(c),
        Command::Owner(c) => cmd::owner::run(c),
        Command::Device(c) => cmd::device::run_cmd(c),
        Command::Bench(b) => cmd::bench::run(b),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.downcast_ref::<args::UsageError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("nido: {e:#}");
            ExitCode::from(code)
        }
    }
}
