//! A small CBOR layer: a deterministic, infallible encoder for the subset the
//! protocol uses (unsigned integers, byte and text strings, arrays, maps with
//! text keys) and a strict reader over `ciborium`'s decoder whose errors name
//! the field.
//!
//! Encoding borrows its inputs, so secrets are not copied into intermediate
//! trees; decoded trees are wiped when dropped.

use ciborium::Value;
use zeroize::Zeroize;

use crate::ProvError;

/// One CBOR data item to encode, borrowing its contents.
#[derive(Debug, Clone)]
pub(crate) enum Item<'a> {
    /// Major type 0.
    Uint(u64),
    /// Major type 2.
    Bytes(&'a [u8]),
    /// Major type 3.
    Text(&'a str),
    /// Major type 4.
    Array(Vec<Item<'a>>),
    /// Major type 5, text keys, in the order given.
    Map(Vec<(&'a str, Item<'a>)>),
}

fn head(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    if len < 24 {
        out.push(m | len as u8);
    } else if len <= 0xff {
        out.push(m | 24);
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else if len <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

impl Item<'_> {
    /// Appends the definite-length, shortest-form encoding.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Item::Uint(v) => head(out, 0, *v),
            Item::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Item::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Item::Array(items) => {
                head(out, 4, items.len() as u64);
                for item in items {
                    item.encode_into(out);
                }
            }
            Item::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (key, value) in entries {
                    Item::Text(key).encode_into(out);
                    value.encode_into(out);
                }
            }
        }
    }

    /// The encoding as a new vector.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out);
        out
    }
}

/// Overwrites every byte and text string in a decoded tree.
pub(crate) fn wipe(value: &mut Value) {
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

/// A decoded tree that is wiped when dropped.
pub(crate) struct Wiped(pub(crate) Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Decodes exactly one CBOR item, refusing trailing octets.
pub(crate) fn decode(what: &'static str, bytes: &[u8]) -> Result<Wiped, ProvError> {
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest).map_err(|e| ProvError::Cbor {
        what,
        detail: e.to_string(),
    })?;
    let value = Wiped(value);
    if !rest.is_empty() {
        return Err(ProvError::TrailingBytes {
            what,
            count: rest.len(),
        });
    }
    Ok(value)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::Float(_) => "a float",
        Value::Text(_) => "a text string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Tag(..) => "a tagged item",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        _ => "an unsupported item",
    }
}

/// A decoded CBOR map with text keys, read field by field. What is left is
/// wiped on drop; [`MapReader::finish`] refuses unknown fields.
pub(crate) struct MapReader {
    what: &'static str,
    entries: Vec<(String, Value)>,
}

impl Drop for MapReader {
    fn drop(&mut self) {
        for (key, value) in &mut self.entries {
            key.zeroize();
            wipe(value);
        }
    }
}

impl MapReader {
    /// Takes a map apart; keys must be distinct text strings.
    pub(crate) fn new(what: &'static str, value: Value) -> Result<Self, ProvError> {
        let mut value = Wiped(value);
        let Value::Map(entries) = &mut value.0 else {
            return Err(ProvError::Invalid {
                what,
                field: String::new(),
                reason: format!("expected a map, found {}", kind(&value.0)),
            });
        };
        let mut reader = Self {
            what,
            entries: Vec::with_capacity(entries.len()),
        };
        for (key, val) in core::mem::take(entries) {
            let mut val = Wiped(val);
            let Value::Text(key) = key else {
                return Err(ProvError::Invalid {
                    what,
                    field: String::new(),
                    reason: format!("map key is {}, expected a text string", kind(&key)),
                });
            };
            if reader.entries.iter().any(|(k, _)| *k == key) {
                return Err(ProvError::Invalid {
                    what,
                    field: key,
                    reason: "duplicate field".into(),
                });
            }
            reader
                .entries
                .push((key, core::mem::replace(&mut val.0, Value::Null)));
        }
        Ok(reader)
    }

    /// Decodes octets that must be one map.
    pub(crate) fn decode(what: &'static str, bytes: &[u8]) -> Result<Self, ProvError> {
        let mut value = decode(what, bytes)?;
        Self::new(what, core::mem::replace(&mut value.0, Value::Null))
    }

    fn invalid(&self, field: &str, reason: String) -> ProvError {
        ProvError::Invalid {
            what: self.what,
            field: field.into(),
            reason,
        }
    }

    fn wrong_type(&self, field: &str, expected: &str, found: &Value) -> ProvError {
        self.invalid(field, format!("expected {expected}, found {}", kind(found)))
    }

    /// Removes a field if present.
    pub(crate) fn take(&mut self, field: &'static str) -> Option<Wiped> {
        let index = self.entries.iter().position(|(k, _)| k == field)?;
        Some(Wiped(self.entries.remove(index).1))
    }

    /// Removes a required field.
    pub(crate) fn required(&mut self, field: &'static str) -> Result<Wiped, ProvError> {
        self.take(field).ok_or(ProvError::Missing {
            what: self.what,
            field,
        })
    }

    /// Checks the `version` field.
    pub(crate) fn version(&mut self, expected: u64) -> Result<(), ProvError> {
        let got = self.uint("version")?;
        if got != expected {
            return Err(ProvError::Version {
                what: self.what,
                got,
                expected,
            });
        }
        Ok(())
    }

    /// Checks the `version` field of a structure whose first version had
    /// none: an absent field is version `absent`.
    pub(crate) fn version_or(&mut self, expected: u64, absent: u64) -> Result<(), ProvError> {
        let got = match self.take("version") {
            None => absent,
            Some(value) => self.as_uint("version", &value.0)?,
        };
        if got != expected {
            return Err(ProvError::Version {
                what: self.what,
                got,
                expected,
            });
        }
        Ok(())
    }

    fn as_uint(&self, field: &'static str, value: &Value) -> Result<u64, ProvError> {
        match value {
            Value::Integer(i) => u64::try_from(*i)
                .map_err(|_| self.invalid(field, "negative or too large integer".into())),
            other => Err(self.wrong_type(field, "an unsigned integer", other)),
        }
    }

    /// A required unsigned integer.
    pub(crate) fn uint(&mut self, field: &'static str) -> Result<u64, ProvError> {
        let value = self.required(field)?;
        self.as_uint(field, &value.0)
    }

    /// A required unsigned integer that fits `u8`.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProvError> {
        let v = self.uint(field)?;
        u8::try_from(v).map_err(|_| self.invalid(field, format!("{v} does not fit 0..=255")))
    }

    fn text_of(&self, field: &'static str, mut value: Wiped) -> Result<String, ProvError> {
        match &mut value.0 {
            Value::Text(t) => Ok(core::mem::take(t)),
            other => Err(self.wrong_type(field, "a text string", other)),
        }
    }

    /// A required text string.
    pub(crate) fn text(&mut self, field: &'static str) -> Result<String, ProvError> {
        let value = self.required(field)?;
        self.text_of(field, value)
    }

    /// An optional text string (absent, not null, means `None`).
    pub(crate) fn opt_text(&mut self, field: &'static str) -> Result<Option<String>, ProvError> {
        match self.take(field) {
            None => Ok(None),
            Some(value) => self.text_of(field, value).map(Some),
        }
    }

    /// A required byte string.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, ProvError> {
        let mut value = self.required(field)?;
        match &mut value.0 {
            Value::Bytes(b) => Ok(core::mem::take(b)),
            other => Err(self.wrong_type(field, "a byte string", other)),
        }
    }

    /// A required byte string of exactly `N` octets.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProvError> {
        let mut value = self.required(field)?;
        match &mut value.0 {
            Value::Bytes(b) => b.as_slice().try_into().map_err(|_| ProvError::Length {
                what: self.what,
                field,
                expected: N,
                got: b.len(),
            }),
            other => Err(self.wrong_type(field, "a byte string", other)),
        }
    }

    /// A required array; its items are wiped when the list is dropped.
    pub(crate) fn list(&mut self, field: &'static str) -> Result<Vec<Wiped>, ProvError> {
        let mut value = self.required(field)?;
        match &mut value.0 {
            Value::Array(items) => Ok(core::mem::take(items).into_iter().map(Wiped).collect()),
            other => Err(self.wrong_type(field, "an array", other)),
        }
    }

    /// A required nested map.
    pub(crate) fn map(
        &mut self,
        field: &'static str,
        what: &'static str,
    ) -> Result<MapReader, ProvError> {
        let mut value = self.required(field)?;
        MapReader::new(what, core::mem::replace(&mut value.0, Value::Null))
    }

    /// An optional nested map (absent, not null, means `None`).
    pub(crate) fn opt_map(
        &mut self,
        field: &'static str,
        what: &'static str,
    ) -> Result<Option<MapReader>, ProvError> {
        match self.take(field) {
            None => Ok(None),
            Some(mut value) => {
                MapReader::new(what, core::mem::replace(&mut value.0, Value::Null)).map(Some)
            }
        }
    }

    /// Every remaining entry as (key, text value); used for open string maps.
    pub(crate) fn drain_text(&mut self) -> Result<Vec<(String, String)>, ProvError> {
        let mut out = Vec::with_capacity(self.entries.len());
        while let Some((key, value)) = self.entries.pop() {
            let mut value = Wiped(value);
            match &mut value.0 {
                Value::Text(t) => out.push((key, core::mem::take(t))),
                other => return Err(self.wrong_type(&key, "a text string", other)),
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The message or structure name.
    pub(crate) fn what(&self) -> &'static str {
        self.what
    }

    /// Refuses fields this version does not define.
    pub(crate) fn finish(self) -> Result<(), ProvError> {
        match self.entries.first() {
            None => Ok(()),
            Some((key, _)) => Err(ProvError::UnknownField {
                what: self.what,
                field: key.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shortest_heads() {
        assert_eq!(Item::Uint(23).to_vec(), [0x17]);
        assert_eq!(Item::Uint(24).to_vec(), [0x18, 24]);
        assert_eq!(Item::Uint(256).to_vec(), [0x19, 1, 0]);
        assert_eq!(Item::Uint(65_536).to_vec(), [0x1a, 0, 1, 0, 0]);
        assert_eq!(Item::Uint(1 << 32).to_vec(), [0x1b, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(Item::Bytes(&[1, 2]).to_vec(), [0x42, 1, 2]);
        assert_eq!(Item::Text("a").to_vec(), [0x61, b'a']);
        assert_eq!(
            Item::Map(vec![("a", Item::Array(vec![Item::Uint(1)]))]).to_vec(),
            [0xa1, 0x61, b'a', 0x81, 1]
        );
    }

    #[test]
    fn decoder_agrees_with_encoder() {
        let bytes = Item::Map(vec![("x", Item::Uint(300)), ("y", Item::Bytes(&[9; 3]))]).to_vec();
        let mut map = MapReader::decode("t", &bytes).unwrap();
        assert_eq!(map.uint("x").unwrap(), 300);
        assert_eq!(map.array::<3>("y").unwrap(), [9; 3]);
        map.finish().unwrap();
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let bytes = [0xa2, 0x61, b'a', 1, 0x61, b'a', 2];
        assert!(matches!(
            MapReader::decode("t", &bytes),
            Err(ProvError::Invalid { .. })
        ));
    }
}
