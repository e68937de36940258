//! A manufacturer's [`Policy`] as the JSON text of the `manufacturers` table.

use std::time::Duration;

use nido_pki::Policy;
use serde_json::{Map, Value, json};

/// The JSON text of a policy.
pub(crate) fn to_json(p: &Policy) -> String {
    json!({
        "serial_prefix": p.serial_prefix,
        "require_hardware_module": p.require_hardware_module,
        "hardware_module_type": p.hardware_module_type,
        "max_validity_secs": p.max_validity.map(|d| d.as_secs()),
        "accept_stale_crl": p.accept_stale_crl,
        "allow_without_crl": p.allow_without_crl,
        "max_subscriptions": p.max_subscriptions,
    })
    .to_string()
}

fn opt_text(m: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("policy.{key} is not text")),
    }
}

fn flag(m: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match m.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("policy.{key} is not a boolean")),
    }
}

/// Parses the JSON text of a policy; absent keys take their defaults (the
/// safe ones: a stale CRL or none refuses, #74). `require_fresh_crl`, the
/// key of schema 2, is ignored: stale CRLs are refused unless
/// `accept_stale_crl` says otherwise.
pub(crate) fn from_json(text: &str) -> Result<Policy, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("policy: {e}"))?;
    let Value::Object(m) = value else {
        return Err("policy is not a JSON object".into());
    };
    let max_validity = match m.get("max_validity_secs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Duration::from_secs(
            v.as_u64()
                .ok_or("policy.max_validity_secs is not a number of seconds")?,
        )),
    };
    Ok(Policy {
        serial_prefix: opt_text(&m, "serial_prefix")?,
        require_hardware_module: flag(&m, "require_hardware_module")?,
        hardware_module_type: opt_text(&m, "hardware_module_type")?,
        max_validity,
        accept_stale_crl: flag(&m, "accept_stale_crl")?,
        allow_without_crl: flag(&m, "allow_without_crl")?,
        max_subscriptions: match m.get("max_subscriptions") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or("policy.max_subscriptions is not a count")?,
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip() {
        let p = Policy {
            serial_prefix: Some("ACME-".into()),
            require_hardware_module: true,
            hardware_module_type: Some("1.3.6.1.4.1.99999.1".into()),
            max_validity: Some(Duration::from_secs(86_400)),
            accept_stale_crl: true,
            allow_without_crl: true,
            max_subscriptions: Some(7),
        };
        assert_eq!(from_json(&to_json(&p)).unwrap(), p);
        assert_eq!(
            from_json(&to_json(&Policy::default())).unwrap(),
            Policy::default()
        );
        assert_eq!(from_json("{}").unwrap(), Policy::default());
        assert!(from_json("[]").is_err());
        assert!(from_json(r#"{"accept_stale_crl": 1}"#).is_err());
        assert!(from_json(r#"{"max_subscriptions": -1}"#).is_err());
        // A policy stored by schema 2 (stale CRLs used unless this was
        // set) now refuses stale CRLs and manufacturers without one.
        let old = from_json(r#"{"require_fresh_crl": false}"#).unwrap();
        assert!(!old.accept_stale_crl && !old.allow_without_crl);
    }
}
