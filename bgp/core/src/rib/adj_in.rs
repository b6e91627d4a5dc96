//! Adj-RIB-In of one neighbor: every route it announced, before import policy, with the
//! import verdict and the graceful-restart stale mark. Keeping the pre-policy routes lets a
//! filter change be applied without asking the neighbor to resend (soft reconfiguration).
//!
//! Pure.

use std::collections::BTreeMap;
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

/// The routes of one neighbor.
#[derive(Debug, Clone, Default)]
pub struct AdjRibIn {
    routes: BTreeMap<Prefix, InEntry>,
}

impl AdjRibIn {
    /// Insert or replace a route; returns the previous entry.
    pub fn insert(&mut self, prefix: Prefix, entry: InEntry) -> Option<InEntry> {
        self.routes.insert(prefix, entry)
    }

    /// Remove a route; returns it.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<InEntry> {
        self.routes.remove(prefix)
    }

    /// A route.
    pub fn get(&self, prefix: &Prefix) -> Option<&InEntry> {
        self.routes.get(prefix)
    }

    /// A route, mutable.
    pub fn get_mut(&mut self, prefix: &Prefix) -> Option<&mut InEntry> {
        self.routes.get_mut(prefix)
    }

    /// All routes in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &InEntry)> {
        self.routes.iter()
    }

    /// All routes, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Prefix, &mut InEntry)> {
        self.routes.iter_mut()
    }

    /// Routes received (pre-policy) in `family`.
    pub fn received(&self, family: Family) -> usize {
        self.routes
            .keys()
            .filter(|p| family_of(p) == family)
            .count()
    }

    /// Routes accepted by import policy in `family`.
    pub fn accepted(&self, family: Family) -> usize {
        self.routes
            .iter()
            .filter(|(p, e)| family_of(p) == family && e.verdict.is_ok())
            .count()
    }

    /// Routes accepted by import policy, all families.
    pub fn accepted_total(&self) -> usize {
        self.routes.values().filter(|e| e.verdict.is_ok()).count()
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
