//! Update packing: put as many NLRI as fit into each UPDATE for routes that share one set of
//! path attributes, and as many withdrawals as fit into each withdrawal UPDATE. IPv4 unicast
//! uses the classic fields; every other family (and IPv4 with an RFC 8950 IPv6 next hop) uses
//! MP_REACH_NLRI / MP_UNREACH_NLRI. Attributes are encoded once per call, not per message.
//!
//! Roughly 1,000 IPv4 /24s fit into a 4,096-octet UPDATE with a small attribute set.
//!
//! Pure: no I/O.

use crate::attribute::{MpReach, PathAttribute, code, flags};
use crate::context::SessionContext;
use crate::error::Error;
use crate::family::Family;
use crate::framing::{HEADER_LEN, MessageType, finish_message, start_message};
use crate::nlri::Nlri;
use crate::update::patch_u16;

/// Octets of an attribute header with a 2-octet length.
const EXT_ATTR_HEADER: usize = 4;

/// Encode announcements of `nlri` sharing `attrs` into as few UPDATEs of at most `max_len`
/// octets as possible (each message is one `Vec<u8>`, header included).
///
/// If `attrs` holds an [`PathAttribute::MpReach`], it is the template: its family and next
/// hop are used, its own NLRI are ignored, and every entry of `nlri` goes into MP_REACH_NLRI
/// (all must be of the template's AFI). Otherwise every entry must be IPv4 and goes into the
/// classic NLRI field; `attrs` should then hold NEXT_HOP. Path ids are written when
/// `ctx.add_path_tx` holds the family. `max_len` is usually `ctx.max_message_len()`.
pub fn pack_updates(
    attrs: &[PathAttribute],
    nlri: &[Nlri],
    ctx: &SessionContext,
    max_len: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    let template = attrs.iter().find_map(|a| match a {
        PathAttribute::MpReach(m) => Some(m),
        _ => None,
    });
    let family = template.map_or(Family::IPV4_UNICAST, |m| m.family);
    if let Some(bad) = nlri.iter().find(|n| n.prefix.afi() != family.afi) {
        return Err(Error::encode(format!(
            "prefix {} does not belong to {family}",
            bad.prefix
        )));
    }
    // Attributes sorted around MP_REACH_NLRI by type code (RFC 4271 §5 "SHOULD").
    let mut before = Vec::new();
    let mut after = Vec::new();
    for a in attrs {
        match a {
            PathAttribute::MpReach(_) => {}
            a if a.type_code() < code::MP_REACH_NLRI => a.encode(ctx, &mut before)?,
            a => a.encode(ctx, &mut after)?,
        }
    }
    let add_path = ctx.add_path_tx(family);
    let mut fixed = HEADER_LEN + 2 + 2 + before.len() + after.len();
    if let Some(t) = template {
        fixed += EXT_ATTR_HEADER + 3 + 1 + t.next_hop.wire_len() + 1;
    }
    let budget = max_len.saturating_sub(fixed);
    let mut out = Vec::new();
    let mut rest = nlri;
    while !rest.is_empty() {
        let n = fitting(rest, add_path, budget);
        if n == 0 {
            return Err(Error::encode(format!(
                "attributes of {} octets leave no room for NLRI in {max_len}",
                before.len() + after.len()
            )));
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut msg = Vec::with_capacity(max_len);
        let at = start_message(MessageType::Update, &mut msg);
        msg.extend_from_slice(&[0, 0]);
        let a_at = msg.len();
        msg.extend_from_slice(&[0, 0]);
        msg.extend_from_slice(&before);
        match template {
            Some(t) => {
                let mp = PathAttribute::MpReach(MpReach {
                    family: t.family,
                    next_hop: t.next_hop,
                    nlri: chunk.to_vec(),
                });
                mp.encode(ctx, &mut msg)?;
                msg.extend_from_slice(&after);
                patch_u16(&mut msg, a_at, "path attributes")?;
            }
            None => {
                msg.extend_from_slice(&after);
                patch_u16(&mut msg, a_at, "path attributes")?;
                for e in chunk {
                    e.encode(add_path, &mut msg);
                }
            }
        }
        finish_message(&mut msg, at, max_len)?;
        out.push(msg);
    }
    Ok(out)
}

/// Encode withdrawals of `nlri` of `family` into as few UPDATEs as possible: the classic
/// withdrawn routes field for IPv4 unicast, MP_UNREACH_NLRI otherwise.
pub fn pack_withdrawals(
    family: Family,
    nlri: &[Nlri],
    ctx: &SessionContext,
    max_len: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    if let Some(bad) = nlri.iter().find(|n| n.prefix.afi() != family.afi) {
        return Err(Error::encode(format!(
            "prefix {} does not belong to {family}",
            bad.prefix
        )));
    }
    let classic = family == Family::IPV4_UNICAST;
    let add_path = ctx.add_path_tx(family);
    let mut fixed = HEADER_LEN + 2 + 2;
    if !classic {
        fixed += EXT_ATTR_HEADER + 3;
    }
    let budget = max_len.saturating_sub(fixed);
    let mut out = Vec::new();
    let mut rest = nlri;
    while !rest.is_empty() {
        let n = fitting(rest, add_path, budget);
        if n == 0 {
            return Err(Error::encode(format!(
                "no room for a withdrawal in {max_len}"
            )));
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut msg = Vec::with_capacity(max_len);
        let at = start_message(MessageType::Update, &mut msg);
        if classic {
            let w_at = msg.len();
            msg.extend_from_slice(&[0, 0]);
            for e in chunk {
                e.encode(add_path, &mut msg);
            }
            patch_u16(&mut msg, w_at, "withdrawn routes")?;
            msg.extend_from_slice(&[0, 0]);
        } else {
            msg.extend_from_slice(&[0, 0]);
            let a_at = msg.len();
            msg.extend_from_slice(&[0, 0]);
            let value_len: usize = 3 + chunk.iter().map(|e| e.wire_len(add_path)).sum::<usize>();
            if value_len > 255 {
                msg.push(flags::OPTIONAL | flags::EXTENDED_LENGTH);
                msg.push(code::MP_UNREACH_NLRI);
                msg.extend_from_slice(&u16::try_from(value_len).unwrap_or(0).to_be_bytes());
            } else {
                msg.push(flags::OPTIONAL);
                msg.push(code::MP_UNREACH_NLRI);
                msg.push(u8::try_from(value_len).unwrap_or(0));
            }
            msg.extend_from_slice(&family.afi.0.to_be_bytes());
            msg.push(family.safi.0);
            for e in chunk {
                e.encode(add_path, &mut msg);
            }
            patch_u16(&mut msg, a_at, "path attributes")?;
        }
        finish_message(&mut msg, at, max_len)?;
        out.push(msg);
    }
    Ok(out)
}

/// How many leading entries of `nlri` fit in `budget` octets.
fn fitting(nlri: &[Nlri], add_path: bool, budget: usize) -> usize {
    let mut used = 0usize;
    let mut n = 0;
    for e in nlri {
        used += e.wire_len(add_path);
        if used > budget {
            break;
        }
        n += 1;
    }
    n
}
