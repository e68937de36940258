//! Argument parsing shared by subcommands: hex with the argument's name in
//! every error, so a typo is a one-line message and exit code 2.

use thiserror::Error;

/// A bad argument: printed as one line, exit code 2.
#[derive(Debug, Error)]
#[error("{arg}: {problem}")]
pub(crate) struct UsageError {
    arg: &'static str,
    problem: String,
}

impl UsageError {
    pub(crate) fn new(arg: &'static str, problem: impl Into<String>) -> Self {
        Self {
            arg,
            problem: problem.into(),
        }
    }
}

/// Hex of any length (either case, optional `0x`, no separators).
pub(crate) fn hex_any(arg: &'static str, text: &str) -> Result<Vec<u8>, UsageError> {
    let t = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    hex::decode(t).map_err(|e| {
        let problem = match e {
            hex::FromHexError::OddLength => format!("odd number of hex digits ({})", t.len()),
            hex::FromHexError::InvalidHexCharacter { c, index } => {
                format!("{c:?} at position {index} is not a hex digit")
            }
            other => other.to_string(),
        };
        UsageError::new(arg, problem)
    })
}

/// Hex of exactly `N` octets.
pub(crate) fn hex_n<const N: usize>(arg: &'static str, text: &str) -> Result<[u8; N], UsageError> {
    let bytes = hex_any(arg, text)?;
    bytes.as_slice().try_into().map_err(|_| {
        UsageError::new(
            arg,
            format!(
                "expected {} hex digits ({N} octets), got {}",
                2 * N,
                2 * bytes.len()
            ),
        )
    })
}

/// A small unsigned number within `range`.
pub(crate) fn number_in(
    arg: &'static str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, UsageError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(UsageError::new(
            arg,
            format!("{value} is not in {}..={}", range.start(), range.end()),
        ))
    }
}

/// A device's protocol timers that a test, a demonstration or a load run
/// may shorten (the defaults are TS 24.501 §10.2's), for `nido device run`
/// and `nido sim` alike: the timers are inputs of the device's state
/// machine, so nothing waits through a real 12-minute T3502 unless asked.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DeviceTimerArgs {
    /// T3510, in seconds: how long a registration may go silent before the
    /// device starts it again (15, TS 24.501 §10.2, by default; nido
    /// restarts it on every message of the registration).
    #[arg(long, default_value_t = 15, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) t3510: u64,
    /// T3580, in seconds: how long a device waits for the answer to its
    /// PDU SESSION ESTABLISHMENT REQUEST (16, TS 24.501 §10.3, by default)
    /// before it sends it again; a network that lost the request (it
    /// restarted) costs a device five of these before it onboards again.
    #[arg(long, default_value_t = 16, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub(crate) t3580: u64,
    /// The provisioning exchange's CoAP retransmission timeout, in seconds
    /// (RFC 7252 ACK_TIMEOUT, fixed: NAS carries it; 8 by default). A
    /// network that lost the exchange (it restarted) costs a device four
    /// of these before it onboards again.
    #[arg(long, default_value_t = 8, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub(crate) coap_timeout: u64,
    /// T3502, in seconds: how long a device waits after five failed
    /// registration attempts (TS 24.501 §5.5.1.2.7; 720, the spec's 12
    /// min, by default). Shorter for a test over a very lossy link.
    #[arg(long, default_value_t = 720, value_name = "SECONDS")]
    pub(crate) t3502: u64,
    /// The shortest back-off, in seconds, a device takes after a
    /// congestion reject (#22) that came without integrity protection, as
    /// every admission-control reject does (it precedes authentication):
    /// the device does not use the reject's T3346 then (it may be forged)
    /// but a value drawn from this range (TS 24.501 §5.5.1.2.5; the
    /// default range is 15-30 min). A shorter range for load tests against
    /// a network with `--max-procedures`.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub(crate) unprotected_t3346_min: u64,
    /// The longest such back-off, in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub(crate) unprotected_t3346_max: u64,
    /// The first wait, in seconds, after #74 "temporarily not authorized
    /// for this SNPN" (each further #74 in a row doubles it, up to 30
    /// min). 15 by default: longer than a nido network's clone window (10
    /// s), so a device restarted right after a crash gets through at its
    /// next try. Shorter only against a network with a shorter window.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub(crate) not_authorized_retry: u64,
    /// How long, in seconds, a device stays connected after its last NAS
    /// message (10 by default). A burst while connected goes in an UL NAS
    /// TRANSPORT, which nothing acknowledges; from idle it goes in a
    /// CONTROL PLANE SERVICE REQUEST, which the network answers (SERVICE
    /// ACCEPT) only once the burst is durable, and which the device sends
    /// again until then. 0: every burst from idle, each acknowledged.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub(crate) idle_after: u64,
}

impl DeviceTimerArgs {
    /// The device's timers: these values, the rest as
    /// [`nido_ue::Timers::default`].
    pub(crate) fn timers(&self) -> Result<nido_ue::Timers, UsageError> {
        use std::time::Duration;
        if self.unprotected_t3346_min > self.unprotected_t3346_max {
            return Err(UsageError::new(
                "--unprotected-t3346-min",
                format!(
                    "{} is above --unprotected-t3346-max {}",
                    self.unprotected_t3346_min, self.unprotected_t3346_max
                ),
            ));
        }
        if self.not_authorized_retry == 0 {
            return Err(UsageError::new(
                "--not-authorized-retry",
                "0 would retry a #74 at once (a clone would keep trying)",
            ));
        }
        Ok(nido_ue::Timers {
            t3346_default: (
                Duration::from_secs(self.unprotected_t3346_min),
                Duration::from_secs(self.unprotected_t3346_max),
            ),
            t3502: Duration::from_secs(self.t3502),
            t3510: Duration::from_secs(self.t3510),
            coap: Duration::from_secs(self.coap_timeout),
            t3580: Duration::from_secs(self.t3580),
            not_authorized_retry: Duration::from_secs(self.not_authorized_retry),
            idle_after: Duration::from_secs(self.idle_after),
            ..nido_ue::Timers::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            hex_n::<2>("--amf", "80").unwrap_err().to_string(),
            "--amf: expected 4 hex digits (2 octets), got 2"
        );
        assert_eq!(
            hex_any("--k", "abc").unwrap_err().to_string(),
            "--k: odd number of hex digits (3)"
        );
        assert_eq!(
            hex_any("--k", "zz").unwrap_err().to_string(),
            "--k: 'z' at position 0 is not a hex digit"
        );
        assert_eq!(hex_n::<2>("--amf", "0xB9b9").unwrap(), [0xb9, 0xb9]);
    }

    #[test]
    fn device_timers_default_to_the_spec_and_check_their_ranges() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            timers: DeviceTimerArgs,
        }
        let defaults = Cli::parse_from(["nido"]).timers.timers().unwrap();
        assert_eq!(defaults, nido_ue::Timers::default());
        let short = Cli::parse_from(["nido", "--t3502", "30", "--not-authorized-retry", "2"])
            .timers
            .timers()
            .unwrap();
        assert_eq!(short.t3502, std::time::Duration::from_secs(30));
        assert_eq!(
            short.not_authorized_retry,
            std::time::Duration::from_secs(2)
        );
        let upside_down = Cli::parse_from([
            "nido",
            "--unprotected-t3346-min",
            "20",
            "--unprotected-t3346-max",
            "5",
        ]);
        let e = upside_down.timers.timers().unwrap_err().to_string();
        assert!(e.starts_with("--unprotected-t3346-min: 20 is above"), "{e}");
        let zero = Cli::parse_from(["nido", "--not-authorized-retry", "0"]);
        assert!(zero.timers.timers().is_err());
    }
}
