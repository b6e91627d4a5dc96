//! Per-neighbor state owned by the speaker: configuration, the connections in progress (at
//! most one per direction while a collision is being resolved), the established session's
//! negotiated parameters, the IdleHold backoff, the last error, and the graceful restart and
//! End-of-RIB bookkeeping.
//!
//! Pure data.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use brindle_bgp_wire::{Family, OpenMsg};

use crate::config::PeerConfig;
use crate::event::{ConnId, Direction, State};
use crate::negotiate::Negotiated;
use crate::time::Instant;

/// Where one connection is in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ConnState {
    /// TCP up, DelayOpen running, OPEN not sent yet.
    DelayOpen,
    /// OPEN sent.
    OpenSent,
    /// OPENs exchanged, KEEPALIVE sent.
    OpenConfirm,
    /// The session.
    Established,
}

/// One TCP connection of a neighbor.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub dir: Direction,
    pub state: ConnState,
    pub local: SocketAddr,
    pub sent_open: Option<OpenMsg>,
    pub negotiated: Option<Negotiated>,
    /// Hold time in force on this connection (seconds; 0 = none).
    pub hold: u16,
    pub last_rx: Instant,
}

impl Conn {
    /// The RFC 4271 state this connection stands for.
    pub fn fsm_state(&self) -> State {
        match self.state {
            ConnState::DelayOpen => match self.dir {
                Direction::Active => State::Connect,
                Direction::Passive => State::Active,
            },
            ConnState::OpenSent => State::OpenSent,
            ConnState::OpenConfirm => State::OpenConfirm,
            ConnState::Established => State::Established,
        }
    }
}

/// The last error of a neighbor, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// Human-readable description.
    pub text: String,
    /// NOTIFICATION code and subcode, when one was sent or received.
    pub notification: Option<brindle_bgp_wire::ErrorCode>,
    /// True when we sent the NOTIFICATION, false when the neighbor did.
    pub sent: bool,
    /// When it happened.
    pub at: Instant,
}

/// Everything the speaker keeps about one neighbor.
#[derive(Debug, Clone)]
pub(crate) struct Neighbor {
    pub config: PeerConfig,
    pub admin_up: bool,
    /// The state when no connection is further along: Idle, Connect or Active.
    pub base: State,
    /// The state last reported with `PeerStateChanged`.
    pub reported: State,
    pub conns: BTreeMap<ConnId, Conn>,
    /// The established connection.
    pub session: Option<ConnId>,
    /// Negotiated parameters of the established session.
    pub negotiated: Option<Negotiated>,
    /// Consecutive failures, for the IdleHold backoff.
    pub backoff: u32,
    pub established_at: Option<Instant>,
    pub last_error: Option<LastError>,
    /// Our socket address on the established session.
    pub local_socket: Option<IpAddr>,
    /// Families whose End-of-RIB the neighbor sent on this session.
    pub eor_received: BTreeSet<Family>,
    /// The initial advertisement (and our End-of-RIB) went out on this session.
    pub synced: bool,
    /// GR helper: families whose routes are kept stale for this neighbor.
    pub gr_stale: BTreeSet<Family>,
    /// Session flaps, for status.
    pub flaps: u32,
    /// Messages sent and received, for status.
    pub messages: crate::status::MessageCounters,
    /// When a ROUTE-REFRESH of each family was last served (the rate limit).
    pub refresh_served: BTreeMap<brindle_bgp_wire::Family, Instant>,
    /// What waits while the session's write queue is blocked.
    pub backlog: Backlog,
}

/// Advertisement work held back while the driver's write queue towards a neighbor is blocked:
/// prefixes and families to re-evaluate against the tables when it drains (never encoded
/// messages, so churn while blocked costs nothing more than the set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Backlog {
    /// The write queue is above its high-water mark.
    pub blocked: bool,
    /// Prefixes whose advertisement waits.
    pub prefixes: BTreeSet<brindle_bgp_wire::Prefix>,
    /// Families to re-evaluate whole; `true` when a ROUTE-REFRESH is to be served.
    pub families: BTreeMap<Family, bool>,
}

impl Neighbor {
    pub fn new(config: PeerConfig) -> Self {
        Neighbor {
            config,
            admin_up: true,
            base: State::Idle,
            reported: State::Idle,
            conns: BTreeMap::new(),
            session: None,
            negotiated: None,
            backoff: 0,
            established_at: None,
            last_error: None,
            local_socket: None,
            eor_received: BTreeSet::new(),
            synced: false,
            gr_stale: BTreeSet::new(),
            flaps: 0,
            messages: Default::default(),
            refresh_served: BTreeMap::new(),
            backlog: Backlog::default(),
        }
    }

    /// eBGP when the neighbor's AS differs from ours.
    pub fn is_ebgp(&self, local_as: u32) -> bool {
        self.config.remote_as != local_as
    }

    /// The RFC 4271 state to report: the most advanced connection's, else the base state.
    pub fn state(&self) -> State {
        self.conns
            .values()
            .map(Conn::fsm_state)
            .max()
            .unwrap_or(self.base)
    }

    /// Our IPv4 next hop towards this neighbor.
    pub fn self_v4(&self) -> Option<Ipv4Addr> {
        self.config
            .next_hop_v4
            .or(match self.config.local_address.or(self.local_socket) {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            })
    }

    /// Our IPv6 next hop towards this neighbor.
    pub fn self_v6(&self) -> Option<Ipv6Addr> {
        self.config
            .next_hop_v6
            .or(match self.config.local_address.or(self.local_socket) {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            })
    }
}
