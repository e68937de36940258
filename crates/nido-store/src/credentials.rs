//! An owner's third-party credentials as CBOR, for sealing in `owners`.
//!
//! nido-prov encodes credentials only inside a whole credential package, so
//! the store has its own small format: `{"v": 1, "credentials": [map, ...]}`,
//! each map with the same keys as the package's `third_party` entries
//! (`type` = `lwm2m` | `mqtt` | `other`). Intermediate values are wiped.

use std::collections::BTreeMap;

use ciborium::Value;
use nido_prov::ThirdPartyCredential;
use zeroize::{Zeroize, Zeroizing};

const VERSION: u64 = 1;

/// Wipes every text and byte string of a CBOR value.
fn wipe(value: &mut Value) {
    match value {
        Value::Bytes(b) => b.zeroize(),
        Value::Text(t) => t.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            wipe(k);
            wipe(v);
        }),
        Value::Tag(_, inner) => wipe(inner),
        _ => {}
    }
}

/// A CBOR value that is wiped when dropped.
struct Wiped(Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn entry(key: &str, value: Value) -> (Value, Value) {
    (text(key), value)
}

fn credential_value(c: &ThirdPartyCredential) -> Value {
    let entries = match c {
        ThirdPartyCredential::Lwm2m {
            server_uri,
            psk_identity,
            psk,
        } => vec![
            entry("type", text("lwm2m")),
            entry("server_uri", text(server_uri)),
            entry("psk_identity", text(psk_identity)),
            entry("psk", Value::Bytes(psk.to_vec())),
        ],
        ThirdPartyCredential::Mqtt {
            broker_uri,
            client_id,
            client_cert_pem,
            client_key_pem,
        } => vec![
            entry("type", text("mqtt")),
            entry("broker_uri", text(broker_uri)),
            entry("client_id", text(client_id)),
            entry("client_cert_pem", text(client_cert_pem)),
            entry("client_key_pem", text(client_key_pem)),
        ],
        ThirdPartyCredential::Other { kind, fields } => vec![
            entry("type", text("other")),
            entry("kind", text(kind)),
            entry(
                "fields",
                Value::Map(fields.iter().map(|(k, v)| (text(k), text(v))).collect()),
            ),
        ],
    };
    Value::Map(entries)
}

/// Encodes a credential list.
pub(crate) fn encode(credentials: &[ThirdPartyCredential]) -> Result<Zeroizing<Vec<u8>>, String> {
    let value = Wiped(Value::Map(vec![
        entry("v", Value::Integer(VERSION.into())),
        entry(
            "credentials",
            Value::Array(credentials.iter().map(credential_value).collect()),
        ),
    ]));
    let mut out = Zeroizing::new(Vec::with_capacity(1024));
    ciborium::into_writer(&value.0, &mut *out).map_err(|e| format!("credentials: {e}"))?;
    Ok(out)
}

/// Takes the entries of a map with text keys, refusing duplicates.
fn map_of(what: &str, value: &mut Value) -> Result<BTreeMap<String, Wiped>, String> {
    let Value::Map(entries) = value else {
        return Err(format!("{what} is not a map"));
    };
    let mut out = BTreeMap::new();
    for (mut k, v) in entries.drain(..) {
        let v = Wiped(v);
        let Value::Text(key) = &mut k else {
            wipe(&mut k);
            return Err(format!("{what} has a key that is not text"));
        };
        let key = core::mem::take(key);
        if out.insert(key, v).is_some() {
            return Err(format!("{what} has a duplicate key"));
        }
    }
    Ok(out)
}

struct Fields {
    what: &'static str,
    map: BTreeMap<String, Wiped>,
}

impl Fields {
    fn take(&mut self, key: &str) -> Result<Wiped, String> {
        self.map
            .remove(key)
            .ok_or_else(|| format!("{} has no {key}", self.what))
    }

    fn text(&mut self, key: &str) -> Result<String, String> {
        let mut v = self.take(key)?;
        match &mut v.0 {
            Value::Text(t) => Ok(core::mem::take(t)),
            _ => Err(format!("{}.{key} is not text", self.what)),
        }
    }

    fn bytes(&mut self, key: &str) -> Result<Vec<u8>, String> {
        let mut v = self.take(key)?;
        match &mut v.0 {
            Value::Bytes(b) => Ok(core::mem::take(b)),
            _ => Err(format!("{}.{key} is not a byte string", self.what)),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().next() {
            Some(k) => Err(format!("{} has an unknown key {k:?}", self.what)),
            None => Ok(()),
        }
    }
}

fn credential(mut value: Wiped) -> Result<ThirdPartyCredential, String> {
    let mut f = Fields {
        what: "credential",
        map: map_of("credential", &mut value.0)?,
    };
    let kind = f.text("type")?;
    let c = match kind.as_str() {
        "lwm2m" => ThirdPartyCredential::Lwm2m {
            server_uri: f.text("server_uri")?,
            psk_identity: f.text("psk_identity")?,
            psk: Zeroizing::new(f.bytes("psk")?),
        },
        "mqtt" => ThirdPartyCredential::Mqtt {
            broker_uri: f.text("broker_uri")?,
            client_id: f.text("client_id")?,
            client_cert_pem: f.text("client_cert_pem")?,
            client_key_pem: Zeroizing::new(f.text("client_key_pem")?),
        },
        "other" => {
            let kind = f.text("kind")?;
            let mut fields = f.take("fields")?;
            let mut inner = Fields {
                what: "credential.fields",
                map: map_of("credential.fields", &mut fields.0)?,
            };
            let keys: Vec<String> = inner.map.keys().cloned().collect();
            let mut out = BTreeMap::new();
            for k in keys {
                let v = inner.text(&k)?;
                out.insert(k, Zeroizing::new(v));
            }
            ThirdPartyCredential::Other { kind, fields: out }
        }
        other => return Err(format!("unknown credential type {other:?}")),
    };
    f.finish()?;
    Ok(c)
}

/// Decodes a credential list.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<ThirdPartyCredential>, String> {
    let mut value =
        Wiped(ciborium::from_reader::<Value, _>(bytes).map_err(|e| format!("credentials: {e}"))?);
    let mut top = Fields {
        what: "credentials",
        map: map_of("credentials", &mut value.0)?,
    };
    let version = top.take("v")?;
    if version.0 != Value::Integer(VERSION.into()) {
        return Err("credentials: unknown version".into());
    }
    let mut list = top.take("credentials")?;
    top.finish()?;
    let Value::Array(items) = &mut list.0 else {
        return Err("credentials is not an array".into());
    };
    items.drain(..).map(|v| credential(Wiped(v))).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let list = vec![
            ThirdPartyCredential::Lwm2m {
                server_uri: "coaps://lwm2m.example:5684".into(),
                psk_identity: "dev-1".into(),
                psk: Zeroizing::new(vec![1, 2, 3, 4]),
            },
            ThirdPartyCredential::Mqtt {
                broker_uri: "mqtts://broker.example:8883".into(),
                client_id: "c1".into(),
                client_cert_pem: "-----BEGIN CERTIFICATE-----".into(),
                client_key_pem: Zeroizing::new("-----BEGIN PRIVATE KEY-----".into()),
            },
            ThirdPartyCredential::Other {
                kind: "http-bearer".into(),
                fields: [("token".to_owned(), Zeroizing::new("s3cret".to_owned()))]
                    .into_iter()
                    .collect(),
            },
        ];
        let bytes = encode(&list).unwrap();
        assert_eq!(decode(&bytes).unwrap(), list);
        assert_eq!(decode(&encode(&[]).unwrap()).unwrap(), vec![]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[0xa0]).is_err());
    }
}
