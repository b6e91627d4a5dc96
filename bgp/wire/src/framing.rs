//! Message framing (RFC 4271 §4.1, §6.1; RFC 8654): find one message in a byte stream, or say
//! that more bytes are needed. Header errors are already the NOTIFICATION to send.
//!
//! ```text
//!  0                   1                   2                   3
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                                                               |
//!  +                        Marker (16 × 0xFF)                     +
//!  |                                                               |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |          Length               |      Type     |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Pure: no I/O.

use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, u8 as nom_u8};

use crate::context::MAX_MESSAGE_LEN;
use crate::error::Error;

/// The all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Header size.
pub const HEADER_LEN: usize = 19;

/// Message type codes.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1.
    Open,
    /// 2.
    Update,
    /// 3.
    Notification,
    /// 4.
    Keepalive,
    /// 5 (RFC 2918).
    RouteRefresh,
}

impl MessageType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// Type a wire value.
    pub fn from_u8(v: u8) -> Option<MessageType> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }
}

/// A validated message header.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Total message length, header included: the message is `buf[..length]`.
    pub length: usize,
    /// Message type.
    pub kind: MessageType,
}

fn bad_length(len: u16, why: &str) -> Error {
    Error::reset(
        1,
        2,
        len.to_be_bytes().to_vec(),
        format!("message length {len}: {why}"),
    )
}

/// Look for one message at the start of `buf`.
///
/// * `Ok(None)`: fewer bytes than the header or than the announced length; read more.
/// * `Ok(Some(h))`: `buf[..h.length]` is one message (pass it to [`crate::decode_message`]).
/// * `Err`: a session reset — 1/1 bad marker, 1/2 bad length (data: the length), 1/3 bad
///   type (data: the type).
///
/// `max_len` is [`crate::SessionContext::max_message_len`] (4,096, or 65,535 with RFC 8654).
/// OPEN is limited to 4,096 octets whatever `max_len` says (RFC 8654 §3). The header is checked
/// as soon as its 19 octets are present, so errors do not wait for the body.
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<Header>, Error> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let parsed: nom::IResult<&[u8], _, nom::error::Error<&[u8]>> =
        (take(16usize), be_u16, nom_u8).parse(buf);
    let Ok((_, (marker, length, kind))) = parsed else {
        return Ok(None);
    };
    if marker != MARKER {
        return Err(Error::reset(1, 1, Vec::new(), "marker is not all ones"));
    }
    let len = usize::from(length);
    if len < HEADER_LEN {
        return Err(bad_length(length, "shorter than the header"));
    }
    if len > max_len {
        return Err(bad_length(length, &format!("above the maximum {max_len}")));
    }
    let Some(kind) = MessageType::from_u8(kind) else {
        return Err(Error::reset(
            1,
            3,
            vec![kind],
            format!("unknown message type {kind}"),
        ));
    };
    let ok = match kind {
        MessageType::Open => (29..=MAX_MESSAGE_LEN).contains(&len),
        MessageType::Update => len >= 23,
        MessageType::Notification => len >= 21,
        MessageType::Keepalive => len == 19,
        // RFC 7313 §5: a wrong ROUTE-REFRESH length is answered with 7/1 by the decoder.
        MessageType::RouteRefresh => true,
    };
    if !ok {
        return Err(bad_length(length, &format!("invalid for {kind:?}")));
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Header { length: len, kind }))
}

/// Append a header with a zero length; [`finish_message`] fills it in.
pub(crate) fn start_message(kind: MessageType, out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, kind.to_u8()]);
    at
}

/// Fill in the length of the message started at `at`; fails (and removes the message) when
/// it exceeds `max_len`.
pub(crate) fn finish_message(out: &mut Vec<u8>, at: usize, max_len: usize) -> Result<(), Error> {
    let len = out.len().saturating_sub(at);
    let Some(v) = u16::try_from(len).ok().filter(|_| len <= max_len) else {
        out.truncate(at);
        return Err(Error::encode(format!(
            "message of {len} octets exceeds the maximum {max_len}"
        )));
    };
    if let Some(dst) = out.get_mut(at + 16..at + 18) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
    Ok(())
}
