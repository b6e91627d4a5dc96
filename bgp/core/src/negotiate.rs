//! The OPEN we send and the checks on the OPEN we receive (RFC 4271 §6.2 parts needing
//! configuration, RFC 5492, RFC 6793, RFC 4724), producing the [`Negotiated`] session
//! parameters with a `brindle_bgp_wire::SessionContext`.
//!
//! Pure.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use brindle_bgp_wire::{
    Capability, ErrorCode, Family, GrFamily, GracefulRestart, NotificationMsg, OpenMsg,
    OpenSubcode, SessionContext,
};

use crate::config::{PeerConfig, SpeakerConfig};

/// What the two OPENs agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The context for decoding and encoding UPDATEs.
    pub ctx: SessionContext,
    /// Negotiated hold time (seconds; 0 = no hold timer).
    pub hold_time: u16,
    /// Keepalive interval (seconds; 0 = none).
    pub keepalive: u16,
    /// The neighbor's BGP identifier.
    pub remote_id: Ipv4Addr,
    /// The neighbor's AS.
    pub remote_as: u32,
    /// Both sides support ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// Both sides support enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The neighbor's graceful restart capability, when both sides advertised one.
    pub peer_gr: Option<GracefulRestart>,
    /// The capabilities our OPEN carried, by name.
    pub sent: Vec<String>,
    /// The capabilities the neighbor's OPEN carried, by name.
    pub received: Vec<String>,
}

impl Negotiated {
    /// Families for which the neighbor is GR-capable on this session.
    pub fn gr_families(&self) -> BTreeSet<Family> {
        self.peer_gr
            .iter()
            .flat_map(|g| g.families.iter().map(|f| f.family))
            .filter(|f| self.ctx.families.contains(f))
            .collect()
    }
}

/// The OPEN we send to `peer`. `restarting` sets the RFC 4724 Restart State bit.
pub fn local_open(speaker: &SpeakerConfig, peer: &PeerConfig, restarting: bool) -> OpenMsg {
    let mut caps: Vec<Capability> = peer
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    caps.push(Capability::FourOctetAs(speaker.local_as));
    if let (Some(gr), true) = (&speaker.graceful_restart, peer.graceful_restart) {
        let fwd = if gr.forwarding_preserved && restarting {
            GrFamily::FORWARDING
        } else {
            0
        };
        caps.push(Capability::GracefulRestart(GracefulRestart {
            flags: if restarting {
                GracefulRestart::RESTART_STATE
            } else {
                0
            },
            restart_time: gr.restart_time.min(4095),
            families: peer
                .families
                .iter()
                .map(|f| GrFamily {
                    family: *f,
                    flags: fwd,
                })
                .collect(),
        }));
    }
    OpenMsg::new(speaker.local_as, peer.hold_time, speaker.router_id, caps)
}

fn open_error(subcode: OpenSubcode, data: Vec<u8>) -> NotificationMsg {
    NotificationMsg::new(ErrorCode::Open(subcode), data)
}

/// Check the neighbor's OPEN against configuration and negotiate.
///
/// Errors are the NOTIFICATION to send: 2/2 Bad Peer AS, 2/3 Bad BGP Identifier (iBGP
/// neighbor using our identifier), 2/6 Unacceptable Hold Time (1 or 2 seconds), 2/7
/// Unsupported Capability when no family is common (data: our multiprotocol capabilities).
pub fn check_open(
    speaker: &SpeakerConfig,
    peer: &PeerConfig,
    local: &OpenMsg,
    remote: &OpenMsg,
) -> Result<Negotiated, NotificationMsg> {
    let remote_as = remote.asn();
    if remote_as != peer.remote_as {
        let data = u16::try_from(remote_as)
            .unwrap_or(brindle_bgp_wire::AS_TRANS)
            .to_be_bytes()
            .to_vec();
        return Err(open_error(OpenSubcode::BadPeerAs, data));
    }
    if remote.bgp_id.is_unspecified()
        || (remote.bgp_id == speaker.router_id && remote_as == speaker.local_as)
    {
        return Err(open_error(
            OpenSubcode::BadBgpIdentifier,
            remote.bgp_id.octets().to_vec(),
        ));
    }
    if remote.hold_time == 1 || remote.hold_time == 2 {
        return Err(open_error(OpenSubcode::UnacceptableHoldTime, Vec::new()));
    }
    let ctx = SessionContext::negotiate(local, remote);
    if ctx.families.is_empty() {
        let mut data = Vec::new();
        for f in &peer.families {
            // A 6-octet capability cannot fail to encode.
            let _ = Capability::Multiprotocol(*f).encode(&mut data);
        }
        return Err(open_error(OpenSubcode::UnsupportedCapability, data));
    }
    let hold_time = local.hold_time.min(remote.hold_time);
    let keepalive = if hold_time == 0 {
        0
    } else {
        let third = (hold_time / 3).max(1);
        peer.keepalive.map_or(third, |k| k.clamp(1, third))
    };
    let has = |o: &OpenMsg, f: &dyn Fn(&Capability) -> bool| o.capabilities.iter().any(f);
    let rr = |c: &Capability| matches!(c, Capability::RouteRefresh);
    let err = |c: &Capability| matches!(c, Capability::EnhancedRouteRefresh);
    let local_gr = has(local, &|c| matches!(c, Capability::GracefulRestart(_)));
    let peer_gr = remote.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) if local_gr => Some(g.clone()),
        _ => None,
    });
    Ok(Negotiated {
        ctx,
        hold_time,
        keepalive,
        remote_id: remote.bgp_id,
        remote_as,
        route_refresh: has(local, &rr) && has(remote, &rr),
        enhanced_route_refresh: has(local, &err) && has(remote, &err),
        peer_gr,
        sent: local.capabilities.iter().map(Capability::name).collect(),
        received: remote.capabilities.iter().map(Capability::name).collect(),
    })
}
