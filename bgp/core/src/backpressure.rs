//! Flow control towards a neighbor that reads slower than we write, and the RFC 9687 send
//! hold timer.
//!
//! The driver tells the core when a connection's write queue goes above its high-water mark
//! ([`Input::SendBlocked`](crate::Input::SendBlocked)) and when it drains below its low-water
//! mark ([`Input::SendReady`](crate::Input::SendReady)). While blocked, nothing more is encoded
//! for the neighbor: the prefixes whose routes changed (and whole families to re-evaluate, for
//! an export policy change or a ROUTE-REFRESH) are kept in the neighbor's backlog, a set, so a
//! prefix that changes a thousand times costs one entry. When the queue drains, the backlog is
//! compared with the Adj-RIB-Out and only the differences that still stand go out: updates are
//! generated from the tables when the socket can take them, not queued up front. A neighbor
//! that stays blocked for the send hold time is closed with NOTIFICATION 8 (Send Hold Timer
//! Expired).
//!
//! Pure.

use std::net::IpAddr;
use std::time::Duration;

use brindle_bgp_wire::{ErrorCode, NotificationMsg, Prefix};

use crate::advertise::Scope;
use crate::event::{ConnId, Output, PeerTimer, TimerId};
use crate::route::family_of;
use crate::speaker::Speaker;
use crate::time::Instant;

/// RFC 9687 §3: the send hold time when none is configured is the greater of this and twice
/// the negotiated hold time.
pub const DEFAULT_SEND_HOLD_MIN: Duration = Duration::from_secs(480);

impl Speaker {
    /// The send hold time of `peer`'s session, `None` for no limit.
    fn send_hold_time(&self, peer: IpAddr) -> Option<Duration> {
        let n = self.neighbors.get(&peer)?;
        if let Some(d) = n.config.send_hold_time {
            return Some(d);
        }
        let hold = n.negotiated.as_ref().map_or(0, |x| x.hold_time);
        (hold > 0).then(|| DEFAULT_SEND_HOLD_MIN.max(Duration::from_secs(2 * u64::from(hold))))
    }

    /// The session's write queue is above its high-water mark: hold advertisements back and
    /// start the send hold timer.
    pub(crate) fn send_blocked(
        &mut self,
        peer: IpAddr,
        conn: ConnId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let limit = self.send_hold_time(peer);
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        if n.session != Some(conn) || n.backlog.blocked {
            return;
        }
        n.backlog.blocked = true;
        tracing::info!(target: "bgp.flow", event = "send_blocked", %peer, conn = %conn, send_hold_s = limit.map(|d| d.as_secs()));
        if let Some(d) = limit {
            let t = TimerId::Peer(peer, PeerTimer::SendHold(conn));
            self.timers.arm(t, now + d, out);
        }
    }

    /// The write queue drained: send what waited, computed from the tables as they are now.
    pub(crate) fn send_ready(&mut self, peer: IpAddr, conn: ConnId, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        if n.session != Some(conn) || !n.backlog.blocked {
            return;
        }
        let backlog = std::mem::take(&mut n.backlog);
        let synced = n.synced;
        self.timers
            .cancel(TimerId::Peer(peer, PeerTimer::SendHold(conn)), out);
        tracing::info!(target: "bgp.flow", event = "send_ready", %peer, conn = %conn, prefixes = backlog.prefixes.len(), families = backlog.families.len());
        if !synced {
            // The initial advertisement has not gone out yet; it covers everything.
            return;
        }
        for (&family, &refresh) in &backlog.families {
            if refresh {
                self.serve_refresh(peer, conn, family, out);
            } else {
                self.advertise_to(peer, Scope::Family(family), false, out);
            }
        }
        let rest: Vec<Prefix> = backlog
            .prefixes
            .into_iter()
            .filter(|p| !backlog.families.contains_key(&family_of(p)))
            .collect();
        self.advertise_to(peer, Scope::Prefixes(&rest), false, out);
    }

    /// The send hold timer fired: the neighbor has not taken our messages for that long.
    pub(crate) fn send_hold_expired(
        &mut self,
        peer: IpAddr,
        conn: ConnId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let limit = self.send_hold_time(peer).unwrap_or_default();
        let Some(n) = self.neighbors.get(&peer) else {
            return;
        };
        if n.session != Some(conn) || !n.backlog.blocked {
            return;
        }
        tracing::warn!(target: "bgp.flow", event = "send_hold_timer_expired", %peer, conn = %conn, send_hold_s = limit.as_secs());
        let text = format!(
            "send hold timer expired: the neighbor did not read our messages for {} s",
            limit.as_secs()
        );
        let msg = NotificationMsg::new(ErrorCode::SendHoldTimerExpired(0), Vec::new());
        self.fail(peer, conn, msg, text, now, out);
    }

    /// True when advertisements to `peer` are held back; `prefixes` join its backlog then.
    pub(crate) fn hold_back(&mut self, peer: IpAddr, prefixes: &[Prefix]) -> bool {
        match self.neighbors.get_mut(&peer) {
            Some(n) if n.backlog.blocked => {
                n.backlog.prefixes.extend(prefixes.iter().copied());
                true
            }
            _ => false,
        }
    }

    /// True when advertisements to `peer` are held back; the family joins its backlog then
    /// (`refresh`: a ROUTE-REFRESH to serve).
    pub(crate) fn hold_back_family(
        &mut self,
        peer: IpAddr,
        family: brindle_bgp_wire::Family,
        refresh: bool,
    ) -> bool {
        match self.neighbors.get_mut(&peer) {
            Some(n) if n.backlog.blocked => {
                *n.backlog.families.entry(family).or_default() |= refresh;
                true
            }
            _ => false,
        }
    }
}
