//! The operators a DCS answers: RADIUS clients (RFC 2865 §3: a server
//! "MUST silently discard" a request from a client it has no shared secret
//! for), each keyed by its source address and holding its own secret; and
//! RadSec clients (RFC 6614), keyed by the SHA-256 fingerprint of the TLS
//! client certificate they authenticate with, whose shared secret is the
//! literal `radsec` (RFC 6614 §2.3).
//!
//! Client names are unique across both tables: the audit trail and the
//! conversations are keyed by name.

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

/// The shared secret of every RadSec client (RFC 6614 §2.3): TLS protects
/// the packets, the secret is a fixed string.
pub const RADSEC_SECRET: &str = "radsec";

/// One RadSec client: an operator's network, known by its TLS client
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadSecClient {
    /// The operator's name, as the audit trail shows it.
    pub name: String,
    /// SHA-256 of its client certificate (DER).
    pub fingerprint: [u8; 32],
}

impl RadSecClient {
    /// The [`Client`] a request of this client is handled as: its peer
    /// address `from` (for the audit) and the secret `radsec`.
    pub fn as_client(&self, from: IpAddr) -> Client {
        Client {
            name: self.name.clone(),
            address: from,
            secret: radsec_secret(),
        }
    }
}

/// The secret `radsec`.
pub fn radsec_secret() -> Secret {
    // A non-empty literal: Secret::new cannot refuse it.
    Secret::new(RADSEC_SECRET.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// The clients of a DCS, keyed by source address (one client per address)
/// and, for RadSec, by certificate fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    by_address: HashMap<IpAddr, Client>,
    by_fingerprint: HashMap<[u8; 32], RadSecClient>,
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
        if self.has_name(&client.name) {
            return Err(Duplicate(format!("named {:?}", client.name)));
        }
        self.by_address.insert(client.address, client);
        Ok(())
    }

    /// Adds a RadSec client; refused if its fingerprint or its name is taken.
    pub fn add_radsec(&mut self, client: RadSecClient) -> Result<(), Duplicate> {
        if self.by_fingerprint.contains_key(&client.fingerprint) {
            return Err(Duplicate(format!(
                "with certificate {}",
                fingerprint_hex(&client.fingerprint)
            )));
        }
        if self.has_name(&client.name) {
            return Err(Duplicate(format!("named {:?}", client.name)));
        }
        self.by_fingerprint.insert(client.fingerprint, client);
        Ok(())
    }

    fn has_name(&self, name: &str) -> bool {
        self.by_address.values().any(|c| c.name == name)
            || self.by_fingerprint.values().any(|c| c.name == name)
    }

    /// The RadSec client whose certificate has this SHA-256 fingerprint.
    pub fn radsec(&self, fingerprint: &[u8; 32]) -> Option<&RadSecClient> {
        self.by_fingerprint.get(fingerprint)
    }

    /// How many RadSec clients there are.
    pub fn radsec_len(&self) -> usize {
        self.by_fingerprint.len()
    }

    /// The RadSec clients.
    pub fn radsec_clients(&self) -> impl Iterator<Item = &RadSecClient> {
        self.by_fingerprint.values()
    }

    /// The client that sends from `address`.
    pub fn get(&self, address: IpAddr) -> Option<&Client> {
        self.by_address.get(&address)
    }

    /// How many clients there are (UDP and RadSec).
    pub fn len(&self) -> usize {
        self.by_address.len() + self.by_fingerprint.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fingerprint as lowercase hex pairs separated by colons (as `openssl
/// x509 -fingerprint -sha256` prints it, in lower case).
pub fn fingerprint_hex(fingerprint: &[u8; 32]) -> String {
    let mut s = String::with_capacity(95);
    for (i, b) in fingerprint.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses a fingerprint in hex, with or without colons, in either case.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_are_unique_across_udp_and_radsec() {
        let mut c = Clients::new();
        c.add(Client {
            name: "a".into(),
            address: IpAddr::from([192, 0, 2, 1]),
            secret: Secret::new(b"0123456789abcdef").unwrap(),
        })
        .unwrap();
        let r = RadSecClient {
            name: "a".into(),
            fingerprint: [1; 32],
        };
        assert!(c.add_radsec(r.clone()).is_err());
        c.add_radsec(RadSecClient {
            name: "b".into(),
            ..r.clone()
        })
        .unwrap();
        assert!(
            c.add_radsec(RadSecClient {
                name: "c".into(),
                ..r
            })
            .is_err()
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.radsec(&[1; 32]).map(|r| r.name.as_str()), Some("b"));
        assert!(c.radsec(&[2; 32]).is_none());
    }

    #[test]
    fn fingerprints_print_and_parse() {
        let fp: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        let text = fingerprint_hex(&fp);
        assert_eq!(text.len(), 95);
        assert_eq!(parse_fingerprint(&text), Some(fp));
        assert_eq!(
            parse_fingerprint(&text.replace(':', "").to_uppercase()),
            Some(fp)
        );
        assert_eq!(parse_fingerprint("00:11"), None);
    }
}
