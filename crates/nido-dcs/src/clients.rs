//! The operators a DCS answers: RADIUS clients (RFC 2865 §3: a server
//! "MUST silently discard" a request from a client it has no shared secret
//! for), each keyed by its source address and holding its own secret.

use std::collections::HashMap;
use std::net::IpAddr;

use nido_radius::Secret;

/// One RADIUS client: an operator's network.
#[derive(Debug, Clone)]
pub struct Client {
    /// The operator's name, as the audit trail shows it.
    pub name: String,
    /// The source address its requests come from.
    pub address: IpAddr,
    /// The shared secret of this client alone (redacted in Debug).
    pub secret: Secret,
}

/// The clients of a DCS, keyed by source address (one client per address).
#[derive(Debug, Clone, Default)]
pub struct Clients {
    by_address: HashMap<IpAddr, Client>,
}

/// Two clients would share an address or a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a RADIUS client {0} is already configured")]
pub struct Duplicate(pub String);

impl Clients {
    /// No clients: every datagram is dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `client`; refused if its address or its name is taken.
    pub fn add(&mut self, client: Client) -> Result<(), Duplicate> {
        if self.by_address.contains_key(&client.address) {
            return Err(Duplicate(format!("at {}", client.address)));
        }
        if self.by_address.values().any(|c| c.name == client.name) {
            return Err(Duplicate(format!("named {:?}", client.name)));
        }
        self.by_address.insert(client.address, client);
        Ok(())
    }

    /// The client that sends from `address`.
    pub fn get(&self, address: IpAddr) -> Option<&Client> {
        self.by_address.get(&address)
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }
}
