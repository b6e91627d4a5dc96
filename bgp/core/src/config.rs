//! Configuration of a speaker and of its neighbors, as plain domain types. The driver maps
//! Kubernetes resources (BGPConfiguration, BGPPeer, BGPFilter) onto these; the core does not
//! know about the resources.
//!
//! Pure: no I/O.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use brindle_bgp_wire::{Community, Family, LargeCommunity, Prefix};

/// One BGP instance.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Our AS number.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Route reflector cluster id; defaults to `router_id`. Only used when some neighbor is a
    /// route reflector client.
    pub cluster_id: Option<Ipv4Addr>,
    /// ECMP: how many equal paths to install (1 = no multipath).
    pub max_paths: u8,
    /// Compare MED between routes from different neighbor ASes.
    pub always_compare_med: bool,
    /// ECMP across eBGP paths from different neighbor ASes ("multipath relax").
    pub multipath_relax: bool,
    /// Graceful restart parameters; `None` disables graceful restart entirely.
    pub graceful_restart: Option<GrConfig>,
    /// First IdleHold delay after an error; doubled per consecutive error.
    pub idle_hold_initial: Duration,
    /// Upper bound of the IdleHold backoff.
    pub idle_hold_max: Duration,
    /// RFC 4271 §9.1.2.1: learned paths take part in the decision process only once the
    /// driver reports their next hop reachable (see [`crate::nexthop`]). Off: every next hop
    /// counts as reachable.
    pub nexthop_tracking: bool,
    /// Emit `InstallRoute` / `RemoveRoute` and keep the table of installed routes. Off when
    /// the driver writes no FIB, which saves that table's memory and work.
    pub install_routes: bool,
    /// Max-prefix limit of eBGP neighbors without one of their own.
    pub default_max_prefixes_ebgp: Option<u32>,
    /// Max-prefix limit of iBGP neighbors without one of their own.
    pub default_max_prefixes_ibgp: Option<u32>,
}

impl SpeakerConfig {
    /// A configuration with the defaults: no ECMP, GR off, IdleHold 5 s doubling to 120 s.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> Self {
        SpeakerConfig {
            local_as,
            router_id,
            cluster_id: None,
            max_paths: 1,
            always_compare_med: false,
            multipath_relax: false,
            graceful_restart: None,
            idle_hold_initial: Duration::from_secs(5),
            idle_hold_max: Duration::from_secs(120),
            nexthop_tracking: false,
            install_routes: true,
            default_max_prefixes_ebgp: None,
            default_max_prefixes_ibgp: None,
        }
    }

    /// The cluster id in use (the router id unless configured).
    pub fn effective_cluster_id(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }
}

/// RFC 4724 graceful restart parameters of the speaker.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrConfig {
    /// Restart time we advertise (seconds, at most 4095).
    pub restart_time: u16,
    /// How long a helper keeps a restarted peer's stale routes after it re-established,
    /// waiting for its End-of-RIB.
    pub stale_time: Duration,
    /// When we restart: the longest we wait for every peer's End-of-RIB before running the
    /// decision process (RFC 4724 §4.1 selection deferral).
    pub selection_deferral: Duration,
    /// Whether we tell peers our forwarding state survived a restart (the driver keeps kernel
    /// routes across restarts).
    pub forwarding_preserved: bool,
}

impl Default for GrConfig {
    fn default() -> Self {
        GrConfig {
            restart_time: 120,
            stale_time: Duration::from_secs(360),
            selection_deferral: Duration::from_secs(360),
            forwarding_preserved: true,
        }
    }
}

/// One neighbor.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The neighbor's address; also its identity in inputs and outputs.
    pub address: IpAddr,
    /// TCP port to connect to.
    pub port: u16,
    /// The neighbor's AS.
    pub remote_as: u32,
    /// Never connect; only accept connections.
    pub passive: bool,
    /// Hold time we propose (seconds; 0 disables keepalives, else at least 3).
    pub hold_time: u16,
    /// Keepalive interval; `None` = negotiated hold time / 3.
    pub keepalive: Option<u16>,
    /// ConnectRetry timer.
    pub connect_retry: Duration,
    /// RFC 4271 DelayOpen: wait this long after the TCP connection before sending OPEN.
    pub delay_open: Option<Duration>,
    /// This iBGP neighbor is a route reflector client of ours.
    pub route_reflector_client: bool,
    /// Set the next hop to ourselves towards this (iBGP) neighbor.
    pub next_hop_self: bool,
    /// Keep the original next hop towards this (eBGP) neighbor.
    pub keep_original_next_hop: bool,
    /// Accept routes whose AS_PATH holds our AS up to this many times.
    pub allow_as_in: u8,
    /// Close the session (Cease/1) when more routes than this are received (refused ones
    /// included); `None`: the speaker's default for the session type.
    pub max_prefixes: Option<u32>,
    /// Import rules, first match wins, default accept.
    pub import: Vec<FilterRule>,
    /// Export rules, first match wins, default accept.
    pub export: Vec<FilterRule>,
    /// Families to negotiate.
    pub families: BTreeSet<Family>,
    /// Our address on the session, used as next hop self. When `None`, the local socket
    /// address reported in [`crate::Input::TcpConnected`] is used.
    pub local_address: Option<IpAddr>,
    /// Next hop self for IPv4 routes when the session address is IPv6.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop self for IPv6 routes when the session address is IPv4.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Advertise the graceful restart capability and act as GR helper for this neighbor.
    pub graceful_restart: bool,
    /// RFC 9687 send hold time: how long the driver's write queue towards the neighbor may
    /// stay blocked ([`crate::Input::SendBlocked`] without a later
    /// [`crate::Input::SendReady`]) before the session is closed. `None`: the greater of
    /// 8 minutes and twice the negotiated hold time (no limit when that is 0).
    pub send_hold_time: Option<Duration>,
    /// Keep routes import policy refuses in the Adj-RIB-In, so a policy change re-evaluates
    /// them at once (BIRD's `import keep filtered`). Off: they are only counted, and a
    /// policy change asks the neighbor for its routes again (ROUTE-REFRESH).
    pub soft_reconfiguration_inbound: bool,
}

impl PeerConfig {
    /// A neighbor with defaults: port 179, hold 90 s, ConnectRetry 120 s, the family of the
    /// address only, no filters.
    pub fn new(address: IpAddr, remote_as: u32) -> Self {
        let family = match address {
            IpAddr::V4(_) => Family::IPV4_UNICAST,
            IpAddr::V6(_) => Family::IPV6_UNICAST,
        };
        PeerConfig {
            address,
            port: 179,
            remote_as,
            passive: false,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(120),
            delay_open: None,
            route_reflector_client: false,
            next_hop_self: false,
            keep_original_next_hop: false,
            allow_as_in: 0,
            max_prefixes: None,
            import: Vec::new(),
            export: Vec::new(),
            families: [family].into(),
            local_address: None,
            next_hop_v4: None,
            next_hop_v6: None,
            graceful_restart: false,
            send_hold_time: None,
            soft_reconfiguration_inbound: false,
        }
    }

    /// True when a change from `self` to `new` needs the session to be reset (anything
    /// negotiated in OPEN or checked against it); filter and next-hop changes do not.
    pub fn needs_reset(&self, new: &PeerConfig) -> bool {
        self.port != new.port
            || self.remote_as != new.remote_as
            || self.hold_time != new.hold_time
            || self.keepalive != new.keepalive
            || self.families != new.families
            || self.graceful_restart != new.graceful_restart
            || self.local_address != new.local_address
            || self.route_reflector_client != new.route_reflector_client
    }
}

/// What a matching filter rule does.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterAction {
    /// Accept the route.
    Accept,
    /// Reject the route.
    Reject,
}

/// How a route's prefix is compared with a rule's CIDR (Calico BGPFilter semantics).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOperator {
    /// The prefix is exactly the CIDR.
    Equal,
    /// The prefix is not the CIDR.
    NotEqual,
    /// The prefix lies within the CIDR (the CIDR itself included).
    In,
    /// The prefix does not lie within the CIDR.
    NotIn,
}

/// One import or export rule. A rule without `cidr` matches every prefix of its family;
/// `prefix_length` bounds further restrict the match.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterRule {
    /// What to do on a match.
    pub action: FilterAction,
    /// The CIDR and operator to compare with; `None` matches any prefix.
    pub cidr: Option<(Prefix, MatchOperator)>,
    /// Shortest prefix length matched.
    pub min_len: Option<u8>,
    /// Longest prefix length matched.
    pub max_len: Option<u8>,
}

impl FilterRule {
    /// A rule matching everything.
    pub fn any(action: FilterAction) -> Self {
        FilterRule {
            action,
            cidr: None,
            min_len: None,
            max_len: None,
        }
    }

    /// A rule matching `cidr` with `op`.
    pub fn cidr(action: FilterAction, cidr: Prefix, op: MatchOperator) -> Self {
        FilterRule {
            action,
            cidr: Some((cidr, op)),
            min_len: None,
            max_len: None,
        }
    }

    /// The same rule with prefix length bounds.
    pub fn with_len(mut self, min: Option<u8>, max: Option<u8>) -> Self {
        self.min_len = min;
        self.max_len = max;
        self
    }
}

/// Attributes of a route we originate (a node's pod blocks): ORIGIN is IGP and the AS_PATH is
/// empty; the rest is settable.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OriginAttrs {
    /// Standard communities.
    pub communities: Vec<Community>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF sent to iBGP peers (default 100).
    pub local_pref: Option<u32>,
}
