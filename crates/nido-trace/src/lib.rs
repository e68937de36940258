//! # nido-trace: pcap traces of NAS PDUs that Wireshark decodes
//!
//! [`PcapWriter`] writes a classic pcap file (not pcapng) whose records are
//! Wireshark "exported PDUs" (`LINKTYPE_WIRESHARK_UPPER_PDU`, 252): each
//! record names the dissector that decodes its payload, here `nas-5gs`, so
//! `wireshark` and `tshark -r trace.pcap -V` show every 5GS NAS message
//! nido sent or received without any transport around it.
//!
//! ## Invariants
//!
//! - The file starts with one 24-octet global header, written by
//!   [`PcapWriter::new`]: magic `0xa1b2c3d4` (microsecond timestamps), version
//!   2.4, time zone 0, accuracy 0, snapshot length 65535 and link type 252.
//!   Every multi-octet field of the file header and of the record headers is
//!   little-endian (the magic tells a reader so).
//! - Each record is complete (its captured length equals its original
//!   length) but one: a partially ciphered message (below). A record that
//!   would exceed the snapshot length is refused with
//!   [`std::io::ErrorKind::InvalidInput`] before anything is written, so a
//!   refused record leaves the file valid.
//! - **Partially ciphered messages.** A CONTROL PLANE SERVICE REQUEST sent
//!   integrity protected (security header type 1 or 3) carries ciphertext
//!   inside a message that is otherwise plain: the value part of its CIoT
//!   small data container or NAS message container IE is ciphered (TS 24.501
//!   §4.4.6). No decoder can tell from the octets, so Wireshark (checked with
//!   tshark 4.0) reads the ciphertext as a plain container and calls the
//!   record malformed, or reports an unknown data type as an error, for most
//!   keys. Such a record is written the way a capture with a snapshot length
//!   shows a packet: its original length is the whole PDU, its captured part
//!   ends at the first ciphered octet ([`partially_ciphered_at`]). The header,
//!   MAC, sequence number, message type and the IE's type and length are
//!   there as sent; Wireshark decodes them and marks the record "Packet size
//!   limited during capture", not malformed. The ciphertext is left out (a
//!   trace reader cannot decipher NEA2 anyway); write the plain inner message
//!   in the next record, as the demo and the simulator do.
//! - A record's data is a list of exported-PDU tags, each a 2-octet tag, a
//!   2-octet length and the value, big-endian as Wireshark reads them
//!   (`wiretap/exported_pdu_tlvs.h`): first tag 12
//!   (`EXP_PDU_TAG_DISSECTOR_NAME`) with the dissector name padded with NULs
//!   to a multiple of four octets (the length counts the padding), then the
//!   optional annotation tag 33 (`EXP_PDU_TAG_COL_PROT_TEXT`), padded the
//!   same way, then the end-of-options tag 0 of length 0, then the PDU octets
//!   unchanged.
//! - Timestamps are the caller's, a [`Duration`] since the UNIX epoch,
//!   written as seconds and microseconds (truncated to the microsecond); a
//!   time past the 32-bit seconds of classic pcap (year 2106) is refused.
//! - Nothing is buffered beyond the writer `W` given: wrap a file in a
//!   [`std::io::BufWriter`] and call [`PcapWriter::flush`] or
//!   [`PcapWriter::into_inner`] before reading the file.
//!
//! ```
//! use std::time::Duration;
//! use nido_trace::PcapWriter;
//!
//! let mut trace = PcapWriter::new(Vec::new())?;
//! // 5GMM STATUS, cause #111
//! trace.write_nas(Duration::from_secs(1_700_000_000), &[0x7e, 0x00, 0x64, 0x6f])?;
//! let octets = trace.into_inner()?;
//! assert_eq!(octets.len(), 24 + 16 + 12 + 4 + 4);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Write};
use std::time::Duration;

/// The link type of Wireshark's exported PDUs, `LINKTYPE_WIRESHARK_UPPER_PDU`.
pub const LINKTYPE_WIRESHARK_UPPER_PDU: u32 = 252;

/// The snapshot length written in the file header; no record is longer.
pub const SNAPLEN: u32 = 65_535;

/// The magic number of a classic pcap file with microsecond timestamps.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;

/// The name of Wireshark's 5GS NAS dissector.
pub const NAS_5GS_DISSECTOR: &str = "nas-5gs";

/// The 5GMM message type of CONTROL PLANE SERVICE REQUEST.
const CONTROL_PLANE_SERVICE_REQUEST: u8 = 0x4f;

/// Where the ciphertext of a partially ciphered NAS PDU starts, if `pdu` is
/// one: an integrity-protected (security header type 1 or 3, not ciphered)
/// 5GMM message whose inner message is a CONTROL PLANE SERVICE REQUEST with
/// a CIoT small data container (IEI 0x6F, TLV) or a NAS message container
/// (IEI 0x71, TLV-E), whose value part is ciphered (TS 24.501 §4.4.6). The
/// offset is that of the first value octet of the first such IE. `None`
/// for every other PDU, and for a PDU whose IEs do not parse (it is then
/// written whole, as sent).
pub fn partially_ciphered_at(pdu: &[u8]) -> Option<usize> {
    // Outer header: EPD 0x7E, security header type, MAC (4), sequence number.
    const INNER: usize = 7;
    let sht = *pdu.get(1)? & 0x0f;
    if pdu.first() != Some(&0x7e) || !(sht == 1 || sht == 3) {
        return None;
    }
    // Inner plain header: EPD, security header type 0, message type, then
    // the control plane service type and ngKSI in one octet.
    let inner = pdu.get(INNER..INNER + 4)?;
    if inner[0] != 0x7e || inner[1] & 0x0f != 0 || inner[2] != CONTROL_PLANE_SERVICE_REQUEST {
        return None;
    }
    let mut at = INNER + 4;
    while at < pdu.len() {
        let iei = pdu[at];
        // Type 1 IEs (TV, one octet, IEI in the high half): payload
        // container type (0x8-), release assistance indication (0xF-).
        if iei >= 0x80 {
            at += 1;
            continue;
        }
        match iei {
            // CIoT small data container: TLV, ciphered value.
            0x6f => return (at + 2 <= pdu.len()).then_some(at + 2),
            // NAS message container: TLV-E, ciphered value.
            0x71 => return (at + 3 <= pdu.len()).then_some(at + 3),
            // PDU session ID: TV, 2 octets.
            0x12 => at += 2,
            // Payload container: TLV-E.
            0x7b => {
                let len = usize::from(u16::from_be_bytes([*pdu.get(at + 1)?, *pdu.get(at + 2)?]));
                at += 3 + len;
            }
            // PDU session status, uplink data status, additional
            // information: TLV.
            0x50 | 0x40 | 0x24 => at += 2 + usize::from(*pdu.get(at + 1)?),
            _ => return None,
        }
    }
    None
}

/// The longest annotation [`PcapWriter::write_nas_annotated`] takes, in octets.
pub const MAX_ANNOTATION_LEN: usize = 256;

/// Exported-PDU tag numbers (Wireshark `wiretap/exported_pdu_tlvs.h`).
pub mod tag {
    /// End of the tags: the PDU follows.
    pub const END_OF_OPT: u16 = 0;
    /// The name of the dissector that decodes the PDU (`EXP_PDU_TAG_DISSECTOR_NAME`).
    pub const DISSECTOR_NAME: u16 = 12;
    /// A text for the protocol column (`EXP_PDU_TAG_COL_PROT_TEXT`), shown by
    /// `tshark -V` as "Column protocol string" (`exported_pdu.col_proto_str`).
    pub const COL_PROT_TEXT: u16 = 33;
}

/// Length of the global pcap header.
const FILE_HEADER_LEN: usize = 24;
/// Length of a pcap record header.
const RECORD_HEADER_LEN: usize = 16;

/// A classic pcap writer whose records are exported 5GS NAS PDUs.
///
/// See the crate documentation for the layout and its invariants.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    records: u64,
    /// Whether a partially ciphered PDU is cut at its ciphertext.
    cut_ciphertext: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Write the pcap global header to `inner` and return the writer.
    ///
    /// # Errors
    ///
    /// Any error of `inner`.
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&file_header())?;
        Ok(Self {
            inner,
            records: 0,
            cut_ciphertext: true,
        })
    }

    /// The writer for PDUs whose CIoT containers are not ciphered (null
    /// ciphering, NEA0, or integrity protection alone, as in test vectors):
    /// the container of what looks like a partially ciphered message is
    /// plain there, so every record is written whole.
    pub fn with_null_ciphering(mut self) -> Self {
        self.cut_ciphertext = false;
        self
    }

    /// Record one NAS PDU (`pdu`, the octets of a 5GS NAS message, plain or
    /// security protected) at `timestamp`, a time since the UNIX epoch. A
    /// partially ciphered PDU ([`partially_ciphered_at`]) is captured up to
    /// its ciphertext, with its whole length as the original length.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when the record would exceed
    /// [`SNAPLEN`] or the timestamp does not fit classic pcap; otherwise any
    /// error of the inner writer.
    pub fn write_nas(&mut self, timestamp: Duration, pdu: &[u8]) -> io::Result<()> {
        let tags = exported_pdu_tags(NAS_5GS_DISSECTOR, None)?;
        self.write_record(timestamp, &tags, pdu)
    }

    /// [`Self::write_nas`] with a short annotation, carried in tag 33
    /// (`EXP_PDU_TAG_COL_PROT_TEXT`). Wireshark (checked with tshark 4.0)
    /// shows it in the protocol column of the packet list, before the NAS
    /// dissector's own name (`UE->AMF/NAS-5GS`), and `tshark -V` prints it in
    /// the exported PDU tree as `Column protocol string: <annotation>`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when `annotation` holds a NUL, is
    /// longer than [`MAX_ANNOTATION_LEN`] octets, or the record is refused as
    /// by [`Self::write_nas`]; otherwise any error of the inner writer.
    pub fn write_nas_annotated(
        &mut self,
        timestamp: Duration,
        pdu: &[u8],
        annotation: &str,
    ) -> io::Result<()> {
        if annotation.contains('\0') {
            return Err(invalid("an annotation holds no NUL"));
        }
        if annotation.len() > MAX_ANNOTATION_LEN {
            return Err(invalid("an annotation has 256 octets at most"));
        }
        let tags = exported_pdu_tags(NAS_5GS_DISSECTOR, Some(annotation))?;
        self.write_record(timestamp, &tags, pdu)
    }

    /// The number of records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Flush the inner writer.
    ///
    /// # Errors
    ///
    /// Any error of the inner writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// Flush and return the inner writer.
    ///
    /// # Errors
    ///
    /// Any error of the inner writer's flush.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Write one record: the record header, the tags, the PDU (up to its
    /// ciphertext when partially ciphered).
    fn write_record(&mut self, timestamp: Duration, tags: &[u8], pdu: &[u8]) -> io::Result<()> {
        let length = tags.len() + pdu.len();
        let length = u32::try_from(length)
            .ok()
            .filter(|length| *length <= SNAPLEN)
            .ok_or_else(|| invalid("a record is longer than the snapshot length, 65535"))?;
        let seconds = u32::try_from(timestamp.as_secs())
            .map_err(|_| invalid("a timestamp past the 32-bit seconds of classic pcap"))?;
        let cut = if self.cut_ciphertext {
            partially_ciphered_at(pdu)
        } else {
            None
        };
        let captured_pdu = &pdu[..cut.unwrap_or(pdu.len())];
        // Not larger than `length`, which fits.
        let captured = u32::try_from(tags.len() + captured_pdu.len()).unwrap_or(length);
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + tags.len() + captured_pdu.len());
        record.extend_from_slice(&seconds.to_le_bytes());
        record.extend_from_slice(&timestamp.subsec_micros().to_le_bytes());
        record.extend_from_slice(&captured.to_le_bytes());
        record.extend_from_slice(&length.to_le_bytes()); // original
        record.extend_from_slice(tags);
        record.extend_from_slice(captured_pdu);
        self.inner.write_all(&record)?;
        self.records += 1;
        Ok(())
    }
}

/// The 24-octet global header: magic, version 2.4, zone, accuracy, snapshot
/// length, link type, little-endian.
fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
    header[4..6].copy_from_slice(&2u16.to_le_bytes());
    header[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone (8..12) and sigfigs (12..16) stay 0.
    header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    header[20..24].copy_from_slice(&LINKTYPE_WIRESHARK_UPPER_PDU.to_le_bytes());
    header
}

/// The exported-PDU tags of a record: dissector name, the optional column
/// protocol text, end of options.
fn exported_pdu_tags(dissector: &str, annotation: Option<&str>) -> io::Result<Vec<u8>> {
    let mut tags = Vec::with_capacity(32);
    push_padded_text(&mut tags, tag::DISSECTOR_NAME, dissector)?;
    if let Some(text) = annotation {
        push_padded_text(&mut tags, tag::COL_PROT_TEXT, text)?;
    }
    tags.extend_from_slice(&tag::END_OF_OPT.to_be_bytes());
    tags.extend_from_slice(&0u16.to_be_bytes());
    Ok(tags)
}

/// One tag whose value is `text` padded with NULs to a multiple of four
/// octets; the length counts the padding.
fn push_padded_text(tags: &mut Vec<u8>, tag: u16, text: &str) -> io::Result<()> {
    let padded = text.len().next_multiple_of(4);
    let length = u16::try_from(padded).map_err(|_| invalid("a tag value over 65535 octets"))?;
    tags.extend_from_slice(&tag.to_be_bytes());
    tags.extend_from_slice(&length.to_be_bytes());
    tags.extend_from_slice(text.as_bytes());
    tags.resize(tags.len() + (padded - text.len()), 0);
    Ok(())
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The global header, octet by octet.
    const GOLDEN_HEADER: [u8; 24] = [
        0xd4, 0xc3, 0xb2, 0xa1, // magic a1b2c3d4, little-endian
        0x02, 0x00, 0x04, 0x00, // version 2.4
        0x00, 0x00, 0x00, 0x00, // thiszone
        0x00, 0x00, 0x00, 0x00, // sigfigs
        0xff, 0xff, 0x00, 0x00, // snaplen 65535
        0xfc, 0x00, 0x00, 0x00, // link type 252
    ];

    #[test]
    fn golden_header() {
        let writer = PcapWriter::new(Vec::new()).unwrap();
        assert_eq!(writer.get_ref().as_slice(), GOLDEN_HEADER);
        assert_eq!(writer.records(), 0);
    }

    #[test]
    fn golden_record() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        // 5GMM STATUS, cause #111, at 1700000000.123456789 s
        let pdu = [0x7e, 0x00, 0x64, 0x6f];
        writer
            .write_nas(Duration::new(1_700_000_000, 123_456_789), &pdu)
            .unwrap();
        assert_eq!(writer.records(), 1);
        let octets = writer.into_inner().unwrap();
        let expected: Vec<u8> = [
            &GOLDEN_HEADER[..],
            &[0x00, 0xf1, 0x53, 0x65], // 1700000000 s
            &[0x40, 0xe2, 0x01, 0x00], // 123456 µs
            &[0x14, 0x00, 0x00, 0x00], // captured 20
            &[0x14, 0x00, 0x00, 0x00], // original 20
            &[0x00, 0x0c, 0x00, 0x08], // tag 12, length 8
            b"nas-5gs\0",
            &[0x00, 0x00, 0x00, 0x00], // end of options
            &pdu,
        ]
        .concat();
        assert_eq!(octets, expected);
    }

    #[test]
    fn golden_annotated_record() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let pdu = [0x7e, 0x00, 0x64, 0x6f];
        writer
            .write_nas_annotated(Duration::from_secs(1), &pdu, "UE->AMF")
            .unwrap();
        writer
            .write_nas_annotated(Duration::from_secs(2), &pdu, "abcd")
            .unwrap();
        let octets = writer.into_inner().unwrap();
        let first: Vec<u8> = [
            &[0x01, 0x00, 0x00, 0x00][..],
            &[0x00, 0x00, 0x00, 0x00],
            &[0x20, 0x00, 0x00, 0x00], // 12 + 12 + 4 + 4 = 32
            &[0x20, 0x00, 0x00, 0x00],
            &[0x00, 0x0c, 0x00, 0x08],
            b"nas-5gs\0",
            &[0x00, 0x21, 0x00, 0x08], // tag 33, length 8
            b"UE->AMF\0",
            &[0x00, 0x00, 0x00, 0x00],
            &pdu,
        ]
        .concat();
        let second: Vec<u8> = [
            &[0x02, 0x00, 0x00, 0x00][..],
            &[0x00, 0x00, 0x00, 0x00],
            &[0x1c, 0x00, 0x00, 0x00], // 12 + 8 + 4 + 4 = 28: no padding after 4 octets
            &[0x1c, 0x00, 0x00, 0x00],
            &[0x00, 0x0c, 0x00, 0x08],
            b"nas-5gs\0",
            &[0x00, 0x21, 0x00, 0x04],
            b"abcd",
            &[0x00, 0x00, 0x00, 0x00],
            &pdu,
        ]
        .concat();
        assert_eq!(octets, [&GOLDEN_HEADER[..], &first, &second].concat());
    }

    #[test]
    fn refuses_oversized_record_and_stays_valid() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        // 16 octets of tags + 65520 = 65536 > 65535
        let error = writer
            .write_nas(Duration::ZERO, &vec![0u8; 65_520])
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(writer.get_ref().len(), 24);
        // 65519 fits exactly
        writer
            .write_nas(Duration::ZERO, &vec![0u8; 65_519])
            .unwrap();
        assert_eq!(writer.get_ref().len(), 24 + 16 + 65_535);
    }

    #[test]
    fn refuses_bad_annotation_and_timestamp() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let pdu = [0x7e, 0x00, 0x64, 0x6f];
        let nul = writer.write_nas_annotated(Duration::ZERO, &pdu, "a\0b");
        assert_eq!(nul.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let long = "x".repeat(MAX_ANNOTATION_LEN + 1);
        let long = writer.write_nas_annotated(Duration::ZERO, &pdu, &long);
        assert_eq!(long.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let late = writer.write_nas(Duration::from_secs(u64::from(u32::MAX) + 1), &pdu);
        assert_eq!(late.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(writer.records(), 0);
        assert_eq!(writer.get_ref().len(), 24);
    }

    #[test]
    fn a_partially_ciphered_cpsr_is_captured_up_to_its_ciphertext() {
        // 7E 01 MAC SQN | 7E 00 4F 00 | 6F 03 <3 ciphered octets>
        let cpsr = [
            0x7e, 0x01, 1, 2, 3, 4, 9, 0x7e, 0x00, 0x4f, 0x00, 0x6f, 0x03, 0xaa, 0xbb, 0xcc,
        ];
        assert_eq!(partially_ciphered_at(&cpsr), Some(13));
        // With a PDU session ID and a release assistance indication first.
        let with_ies = [
            0x7e, 0x03, 1, 2, 3, 4, 9, 0x7e, 0x00, 0x4f, 0x00, 0x12, 0x05, 0xf1, 0x6f, 0x01, 0xaa,
        ];
        assert_eq!(partially_ciphered_at(&with_ies), Some(16));
        // NAS message container, TLV-E.
        let nmc = [
            0x7e, 0x01, 1, 2, 3, 4, 9, 0x7e, 0x00, 0x4f, 0x00, 0x71, 0x00, 0x01, 0xaa,
        ];
        assert_eq!(partially_ciphered_at(&nmc), Some(14));
        // Not partially ciphered: the plain message, a ciphered message
        // (type 2), another message, truncated or unknown IEs.
        assert_eq!(partially_ciphered_at(&cpsr[7..]), None);
        let mut ciphered = cpsr;
        ciphered[1] = 0x02;
        assert_eq!(partially_ciphered_at(&ciphered), None);
        let mut other = cpsr;
        other[9] = 0x67;
        assert_eq!(partially_ciphered_at(&other), None);
        assert_eq!(partially_ciphered_at(&cpsr[..12]), None);
        let mut unknown = cpsr;
        unknown[11] = 0x33;
        assert_eq!(partially_ciphered_at(&unknown), None);
        assert_eq!(partially_ciphered_at(&[]), None);

        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        writer.write_nas(Duration::from_secs(1), &cpsr).unwrap();
        let octets = writer.into_inner().unwrap();
        let expected: Vec<u8> = [
            &GOLDEN_HEADER[..],
            &[0x01, 0x00, 0x00, 0x00],
            &[0x00, 0x00, 0x00, 0x00],
            &[0x1d, 0x00, 0x00, 0x00], // captured 16 + 13
            &[0x20, 0x00, 0x00, 0x00], // original 16 + 16
            &[0x00, 0x0c, 0x00, 0x08],
            b"nas-5gs\0",
            &[0x00, 0x00, 0x00, 0x00],
            &cpsr[..13],
        ]
        .concat();
        assert_eq!(octets, expected);
    }

    #[test]
    fn propagates_writer_errors() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("broken"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(PcapWriter::new(Broken).is_err());
    }
}
