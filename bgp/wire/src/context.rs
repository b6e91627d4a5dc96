//! The negotiated session parameters that change how UPDATEs are encoded and decoded. A
//! context is always passed in as an argument, never held globally; decoding an OPEN needs
//! none.
//!
//! Pure: no I/O.

use std::collections::BTreeSet;

use crate::capability::{AddPathMode, Capability};
use crate::family::Family;
use crate::open::OpenMsg;

/// Maximum message size without RFC 8654 extended messages (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Maximum message size with RFC 8654 extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// What the two speakers agreed in their OPENs. Use the same value for decoding (which reads
/// `add_path_rx`) and encoding (which reads `add_path_tx`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// RFC 6793: both sides advertised the 4-octet AS capability, so AS_PATH and AGGREGATOR
    /// carry 4-octet AS numbers and AS4_PATH/AS4_AGGREGATOR are discarded on receipt.
    pub four_octet_as: bool,
    /// RFC 8654: both sides advertised extended messages (65,535 bytes instead of 4,096).
    pub extended_message: bool,
    /// Families enabled on the session (RFC 4760). MP_REACH/MP_UNREACH for any other family
    /// is dropped with an [`crate::Error::AttributeDiscard`] finding.
    pub families: BTreeSet<Family>,
    /// RFC 7911: families for which we receive path identifiers.
    pub add_path_rx: BTreeSet<Family>,
    /// RFC 7911: families for which we send path identifiers.
    pub add_path_tx: BTreeSet<Family>,
}

/// The decode side of a [`SessionContext`].
pub type DecodeContext = SessionContext;
/// The encode side of a [`SessionContext`].
pub type EncodeContext = SessionContext;

impl Default for SessionContext {
    /// A conservative context: 2-octet AS, 4,096-byte messages, no ADD-PATH, IPv4 and IPv6
    /// unicast enabled.
    fn default() -> Self {
        SessionContext {
            four_octet_as: false,
            extended_message: false,
            families: [Family::IPV4_UNICAST, Family::IPV6_UNICAST].into(),
            add_path_rx: BTreeSet::new(),
            add_path_tx: BTreeSet::new(),
        }
    }
}

impl SessionContext {
    /// The modern default: 4-octet AS on, otherwise as [`Default`].
    pub fn four_octet() -> Self {
        SessionContext {
            four_octet_as: true,
            ..Default::default()
        }
    }

    /// The largest message allowed on this session.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    /// True when received NLRI of `family` carry path identifiers.
    pub fn add_path_rx(&self, family: Family) -> bool {
        self.add_path_rx.contains(&family)
    }

    /// True when sent NLRI of `family` carry path identifiers.
    pub fn add_path_tx(&self, family: Family) -> bool {
        self.add_path_tx.contains(&family)
    }

    /// Negotiate a context from the OPEN we sent and the OPEN we received.
    ///
    /// * 4-octet AS and extended message: both sides must advertise them.
    /// * Families: the intersection of the multiprotocol capabilities; a side that sends none
    ///   implies IPv4 unicast only (RFC 4760 §8).
    /// * ADD-PATH: we receive path ids for a family when we said "receive" and the peer said
    ///   "send", and send them when we said "send" and the peer said "receive" (RFC 7911 §4).
    pub fn negotiate(local: &OpenMsg, remote: &OpenMsg) -> SessionContext {
        let has = |o: &OpenMsg, f: &dyn Fn(&Capability) -> bool| o.capabilities.iter().any(f);
        let four_octet_as = has(local, &|c| matches!(c, Capability::FourOctetAs(_)))
            && has(remote, &|c| matches!(c, Capability::FourOctetAs(_)));
        let extended_message = has(local, &|c| matches!(c, Capability::ExtendedMessage))
            && has(remote, &|c| matches!(c, Capability::ExtendedMessage));
        let fams = |o: &OpenMsg| -> BTreeSet<Family> {
            let s: BTreeSet<Family> = o
                .capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::Multiprotocol(f) => Some(*f),
                    _ => None,
                })
                .collect();
            if s.is_empty() {
                [Family::IPV4_UNICAST].into()
            } else {
                s
            }
        };
        let families: BTreeSet<Family> = fams(local).intersection(&fams(remote)).copied().collect();
        let add_path = |o: &OpenMsg| -> Vec<(Family, AddPathMode)> {
            o.capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::AddPath(v) => Some(v.iter().map(|a| (a.family, a.mode))),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let (l, r) = (add_path(local), add_path(remote));
        let mode = |v: &[(Family, AddPathMode)], f: Family| {
            v.iter().find(|(g, _)| *g == f).map(|(_, m)| *m)
        };
        let mut add_path_rx = BTreeSet::new();
        let mut add_path_tx = BTreeSet::new();
        for f in &families {
            if let (Some(lm), Some(rm)) = (mode(&l, *f), mode(&r, *f)) {
                if lm.receives() && rm.sends() {
                    add_path_rx.insert(*f);
                }
                if lm.sends() && rm.receives() {
                    add_path_tx.insert(*f);
                }
            }
        }
        SessionContext {
            four_octet_as,
            extended_message,
            families,
            add_path_rx,
            add_path_tx,
        }
    }
}
