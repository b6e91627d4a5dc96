//! Adj-RIB-In of one neighbor: every route it announced, before import policy, with the
//! import verdict and the graceful-restart stale mark. Keeping the pre-policy routes lets a
//! filter change be applied without asking the neighbor to resend (soft reconfiguration).
//!
//! Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use brindle_bgp_wire::{Family, Prefix};

use crate::policy::Rejection;
use crate::route::{RouteAttrs, family_of};

/// One received route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InEntry {
    /// Attributes as received (normalized, next hop included).
    pub attrs: Arc<RouteAttrs>,
    /// `Ok` with the post-policy attributes, or why the route is not used.
    pub verdict: Result<Arc<RouteAttrs>, Rejection>,
    /// Marked stale by the graceful restart helper (or an enhanced route refresh).
    pub stale: bool,
}

/// The routes of one neighbor, with the number accepted kept up to date (max-prefix checks
/// run on every UPDATE and must not walk the table).
#[derive(Debug, Clone, Default)]
pub struct AdjRibIn {
    routes: BTreeMap<Prefix, InEntry>,
    accepted: usize,
    /// Prefixes announced and refused by import policy but not stored (no soft
    /// reconfiguration inbound): only counted, for max-prefix and status.
    refused: BTreeSet<Prefix>,
}

impl AdjRibIn {
    fn count(&mut self, e: Option<&InEntry>, add: bool) {
        if e.is_some_and(|e| e.verdict.is_ok()) {
            if add {
                self.accepted += 1;
            } else {
                self.accepted -= 1;
            }
        }
    }

    /// Insert or replace a route; returns the previous entry.
    pub fn insert(&mut self, prefix: Prefix, entry: InEntry) -> Option<InEntry> {
        self.refused.remove(&prefix);
        self.count(Some(&entry), true);
        let prev = self.routes.insert(prefix, entry);
        self.count(prev.as_ref(), false);
        prev
    }

    /// Count `prefix` as announced and refused without storing it (dropping what was stored
    /// for it); returns the previous entry.
    pub fn refuse(&mut self, prefix: Prefix) -> Option<InEntry> {
        self.refused.insert(prefix);
        let prev = self.routes.remove(&prefix);
        self.count(prev.as_ref(), false);
        prev
    }

    /// Remove a route (stored or only counted); returns the stored entry.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<InEntry> {
        self.refused.remove(prefix);
        let prev = self.routes.remove(prefix);
        self.count(prev.as_ref(), false);
        prev
    }

    /// A route.
    pub fn get(&self, prefix: &Prefix) -> Option<&InEntry> {
        self.routes.get(prefix)
    }

    /// Replaces a route's import verdict (after a policy change).
    pub fn set_verdict(&mut self, prefix: &Prefix, verdict: Result<Arc<RouteAttrs>, Rejection>) {
        let Some(e) = self.routes.get_mut(prefix) else {
            return;
        };
        let was = e.verdict.is_ok();
        let now = verdict.is_ok();
        e.verdict = verdict;
        match (was, now) {
            (false, true) => self.accepted += 1,
            (true, false) => self.accepted -= 1,
            _ => {}
        }
    }

    /// Marks a route stale; false when there is none.
    pub fn set_stale(&mut self, prefix: &Prefix) -> bool {
        match self.routes.get_mut(prefix) {
            Some(e) => {
                e.stale = true;
                true
            }
            None => false,
        }
    }

    /// Marks every route of `family` stale; returns their prefixes.
    pub fn mark_family_stale(&mut self, family: Family) -> Vec<Prefix> {
        // Refused prefixes are not routes; the neighbor re-announces what it still has.
        self.refused.retain(|p| family_of(p) != family);
        let mut marked = Vec::new();
        for (p, e) in &mut self.routes {
            if family_of(p) == family {
                e.stale = true;
                marked.push(*p);
            }
        }
        marked
    }

    /// All routes in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &InEntry)> {
        self.routes.iter()
    }

    /// Routes received (pre-policy) in `family`, stored or only counted.
    pub fn received(&self, family: Family) -> usize {
        self.routes
            .keys()
            .chain(self.refused.iter())
            .filter(|p| family_of(p) == family)
            .count()
    }

    /// Prefixes refused and not stored, all families (O(1)).
    pub fn refused_unstored(&self) -> usize {
        self.refused.len()
    }

    /// Routes accepted by import policy in `family`.
    pub fn accepted(&self, family: Family) -> usize {
        self.routes
            .iter()
            .filter(|(p, e)| family_of(p) == family && e.verdict.is_ok())
            .count()
    }

    /// Routes accepted by import policy, all families (O(1)).
    pub fn accepted_total(&self) -> usize {
        self.accepted
    }

    /// Routes received, accepted or not, stored or not, all families (O(1)).
    pub fn received_total(&self) -> usize {
        self.routes.len() + self.refused.len()
    }

    /// Prefixes marked stale in any of `families`.
    pub fn stale_in(&self, families: &dyn Fn(Family) -> bool) -> Vec<Prefix> {
        self.routes
            .iter()
            .filter(|(p, e)| e.stale && families(family_of(p)))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rejection;

    fn entry(ok: bool) -> InEntry {
        let a = Arc::new(RouteAttrs::default());
        InEntry {
            attrs: a.clone(),
            verdict: if ok { Ok(a) } else { Err(Rejection::Filter) },
            stale: false,
        }
    }

    #[test]
    fn counts_stay_true_through_every_change() {
        let mut r = AdjRibIn::default();
        let p = |i: u8| Prefix::v4(std::net::Ipv4Addr::new(198, 18, i, 0), 24).unwrap();
        let check = |r: &AdjRibIn| {
            let real = r.iter().filter(|(_, e)| e.verdict.is_ok()).count();
            assert_eq!(r.accepted_total(), real);
            assert_eq!(r.received_total(), r.iter().count());
        };
        let mut rng = 7u32;
        for _ in 0..2000 {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = ((rng >> 8) % 16) as u8;
            match (rng >> 16) % 4 {
                0 => {
                    r.insert(p(i), entry(rng & 1 == 0));
                }
                1 => {
                    r.remove(&p(i));
                }
                2 => {
                    let v = entry(rng & 2 == 0).verdict;
                    r.set_verdict(&p(i), v);
                }
                _ => {
                    r.set_stale(&p(i));
                }
            }
            check(&r);
        }
    }
}
