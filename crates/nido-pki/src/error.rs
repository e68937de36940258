//! The crate's error type for issuing, storing and enrolling (validation
//! refusals are [`crate::Refusal`]).

use std::path::PathBuf;

use thiserror::Error;

/// Why a PKI operation failed. Messages are one line and never contain key
/// material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiError {
    /// An argument is out of its domain (a serial with a forbidden
    /// character, a validity that ends before it starts, an empty name).
    #[error("invalid {what}: {problem}")]
    Invalid {
        /// What was invalid, e.g. "device serial".
        what: &'static str,
        /// Why.
        problem: String,
    },
    /// Certificate, CRL or key generation failed (rcgen or aws-lc-rs).
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists but its content is wrong (bad PEM, bad JSON, a key that
    /// does not match its certificate, a hash that does not match).
    #[error("{}: {problem}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate or CRL offered for enrollment was refused.
    #[error("trust store: {0}")]
    Trust(String),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl PkiError {
    pub(crate) fn invalid(what: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        Self::Generate(e.to_string())
    }
}
