//! The owner of one BGP instance: neighbors, RIBs, timers. [`Speaker::step`] is the single
//! entry point; every handler it dispatches to lives in the module of its concept
//! ([`crate::fsm`], [`crate::inbound`], [`crate::advertise`], [`crate::graceful`]).
//!
//! After each input the speaker runs the decision process over the prefixes that changed
//! (unless a restart's selection deferral is in progress), updates kernel routes, sends the
//! Adj-RIB-Out differences, sends the initial table and End-of-RIB to sessions that just came
//! up, and reports state changes.
//!
//! Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;

use brindle_bgp_wire::{Origin, Prefix, SessionContext};

use crate::config::{OriginAttrs, SpeakerConfig};
use crate::decision::DecisionOptions;
use crate::event::{Input, Output, PeerTimer, TimerId};
use crate::neighbor::Neighbor;
use crate::rib::{AdjRibIn, LocRib};
use crate::route::{Interner, Path, RouteAttrs, RouteSource};
use crate::time::Instant;
use crate::timer::Timers;

/// One BGP instance.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub(crate) config: SpeakerConfig,
    pub(crate) neighbors: BTreeMap<IpAddr, Neighbor>,
    pub(crate) adj_in: BTreeMap<IpAddr, AdjRibIn>,
    pub(crate) adj_out: crate::rib::adj_out::AdjOut,
    pub(crate) loc: LocRib,
    /// Received and post-import attribute sets, shared by every route carrying them.
    pub(crate) interner: Interner<RouteAttrs>,
    pub(crate) originated: BTreeMap<Prefix, OriginAttrs>,
    pub(crate) installed: BTreeMap<Prefix, Vec<IpAddr>>,
    pub(crate) timers: Timers,
    /// Some while we are a restarting speaker deferring route selection (RFC 4724 §4.1).
    pub(crate) deferring: bool,
    /// We restarted and still advertise the Restart State bit.
    pub(crate) restarting: bool,
    /// `Output::RibSynced` is due after the next kernel sync.
    pub(crate) pending_synced: bool,
    /// The time of the input being handled (set by `step`), for the age of paths.
    pub(crate) clock: Instant,
    /// Next-hop reachability as the driver reported it.
    pub(crate) nexthops: crate::nexthop::Nexthops,
}

impl Speaker {
    /// A speaker that starts fresh.
    pub fn new(config: SpeakerConfig) -> Speaker {
        Speaker {
            config,
            neighbors: BTreeMap::new(),
            adj_in: BTreeMap::new(),
            adj_out: Default::default(),
            loc: LocRib::default(),
            interner: Interner::default(),
            originated: BTreeMap::new(),
            installed: BTreeMap::new(),
            timers: Timers::default(),
            deferring: false,
            restarting: false,
            pending_synced: false,
            clock: Instant::ZERO,
            nexthops: Default::default(),
        }
    }

    /// A speaker restarting gracefully (RFC 4724 §4.1): OPENs carry the Restart State bit,
    /// and route selection, installation and advertisement wait until every graceful-restart
    /// neighbor sent End-of-RIB or the selection deferral timer (armed in the returned
    /// outputs) fires. Kernel routes from before the restart are left alone meanwhile; when
    /// selection runs, [`Output::InstallRoute`]s describe the full table. Without
    /// `graceful_restart` in the configuration this is the same as [`Speaker::new`].
    pub fn new_restarting(config: SpeakerConfig, now: Instant) -> (Speaker, Vec<Output>) {
        let deferral = config
            .graceful_restart
            .as_ref()
            .map(|g| g.selection_deferral);
        let mut s = Speaker::new(config);
        let mut out = Vec::new();
        if let Some(d) = deferral {
            s.deferring = true;
            s.restarting = true;
            s.timers.arm(TimerId::SelectionDeferral, now + d, &mut out);
        }
        (s, out)
    }

    /// The configuration.
    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    /// True while a restart's selection deferral is in progress.
    pub fn is_deferring(&self) -> bool {
        self.deferring
    }

    /// The negotiated context of the neighbor's established session (the driver also gets it
    /// as [`Output::SetContext`]).
    pub fn session_context(&self, peer: IpAddr) -> Option<&SessionContext> {
        self.neighbors
            .get(&peer)?
            .negotiated
            .as_ref()
            .map(|n| &n.ctx)
    }

    /// The kernel routes the speaker currently wants installed.
    pub fn installed_routes(&self) -> &BTreeMap<Prefix, Vec<IpAddr>> {
        &self.installed
    }

    /// The deadline of an armed timer.
    pub fn timer_deadline(&self, timer: TimerId) -> Option<Instant> {
        self.timers.deadline(timer)
    }

    pub(crate) fn decision_options(&self) -> DecisionOptions {
        DecisionOptions {
            always_compare_med: self.config.always_compare_med,
            max_paths: self.config.max_paths.max(1),
            multipath_relax: self.config.multipath_relax,
        }
    }

    /// Feed one input; returns what to do, in order.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Output> {
        self.clock = now;
        let mut out = Vec::new();
        self.apply(input, now, &mut out);
        self.finish(now, &mut out);
        self.count_sent(&out);
        out
    }

    /// Counts every message the outputs send, per neighbor and type.
    fn count_sent(&mut self, out: &[Output]) {
        for o in out {
            match o {
                Output::Send { peer, msg, .. } => {
                    if let Some(n) = self.neighbors.get_mut(peer) {
                        n.messages.sent.count(msg.kind().to_u8());
                    }
                }
                Output::SendEncoded { peer, bytes, .. } => {
                    let Some(n) = self.neighbors.get_mut(peer) else {
                        continue;
                    };
                    // Whole messages back to back: length at bytes 16-17, type at 18.
                    let mut at = 0;
                    while at + 19 <= bytes.len() {
                        let len = u16::from_be_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
                        n.messages.sent.count(bytes[at + 18]);
                        at += len.max(19);
                    }
                }
                _ => {}
            }
        }
    }

    fn apply(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::Batch(inputs) => {
                for i in inputs {
                    self.apply(i, now, out);
                }
            }
            Input::AddPeer(cfg) => self.add_peer(cfg, now, out),
            Input::UpdatePeer(cfg) => self.update_peer(cfg, now, out),
            Input::RemovePeer(p) => self.remove_peer(p, now, out),
            Input::AdminUp(p) => self.admin_up(p, now, out),
            Input::AdminDown(p) => self.admin_down(p, now, out),
            Input::TcpConnected {
                peer,
                conn_id,
                direction,
                local,
                remote: _,
            } => self.tcp_connected(peer, conn_id, direction, local, now, out),
            Input::TcpFailed { peer } => self.tcp_failed(peer, now, out),
            Input::TcpClosed { peer, conn_id } => self.tcp_closed(peer, conn_id, now, out),
            Input::Message {
                peer,
                conn_id,
                msg,
                findings,
            } => {
                if let Some(n) = self.neighbors.get_mut(&peer) {
                    n.messages.received.count(msg.kind().to_u8());
                }
                self.message(peer, conn_id, msg, findings, now, out)
            }
            Input::DecodeError {
                peer,
                conn_id,
                error,
            } => self.decode_error(peer, conn_id, error, now, out),
            Input::TimerExpired(t) => {
                if self.timers.fire(t, now) {
                    self.timer_expired(t, now, out);
                }
            }
            Input::Originate(prefix, attrs) => self.originate(prefix, attrs),
            Input::WithdrawOriginated(prefix) => {
                if self.originated.remove(&prefix).is_some() {
                    self.loc.remove(&prefix, RouteSource::Local);
                }
            }
            Input::RouteRefreshRequest(peer, family) => self.request_refresh(peer, family, out),
            Input::SendBlocked { peer, conn_id } => self.send_blocked(peer, conn_id, now, out),
            Input::SendReady { peer, conn_id } => self.send_ready(peer, conn_id, out),
            Input::NexthopReachability {
                addr,
                reachable,
                via,
            } => self.nexthop_reported(addr, crate::nexthop::Resolution { reachable, via }, out),
        }
    }

    fn timer_expired(&mut self, t: TimerId, now: Instant, out: &mut Vec<Output>) {
        match t {
            TimerId::SelectionDeferral => self.end_deferral(out),
            TimerId::Peer(peer, pt) => match pt {
                PeerTimer::ConnectRetry => self.connect_retry_expired(peer, now, out),
                PeerTimer::IdleHold => self.start(peer, now, out),
                PeerTimer::Hold(c) => self.hold_expired(peer, c, now, out),
                PeerTimer::Keepalive(c) => self.keepalive_expired(peer, c, now, out),
                PeerTimer::DelayOpen(c) => self.delay_open_expired(peer, c, now, out),
                PeerTimer::Restart | PeerTimer::Stale => self.flush_stale(peer, None),
                PeerTimer::RouteRefresh(f) => self.refresh_due(peer, f, out),
                PeerTimer::SendHold(c) => self.send_hold_expired(peer, c, now, out),
            },
        }
    }

    fn originate(&mut self, prefix: Prefix, attrs: OriginAttrs) {
        let ra = RouteAttrs {
            origin: Origin::Igp,
            med: attrs.med,
            local_pref: attrs.local_pref,
            communities: attrs.communities.clone(),
            large_communities: attrs.large_communities.clone(),
            ..RouteAttrs::default()
        };
        self.originated.insert(prefix, attrs);
        self.loc.upsert(
            prefix,
            Path {
                source: RouteSource::Local,
                attrs: Arc::new(ra),
                ebgp: false,
                peer_router_id: self.config.router_id,
                stale: false,
                since: self.clock,
            },
        );
    }

    /// Post-input work: decision, kernel, advertisement, initial sync, state reports.
    fn finish(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.deferring {
            let opts = self.decision_options();
            self.nexthops_changed(out);
            self.track_new_nexthops(out);
            let tracking = self.config.nexthop_tracking;
            let nh = &self.nexthops;
            let changed = self
                .loc
                .decide(&opts, |p| crate::nexthop::eligible(tracking, nh, p));
            if self.config.install_routes {
                self.sync_kernel(&changed, out);
            }
            // After a restart, the kernel's leftover routes go only once the table is complete:
            // not while a next hop is still to be resolved (its routes are not installed yet).
            if self.pending_synced && !self.nexthops.any_unreported() {
                self.pending_synced = false;
                out.push(Output::RibSynced);
            }
            self.advertise_changes(&changed, out);
            self.initial_sync(out);
        }
        self.report_states(now, out);
    }

    /// Emit InstallRoute / RemoveRoute for the prefixes whose selection may have changed.
    pub(crate) fn sync_kernel(&mut self, prefixes: &[Prefix], out: &mut Vec<Output>) {
        for p in prefixes {
            let want: Option<Vec<IpAddr>> = self.loc.get(p).and_then(|d| {
                let best = d.best()?;
                if best.source == RouteSource::Local {
                    return None;
                }
                let mut nh = Vec::with_capacity(d.selection.multipath.len().max(1));
                if self.config.nexthop_tracking {
                    // Recursive next hops are installed through their resolving gateways.
                    for a in d.multipath().filter_map(|x| x.attrs.next_hop) {
                        nh.extend(self.nexthops.install_via(a));
                    }
                } else {
                    nh.extend(d.multipath().filter_map(|x| x.attrs.next_hop));
                }
                nh.sort();
                nh.dedup();
                (!nh.is_empty()).then_some(nh)
            });
            match want {
                Some(nh) => {
                    match self.installed.entry(*p) {
                        Entry::Occupied(e) if *e.get() == nh => continue,
                        Entry::Occupied(mut e) => {
                            e.insert(nh.clone());
                        }
                        Entry::Vacant(e) => {
                            e.insert(nh.clone());
                        }
                    }
                    tracing::debug!(target: "bgp.rib", event = "route_install", prefix = %p, nexthops = ?nh);
                    out.push(Output::InstallRoute {
                        prefix: *p,
                        nexthops: nh,
                    });
                }
                None => {
                    if self.installed.remove(p).is_some() {
                        tracing::debug!(target: "bgp.rib", event = "route_remove", prefix = %p);
                        out.push(Output::RemoveRoute { prefix: *p });
                    }
                }
            }
        }
    }

    fn report_states(&mut self, _now: Instant, out: &mut Vec<Output>) {
        for (addr, n) in self.neighbors.iter_mut() {
            let s = n.state();
            if s != n.reported {
                tracing::info!(target: "bgp.fsm", event = "state_change", peer = %addr, old = %n.reported, new = %s);
                out.push(Output::PeerStateChanged {
                    peer: *addr,
                    old: n.reported,
                    new: s,
                });
                n.reported = s;
            }
        }
    }
}
