//! Read-only status as plain domain types, for the status API: per neighbor (state, uptime,
//! last error, counters per family, negotiated capabilities) and the Loc-RIB (every path with
//! its attributes and best / multipath / stale flags).
//!
//! Pure: snapshots built from the speaker's state.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use brindle_bgp_wire::{Family, Prefix};

use crate::event::State;
use crate::neighbor::Neighbor;
use crate::route::{RouteAttrs, RouteSource};
use crate::speaker::Speaker;
use crate::time::Instant;

pub use crate::neighbor::LastError;

/// iBGP or eBGP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerType {
    /// Same AS.
    Ibgp,
    /// Different AS.
    Ebgp,
}

/// Route counters of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilyCounters {
    /// Routes in the Adj-RIB-In (before import policy).
    pub received: usize,
    /// Routes accepted by import policy.
    pub accepted: usize,
    /// Routes in the Adj-RIB-Out.
    pub advertised: usize,
}

/// Messages of each type, one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCount {
    /// OPEN.
    pub open: u64,
    /// UPDATE (End-of-RIB markers included).
    pub update: u64,
    /// NOTIFICATION.
    pub notification: u64,
    /// KEEPALIVE.
    pub keepalive: u64,
    /// ROUTE-REFRESH.
    pub route_refresh: u64,
}

impl MessageCount {
    /// Counts one message of wire type `code` (1 OPEN ... 5 ROUTE-REFRESH; others ignored).
    pub fn count(&mut self, code: u8) {
        match code {
            1 => self.open += 1,
            2 => self.update += 1,
            3 => self.notification += 1,
            4 => self.keepalive += 1,
            5 => self.route_refresh += 1,
            _ => {}
        }
    }

    /// Every message counted.
    pub fn total(&self) -> u64 {
        self.open + self.update + self.notification + self.keepalive + self.route_refresh
    }
}

/// Messages sent to and received from one neighbor, over every session since it was
/// configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounters {
    /// Sent by us.
    pub sent: MessageCount,
    /// Received (and decoded).
    pub received: MessageCount,
}

/// What the established session negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilitySummary {
    /// Hold time (seconds).
    pub hold_time: u16,
    /// Keepalive interval (seconds).
    pub keepalive: u16,
    /// Neighbor's BGP identifier.
    pub remote_router_id: Ipv4Addr,
    /// Families enabled on the session.
    pub families: Vec<Family>,
    /// RFC 6793.
    pub four_octet_as: bool,
    /// RFC 8654.
    pub extended_message: bool,
    /// RFC 2918.
    pub route_refresh: bool,
    /// RFC 7313.
    pub enhanced_route_refresh: bool,
    /// RFC 4724: the neighbor's restart time when both sides advertised graceful restart.
    pub graceful_restart: Option<u16>,
    /// The capabilities our OPEN carried, by name.
    pub sent: Vec<String>,
    /// The capabilities the neighbor's OPEN carried, by name.
    pub received: Vec<String>,
}

/// One neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Address.
    pub address: IpAddr,
    /// Our AS.
    pub local_as: u32,
    /// The neighbor's AS.
    pub remote_as: u32,
    /// iBGP or eBGP.
    pub peer_type: PeerType,
    /// Route reflector client.
    pub route_reflector_client: bool,
    /// Administratively up.
    pub admin_up: bool,
    /// RFC 4271 state.
    pub state: State,
    /// When the session was established.
    pub established_since: Option<Instant>,
    /// Times the session went down.
    pub flaps: u32,
    /// The last error.
    pub last_error: Option<LastError>,
    /// Counters per family (configured families).
    pub families: BTreeMap<Family, FamilyCounters>,
    /// Negotiated capabilities of the established session.
    pub capabilities: Option<CapabilitySummary>,
    /// Families whose routes are held stale by the graceful restart helper.
    pub stale_families: Vec<Family>,
    /// Messages by type and direction.
    pub messages: MessageCounters,
    /// The hold time we offer (configured), in seconds.
    pub configured_hold_time: u16,
    /// Flow control: the session's write queue is blocked and advertisements wait.
    pub send_blocked: bool,
    /// Prefixes waiting in the blocked session's backlog.
    pub backlog_prefixes: usize,
    /// Bytes queued for the neighbor's connections but not yet taken by the kernel; the core
    /// leaves it 0 and the driver, which owns the queues, fills it in.
    pub out_queue_bytes: u64,
}

/// One path of a Loc-RIB entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    /// Where it came from.
    pub source: RouteSource,
    /// Its attributes (after import policy).
    pub attrs: RouteAttrs,
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The neighbor's BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// The best path.
    pub best: bool,
    /// Installed as one of several ECMP paths.
    pub multipath: bool,
    /// Kept by graceful restart.
    pub stale: bool,
    /// When it was learned or last changed (the speaker's clock).
    pub since: Instant,
    /// Excluded from the decision process because its next hop is not known reachable
    /// (RFC 4271 §9.1.2.1; only with next-hop tracking on).
    pub nexthop_unreachable: bool,
}

/// One Loc-RIB entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// The prefix.
    pub prefix: Prefix,
    /// Its paths, by source.
    pub paths: Vec<PathStatus>,
}

/// One route of a neighbor's Adj-RIB-In or Adj-RIB-Out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjRoute {
    /// The prefix.
    pub prefix: Prefix,
    /// Attributes as received (Adj-RIB-In, before import policy) or as sent (Adj-RIB-Out).
    pub attrs: RouteAttrs,
    /// Adj-RIB-In only: why import refused it (`None` when accepted).
    pub rejected: Option<String>,
    /// Held stale by graceful restart.
    pub stale: bool,
}

/// The attributes of an advertised route, from its wire attributes.
fn wire_attrs(wire: &[brindle_bgp_wire::PathAttribute]) -> RouteAttrs {
    use brindle_bgp_wire::{NextHop, PathAttribute};
    let u = brindle_bgp_wire::UpdateMsg {
        attributes: wire.to_vec(),
        ..Default::default()
    };
    let mut a = RouteAttrs::from_update(&u, true);
    a.next_hop = wire.iter().find_map(|w| match w {
        PathAttribute::NextHop(n) => Some(IpAddr::V4(*n)),
        PathAttribute::MpReach(m) => Some(match m.next_hop {
            NextHop::V4(n) => IpAddr::V4(n),
            NextHop::V6 { global, .. } => IpAddr::V6(global),
        }),
        _ => None,
    });
    a
}

impl Speaker {
    /// A neighbor's Adj-RIB-In (every route it announced, before import policy, with the
    /// verdict); None for an unknown neighbor.
    pub fn adj_rib_in(&self, addr: IpAddr) -> Option<Vec<AdjRoute>> {
        self.neighbors.get(&addr)?;
        Some(
            self.adj_in
                .get(&addr)
                .map(|r| {
                    r.iter()
                        .map(|(p, e)| AdjRoute {
                            prefix: *p,
                            attrs: (*e.attrs).clone(),
                            rejected: e.verdict.as_ref().err().map(|why| format!("{why:?}")),
                            stale: e.stale,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// What we advertise to a neighbor (its Adj-RIB-Out, as sent); None for an unknown
    /// neighbor.
    pub fn adj_rib_out(&self, addr: IpAddr) -> Option<Vec<AdjRoute>> {
        let n = self.neighbors.get(&addr)?;
        let out = self.adj_out.peer(addr);
        Some(
            n.config
                .families
                .iter()
                .flat_map(|f| out.into_iter().flat_map(move |o| o.family(*f)))
                .map(|(p, wire)| AdjRoute {
                    prefix: *p,
                    attrs: wire_attrs(wire),
                    rejected: None,
                    stale: false,
                })
                .collect(),
        )
    }

    fn status_of(&self, n: &Neighbor) -> PeerStatus {
        let addr = n.config.address;
        let adj_in = self.adj_in.get(&addr);
        let adj_out = self.adj_out.peer(addr);
        let families = n
            .config
            .families
            .iter()
            .map(|f| {
                (
                    *f,
                    FamilyCounters {
                        received: adj_in.map_or(0, |r| r.received(*f)),
                        accepted: adj_in.map_or(0, |r| r.accepted(*f)),
                        advertised: adj_out.map_or(0, |r| r.advertised(*f)),
                    },
                )
            })
            .collect();
        let capabilities = n.negotiated.as_ref().map(|neg| CapabilitySummary {
            hold_time: neg.hold_time,
            keepalive: neg.keepalive,
            remote_router_id: neg.remote_id,
            families: neg.ctx.families.iter().copied().collect(),
            four_octet_as: neg.ctx.four_octet_as,
            extended_message: neg.ctx.extended_message,
            route_refresh: neg.route_refresh,
            enhanced_route_refresh: neg.enhanced_route_refresh,
            graceful_restart: neg.peer_gr.as_ref().map(|g| g.restart_time),
            sent: neg.sent.clone(),
            received: neg.received.clone(),
        });
        PeerStatus {
            address: addr,
            local_as: self.config.local_as,
            remote_as: n.config.remote_as,
            peer_type: if n.is_ebgp(self.config.local_as) {
                PeerType::Ebgp
            } else {
                PeerType::Ibgp
            },
            route_reflector_client: n.config.route_reflector_client,
            admin_up: n.admin_up,
            state: n.state(),
            established_since: n.established_at,
            flaps: n.flaps,
            last_error: n.last_error.clone(),
            families,
            capabilities,
            stale_families: n.gr_stale.iter().copied().collect(),
            messages: n.messages,
            send_blocked: n.backlog.blocked,
            backlog_prefixes: n.backlog.prefixes.len(),
            out_queue_bytes: 0,
            configured_hold_time: n.config.hold_time,
        }
    }

    /// Status of one neighbor.
    pub fn peer_status(&self, addr: IpAddr) -> Option<PeerStatus> {
        self.neighbors.get(&addr).map(|n| self.status_of(n))
    }

    /// Status of every neighbor, by address.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.neighbors.values().map(|n| self.status_of(n)).collect()
    }

    /// One Loc-RIB entry.
    pub fn route(&self, prefix: &Prefix) -> Option<RouteStatus> {
        let d = self.loc.get(prefix)?;
        let paths = d
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| PathStatus {
                source: p.source,
                attrs: (*p.attrs).clone(),
                ebgp: p.ebgp,
                peer_router_id: p.peer_router_id,
                best: d.selection.best == Some(i),
                multipath: d.selection.multipath.len() > 1 && d.selection.multipath.contains(&i),
                stale: p.stale,
                since: p.since,
                nexthop_unreachable: !crate::nexthop::eligible(
                    self.config.nexthop_tracking,
                    &self.nexthops,
                    p,
                ),
            })
            .collect();
        Some(RouteStatus {
            prefix: *prefix,
            paths,
        })
    }

    /// The whole Loc-RIB, by prefix.
    pub fn routes(&self) -> Vec<RouteStatus> {
        self.loc.iter().filter_map(|(p, _)| self.route(p)).collect()
    }
}
