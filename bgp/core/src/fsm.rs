//! The RFC 4271 §8 finite state machine, per neighbor: administrative events, TCP events,
//! the OPEN / KEEPALIVE handshake, the ConnectRetry, Hold, Keepalive, DelayOpen and IdleHold
//! timers, and connection collision detection (§6.8).
//!
//! A neighbor has a base state (Idle, Connect or Active) and up to one connection per
//! direction; its reported state is the most advanced connection's. When the neighbor's OPEN
//! arrives on one connection while another exists, the collision is resolved at once: the
//! connection opened by the speaker with the higher BGP identifier survives, the other gets
//! Cease/7. An established session wins against a new connection, except when both negotiated
//! graceful restart: then the neighbor restarted (RFC 4724 §4.2) and the old session is closed
//! as a transport failure, its routes kept stale.
//!
//! ```text
//!  Idle --start--> Connect --TCP up--> OpenSent --OPEN ok--> OpenConfirm --KEEPALIVE--> Established
//!   ^  (passive: Active)  | TCP fail -> Active (ConnectRetry -> Connect)
//!   +------ error: NOTIFICATION, Close, IdleHold (5 s doubling to 120 s) ------------+
//! ```
//!
//! Pure: timers are deadlines in the outputs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use brindle_bgp_wire::{
    CeaseSubcode, Error as WireError, ErrorCode, FsmSubcode, Message, NotificationMsg, OpenMsg,
};

use crate::config::PeerConfig;
use crate::event::{ConnId, Direction, Output, PeerTimer, State, TimerId};
use crate::negotiate::{check_open, local_open};
use crate::neighbor::{Conn, ConnState, LastError, Neighbor};
use crate::rib::AdjRibIn;
use crate::speaker::Speaker;
use crate::time::Instant;

/// Hold time while waiting for the neighbor's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const OPEN_HOLD_TIME: u16 = 240;

fn send(out: &mut Vec<Output>, peer: IpAddr, conn_id: ConnId, msg: Message) {
    out.push(Output::Send { peer, conn_id, msg });
}

fn pt(peer: IpAddr, t: PeerTimer) -> TimerId {
    TimerId::Peer(peer, t)
}

fn cease(sub: CeaseSubcode) -> NotificationMsg {
    NotificationMsg::new(ErrorCode::Cease(sub), Vec::new())
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Teardown {
    /// An error: IdleHold backoff, no graceful restart.
    Error,
    /// A TCP failure or hold timer expiry: IdleHold backoff, graceful restart helper applies.
    Transport,
    /// Administrative: no backoff, no graceful restart, no automatic restart.
    Admin,
}

impl Speaker {
    pub(crate) fn add_peer(&mut self, cfg: PeerConfig, now: Instant, out: &mut Vec<Output>) {
        let addr = cfg.address;
        if self.neighbors.contains_key(&addr) {
            self.update_peer(cfg, now, out);
            return;
        }
        tracing::info!(target: "bgp.fsm", event = "peer_added", peer = %addr, remote_as = cfg.remote_as);
        self.neighbors.insert(addr, Neighbor::new(cfg));
        self.adj_in.insert(addr, AdjRibIn::default());
        self.adj_out.add_peer(addr);
        self.start(addr, now, out);
    }

    pub(crate) fn update_peer(&mut self, cfg: PeerConfig, now: Instant, out: &mut Vec<Output>) {
        let addr = cfg.address;
        let Some(n) = self.neighbors.get_mut(&addr) else {
            self.add_peer(cfg, now, out);
            return;
        };
        let reset = n.config.needs_reset(&cfg);
        // Refused routes were not kept: a new import policy needs them from the neighbor.
        let refetch = n.config.import != cfg.import && !cfg.soft_reconfiguration_inbound;
        n.config = cfg;
        if reset {
            let admin = n.admin_up;
            self.stop(addr, CeaseSubcode::OtherConfigurationChange, now, out);
            if let Some(n) = self.neighbors.get_mut(&addr) {
                n.admin_up = admin;
            }
            self.start(addr, now, out);
        } else {
            self.reimport(addr);
            self.readvertise(addr, out);
            if refetch {
                let fams: Vec<_> = self
                    .neighbors
                    .get(&addr)
                    .and_then(|n| n.negotiated.as_ref())
                    .map(|x| x.ctx.families.iter().copied().collect())
                    .unwrap_or_default();
                for f in fams {
                    self.request_refresh(addr, f, out);
                }
            }
        }
    }

    pub(crate) fn remove_peer(&mut self, addr: IpAddr, now: Instant, out: &mut Vec<Output>) {
        if !self.neighbors.contains_key(&addr) {
            return;
        }
        self.stop(addr, CeaseSubcode::PeerDeconfigured, now, out);
        self.timers
            .cancel_where(|t| matches!(t, TimerId::Peer(p, _) if *p == addr), out);
        self.neighbors.remove(&addr);
        self.adj_in.remove(&addr);
        self.adj_out.remove_peer(addr);
        tracing::info!(target: "bgp.fsm", event = "peer_removed", peer = %addr);
    }

    pub(crate) fn admin_up(&mut self, addr: IpAddr, now: Instant, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        if n.admin_up {
            return;
        }
        n.admin_up = true;
        n.backoff = 0;
        self.start(addr, now, out);
    }

    pub(crate) fn admin_down(&mut self, addr: IpAddr, now: Instant, out: &mut Vec<Output>) {
        self.stop(addr, CeaseSubcode::AdministrativeShutdown, now, out);
    }

    /// Close every connection with a Cease of `sub`, withdraw the neighbor's routes, go Idle
    /// with the neighbor administratively down.
    fn stop(&mut self, addr: IpAddr, sub: CeaseSubcode, now: Instant, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        n.admin_up = false;
        n.base = State::Idle;
        let conns: Vec<ConnId> = n.conns.keys().copied().collect();
        for c in conns {
            self.close_conn(addr, c, Some(cease(sub)), now, Teardown::Admin, out);
        }
        self.timers
            .cancel_where(|t| matches!(t, TimerId::Peer(p, _) if *p == addr), out);
        self.flush_stale(addr, None);
    }

    /// RFC 4271 ManualStart / automatic start: Connect (or Active when passive).
    pub(crate) fn start(&mut self, addr: IpAddr, now: Instant, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        if !n.admin_up || !n.conns.is_empty() {
            return;
        }
        if n.config.passive {
            n.base = State::Active;
            return;
        }
        n.base = State::Connect;
        out.push(Output::Connect {
            peer: addr,
            addr,
            port: n.config.port,
            local: n.config.local_address,
        });
        let at = now + n.config.connect_retry;
        self.timers.arm(pt(addr, PeerTimer::ConnectRetry), at, out);
    }

    pub(crate) fn connect_retry_expired(
        &mut self,
        addr: IpAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if self
            .neighbors
            .get(&addr)
            .is_some_and(|n| n.conns.is_empty())
        {
            self.start(addr, now, out);
        }
    }

    pub(crate) fn tcp_failed(&mut self, addr: IpAddr, _now: Instant, _out: &mut [Output]) {
        if let Some(n) = self.neighbors.get_mut(&addr)
            && n.base == State::Connect
        {
            n.base = State::Active;
        }
    }

    pub(crate) fn tcp_connected(
        &mut self,
        addr: IpAddr,
        conn_id: ConnId,
        dir: Direction,
        local: SocketAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let idle_hold = self.timers.is_armed(pt(addr, PeerTimer::IdleHold));
        let Some(n) = self.neighbors.get_mut(&addr) else {
            out.push(Output::Close {
                peer: addr,
                conn_id,
            });
            return;
        };
        // With graceful restart negotiated, a connection while established may be the neighbor
        // restarting (RFC 4724 §4.2): let its OPEN arrive; open_received decides.
        let gr_session = n
            .session
            .and_then(|s| n.conns.get(&s))
            .and_then(|c| c.negotiated.as_ref())
            .is_some_and(|neg| neg.peer_gr.is_some());
        let same_dir = n
            .conns
            .iter()
            .any(|(id, c)| c.dir == dir && !(gr_session && Some(*id) == n.session));
        // IdleHold only delays our own attempts; the neighbor may still connect to us.
        let holding = idle_hold && dir == Direction::Active;
        if !n.admin_up || holding || (n.session.is_some() && !gr_session) || same_dir {
            tracing::debug!(target: "bgp.fsm", event = "connection_rejected", peer = %addr, conn = %conn_id);
            out.push(Output::Close {
                peer: addr,
                conn_id,
            });
            return;
        }
        let delay = n.config.delay_open;
        n.conns.insert(
            conn_id,
            Conn {
                dir,
                state: ConnState::DelayOpen,
                local,
                sent_open: None,
                negotiated: None,
                hold: OPEN_HOLD_TIME,
                last_rx: now,
            },
        );
        self.timers.cancel(pt(addr, PeerTimer::ConnectRetry), out);
        match delay {
            Some(d) => self
                .timers
                .arm(pt(addr, PeerTimer::DelayOpen(conn_id)), now + d, out),
            None => self.send_open(addr, conn_id, now, out),
        }
    }

    fn send_open(&mut self, addr: IpAddr, conn_id: ConnId, now: Instant, out: &mut Vec<Output>) {
        let restarting = self.restarting;
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        let open = local_open(&self.config, &n.config, restarting);
        let Some(c) = n.conns.get_mut(&conn_id) else {
            return;
        };
        c.sent_open = Some(open.clone());
        c.state = ConnState::OpenSent;
        c.hold = OPEN_HOLD_TIME;
        c.last_rx = now;
        send(out, addr, conn_id, Message::Open(open));
        let at = now + Duration::from_secs(u64::from(OPEN_HOLD_TIME));
        self.timers.arm(pt(addr, PeerTimer::Hold(conn_id)), at, out);
    }

    pub(crate) fn delay_open_expired(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let waiting = self
            .neighbors
            .get(&addr)
            .and_then(|n| n.conns.get(&c))
            .is_some_and(|c| c.state == ConnState::DelayOpen);
        if waiting {
            self.send_open(addr, c, now, out);
        }
    }

    pub(crate) fn hold_expired(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(conn) = self.neighbors.get(&addr).and_then(|n| n.conns.get(&c)) else {
            return;
        };
        let due = conn.last_rx + Duration::from_secs(u64::from(conn.hold));
        if conn.hold == 0 {
            return;
        }
        if due > now {
            self.timers.arm(pt(addr, PeerTimer::Hold(c)), due, out);
            return;
        }
        tracing::info!(target: "bgp.fsm", event = "hold_timer_expired", peer = %addr, conn = %c);
        let n = NotificationMsg::new(ErrorCode::HoldTimerExpired(0), Vec::new());
        self.close_conn(addr, c, Some(n), now, Teardown::Transport, out);
    }

    pub(crate) fn keepalive_expired(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(k) = self
            .neighbors
            .get(&addr)
            .and_then(|n| n.conns.get(&c))
            .and_then(|c| c.negotiated.as_ref())
            .map(|n| n.keepalive)
        else {
            return;
        };
        if k == 0 {
            return;
        }
        send(out, addr, c, Message::Keepalive);
        let at = now + Duration::from_secs(u64::from(k));
        self.timers.arm(pt(addr, PeerTimer::Keepalive(c)), at, out);
    }

    pub(crate) fn tcp_closed(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if self
            .neighbors
            .get(&addr)
            .is_some_and(|n| n.conns.contains_key(&c))
        {
            tracing::info!(target: "bgp.fsm", event = "tcp_closed", peer = %addr, conn = %c);
            self.record_error(
                addr,
                "connection closed by the neighbor".into(),
                None,
                false,
                now,
            );
            self.close_conn(addr, c, None, now, Teardown::Transport, out);
        }
    }

    pub(crate) fn decode_error(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        error: WireError,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if let WireError::SessionReset {
            notification,
            reason,
        } = error
        {
            tracing::info!(target: "bgp.fsm", event = "decode_error", peer = %addr, conn = %c, %reason);
            self.fail(addr, c, notification, reason, now, out);
        }
    }

    /// Send `n`, close, record the error, back off.
    pub(crate) fn fail(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        n: NotificationMsg,
        text: String,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        self.record_error(addr, text, Some(n.error), true, now);
        self.close_conn(addr, c, Some(n), now, Teardown::Error, out);
    }

    pub(crate) fn record_error(
        &mut self,
        addr: IpAddr,
        text: String,
        notification: Option<ErrorCode>,
        sent: bool,
        now: Instant,
    ) {
        if let Some(n) = self.neighbors.get_mut(&addr) {
            n.last_error = Some(LastError {
                text,
                notification,
                sent,
                at: now,
            });
        }
    }

    /// Close one connection (sending `notification` first when given). When it carried the
    /// session, the session goes down; when it was the last connection, the neighbor goes to
    /// Idle with IdleHold (or stays Idle when administratively down).
    pub(crate) fn close_conn(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        notification: Option<NotificationMsg>,
        now: Instant,
        how: Teardown,
        out: &mut Vec<Output>,
    ) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        let Some(conn) = n.conns.remove(&c) else {
            return;
        };
        if let Some(msg) = notification
            && conn.state >= ConnState::OpenSent
        {
            send(out, addr, c, Message::Notification(msg));
        }
        out.push(Output::Close {
            peer: addr,
            conn_id: c,
        });
        for t in [
            PeerTimer::Hold(c),
            PeerTimer::Keepalive(c),
            PeerTimer::DelayOpen(c),
            PeerTimer::SendHold(c),
        ] {
            self.timers.cancel(pt(addr, t), out);
        }
        if n.session == Some(c) {
            self.session_down(addr, how, now, out);
        }
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        if n.conns.is_empty() {
            if how == Teardown::Admin || !n.admin_up {
                n.base = State::Idle;
            } else {
                self.enter_idle_hold(addr, now, out);
            }
        }
    }

    fn enter_idle_hold(&mut self, addr: IpAddr, now: Instant, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        n.base = State::Idle;
        let factor = 1u32.checked_shl(n.backoff.min(16)).unwrap_or(u32::MAX);
        let delay = self
            .config
            .idle_hold_initial
            .saturating_mul(factor)
            .min(self.config.idle_hold_max);
        n.backoff = n.backoff.saturating_add(1);
        self.timers.cancel(pt(addr, PeerTimer::ConnectRetry), out);
        tracing::debug!(target: "bgp.fsm", event = "idle_hold", peer = %addr, delay_ms = delay.as_millis() as u64);
        self.timers
            .arm(pt(addr, PeerTimer::IdleHold), now + delay, out);
    }

    pub(crate) fn message(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        msg: Message,
        findings: Vec<WireError>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(conn) = self
            .neighbors
            .get_mut(&addr)
            .and_then(|n| n.conns.get_mut(&c))
        else {
            return;
        };
        conn.last_rx = now;
        let state = conn.state;
        let fsm_error = |s: ConnState| {
            let sub = match s {
                ConnState::DelayOpen | ConnState::OpenSent => {
                    FsmSubcode::UnexpectedMessageInOpenSent
                }
                ConnState::OpenConfirm => FsmSubcode::UnexpectedMessageInOpenConfirm,
                ConnState::Established => FsmSubcode::UnexpectedMessageInEstablished,
            };
            NotificationMsg::new(ErrorCode::Fsm(sub), Vec::new())
        };
        match msg {
            Message::Open(open) => {
                if state == ConnState::DelayOpen {
                    self.timers.cancel(pt(addr, PeerTimer::DelayOpen(c)), out);
                    self.send_open(addr, c, now, out);
                } else if state != ConnState::OpenSent {
                    self.fail(
                        addr,
                        c,
                        fsm_error(state),
                        format!("unexpected OPEN in {state:?}"),
                        now,
                        out,
                    );
                    return;
                }
                self.open_received(addr, c, open, now, out);
            }
            Message::Keepalive => match state {
                ConnState::OpenConfirm => self.session_up(addr, c, now, out),
                ConnState::Established => {}
                s => self.fail(
                    addr,
                    c,
                    fsm_error(s),
                    "unexpected KEEPALIVE".into(),
                    now,
                    out,
                ),
            },
            Message::Notification(n) => {
                tracing::info!(target: "bgp.fsm", event = "notification_received", peer = %addr, code = n.code(), subcode = n.subcode());
                let text = match n.shutdown_communication() {
                    Some(t) => format!("NOTIFICATION received: {:?}: {t}", n.error),
                    None => format!("NOTIFICATION received: {:?}", n.error),
                };
                self.record_error(addr, text, Some(n.error), false, now);
                self.close_conn(addr, c, None, now, Teardown::Error, out);
            }
            Message::Update(u) => {
                if state == ConnState::Established {
                    self.update_received(addr, c, u, findings, now, out);
                } else {
                    self.fail(
                        addr,
                        c,
                        fsm_error(state),
                        "UPDATE before Established".into(),
                        now,
                        out,
                    );
                }
            }
            Message::RouteRefresh(r) => {
                if state == ConnState::Established {
                    self.refresh_received(addr, c, r, out);
                }
            }
        }
    }

    fn open_received(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        open: OpenMsg,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(n) = self.neighbors.get(&addr) else {
            return;
        };
        let Some(local) = n.conns.get(&c).and_then(|c| c.sent_open.clone()) else {
            return;
        };
        let neg = match check_open(&self.config, &n.config, &local, &open) {
            Ok(neg) => neg,
            Err(notif) => {
                let text = format!(
                    "OPEN rejected, {}: the peer sent AS {} and hold time {}; we expect AS {}",
                    notif.error.text(),
                    open.asn(),
                    open.hold_time,
                    n.config.remote_as
                );
                self.fail(addr, c, notif, text, now, out);
                return;
            }
        };
        // Collision detection (RFC 4271 §6.8).
        let this_dir = n.conns.get(&c).map(|x| x.dir);
        let others: Vec<(ConnId, Direction, ConnState)> = n
            .conns
            .iter()
            .filter(|(id, _)| **id != c)
            .map(|(id, x)| (*id, x.dir, x.state))
            .collect();
        // RFC 4724 §4.2: an OPEN from a neighbor whose established session negotiated graceful
        // restart means the neighbor restarted (say, rebooted without closing): close the old
        // session as a transport failure, keeping its routes stale, and continue with this one.
        let old_gr = n
            .conns
            .values()
            .filter(|x| x.state == ConnState::Established)
            .any(|x| x.negotiated.as_ref().is_some_and(|o| o.peer_gr.is_some()));
        if old_gr && neg.peer_gr.is_some() {
            for (other, _, other_state) in others.iter().copied() {
                if other_state == ConnState::Established {
                    tracing::info!(target: "bgp.fsm", event = "peer_restarted", peer = %addr, old = %other, new = %c, "new OPEN while established with graceful restart: the neighbor restarted");
                    self.record_error(
                        addr,
                        "the neighbor restarted (new OPEN while established, graceful restart)"
                            .into(),
                        None,
                        false,
                        now,
                    );
                    self.close_conn(addr, other, None, now, Teardown::Transport, out);
                }
            }
        }
        let others: Vec<(ConnId, Direction, ConnState)> = self
            .neighbors
            .get(&addr)
            .map(|n| {
                n.conns
                    .iter()
                    .filter(|(id, _)| **id != c)
                    .map(|(id, x)| (*id, x.dir, x.state))
                    .collect()
            })
            .unwrap_or_default();
        for (other, other_dir, other_state) in others {
            let keep_passive = u32::from(self.config.router_id) < u32::from(neg.remote_id);
            let this_loses = other_state == ConnState::Established
                || this_dir == Some(other_dir)
                || (this_dir == Some(Direction::Passive)) != keep_passive;
            let loser = if this_loses { c } else { other };
            tracing::info!(target: "bgp.fsm", event = "collision", peer = %addr, closed = %loser);
            let notif = cease(CeaseSubcode::ConnectionCollisionResolution);
            self.close_conn(addr, loser, Some(notif), now, Teardown::Error, out);
            if this_loses {
                return;
            }
        }
        let Some(conn) = self
            .neighbors
            .get_mut(&addr)
            .and_then(|n| n.conns.get_mut(&c))
        else {
            return;
        };
        conn.state = ConnState::OpenConfirm;
        conn.hold = neg.hold_time;
        conn.last_rx = now;
        let (hold, keepalive, ctx) = (neg.hold_time, neg.keepalive, neg.ctx.clone());
        conn.negotiated = Some(neg);
        out.push(Output::SetContext {
            peer: addr,
            conn_id: c,
            ctx,
        });
        send(out, addr, c, Message::Keepalive);
        if hold == 0 {
            self.timers.cancel(pt(addr, PeerTimer::Hold(c)), out);
        } else {
            let at = now + Duration::from_secs(u64::from(hold));
            self.timers.arm(pt(addr, PeerTimer::Hold(c)), at, out);
        }
        if keepalive > 0 {
            let at = now + Duration::from_secs(u64::from(keepalive));
            self.timers.arm(pt(addr, PeerTimer::Keepalive(c)), at, out);
        }
    }

    fn session_up(&mut self, addr: IpAddr, c: ConnId, now: Instant, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        let Some(conn) = n.conns.get_mut(&c) else {
            return;
        };
        conn.state = ConnState::Established;
        n.session = Some(c);
        n.negotiated = conn.negotiated.clone();
        n.local_socket = Some(conn.local.ip());
        n.established_at = Some(now);
        n.eor_received.clear();
        n.synced = false;
        n.backlog = Default::default();
        let others: Vec<ConnId> = n.conns.keys().filter(|id| **id != c).copied().collect();
        tracing::info!(target: "bgp.fsm", event = "established", peer = %addr, conn = %c);
        for o in others {
            let notif = cease(CeaseSubcode::ConnectionCollisionResolution);
            self.close_conn(addr, o, Some(notif), now, Teardown::Error, out);
        }
        self.timers.cancel(pt(addr, PeerTimer::ConnectRetry), out);
        self.helper_session_up(addr, now, out);
    }

    /// The session of `addr` went down: forget what we advertised, keep its routes stale
    /// (graceful restart helper) or withdraw them.
    fn session_down(&mut self, addr: IpAddr, how: Teardown, now: Instant, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        n.session = None;
        n.flaps = n.flaps.saturating_add(1);
        let neg = n.negotiated.take();
        if let Some(since) = n.established_at.take()
            && now.saturating_duration_since(since) >= self.config.idle_hold_max
        {
            n.backoff = 0;
        }
        n.synced = false;
        n.eor_received.clear();
        n.backlog = Default::default();
        if let Some(mut o) = self.adj_out.peer_mut(addr) {
            o.clear();
        }
        tracing::info!(target: "bgp.fsm", event = "session_down", peer = %addr, how = ?how);
        let gr = match (&neg, how) {
            (Some(neg), Teardown::Transport) => neg.gr_families(),
            _ => Default::default(),
        };
        let restart_time = neg
            .as_ref()
            .and_then(|n| n.peer_gr.as_ref())
            .map_or(0, |g| g.restart_time);
        self.helper_session_down(addr, gr, restart_time, now, out);
    }
}
