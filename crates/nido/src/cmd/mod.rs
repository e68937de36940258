//! One module per top-level subcommand.

pub(crate) mod crypto;
pub(crate) mod nas;
