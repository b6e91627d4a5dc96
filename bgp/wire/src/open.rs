//! OPEN messages (RFC 4271 §4.2) with the RFC 9072 extended optional parameters length and the
//! capabilities optional parameter (RFC 5492). Decoding needs no session context; it performs
//! the checks of RFC 4271 §6.2 that need no configuration (version, hold time, identifier,
//! optional parameter syntax). The peer-AS check (2/2) is the core's.
//!
//! ```text
//!  0                   1                   2                   3
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |    Version    |     My Autonomous System      |   Hold Time  ..
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  ..  Hold Time   |              BGP Identifier                  ..
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  ..              | Opt Parm Len  |  Optional Parameters (variable)
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//!  RFC 9072: Opt Parm Len = 255, then Param Type = 255, then a 2-octet
//!  extended length; each parameter then has a 2-octet length.
//! ```
//!
//! Pure: no I/O.

use std::net::Ipv4Addr;

use nom::Parser;
use nom::number::complete::{be_u16, be_u32, u8 as nom_u8};

use crate::capability::Capability;
use crate::error::Error;
use crate::reader::Reader;

/// AS_TRANS (RFC 6793 §2): sent in "My Autonomous System" when the real AS needs 4 octets.
pub const AS_TRANS: u16 = 23456;
/// BGP version 4.
pub const BGP_VERSION: u8 = 4;
/// Optional parameter type "Capabilities" (RFC 5492).
pub const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 marker for the extended optional parameters format.
const PARAM_EXTENDED: u8 = 255;

/// An OPEN message.
///
/// Capabilities from all type-2 optional parameters are flattened into one list, in order.
/// The encoder puts them in a single parameter.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenMsg {
    /// Protocol version; the decoder only accepts 4.
    pub version: u8,
    /// My Autonomous System (2 octets; [`AS_TRANS`] when the AS needs 4 octets).
    pub my_as: u16,
    /// Hold time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// BGP identifier, non-zero.
    pub bgp_id: Ipv4Addr,
    /// Capabilities advertised.
    pub capabilities: Vec<Capability>,
}

impl OpenMsg {
    /// Build an OPEN for `asn`, filling "My Autonomous System" with AS_TRANS when `asn` does
    /// not fit in 2 octets. The caller supplies the capabilities (including
    /// [`Capability::FourOctetAs`]).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        OpenMsg {
            version: BGP_VERSION,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The sender's AS: the 4-octet AS capability when present, else "My Autonomous System".
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The value of the 4-octet AS capability, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// Decode the body (after the 19-octet header) and apply the context-free checks of
    /// RFC 4271 §6.2.
    pub fn decode(body: &[u8]) -> Result<OpenMsg, Error> {
        let fixed: nom::IResult<&[u8], _, nom::error::Error<&[u8]>> =
            (nom_u8, be_u16, be_u16, be_u32, nom_u8).parse(body);
        let Ok((rest, (version, my_as, hold_time, bgp_id, opt_len))) = fixed else {
            return Err(Error::reset(
                1,
                2,
                u16::try_from(body.len() + 19)
                    .unwrap_or(u16::MAX)
                    .to_be_bytes()
                    .to_vec(),
                "OPEN shorter than 29 octets",
            ));
        };
        if version != BGP_VERSION {
            return Err(Error::reset(
                2,
                1,
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
                format!("unsupported version {version}"),
            ));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(Error::reset(
                2,
                6,
                Vec::new(),
                format!("hold time {hold_time}"),
            ));
        }
        if bgp_id == 0 {
            return Err(Error::reset(2, 3, Vec::new(), "BGP identifier 0.0.0.0"));
        }
        let params_at = 19 + 10;
        let mut r = Reader::new(rest, params_at);
        let extended = opt_len == PARAM_EXTENDED && r.rest().first() == Some(&PARAM_EXTENDED);
        let params_len = if extended {
            r.u8();
            usize::from(
                r.u16()
                    .ok_or_else(|| malformed(params_at, "extended length"))?,
            )
        } else {
            usize::from(opt_len)
        };
        if params_len != r.len() {
            return Err(malformed(
                params_at,
                &format!(
                    "optional parameters length {params_len} but {} octets follow",
                    r.len()
                ),
            ));
        }
        let mut capabilities = Vec::new();
        while !r.is_empty() {
            let at = r.offset();
            let kind = r.u8().ok_or_else(|| malformed(at, "parameter type"))?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
            .ok_or_else(|| malformed(at, "parameter length"))?;
            let v = r
                .sub(len)
                .ok_or_else(|| malformed(at, "parameter overruns the message"))?;
            if kind != PARAM_CAPABILITIES {
                return Err(Error::reset(
                    2,
                    4,
                    Vec::new(),
                    format!("optional parameter type {kind} at byte {at}"),
                ));
            }
            Capability::decode_all(v, &mut capabilities)?;
        }
        Ok(OpenMsg {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(bgp_id),
            capabilities,
        })
    }

    /// Append the body (after the header). Uses the RFC 9072 format only when the
    /// capabilities do not fit in 255 octets.
    pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.version);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.encode(&mut caps)?;
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() <= 253 {
            out.push(u8::try_from(caps.len() + 2).unwrap_or(0));
            out.push(PARAM_CAPABILITIES);
            out.push(u8::try_from(caps.len()).unwrap_or(0));
            out.extend_from_slice(&caps);
        } else {
            let total = u16::try_from(caps.len() + 3)
                .map_err(|_| Error::encode("capabilities exceed 65,532 octets"))?;
            out.push(PARAM_EXTENDED);
            out.push(PARAM_EXTENDED);
            out.extend_from_slice(&total.to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&u16::try_from(caps.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&caps);
        }
        Ok(())
    }
}

fn malformed(at: usize, what: &str) -> Error {
    Error::reset(
        2,
        0,
        Vec::new(),
        format!("OPEN optional parameters at byte {at}: {what}"),
    )
}
