//! One module per top-level subcommand.

pub(crate) mod crypto;
pub(crate) mod dcs;
pub(crate) mod demo;
pub(crate) mod device;
pub(crate) mod mfr;
pub(crate) mod nas;
pub(crate) mod network;
pub(crate) mod owner;
pub(crate) mod report;
pub(crate) mod sim;
