//! One module per top-level subcommand.

pub(crate) mod crypto;
pub(crate) mod mfr;
pub(crate) mod nas;
