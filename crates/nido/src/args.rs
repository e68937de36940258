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
}
