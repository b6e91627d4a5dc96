//! BGP-4 wire format: every message and path attribute Brindle's speaker uses, as typed
//! values, with decoders and encoders. Pure: no tokio, no sockets, no clock, no globals.
//!
//! # Using it
//!
//! 1. **Frame.** [`frame`]`(buf, ctx.max_message_len())` says "need more bytes"
//!    (`Ok(None)`), gives one message's [`Header`] (`buf[..h.length]` is the message), or
//!    returns the NOTIFICATION for a bad header.
//! 2. **Decode with context.** [`decode_message`]`(msg, &ctx)` returns a [`Decoded`] message
//!    plus RFC 7606 findings, or `Err(`[`Error::SessionReset`]`)` carrying the NOTIFICATION to
//!    send. The [`SessionContext`] holds what the OPENs negotiated (4-octet AS, ADD-PATH per
//!    family and direction, extended messages, families); build it with
//!    [`SessionContext::negotiate`]. OPEN decoding needs no context.
//! 3. **Act on findings.** A [`Error::TreatAsWithdraw`] finding means: withdraw every prefix in
//!    [`UpdateMsg::announced`]. An [`Error::AttributeDiscard`] finding means the attribute was
//!    already dropped from the message. Nothing else in this crate needs interpretation.
//! 4. **Encode.** [`encode_message`] appends one message; [`pack_updates`] and
//!    [`pack_withdrawals`] fill UPDATEs with as many prefixes as fit.
//!
//! ```
//! use brindle_bgp_wire::*;
//! use std::net::Ipv4Addr;
//!
//! let ctx = SessionContext::four_octet();
//! let attrs = vec![
//!     PathAttribute::Origin(Origin::Igp),
//!     PathAttribute::AsPath(AsPath::from_sequence(vec![65000])),
//!     PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
//! ];
//! let prefix = Prefix::v4(Ipv4Addr::new(10, 0, 0, 0), 24).unwrap();
//! let msgs = pack_updates(&attrs, &[Nlri::new(prefix)], &ctx, ctx.max_message_len())?;
//! let stream = msgs.concat();
//!
//! let header = frame(&stream, ctx.max_message_len())?.expect("one whole message");
//! let decoded = decode_message(&stream[..header.length], &ctx)?;
//! assert!(decoded.findings.is_empty());
//! let Message::Update(update) = decoded.msg else { unreachable!() };
//! assert_eq!(update.nlri, vec![Nlri::new(prefix)]);
//! assert!(!update.as_path().unwrap().contains(65001)); // loop check is the core's
//! # Ok::<(), Error>(())
//! ```
//!
//! # Never panics
//!
//! Decoders read through a bounds-checked cursor or nom parsers; there is no slice indexing on
//! input-derived positions, no `unwrap` on input-derived values and no unchecked arithmetic on
//! lengths. Property tests and fuzz targets (`fuzz/`) back this up.
//!
//! # Modules
//!
//! * [`framing`]: header, marker and length checks.
//! * [`message`]: [`Message`] and whole-message decode/encode.
//! * [`open`], [`capability`]: OPEN and capabilities.
//! * [`update`], [`attribute`], [`nlri`]: UPDATE, path attributes, prefixes.
//! * [`notification`], [`route_refresh`]: NOTIFICATION and ROUTE-REFRESH.
//! * [`context`], [`family`]: negotiated session parameters and address families.
//! * [`builder`]: packing many prefixes into few UPDATEs.
//! * [`error`]: the one error type.
//!
//! The design, with the RFC 7606 treatment table, is in `docs/bgp-wire.md`.

pub mod attribute;
pub mod builder;
pub mod capability;
pub mod context;
pub mod error;
pub mod family;
pub mod framing;
pub mod message;
pub mod nlri;
pub mod notification;
pub mod open;
mod reader;
pub mod route_refresh;
pub mod update;

pub use attribute::{
    Aggregator, AsPath, AsSegment, Community, ExtendedCommunity, LargeCommunity, MpReach,
    MpUnreach, NextHop, Origin, PathAttribute, RawAttribute, SegmentType,
};
pub use builder::{pack_updates, pack_withdrawals};
pub use capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GrFamily, GracefulRestart, LlgrFamily,
};
pub use context::{
    DecodeContext, EncodeContext, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, SessionContext,
};
pub use error::{Decoded, Error};
pub use family::{Afi, Family, Safi};
pub use framing::{HEADER_LEN, Header, MARKER, MessageType, frame};
pub use message::{Message, decode_message, decode_open, decode_update, encode_message};
pub use nlri::{Nlri, Prefix};
pub use notification::{
    CeaseSubcode, ErrorCode, FsmSubcode, HeaderSubcode, NotificationMsg, OpenSubcode,
    RouteRefreshSubcode, UpdateSubcode,
};
pub use open::{AS_TRANS, OpenMsg};
pub use route_refresh::{RefreshSubtype, RouteRefreshMsg};
pub use update::UpdateMsg;
