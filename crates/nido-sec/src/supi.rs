//! The subscription permanent identifier (TS 23.003 §2.2A).

use core::fmt;

use crate::SecError;

/// A SUPI: an IMSI or a network specific identifier (a NAI, RFC 7542).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Supi {
    /// `imsi-<digits>`: MCC, MNC and MSIN, 6 to 15 digits.
    Imsi(String),
    /// `nai-<username>@<realm>`.
    Nai(String),
}

impl Supi {
    /// Parses `imsi-DIGITS`, bare `DIGITS`, or `nai-USER@REALM`.
    pub fn parse(text: &str) -> Result<Self, SecError> {
        if let Some(nai) = text.strip_prefix("nai-") {
            return Self::nai(nai);
        }
        let digits = text.strip_prefix("imsi-").unwrap_or(text);
        Self::imsi(digits)
    }

    /// An IMSI SUPI from its digits.
    pub fn imsi(digits: &str) -> Result<Self, SecError> {
        if !(6..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SecError::Range {
                what: "SUPI",
                detail: format!("{digits:?} is not an IMSI of 6 to 15 digits"),
            });
        }
        Ok(Self::Imsi(digits.to_owned()))
    }

    /// A NAI SUPI, `username@realm`.
    pub fn nai(nai: &str) -> Result<Self, SecError> {
        let valid = match nai.split_once('@') {
            Some((user, realm)) => {
                !realm.is_empty()
                    && !realm.contains('@')
                    && nai.bytes().all(|b| b.is_ascii_graphic())
                    && user.len() < 254
            }
            None => false,
        };
        if !valid {
            return Err(SecError::Range {
                what: "SUPI",
                detail: format!("{nai:?} is not a NAI user@realm"),
            });
        }
        Ok(Self::Nai(nai.to_owned()))
    }

    /// The character string that K_AMF's derivation takes as P0 (TS 33.501 A.7.0):
    /// the IMSI digits, or the whole NAI.
    pub fn kdf_octets(&self) -> &str {
        match self {
            Self::Imsi(d) | Self::Nai(d) => d,
        }
    }
}

impl fmt::Display for Supi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Imsi(d) => write!(f, "imsi-{d}"),
            Self::Nai(n) => write!(f, "nai-{n}"),
        }
    }
}

impl fmt::Debug for Supi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for Supi {
    type Err = SecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Supi::parse("imsi-001010123456789").unwrap().kdf_octets(),
            "001010123456789"
        );
        assert_eq!(
            Supi::parse("001010123456789").unwrap().to_string(),
            "imsi-001010123456789"
        );
        assert_eq!(
            Supi::parse("nai-dev1@mfr.example").unwrap().kdf_octets(),
            "dev1@mfr.example"
        );
        assert!(Supi::parse("imsi-12a").is_err());
        assert!(Supi::parse("nai-noat").is_err());
    }
}
