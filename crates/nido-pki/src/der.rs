//! The little DER nido writes and reads by hand: the subjectAltName with a
//! hardwareModuleName otherName (RFC 4108 §5), which rcgen cannot express
//! (its otherName values are UTF8String only). Reading never panics: every
//! length is checked against the input.

/// Universal tags used here.
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` constructed, context-specific: both GeneralName's `otherName`
/// (IMPLICIT) and OtherName's `value` (EXPLICIT).
pub(crate) const TAG_CTX0_CONSTRUCTED: u8 = 0xa0;

/// One TLV with a definite, minimal length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The content octets of an OBJECT IDENTIFIER in dotted form. Arcs up to
/// 128 bits (so UUID OIDs under 2.25 work).
pub(crate) fn oid_content(dotted: &str) -> Option<Vec<u8>> {
    let arcs = dotted
        .split('.')
        .map(|a| {
            if a.is_empty() || (a.len() > 1 && a.starts_with('0')) {
                None
            } else {
                a.parse::<u128>().ok()
            }
        })
        .collect::<Option<Vec<u128>>>()?;
    let (&first, rest) = arcs.split_first()?;
    let (&second, rest) = rest.split_first()?;
    if first > 2 || (first < 2 && second > 39) {
        return None;
    }
    let mut out = Vec::new();
    push_base128(&mut out, first.checked_mul(40)?.checked_add(second)?);
    for &arc in rest {
        push_base128(&mut out, arc);
    }
    Some(out)
}

fn push_base128(out: &mut Vec<u8>, mut v: u128) {
    let mut tmp = [0u8; 19];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    let n = tmp.len();
    for (j, b) in tmp[i..].iter().enumerate() {
        out.push(if i + j + 1 < n { b | 0x80 } else { *b });
    }
}

/// The dotted form of OID content octets, or `None` if they are not a
/// valid (minimal, terminated, at most 128-bit arcs) encoding.
pub(crate) fn oid_to_string(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut v: u128 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return None; // non-minimal
        }
        if v >> 121 != 0 {
            return None; // would overflow 128 bits
        }
        v = (v << 7) | u128::from(b & 0x7f);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(v);
            v = 0;
        }
    }
    if in_arc || arcs.is_empty() {
        return None;
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// A cursor over DER that reads one TLV at a time.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next TLV, which must carry `tag`; returns all of it (tag and
    /// length included).
    pub(crate) fn read_tlv(&mut self, tag: u8) -> Result<&'a [u8], &'static str> {
        let before = self.data;
        self.read(tag)?;
        Ok(&before[..before.len() - self.data.len()])
    }

    /// The next TLV, which must carry `tag`; returns its content.
    pub(crate) fn read(&mut self, tag: u8) -> Result<&'a [u8], &'static str> {
        let (&t, rest) = self.data.split_first().ok_or("truncated (no tag)")?;
        if t != tag {
            return Err("unexpected tag");
        }
        let (&l, mut rest) = rest.split_first().ok_or("truncated (no length)")?;
        let len = if l < 0x80 {
            usize::from(l)
        } else {
            let n = usize::from(l & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err("bad length");
            }
            let (len_bytes, after) = rest.split_at(n);
            if len_bytes[0] == 0 {
                return Err("non-minimal length");
            }
            rest = after;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err("non-minimal length");
            }
            len
        };
        if rest.len() < len {
            return Err("truncated (content)");
        }
        let (content, after) = rest.split_at(len);
        self.data = after;
        Ok(content)
    }
}

/// `GeneralName.otherName` holding a `HardwareModuleName` (RFC 4108 §5):
///
/// ```text
/// [0] IMPLICIT SEQUENCE {                 -- otherName
///     type-id  OBJECT IDENTIFIER,        -- id-on-hardwareModuleName
///     value    [0] EXPLICIT SEQUENCE {   -- HardwareModuleName
///         hwType       OBJECT IDENTIFIER,
///         hwSerialNum  OCTET STRING } }
/// ```
pub(crate) fn hardware_module_general_name(hw_type: &str, hw_serial: &[u8]) -> Option<Vec<u8>> {
    let hmn = tlv(
        TAG_SEQUENCE,
        &[
            tlv(TAG_OID, &oid_content(hw_type)?),
            tlv(TAG_OCTET_STRING, hw_serial),
        ]
        .concat(),
    );
    let type_id = tlv(TAG_OID, &oid_content(crate::OID_HARDWARE_MODULE_NAME)?);
    Some(tlv(
        TAG_CTX0_CONSTRUCTED,
        &[type_id, tlv(TAG_CTX0_CONSTRUCTED, &hmn)].concat(),
    ))
}

/// Parses the `value` of an otherName whose type-id is
/// id-on-hardwareModuleName, i.e. `[0] EXPLICIT HardwareModuleName`, into
/// (hwType dotted, hwSerialNum).
pub(crate) fn parse_hardware_module_value(value: &[u8]) -> Result<(String, Vec<u8>), &'static str> {
    let mut outer = Reader::new(value);
    let explicit = outer.read(TAG_CTX0_CONSTRUCTED)?;
    if !outer.is_empty() {
        return Err("trailing data after otherName value");
    }
    let mut r = Reader::new(explicit);
    let seq = r.read(TAG_SEQUENCE)?;
    if !r.is_empty() {
        return Err("trailing data after HardwareModuleName");
    }
    let mut r = Reader::new(seq);
    let oid = r.read(TAG_OID)?;
    let serial = r.read(TAG_OCTET_STRING)?;
    if !r.is_empty() {
        return Err("trailing data inside HardwareModuleName");
    }
    let hw_type = oid_to_string(oid).ok_or("bad hwType OID")?;
    Ok((hw_type, serial.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_round_trip() {
        for s in [
            "1.3.6.1.5.5.7.8.4",
            "2.5.4.5",
            crate::NIDO_HW_TYPE,
            "2.999.1",
            "0.39",
        ] {
            let c = oid_content(s).unwrap_or_default();
            assert_eq!(oid_to_string(&c).as_deref(), Some(s), "{s}");
        }
        // 1.3.6.1.5.5.7.8.4 as every DER dump shows it.
        assert_eq!(
            hex::encode(oid_content("1.3.6.1.5.5.7.8.4").unwrap_or_default()),
            "2b06010505070804"
        );
        for bad in ["", "1", "3.1", "1.40", "1..2", "1.02", "x.1"] {
            assert_eq!(oid_content(bad), None, "{bad:?}");
        }
        assert_eq!(oid_to_string(&[0x80, 0x01]), None);
        assert_eq!(oid_to_string(&[0x81]), None);
        assert_eq!(oid_to_string(&[0xff; 30]), None);
    }

    #[test]
    fn long_lengths_are_minimal() {
        let big = vec![0u8; 300];
        let t = tlv(0x04, &big);
        assert_eq!(&t[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut r = Reader::new(&t);
        assert_eq!(r.read(0x04).map(<[u8]>::len), Ok(300));
        assert!(r.is_empty());
        // 0x81 0x05 is a non-minimal length.
        assert!(
            Reader::new(&[0x04, 0x81, 0x05, 0, 0, 0, 0, 0])
                .read(0x04)
                .is_err()
        );
        assert!(Reader::new(&[0x04, 0x05, 0]).read(0x04).is_err());
        assert!(Reader::new(&[0x04]).read(0x04).is_err());
    }

    #[test]
    fn hardware_module_name_round_trips() {
        let gn = hardware_module_general_name("1.2.3.4", b"SN-1").unwrap_or_default();
        // Strip the [0] IMPLICIT otherName wrapper and the type-id, as
        // x509-parser does, and parse the value.
        let mut r = Reader::new(&gn);
        let other = r.read(TAG_CTX0_CONSTRUCTED).unwrap_or_default();
        let mut r = Reader::new(other);
        assert_eq!(
            oid_to_string(r.read(TAG_OID).unwrap_or_default()).as_deref(),
            Some(crate::OID_HARDWARE_MODULE_NAME)
        );
        let rest = &other[other.len() - r.data.len()..];
        assert_eq!(
            parse_hardware_module_value(rest),
            Ok(("1.2.3.4".to_owned(), b"SN-1".to_vec()))
        );
        assert!(parse_hardware_module_value(&rest[..rest.len() - 1]).is_err());
    }
}
