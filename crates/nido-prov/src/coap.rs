//! CoAP (RFC 7252) framing of the PVS messages.
//!
//! The device sends confirmable `POST` requests to `/prov/v1/request` and
//! `/prov/v1/confirm` (Uri-Path options `prov`, `v1`, `request`|`confirm`)
//! with Content-Format 60 (`application/cbor`) and a token of at most 8
//! octets. The PVS answers with a piggybacked ACK carrying the same message
//! ID and token: 2.04 Changed with a CBOR payload (Content-Format 60), or a
//! 4.xx/5.xx code with a UTF-8 diagnostic payload (RFC 7252 §5.5.2).
//!
//! Sizes are not limited here: the NAS payload container bounds them.

use coap_lite::{
    CoapOption, ContentFormat, MessageClass, MessageType, Packet, RequestType, ResponseType,
};
use thiserror::Error;

use crate::ProvError;

/// Content-Format 60, `application/cbor`.
pub const CONTENT_FORMAT_CBOR: u16 = 60;

/// What is wrong with a CoAP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoapError {
    /// Not a CoAP message.
    #[error("CoAP: malformed message: {0}")]
    Malformed(String),
    /// A request that is not confirmable, or a response that is not an ACK.
    #[error("CoAP: message type {0} not expected here")]
    MessageType(&'static str),
    /// Not a POST (or a request where a response was expected, or vice versa).
    #[error("CoAP: code {0} not expected here")]
    Code(String),
    /// A path the PVS does not serve.
    #[error("CoAP: no resource at /{0}")]
    Path(String),
    /// Content-Format absent or not 60.
    #[error("CoAP: Content-Format must be 60 (application/cbor), found {0:?}")]
    ContentFormat(Option<u32>),
    /// A token longer than 8 octets.
    #[error("CoAP: token of {0} octets, at most 8")]
    Token(usize),
    /// An error response code this module does not produce.
    #[error("CoAP: response code {0} not used by the PVS protocol")]
    ResponseCode(String),
    /// The diagnostic payload is not UTF-8.
    #[error("CoAP: diagnostic payload is not UTF-8")]
    Diagnostic,
    /// The packet does not serialise.
    #[error("CoAP: cannot encode: {0}")]
    Encode(String),
}

impl CoapError {
    /// The response code a server should answer this request error with.
    pub fn response_code(&self) -> ErrorCode {
        match self {
            Self::Path(_) => ErrorCode::NotFound,
            Self::Code(_) => ErrorCode::MethodNotAllowed,
            Self::ContentFormat(_) => ErrorCode::UnsupportedContentFormat,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// The PVS resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// `/prov/v1/request`: a [`crate::messages::ProvisioningRequest`].
    Request,
    /// `/prov/v1/confirm`: a [`crate::messages::Confirmation`].
    Confirm,
}

impl Path {
    /// The Uri-Path segments.
    pub fn segments(self) -> [&'static str; 3] {
        match self {
            Self::Request => ["prov", "v1", "request"],
            Self::Confirm => ["prov", "v1", "confirm"],
        }
    }
}

/// A CoAP token, 0 to 8 octets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Token(Vec<u8>);

impl Token {
    /// Refuses more than 8 octets.
    pub fn new(octets: &[u8]) -> Result<Self, ProvError> {
        if octets.len() > 8 {
            return Err(CoapError::Token(octets.len()).into());
        }
        Ok(Self(octets.to_vec()))
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Error response codes the PVS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 4.00: the message does not decode.
    BadRequest,
    /// 4.01: the confirmation MAC does not verify.
    Unauthorized,
    /// 4.03: policy refuses the device.
    Forbidden,
    /// 4.04: unknown path.
    NotFound,
    /// 4.05: not a POST.
    MethodNotAllowed,
    /// 4.15: not CBOR.
    UnsupportedContentFormat,
    /// 5.00.
    InternalServerError,
    /// 5.03: try later.
    ServiceUnavailable,
}

impl ErrorCode {
    fn coap(self) -> ResponseType {
        match self {
            Self::BadRequest => ResponseType::BadRequest,
            Self::Unauthorized => ResponseType::Unauthorized,
            Self::Forbidden => ResponseType::Forbidden,
            Self::NotFound => ResponseType::NotFound,
            Self::MethodNotAllowed => ResponseType::MethodNotAllowed,
            Self::UnsupportedContentFormat => ResponseType::UnsupportedContentFormat,
            Self::InternalServerError => ResponseType::InternalServerError,
            Self::ServiceUnavailable => ResponseType::ServiceUnavailable,
        }
    }

    fn from_coap(code: ResponseType) -> Option<Self> {
        Some(match code {
            ResponseType::BadRequest => Self::BadRequest,
            ResponseType::Unauthorized => Self::Unauthorized,
            ResponseType::Forbidden => Self::Forbidden,
            ResponseType::NotFound => Self::NotFound,
            ResponseType::MethodNotAllowed => Self::MethodNotAllowed,
            ResponseType::UnsupportedContentFormat => Self::UnsupportedContentFormat,
            ResponseType::InternalServerError => Self::InternalServerError,
            ResponseType::ServiceUnavailable => Self::ServiceUnavailable,
            _ => return None,
        })
    }

    /// The code as `c.dd`, e.g. `"4.00"`.
    pub fn dotted(self) -> String {
        MessageClass::Response(self.coap()).to_string()
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapRequest {
    /// Which resource.
    pub path: Path,
    /// The CoAP message ID.
    pub message_id: u16,
    /// The token.
    pub token: Token,
    /// The CBOR payload.
    pub payload: Vec<u8>,
}

/// What a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    /// 2.04 Changed with a CBOR payload.
    Changed(Vec<u8>),
    /// An error code with a diagnostic text.
    Error {
        /// The code.
        code: ErrorCode,
        /// The diagnostic payload (UTF-8, may be empty).
        diagnostic: String,
    },
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapResponse {
    /// The message ID (the request's: piggybacked ACK).
    pub message_id: u16,
    /// The token (the request's).
    pub token: Token,
    /// The outcome.
    pub body: ResponseBody,
}

fn encode(packet: &Packet) -> Result<Vec<u8>, ProvError> {
    packet
        .to_bytes_unlimited()
        .map_err(|e| CoapError::Encode(e.to_string()).into())
}

fn content_format(packet: &Packet) -> Option<u32> {
    packet.get_first_option(CoapOption::ContentFormat).map(|v| {
        v.iter()
            .fold(0u32, |acc, b| acc.wrapping_shl(8) | u32::from(*b))
    })
}

fn check_cbor(packet: &Packet) -> Result<(), CoapError> {
    match content_format(packet) {
        Some(60) => Ok(()),
        other => Err(CoapError::ContentFormat(other)),
    }
}

fn message_type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Confirmable => "CON",
        MessageType::NonConfirmable => "NON",
        MessageType::Acknowledgement => "ACK",
        MessageType::Reset => "RST",
    }
}

fn parse(bytes: &[u8]) -> Result<Packet, CoapError> {
    let packet = Packet::from_bytes(bytes).map_err(|e| CoapError::Malformed(e.to_string()))?;
    if packet.header.get_version() != 1 {
        return Err(CoapError::Malformed(format!(
            "version {}",
            packet.header.get_version()
        )));
    }
    Ok(packet)
}

/// A confirmable `POST` of `payload` (CBOR) to `path`.
pub fn request(
    path: Path,
    message_id: u16,
    token: &Token,
    payload: &[u8],
) -> Result<Vec<u8>, ProvError> {
    let mut packet = Packet::new();
    packet.header.set_version(1);
    packet.header.set_type(MessageType::Confirmable);
    packet.header.code = MessageClass::Request(RequestType::Post);
    packet.header.message_id = message_id;
    packet.set_token(token.0.clone());
    for segment in path.segments() {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    packet.set_content_format(ContentFormat::ApplicationCBOR);
    packet.payload = payload.to_vec();
    encode(&packet)
}

/// Parses a request the PVS received. On error, [`CoapError::response_code`]
/// says what to answer (when the message ID and token could be read).
pub fn parse_request(bytes: &[u8]) -> Result<CoapRequest, ProvError> {
    let packet = parse(bytes)?;
    let t = packet.header.get_type();
    if t != MessageType::Confirmable {
        return Err(CoapError::MessageType(message_type_name(t)).into());
    }
    if packet.header.code != MessageClass::Request(RequestType::Post) {
        return Err(CoapError::Code(packet.header.code.to_string()).into());
    }
    let segments: Vec<String> = packet
        .get_option(CoapOption::UriPath)
        .map(|list| {
            list.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let path = [Path::Request, Path::Confirm]
        .into_iter()
        .find(|p| p.segments().iter().eq(segments.iter()))
        .ok_or_else(|| CoapError::Path(segments.join("/")))?;
    check_cbor(&packet)?;
    Ok(CoapRequest {
        path,
        message_id: packet.header.message_id,
        token: Token::new(packet.get_token())?,
        payload: packet.payload,
    })
}

/// A piggybacked response (ACK) to the request with `message_id` and `token`.
pub fn response(message_id: u16, token: &Token, body: &ResponseBody) -> Result<Vec<u8>, ProvError> {
    let mut packet = Packet::new();
    packet.header.set_version(1);
    packet.header.set_type(MessageType::Acknowledgement);
    packet.header.message_id = message_id;
    packet.set_token(token.0.clone());
    match body {
        ResponseBody::Changed(payload) => {
            packet.header.code = MessageClass::Response(ResponseType::Changed);
            packet.set_content_format(ContentFormat::ApplicationCBOR);
            packet.payload = payload.clone();
        }
        ResponseBody::Error { code, diagnostic } => {
            packet.header.code = MessageClass::Response(code.coap());
            packet.payload = diagnostic.as_bytes().to_vec();
        }
    }
    encode(&packet)
}

/// Parses a response the device received.
pub fn parse_response(bytes: &[u8]) -> Result<CoapResponse, ProvError> {
    let packet = parse(bytes)?;
    let t = packet.header.get_type();
    if t != MessageType::Acknowledgement {
        return Err(CoapError::MessageType(message_type_name(t)).into());
    }
    let MessageClass::Response(code) = packet.header.code else {
        return Err(CoapError::Code(packet.header.code.to_string()).into());
    };
    let body = if code == ResponseType::Changed {
        check_cbor(&packet)?;
        ResponseBody::Changed(packet.payload.clone())
    } else {
        let code = ErrorCode::from_coap(code)
            .ok_or_else(|| CoapError::ResponseCode(packet.header.code.to_string()))?;
        let diagnostic =
            String::from_utf8(packet.payload.clone()).map_err(|_| CoapError::Diagnostic)?;
        ResponseBody::Error { code, diagnostic }
    };
    Ok(CoapResponse {
        message_id: packet.header.message_id,
        token: Token::new(packet.get_token())?,
        body,
    })
}
