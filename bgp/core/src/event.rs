//! The step contract: everything that goes into [`crate::Speaker::step`] ([`Input`]) and
//! everything that comes out ([`Output`]), with the identifiers both sides share.
//!
//! Pure: plain data.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use brindle_bgp_wire::{Error as WireError, Family, Message, Prefix, SessionContext};

use crate::config::{OriginAttrs, PeerConfig};
use crate::time::Instant;

/// A TCP connection, numbered by the driver. Unique for the life of the speaker.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Who opened a TCP connection.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// We connected (after an [`Output::Connect`]).
    Active,
    /// The neighbor connected to our listener.
    Passive,
}

/// The RFC 4271 §8.2.2 session states.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Not trying (admin down, or waiting out IdleHold).
    Idle,
    /// Connecting out.
    Connect,
    /// Waiting for the neighbor to connect (passive, or after a failed attempt).
    Active,
    /// OPEN sent, waiting for the neighbor's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Up: UPDATEs flow.
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Per-neighbor timers.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerTimer {
    /// RFC 4271 ConnectRetry.
    ConnectRetry,
    /// Delay before leaving Idle after an error (exponential backoff).
    IdleHold,
    /// Hold timer of one connection.
    Hold(ConnId),
    /// Keepalive timer of one connection.
    Keepalive(ConnId),
    /// DelayOpen timer of one connection.
    DelayOpen(ConnId),
    /// GR helper: the neighbor's restart time after its session dropped.
    Restart,
    /// GR helper: how long stale routes are kept after the neighbor came back.
    Stale,
    /// A ROUTE-REFRESH for this family that came too soon after the last one served, deferred.
    RouteRefresh(brindle_bgp_wire::Family),
    /// RFC 9687 send hold timer of one connection: armed while its write queue is blocked.
    SendHold(ConnId),
}

/// A timer the driver arms and reports back.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerId {
    /// A neighbor's timer.
    Peer(IpAddr, PeerTimer),
    /// Restarting speaker: the selection deferral timer (RFC 4724 §4.1).
    SelectionDeferral,
}

/// One thing that happened, fed to [`crate::Speaker::step`].
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Add a neighbor (admin up). Replaces nothing: an existing neighbor is updated instead.
    AddPeer(PeerConfig),
    /// Change a neighbor's configuration; resets the session (Cease/6) when needed.
    UpdatePeer(PeerConfig),
    /// Remove a neighbor (Cease/3); its routes are withdrawn.
    RemovePeer(IpAddr),
    /// Start the neighbor (RFC 4271 ManualStart).
    AdminUp(IpAddr),
    /// Stop the neighbor (ManualStop, Cease/2); its routes are withdrawn.
    AdminDown(IpAddr),
    /// A TCP connection to or from the neighbor is up.
    TcpConnected {
        /// The neighbor.
        peer: IpAddr,
        /// The connection's id.
        conn_id: ConnId,
        /// Who connected.
        direction: Direction,
        /// Our socket address (next hop self when no `local_address` is configured).
        local: SocketAddr,
        /// The neighbor's socket address.
        remote: SocketAddr,
    },
    /// An outgoing connection attempt failed.
    TcpFailed {
        /// The neighbor.
        peer: IpAddr,
    },
    /// A connection was closed by the other end or broke.
    TcpClosed {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
    },
    /// A decoded message. RFC 7606 findings of an UPDATE come with it.
    Message {
        /// The neighbor.
        peer: IpAddr,
        /// The connection it arrived on.
        conn_id: ConnId,
        /// The message.
        msg: Message,
        /// Treat-as-withdraw / attribute-discard findings from the decoder.
        findings: Vec<WireError>,
    },
    /// A message could not be decoded: the error is a session reset to send.
    DecodeError {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
        /// The decoder's error.
        error: WireError,
    },
    /// A timer armed with [`Output::ArmTimer`] fired. Stale expiries are ignored.
    TimerExpired(TimerId),
    /// Originate (or change) a local route.
    Originate(Prefix, OriginAttrs),
    /// Stop originating a local route.
    WithdrawOriginated(Prefix),
    /// Ask the neighbor to resend its routes of a family (inbound soft reset).
    RouteRefreshRequest(IpAddr, Family),
    /// The driver's write queue of this connection went above its high-water mark (the
    /// neighbor is not reading fast enough). Until [`Input::SendReady`], changes for the
    /// neighbor are kept as a set of prefixes to re-evaluate, not encoded, so memory stays
    /// bounded by the table size however much the routes churn.
    SendBlocked {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
    },
    /// The write queue of this connection drained below its low-water mark: what waited is
    /// computed from the current tables and sent.
    SendReady {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
    },
    /// The driver's answer for a next hop asked for with [`Output::TrackNexthop`]: reported
    /// once, then whenever it changes.
    NexthopReachability {
        /// The next hop.
        addr: IpAddr,
        /// It resolves through a route of the kernel (not one of ours).
        reachable: bool,
        /// The resolving route's gateways (empty: directly connected); kernel routes with
        /// this next hop are installed through them.
        via: Vec<IpAddr>,
    },
    /// Several inputs applied at once: the decision process and advertisement run once at
    /// the end, so many originated prefixes share few UPDATEs (e.g. all blocks at startup).
    Batch(Vec<Input>),
}

/// One thing for the driver to do, returned by [`crate::Speaker::step`] in order.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the neighbor, then report `TcpConnected` or `TcpFailed`.
    Connect {
        /// The neighbor.
        peer: IpAddr,
        /// Address to connect to.
        addr: IpAddr,
        /// Port to connect to.
        port: u16,
        /// Source address to bind, when configured.
        local: Option<IpAddr>,
    },
    /// Send one message; encode it with the connection's current [`SessionContext`].
    Send {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
        /// The message.
        msg: Message,
    },
    /// Send pre-encoded UPDATE messages (whole messages, concatenated), packed with
    /// `brindle_bgp_wire::pack_updates` / `pack_withdrawals`.
    SendEncoded {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
        /// One or more whole messages.
        bytes: Vec<u8>,
    },
    /// From now on, decode and encode this connection's messages with `ctx`.
    SetContext {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
        /// The negotiated context.
        ctx: SessionContext,
    },
    /// Close the connection (after writing what was queued for it).
    Close {
        /// The neighbor.
        peer: IpAddr,
        /// The connection.
        conn_id: ConnId,
    },
    /// Arm (or re-arm) a timer to fire at `at`.
    ArmTimer {
        /// The timer.
        timer: TimerId,
        /// The deadline.
        at: Instant,
    },
    /// Disarm a timer.
    CancelTimer(TimerId),
    /// Install or replace a kernel route (ECMP when several next hops).
    InstallRoute {
        /// Destination.
        prefix: Prefix,
        /// Next hops, sorted, at least one.
        nexthops: Vec<IpAddr>,
    },
    /// Remove a kernel route.
    RemoveRoute {
        /// Destination.
        prefix: Prefix,
    },
    /// A restarting speaker finished its selection deferral: the `InstallRoute`s before this
    /// output are the complete table, so the driver may now remove kernel routes of ours
    /// that were left over from before the restart.
    RibSynced,
    /// Resolve this next hop and report it with [`Input::NexthopReachability`], now and
    /// whenever the answer changes.
    TrackNexthop(IpAddr),
    /// Stop tracking this next hop.
    UntrackNexthop(IpAddr),
    /// A neighbor's session state changed.
    PeerStateChanged {
        /// The neighbor.
        peer: IpAddr,
        /// Previous state.
        old: State,
        /// New state.
        new: State,
    },
}
