//! The pure BGP protocol core (no tokio, no sockets, no clock).
//!
//! One [`Speaker`] is one BGP instance. It owns the RFC 4271 §8 finite state machine of every
//! neighbor with its timers expressed as deadlines, collision detection (§6.8), capability
//! negotiation, the Adj-RIB-In, Loc-RIB and per-neighbor Adj-RIB-Out, the decision process
//! (§9.1) with ECMP, route reflection (RFC 4456), graceful restart (RFC 4724) in both roles,
//! route refresh (RFC 2918/7313), Calico BGPFilter import/export policy, and update packing.
//!
//! # The step contract
//!
//! ```text
//!                 Input                                      Output
//!   admin:  AddPeer UpdatePeer RemovePeer          Connect{peer,addr,port}
//!           AdminUp AdminDown                      Send{peer,conn_id,msg} / SendEncoded{bytes}
//!   TCP:    TcpConnected{conn_id,direction,        SetContext{peer,conn_id,ctx}
//!             local,remote} TcpFailed TcpClosed    Close{peer,conn_id}
//!   wire:   Message{msg,findings} DecodeError  ──> ArmTimer{timer,at} CancelTimer
//!   time:   TimerExpired(TimerId)      step(input, now)   InstallRoute{prefix,nexthops}
//!   routes: Originate WithdrawOriginated                   RemoveRoute{prefix} RibSynced
//!           RouteRefreshRequest Batch              PeerStateChanged{peer,old,new}
//! ```
//!
//! * The driver numbers TCP connections ([`ConnId`]), performs the outputs in order, and feeds
//!   back what happens. `now` is the driver's clock as an [`Instant`]; the core never reads a
//!   clock, so tests drive a fake one.
//! * Frames are decoded by the driver with `brindle_bgp_wire::decode_message` and the
//!   connection's [`brindle_bgp_wire::SessionContext`]: the default one until
//!   [`Output::SetContext`] (emitted when the OPENs are negotiated), that one afterwards. A
//!   decode `Err` goes in as [`Input::DecodeError`]; RFC 7606 findings travel with the message.
//! * [`Output::Send`] carries a typed message (OPEN, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH,
//!   End-of-RIB); [`Output::SendEncoded`] carries UPDATEs already packed with
//!   `pack_updates` / `pack_withdrawals`. [`Output::Close`] comes after the last message to
//!   write on that connection.
//! * Timers are identified by [`TimerId`]; arming one re-arms it. An expiry for a timer that
//!   was cancelled or re-armed later is ignored, so races are harmless.
//! * Outputs are deterministic: every map whose order reaches an output is a `BTreeMap`.
//!
//! Status is read with [`Speaker::peers`], [`Speaker::peer_status`], [`Speaker::routes`].
//!
//! # Modules
//!
//! * [`speaker`]: the owner and `step`; [`event`]: inputs, outputs, ids; [`config`];
//!   [`time`]; [`timer`].
//! * [`fsm`], [`negotiate`], [`neighbor`]: sessions.
//! * [`inbound`], [`advertise`], [`rib`], [`route`], [`decision`], [`policy`], [`reflector`]:
//!   routes.
//! * [`graceful`]: graceful restart; [`status`]: read-only snapshots.
//!
//! The design is described in `docs/bgp-core.md`.

pub mod advertise;
pub mod backpressure;
pub mod config;
pub mod decision;
pub mod event;
pub mod fsm;
pub mod graceful;
pub mod inbound;
pub mod negotiate;
pub mod neighbor;
pub mod nexthop;
pub mod policy;
#[cfg(feature = "serde")]
pub mod record;
pub mod reflector;
pub mod rib;
pub mod route;
pub mod speaker;
pub mod status;
pub mod time;
pub mod timer;

pub use config::{
    FilterAction, FilterRule, GrConfig, MatchOperator, OriginAttrs, PeerConfig, SpeakerConfig,
};
pub use decision::{DecisionOptions, Reason, Selection};
pub use event::{ConnId, Direction, Input, Output, PeerTimer, State, TimerId};
pub use negotiate::Negotiated;
pub use route::{DEFAULT_LOCAL_PREF, Path, RouteAttrs, RouteSource};
pub use speaker::Speaker;
pub use status::{
    AdjRoute, CapabilitySummary, FamilyCounters, LastError, MessageCount, MessageCounters,
    PathStatus, PeerStatus, PeerType, RouteStatus,
};
pub use time::Instant;
