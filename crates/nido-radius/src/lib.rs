//! # nido-radius: RADIUS as a sans-IO codec
//!
//! - [`packet`]: packets and attributes (RFC 2865 §3, §5), decoded with a
//!   [`codec::Reader`] and encoded back.
//! - [`auth`]: the shared [`Secret`], Request/Response Authenticators
//!   (RFC 2865 §3, RFC 2866 §3), the Message-Authenticator (RFC 3579 §3.2)
//!   and User-Password hiding (RFC 2865 §5.2).
//! - [`eap`]: EAP-Message fragmentation and reassembly (RFC 3579 §3.1).
//! - [`mppe`]: MS-MPPE-Send-Key/Recv-Key (RFC 2548 §2.4.2, §2.4.3) and the
//!   MSK they carry.
//! - [`dedup`]: a server's duplicate detection reply cache (RFC 5080 §2.2.2).
//! - [`client`]: a client's table of outstanding requests, identifiers and
//!   retransmissions (RFC 5080 §2.2.1).
//! - [`stream`]: packets back to back on a byte stream (RadSec, RFC 6614),
//!   framed by their Length.
//!
//! ## Invariants
//! - No I/O, no clock, no randomness: datagrams in, datagrams out; `now` is
//!   a [`std::time::Duration`] since an epoch of the caller's choosing; the
//!   Request Authenticator, MPPE salts and retransmission jitter are
//!   parameters.
//! - No panic on any input octets. Truncation, bad lengths and trailing
//!   octets are typed errors naming the field and its octet offset.
//!   Octets of a datagram beyond the packet's Length are padding (RFC 2865
//!   §3) and are ignored; everything inside Length must decode.
//! - `Packet::decode(&p.encode()?) == p` for every packet that encodes;
//!   unknown codes and attribute types are kept, not dropped.
//! - Every packet nido signs carries exactly one Message-Authenticator, first;
//!   every Access-Request, Status-Server, Access-Accept, Access-Reject and
//!   Access-Challenge it verifies must carry exactly one valid one
//!   (BlastRADIUS hardening). Authenticators are compared in constant time.
//! - The shared secret and MPPE keys are never printed (`[redacted]`) and
//!   are zeroized where this crate owns them.

pub mod auth;
pub mod client;
pub mod codec;
pub mod dedup;
pub mod eap;
pub mod mppe;
pub mod packet;
pub mod stream;

pub use auth::{AuthError, RequestInfo, Secret, verify_request, verify_response};
pub use codec::{DecodeError, EncodeError, Reader};
pub use packet::{Attribute, Code, Packet, attr};
