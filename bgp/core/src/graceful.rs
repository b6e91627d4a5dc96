//! Graceful restart (RFC 4724) in both roles.
//!
//! **Helper.** When the session of a neighbor that negotiated graceful restart drops because
//! of the transport (TCP close, hold timer expiry; not a NOTIFICATION), its routes of the GR
//! families are marked stale and kept in the Loc-RIB and the kernel, and the Restart timer is
//! armed with the neighbor's restart time. When the session comes back, families it still
//! preserves forwarding state for stay stale until its End-of-RIB for the family (or the Stale
//! timer); routes it re-sends lose the mark. Everything else is removed at once.
//!
//! ```text
//!  session drop ──> routes stale, Restart timer ──> re-established ──> Stale timer
//!        │                  │ expires: flush              │ EoR(family): flush stale of family
//! ```
//!
//! **Restarting speaker.** Built with [`Speaker::new_restarting`]: OPENs carry the Restart
//! State bit; the decision process, kernel updates and advertisement wait until every GR
//! neighbor sent End-of-RIB for all its families, or the selection deferral timer fires. Then
//! the whole table is selected, installed, and sent with End-of-RIB, followed by
//! [`Output::RibSynced`].
//!
//! Pure.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use brindle_bgp_wire::{Family, Prefix};

use crate::event::{Output, PeerTimer, TimerId};
use crate::route::{RouteSource, family_of};
use crate::speaker::Speaker;
use crate::time::Instant;

impl Speaker {
    /// The session of `addr` dropped: keep the routes of `gr` families stale, withdraw the
    /// rest.
    pub(crate) fn helper_session_down(
        &mut self,
        addr: IpAddr,
        gr: BTreeSet<Family>,
        restart_time: u16,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let prefixes: Vec<(Prefix, bool)> = match self.adj_in.get(&addr) {
            Some(r) => r.iter().map(|(p, e)| (*p, e.stale)).collect(),
            None => return,
        };
        let mut kept = 0usize;
        for (p, _) in prefixes {
            if gr.contains(&family_of(&p)) {
                if let Some(r) = self.adj_in.get_mut(&addr) {
                    r.set_stale(&p);
                }
                self.loc.set_stale(&p, RouteSource::Peer(addr), true);
                kept += 1;
            } else {
                self.withdraw_learned(addr, &p);
            }
        }
        if gr.is_empty() {
            return;
        }
        tracing::info!(target: "bgp.rib", event = "gr_helper_start", peer = %addr, stale = kept, restart_time);
        if let Some(n) = self.neighbors.get_mut(&addr) {
            n.gr_stale.extend(gr);
        }
        let at = now + Duration::from_secs(u64::from(restart_time));
        self.timers
            .arm(TimerId::Peer(addr, PeerTimer::Restart), at, out);
    }

    /// The session of `addr` is up again: decide which stale families survive.
    pub(crate) fn helper_session_up(&mut self, addr: IpAddr, now: Instant, out: &mut Vec<Output>) {
        self.timers
            .cancel(TimerId::Peer(addr, PeerTimer::Restart), out);
        let Some(n) = self.neighbors.get(&addr) else {
            return;
        };
        if n.gr_stale.is_empty() {
            return;
        }
        let preserved: BTreeSet<Family> = n
            .negotiated
            .as_ref()
            .and_then(|neg| {
                let g = neg.peer_gr.as_ref()?;
                Some(
                    g.families
                        .iter()
                        .filter(|f| f.forwarding() && neg.ctx.families.contains(&f.family))
                        .map(|f| f.family)
                        .collect(),
                )
            })
            .unwrap_or_default();
        let drop: Vec<Family> = n.gr_stale.difference(&preserved).copied().collect();
        for f in drop {
            self.flush_stale(addr, Some(f));
        }
        let keep = self
            .neighbors
            .get(&addr)
            .is_some_and(|n| !n.gr_stale.is_empty());
        if keep {
            let stale_time = self
                .config
                .graceful_restart
                .as_ref()
                .map_or(Duration::from_secs(360), |g| g.stale_time);
            self.timers
                .arm(TimerId::Peer(addr, PeerTimer::Stale), now + stale_time, out);
        }
    }

    /// Remove the neighbor's stale routes of `family` (all families when `None`).
    pub(crate) fn flush_stale(&mut self, addr: IpAddr, family: Option<Family>) {
        let hit = |f: Family| family.is_none_or(|x| x == f);
        let stale = match self.adj_in.get(&addr) {
            Some(r) => r.stale_in(&hit),
            None => Vec::new(),
        };
        if !stale.is_empty() {
            tracing::info!(target: "bgp.rib", event = "stale_flushed", peer = %addr, count = stale.len());
        }
        for p in stale {
            self.withdraw_learned(addr, &p);
        }
        if let Some(n) = self.neighbors.get_mut(&addr) {
            n.gr_stale.retain(|f| !hit(*f));
        }
    }

    /// Mark the neighbor's routes of `family` stale (enhanced route refresh BoRR).
    pub(crate) fn mark_stale(&mut self, addr: IpAddr, family: Family) {
        let Some(r) = self.adj_in.get_mut(&addr) else {
            return;
        };
        for p in r.mark_family_stale(family) {
            self.loc.set_stale(&p, RouteSource::Peer(addr), true);
        }
    }

    /// End-of-RIB from the neighbor.
    pub(crate) fn eor_received(&mut self, addr: IpAddr, family: Family, out: &mut Vec<Output>) {
        tracing::debug!(target: "bgp.rib", event = "eor_received", peer = %addr, %family);
        let Some(n) = self.neighbors.get_mut(&addr) else {
            return;
        };
        n.eor_received.insert(family);
        if n.gr_stale.contains(&family) {
            self.flush_stale(addr, Some(family));
            if self
                .neighbors
                .get(&addr)
                .is_some_and(|n| n.gr_stale.is_empty())
            {
                self.timers
                    .cancel(TimerId::Peer(addr, PeerTimer::Stale), out);
            }
        }
        if self.deferring && self.all_eors_received() {
            self.end_deferral(out);
        }
    }

    fn all_eors_received(&self) -> bool {
        self.neighbors
            .values()
            .filter(|n| n.admin_up && n.config.graceful_restart)
            .all(|n| {
                n.session.is_some()
                    && n.negotiated
                        .as_ref()
                        .is_some_and(|neg| neg.ctx.families.is_subset(&n.eor_received))
            })
    }

    /// Selection deferral over: run the decision process over everything (in `finish`).
    pub(crate) fn end_deferral(&mut self, out: &mut Vec<Output>) {
        if !self.deferring {
            return;
        }
        tracing::info!(target: "bgp.rib", event = "selection_deferral_done");
        self.deferring = false;
        self.restarting = false;
        self.pending_synced = true;
        self.timers.cancel(TimerId::SelectionDeferral, out);
    }
}
