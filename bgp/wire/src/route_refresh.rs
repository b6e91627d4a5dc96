//! ROUTE-REFRESH messages (RFC 2918 §3) with the RFC 7313 §3.2 message subtypes.
//!
//! ```text
//!  0       7      15      23      31
//!  +-------+-------+-------+-------+
//!  |      AFI      | Subtype| SAFI |
//!  +-------+-------+-------+-------+
//! ```
//!
//! Pure: no I/O.

use crate::error::Error;
use crate::family::{Afi, Family, Safi};

/// RFC 7313 message subtype (the "Reserved" octet of RFC 2918).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshSubtype {
    /// 0: normal route refresh request.
    Normal,
    /// 1: beginning of route refresh (BoRR).
    BeginOfRefresh,
    /// 2: end of route refresh (EoRR).
    EndOfRefresh,
    /// Other values; RFC 7313 says to ignore such messages.
    Unknown(u8),
}

impl From<u8> for RefreshSubtype {
    fn from(v: u8) -> Self {
        match v {
            0 => RefreshSubtype::Normal,
            1 => RefreshSubtype::BeginOfRefresh,
            2 => RefreshSubtype::EndOfRefresh,
            x => RefreshSubtype::Unknown(x),
        }
    }
}

impl From<RefreshSubtype> for u8 {
    fn from(v: RefreshSubtype) -> u8 {
        match v {
            RefreshSubtype::Normal => 0,
            RefreshSubtype::BeginOfRefresh => 1,
            RefreshSubtype::EndOfRefresh => 2,
            RefreshSubtype::Unknown(x) => x,
        }
    }
}

/// A ROUTE-REFRESH message.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefreshMsg {
    /// The family to refresh.
    pub family: Family,
    /// Normal, BoRR or EoRR.
    pub subtype: RefreshSubtype,
}

impl RouteRefreshMsg {
    /// A normal refresh request for `family`.
    pub fn new(family: Family) -> Self {
        RouteRefreshMsg {
            family,
            subtype: RefreshSubtype::Normal,
        }
    }

    /// Decode the body (after the header). A body other than 4 octets is RFC 7313 §5
    /// error 7/1 with the whole message as data; `message` is the full message for that data.
    pub fn decode(body: &[u8], message: &[u8]) -> Result<Self, Error> {
        match body {
            [a0, a1, sub, safi] => Ok(RouteRefreshMsg {
                family: Family::new(Afi(u16::from_be_bytes([*a0, *a1])), Safi(*safi)),
                subtype: (*sub).into(),
            }),
            _ => Err(Error::reset(
                7,
                1,
                message.to_vec(),
                format!("ROUTE-REFRESH body of {} octets", body.len()),
            )),
        }
    }

    /// Append the body (after the header).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.0.to_be_bytes());
        out.push(self.subtype.into());
        out.push(self.family.safi.0);
    }
}
