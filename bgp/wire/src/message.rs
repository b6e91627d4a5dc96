//! The five BGP messages as one type, with whole-message decode and encode (header included).
//!
//! Pure: no I/O.

use crate::context::{MAX_MESSAGE_LEN, SessionContext};
use crate::error::{Decoded, Error};
use crate::framing::{HEADER_LEN, MessageType, finish_message, frame, start_message};
use crate::notification::NotificationMsg;
use crate::open::OpenMsg;
use crate::route_refresh::RouteRefreshMsg;
use crate::update::UpdateMsg;

/// One BGP message.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN (RFC 4271 §4.2).
    Open(OpenMsg),
    /// UPDATE (RFC 4271 §4.3).
    Update(UpdateMsg),
    /// NOTIFICATION (RFC 4271 §4.5).
    Notification(NotificationMsg),
    /// KEEPALIVE (RFC 4271 §4.4): header only.
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918, RFC 7313).
    RouteRefresh(RouteRefreshMsg),
}

impl Message {
    /// The message type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Encode into a new buffer.
    pub fn encode(&self, ctx: &SessionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        encode_message(self, ctx, &mut out)?;
        Ok(out)
    }
}

/// Decode exactly one framed message (header included), as delimited by [`frame`].
///
/// The header is re-validated against `ctx.max_message_len()`, and the slice must be exactly
/// the announced length. OPEN decoding ignores `ctx`. `Err` is always a session reset;
/// RFC 7606 findings for an UPDATE are in [`Decoded::findings`].
pub fn decode_message(msg: &[u8], ctx: &SessionContext) -> Result<Decoded<Message>, Error> {
    let header = frame(msg, ctx.max_message_len())?.ok_or_else(|| {
        Error::reset(
            1,
            2,
            u16::try_from(msg.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes()
                .to_vec(),
            format!("{} octets do not hold a whole message", msg.len()),
        )
    })?;
    if header.length != msg.len() {
        return Err(Error::reset(
            1,
            2,
            u16::try_from(header.length)
                .unwrap_or(u16::MAX)
                .to_be_bytes()
                .to_vec(),
            format!(
                "header length {} but {} octets given",
                header.length,
                msg.len()
            ),
        ));
    }
    let body = msg.get(HEADER_LEN..).unwrap_or_default();
    let plain = |m: Message| Decoded {
        msg: m,
        findings: Vec::new(),
    };
    Ok(match header.kind {
        MessageType::Open => plain(Message::Open(OpenMsg::decode(body)?)),
        MessageType::Update => {
            let d = UpdateMsg::decode(body, ctx)?;
            Decoded {
                msg: Message::Update(d.msg),
                findings: d.findings,
            }
        }
        MessageType::Notification => plain(Message::Notification(NotificationMsg::decode(body)?)),
        MessageType::Keepalive => plain(Message::Keepalive),
        MessageType::RouteRefresh => {
            plain(Message::RouteRefresh(RouteRefreshMsg::decode(body, msg)?))
        }
    })
}

/// Append one encoded message to `out`. Fails, leaving `out` as it was, when the message is
/// larger than `ctx.max_message_len()` (4,096 for OPEN in any case) or a field overflows.
pub fn encode_message(msg: &Message, ctx: &SessionContext, out: &mut Vec<u8>) -> Result<(), Error> {
    let at = start_message(msg.kind(), out);
    let mut max = ctx.max_message_len();
    let r = match msg {
        Message::Open(o) => {
            max = MAX_MESSAGE_LEN;
            o.encode_body(out)
        }
        Message::Update(u) => u.encode_body(ctx, out),
        Message::Notification(n) => {
            n.encode_body(out);
            Ok(())
        }
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(r) => {
            r.encode_body(out);
            Ok(())
        }
    };
    if let Err(e) = r {
        out.truncate(at);
        return Err(e);
    }
    finish_message(out, at, max)
}

/// Decode an OPEN body (after the header). Needs no context.
pub fn decode_open(body: &[u8]) -> Result<OpenMsg, Error> {
    OpenMsg::decode(body)
}

/// Decode an UPDATE body (after the header); see [`UpdateMsg::decode`].
pub fn decode_update(body: &[u8], ctx: &SessionContext) -> Result<Decoded<UpdateMsg>, Error> {
    UpdateMsg::decode(body, ctx)
}
