//! UPDATE messages (RFC 4271 §4.3) with RFC 7606 revised error handling, ADD-PATH (RFC 7911)
//! and End-of-RIB markers (RFC 4724 §2).
//!
//! ```text
//!  +-----------------------------------------------------+
//!  |   Withdrawn Routes Length (2 octets)                |
//!  +-----------------------------------------------------+
//!  |   Withdrawn Routes (variable)                       |   IPv4 unicast NLRI
//!  +-----------------------------------------------------+
//!  |   Total Path Attribute Length (2 octets)            |
//!  +-----------------------------------------------------+
//!  |   Path Attributes (variable)                        |
//!  +-----------------------------------------------------+
//!  |   Network Layer Reachability Information (variable) |   IPv4 unicast NLRI
//!  +-----------------------------------------------------+
//! ```
//!
//! # Error treatment
//!
//! [`UpdateMsg::decode`] returns `Err` only for errors that reset the session. Everything
//! RFC 7606 lets the session survive is returned in [`Decoded::findings`] beside the decoded
//! message:
//!
//! * [`Error::AttributeDiscard`]: the attribute is absent from `attributes`; use the rest.
//! * [`Error::TreatAsWithdraw`]: the UPDATE still decodes as far as possible, so that every
//!   prefix it announced (classic NLRI and MP_REACH_NLRI, see [`UpdateMsg::announced`]) can
//!   be withdrawn by the core. Withdrawals in the same UPDATE are processed normally.
//!
//! Byte offsets in reasons are counted from the start of the message (header included).
//!
//! Pure: no I/O.

use std::net::Ipv4Addr;

use crate::attribute::{AsPath, MpReach, MpUnreach, Origin, PathAttribute, code, flags, type_name};
use crate::context::SessionContext;
use crate::error::{Decoded, Error};
use crate::family::{Afi, Family};
use crate::nlri::{Nlri, decode_nlri};
use crate::reader::Reader;

/// An UPDATE message.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UpdateMsg {
    /// Withdrawn IPv4 unicast routes (the classic field).
    pub withdrawn: Vec<Nlri>,
    /// Path attributes in wire order, MP_REACH_NLRI / MP_UNREACH_NLRI included.
    pub attributes: Vec<PathAttribute>,
    /// Announced IPv4 unicast routes (the classic field).
    pub nlri: Vec<Nlri>,
}

/// A set of type codes seen, for duplicate detection.
#[derive(Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Mark `t`; returns true if it was already marked.
    fn insert(&mut self, t: u8) -> bool {
        let (w, b) = (usize::from(t >> 6), t & 63);
        match self.0.get_mut(w) {
            Some(word) => {
                let had = *word & (1 << b) != 0;
                *word |= 1 << b;
                had
            }
            None => false,
        }
    }

    fn contains(&self, t: u8) -> bool {
        let (w, b) = (usize::from(t >> 6), t & 63);
        self.0.get(w).is_some_and(|word| word & (1 << b) != 0)
    }
}

fn malformed_list(at: usize, what: &str) -> Error {
    Error::reset(3, 1, Vec::new(), format!("UPDATE at byte {at}: {what}"))
}

impl UpdateMsg {
    /// An End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast,
    /// otherwise an UPDATE holding only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib_marker(family: Family) -> UpdateMsg {
        if family == Family::IPV4_UNICAST {
            return UpdateMsg::default();
        }
        UpdateMsg {
            withdrawn: Vec::new(),
            attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                family,
                withdrawn: Vec::new(),
            })],
            nlri: Vec::new(),
        }
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute::MpUnreach(m)] if m.withdrawn.is_empty() => Some(m.family),
            _ => None,
        }
    }

    /// The first attribute with this type code.
    pub fn attribute(&self, type_code: u8) -> Option<&PathAttribute> {
        self.attributes.iter().find(|a| a.type_code() == type_code)
    }

    /// ORIGIN, if present.
    pub fn origin(&self) -> Option<Origin> {
        match self.attribute(code::ORIGIN)? {
            PathAttribute::Origin(o) => Some(*o),
            _ => None,
        }
    }

    /// AS_PATH, if present.
    pub fn as_path(&self) -> Option<&AsPath> {
        match self.attribute(code::AS_PATH)? {
            PathAttribute::AsPath(p) => Some(p),
            _ => None,
        }
    }

    /// NEXT_HOP, if present.
    pub fn next_hop(&self) -> Option<Ipv4Addr> {
        match self.attribute(code::NEXT_HOP)? {
            PathAttribute::NextHop(a) => Some(*a),
            _ => None,
        }
    }

    /// MP_REACH_NLRI, if present and decoded.
    pub fn mp_reach(&self) -> Option<&MpReach> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::MpReach(m) => Some(m),
            _ => None,
        })
    }

    /// MP_UNREACH_NLRI, if present and decoded.
    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::MpUnreach(m) => Some(m),
            _ => None,
        })
    }

    /// Every announced NLRI with its family: classic NLRI then MP_REACH_NLRI.
    pub fn announced(&self) -> impl Iterator<Item = (Family, &Nlri)> {
        let mp = self
            .mp_reach()
            .into_iter()
            .flat_map(|m| m.nlri.iter().map(move |n| (m.family, n)));
        self.nlri
            .iter()
            .map(|n| (Family::IPV4_UNICAST, n))
            .chain(mp)
    }

    /// Every withdrawn NLRI with its family: classic withdrawn routes then MP_UNREACH_NLRI.
    pub fn withdrawals(&self) -> impl Iterator<Item = (Family, &Nlri)> {
        let mp = self
            .mp_unreach()
            .into_iter()
            .flat_map(|m| m.withdrawn.iter().map(move |n| (m.family, n)));
        self.withdrawn
            .iter()
            .map(|n| (Family::IPV4_UNICAST, n))
            .chain(mp)
    }

    /// Decode the body (after the 19-octet header) with the session's context.
    ///
    /// `Err` is always [`Error::SessionReset`]; RFC 7606 findings are in the `Ok` value.
    pub fn decode(body: &[u8], ctx: &SessionContext) -> Result<Decoded<UpdateMsg>, Error> {
        let mut r = Reader::new(body, 19);
        let wlen = r
            .u16()
            .ok_or_else(|| malformed_list(19, "missing withdrawn routes length"))?;
        let wr = r.sub(usize::from(wlen)).ok_or_else(|| {
            malformed_list(
                19,
                &format!("withdrawn routes length {wlen} overruns the message"),
            )
        })?;
        let alen_at = r.offset();
        let alen = r
            .u16()
            .ok_or_else(|| malformed_list(alen_at, "missing total path attribute length"))?;
        let mut ar = r.sub(usize::from(alen)).ok_or_else(|| {
            malformed_list(
                alen_at,
                &format!("total path attribute length {alen} overruns the message"),
            )
        })?;
        let nr = r;

        let mut withdrawn = Vec::new();
        decode_nlri(
            wr,
            Afi::IPV4,
            ctx.add_path_rx(Family::IPV4_UNICAST),
            "withdrawn routes",
            &mut withdrawn,
        )?;

        let mut findings = Vec::new();
        let mut attributes = Vec::with_capacity(8);
        let mut seen = Seen::default();
        while !ar.is_empty() {
            let at = ar.offset();
            let all = ar.rest();
            let ext = all.first().is_some_and(|f| f & flags::EXTENDED_LENGTH != 0);
            let hdr = if ext { 4 } else { 3 };
            if ar.len() < hdr {
                findings.push(Error::withdraw(format!(
                    "path attributes at byte {at}: {} octets left, too few for an attribute header",
                    ar.len()
                )));
                break;
            }
            let (Some(attr_flags), Some(type_code)) = (ar.u8(), ar.u8()) else {
                break;
            };
            let len = if ext {
                ar.u16().map(usize::from)
            } else {
                ar.u8().map(usize::from)
            }
            .unwrap_or(0);
            let Some(v) = ar.sub(len) else {
                findings.push(Error::withdraw(format!(
                    "{} (type {type_code}) at byte {at}: length {len} overruns the path attributes ({} octets left)",
                    type_name(type_code),
                    ar.len()
                )));
                break;
            };
            let raw = all.get(..hdr + len).unwrap_or_default();
            if seen.insert(type_code) {
                if type_code == code::MP_REACH_NLRI || type_code == code::MP_UNREACH_NLRI {
                    return Err(malformed_list(
                        at,
                        &format!("duplicate {} (type {type_code})", type_name(type_code)),
                    ));
                }
                findings.push(Error::discard(format!(
                    "{} (type {type_code}) at byte {at}: duplicate, all but the first discarded",
                    type_name(type_code)
                )));
                continue;
            }
            match PathAttribute::decode(attr_flags, type_code, v, raw, ctx) {
                Ok(a) => attributes.push(a),
                Err(e @ Error::SessionReset { .. }) => return Err(e),
                Err(e) => findings.push(e),
            }
        }

        let mut nlri = Vec::new();
        decode_nlri(
            nr,
            Afi::IPV4,
            ctx.add_path_rx(Family::IPV4_UNICAST),
            "NLRI",
            &mut nlri,
        )?;

        // RFC 7606 §3 (d): mandatory attributes, only meaningful when something is announced.
        let has_mp_reach = seen.contains(code::MP_REACH_NLRI);
        if !nlri.is_empty() || has_mp_reach {
            let mut required = vec![code::ORIGIN, code::AS_PATH];
            if !nlri.is_empty() {
                required.push(code::NEXT_HOP);
            }
            for t in required {
                if !seen.contains(t) {
                    findings.push(Error::withdraw(format!(
                        "missing well-known attribute {} (type {t})",
                        type_name(t)
                    )));
                }
            }
        }

        Ok(Decoded {
            msg: UpdateMsg {
                withdrawn,
                attributes,
                nlri,
            },
            findings,
        })
    }

    /// Append the body (after the header), sending path ids where `ctx.add_path_tx` says so.
    pub fn encode_body(&self, ctx: &SessionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let ap = ctx.add_path_tx(Family::IPV4_UNICAST);
        let w_at = out.len();
        out.extend_from_slice(&[0, 0]);
        for n in &self.withdrawn {
            n.encode(ap, out);
        }
        patch_u16(out, w_at, "withdrawn routes")?;
        let a_at = out.len();
        out.extend_from_slice(&[0, 0]);
        for a in &self.attributes {
            a.encode(ctx, out)?;
        }
        patch_u16(out, a_at, "path attributes")?;
        for n in &self.nlri {
            n.encode(ap, out);
        }
        Ok(())
    }
}

/// Write the length of what follows the 2-octet field at `at`.
pub(crate) fn patch_u16(out: &mut [u8], at: usize, what: &str) -> Result<(), Error> {
    let len = out.len().saturating_sub(at + 2);
    let v = u16::try_from(len)
        .map_err(|_| Error::encode(format!("{what} of {len} octets exceed 65,535")))?;
    if let Some(dst) = out.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
    Ok(())
}
