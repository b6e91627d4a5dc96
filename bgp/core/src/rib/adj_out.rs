//! Adj-RIB-Out of one neighbor: what we last advertised to it, per prefix, as the exact wire
//! attributes. Advertisement computes the desired state and sends only the difference.
//!
//! Pure.

use std::collections::BTreeMap;

use brindle_bgp_wire::{Family, PathAttribute, Prefix};

use crate::route::family_of;

/// The routes advertised to one neighbor.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    routes: BTreeMap<Prefix, Vec<PathAttribute>>,
}

impl AdjRibOut {
    /// What was advertised for `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<&Vec<PathAttribute>> {
        self.routes.get(prefix)
    }

    /// Record an advertisement.
    pub fn insert(&mut self, prefix: Prefix, attrs: Vec<PathAttribute>) {
        self.routes.insert(prefix, attrs);
    }

    /// Record a withdrawal; true when something had been advertised.
    pub fn remove(&mut self, prefix: &Prefix) -> bool {
        self.routes.remove(prefix).is_some()
    }

    /// Routes advertised in `family`.
    pub fn advertised(&self, family: Family) -> usize {
        self.routes
            .keys()
            .filter(|p| family_of(p) == family)
            .count()
    }

    /// All routes of `family`, in prefix order.
    pub fn family(&self, family: Family) -> impl Iterator<Item = (&Prefix, &Vec<PathAttribute>)> {
        self.routes
            .iter()
            .filter(move |(p, _)| family_of(p) == family)
    }

    /// Forget everything (session down).
    pub fn clear(&mut self) {
        self.routes.clear();
    }
}
