//! The network's name for a device: the enrolled manufacturer together
//! with the device serial it certified.
//!
//! An IDevID's subject serialNumber is unique only within its issuer
//! (IEEE 802.1AR §8.6: the DevID's identity is the subject within the
//! issuer's name space; RFC 4108 §5 names a hardware module by its type
//! and serial *at its manufacturer*). Two enrolled manufacturers may issue
//! the same serial, by accident or on purpose, so the serial alone is not
//! an identity: every place the network keys something by device (clone
//! index, PVS, subscriptions, claims, block list, audit) uses a
//! [`DeviceId`], which [`crate::TrustStore::validate`] builds from the
//! manufacturer whose root the chain reached, never from anything the
//! certificate says about itself.
//!
//! Its text form is `<manufacturer>/<serial>`. A manufacturer name never
//! contains `/` ([`check_manufacturer_name`], enforced when a manufacturer
//! is enrolled) and a serial never does ([`crate::ca`]'s serial rules), so
//! the form parses back one way only.

use std::fmt;
use std::str::FromStr;

use crate::PkiError;

/// The longest enrolled manufacturer name.
pub const MAX_MANUFACTURER_NAME: usize = 64;

/// Checks a name under which a manufacturer is enrolled: 1 to 64
/// characters, no `/` (the [`DeviceId`] separator), no control characters,
/// no leading or trailing space.
pub fn check_manufacturer_name(name: &str) -> Result<(), PkiError> {
    let bad = |p: String| PkiError::invalid("manufacturer name", p);
    if name.is_empty() || name.chars().count() > MAX_MANUFACTURER_NAME {
        return Err(bad(format!(
            "{name:?} must have 1 to {MAX_MANUFACTURER_NAME} characters"
        )));
    }
    if name.contains('/') {
        return Err(bad(format!(
            "{name:?} must not contain '/' (device identities are MANUFACTURER/SERIAL)"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(format!("{name:?} must not contain control characters")));
    }
    if name.trim() != name {
        return Err(bad(format!(
            "{name:?} must not start or end with white space"
        )));
    }
    Ok(())
}

/// A device identity: enrolled manufacturer and device serial.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    manufacturer: String,
    serial: String,
}

impl DeviceId {
    /// The identity of device `serial` of the manufacturer enrolled as
    /// `manufacturer`; both are checked.
    pub fn new(manufacturer: &str, serial: &str) -> Result<Self, PkiError> {
        check_manufacturer_name(manufacturer)?;
        crate::ca::check_serial(serial)?;
        Ok(Self {
            manufacturer: manufacturer.to_owned(),
            serial: serial.to_owned(),
        })
    }

    /// The enrolled manufacturer's name.
    pub fn manufacturer(&self) -> &str {
        &self.manufacturer
    }

    /// The device serial (the IDevID's subject serialNumber): unique only
    /// within [`Self::manufacturer`].
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.manufacturer, self.serial)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl FromStr for DeviceId {
    type Err = PkiError;

    /// Parses `MANUFACTURER/SERIAL`: exactly one `/`, both sides valid.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        let Some((manufacturer, serial)) = s.split_once('/') else {
            return Err(PkiError::invalid(
                "device identity",
                format!("{s:?} is not MANUFACTURER/SERIAL"),
            ));
        };
        Self::new(manufacturer, serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_refuses_ambiguity() {
        let id = DeviceId::new("Acme Corp", "ACME-0000000001").unwrap();
        assert_eq!(id.to_string(), "Acme Corp/ACME-0000000001");
        assert_eq!("Acme Corp/ACME-0000000001".parse::<DeviceId>().unwrap(), id);
        for bad in [
            "ACME-0000000001",
            "/ACME-1",
            "Acme/",
            "a/b/c",
            "Acme/ACME 1",
            " Acme/ACME-1",
            "Ac\nme/ACME-1",
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad:?}");
        }
        assert!(check_manufacturer_name("Ev/il").is_err());
        assert!(check_manufacturer_name(&"x".repeat(65)).is_err());
        // Same serial, different manufacturers: different identities.
        assert_ne!(
            DeviceId::new("Acme", "S-1").unwrap(),
            DeviceId::new("Rogue", "S-1").unwrap()
        );
    }
}
