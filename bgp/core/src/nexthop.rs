//! Next-hop reachability (RFC 4271 §9.1.2.1). With `SpeakerConfig::nexthop_tracking` on, a
//! learned path takes part in the decision process only when the driver has reported its
//! NEXT_HOP reachable: the core asks the driver to track every next hop its paths use
//! ([`Output::TrackNexthop`]), the driver resolves it through the kernel's routes and reports
//! it, and again whenever the answer changes ([`Input::NexthopReachability`]); the prefixes
//! using it are then decided again. A next hop not reported yet counts as unreachable, so a
//! route is never installed or advertised before its next hop is known to work. Next hops no
//! path uses any more are untracked ([`Output::UntrackNexthop`]) when the next report comes.
//!
//! Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::event::Output;
use crate::route::{Path, RouteAttrs, RouteSource};
use crate::speaker::Speaker;

/// What the driver reported about one next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// It resolves through a route of the kernel that is not ours.
    pub reachable: bool,
    /// The immediate next hops of that route (its gateways); empty when the next hop is
    /// directly connected. Kernel routes are installed through these (recursive resolution).
    pub via: Vec<IpAddr>,
}

/// What the core knows about each next hop its paths use.
#[derive(Debug, Clone, Default)]
pub struct Nexthops {
    /// `None`: asked for, not reported yet.
    state: BTreeMap<IpAddr, Option<Resolution>>,
    /// Next hops whose report changed since the last decision run.
    changed: BTreeSet<IpAddr>,
}

impl Nexthops {
    /// Whether `addr` is known reachable.
    pub fn reachable(&self, addr: &IpAddr) -> bool {
        self.get(addr).is_some_and(|r| r.reachable)
    }

    /// True while some tracked next hop has not been reported.
    pub fn any_unreported(&self) -> bool {
        self.state.values().any(Option::is_none)
    }

    /// What was reported for `addr`.
    pub fn get(&self, addr: &IpAddr) -> Option<&Resolution> {
        self.state.get(addr).and_then(Option::as_ref)
    }

    /// The gateways to install a route with next hop `addr` through: the resolving route's,
    /// or `addr` itself when it is directly connected or not tracked.
    pub fn install_via(&self, addr: IpAddr) -> Vec<IpAddr> {
        match self.get(&addr) {
            Some(r) if !r.via.is_empty() => r.via.clone(),
            _ => vec![addr],
        }
    }
}

/// Whether `p` may take part in the decision process.
pub(crate) fn eligible(tracking: bool, nh: &Nexthops, p: &Path) -> bool {
    !tracking || p.source == RouteSource::Local || p.attrs.next_hop.is_none_or(|a| nh.reachable(&a))
}

impl Speaker {
    /// Before the decision process: ask the driver to track next hops the dirty prefixes'
    /// paths use for the first time.
    pub(crate) fn track_new_nexthops(&mut self, out: &mut Vec<Output>) {
        if !self.config.nexthop_tracking {
            return;
        }
        let mut last: Option<*const RouteAttrs> = None;
        let mut new: BTreeSet<IpAddr> = BTreeSet::new();
        for p in self.loc.dirty() {
            let Some(d) = self.loc.get(p) else {
                continue;
            };
            for path in &d.paths {
                // Runs of routes share one attribute set: look each up once.
                let ptr = Arc::as_ptr(&path.attrs);
                if last == Some(ptr) || path.source == RouteSource::Local {
                    continue;
                }
                last = Some(ptr);
                if let Some(a) = path.attrs.next_hop
                    && !self.nexthops.state.contains_key(&a)
                {
                    new.insert(a);
                }
            }
        }
        for a in new {
            tracing::debug!(target: "bgp.nexthop", event = "track", nexthop = %a);
            self.nexthops.state.insert(a, None);
            out.push(Output::TrackNexthop(a));
        }
    }

    /// The driver's report on a next hop: decide again the prefixes whose paths use it, and
    /// untrack next hops nothing uses any more.
    pub(crate) fn nexthop_reported(
        &mut self,
        addr: IpAddr,
        resolution: Resolution,
        out: &mut Vec<Output>,
    ) {
        let Some(old) = self.nexthops.state.get_mut(&addr) else {
            return; // untracked meanwhile
        };
        if old.as_ref() == Some(&resolution) {
            return;
        }
        tracing::info!(target: "bgp.nexthop", event = "reachability", nexthop = %addr, reachable = resolution.reachable, via = ?resolution.via);
        *old = Some(resolution);
        // The prefixes using it are found once per step, however many reports came.
        self.nexthops.changed.insert(addr);
        let _ = out;
    }

    /// Before the decision process: decide again every prefix with a path through a next
    /// hop whose report changed (one walk of the Loc-RIB per step), and untrack next hops no
    /// path uses any more.
    pub(crate) fn nexthops_changed(&mut self, out: &mut Vec<Output>) {
        if self.nexthops.changed.is_empty() {
            return;
        }
        let changed = std::mem::take(&mut self.nexthops.changed);
        let mut used: BTreeSet<IpAddr> = BTreeSet::new();
        let mut affected = Vec::new();
        for (p, d) in self.loc.iter() {
            let mut hit = false;
            for path in &d.paths {
                if let Some(a) = path.attrs.next_hop
                    && path.source != RouteSource::Local
                {
                    used.insert(a);
                    hit |= changed.contains(&a);
                }
            }
            if hit {
                affected.push(*p);
            }
        }
        for p in affected {
            self.loc.mark_dirty(p);
        }
        let unused: Vec<IpAddr> = self
            .nexthops
            .state
            .keys()
            .filter(|a| !used.contains(a))
            .copied()
            .collect();
        for a in unused {
            tracing::debug!(target: "bgp.nexthop", event = "untrack", nexthop = %a);
            self.nexthops.state.remove(&a);
            out.push(Output::UntrackNexthop(a));
        }
    }

    /// The next hops tracked and what the driver reported (`None`: not yet).
    pub fn nexthops(&self) -> Vec<(IpAddr, Option<Resolution>)> {
        self.nexthops
            .state
            .iter()
            .map(|(a, s)| (*a, s.clone()))
            .collect()
    }
}
