//! Adj-RIB-Out of one neighbor: what we last advertised to it, per prefix, as the exact wire
//! attributes. Advertisement computes the desired state and sends only the difference.
//!
//! Attribute lists are shared: every prefix advertised with the same attributes points at one
//! `Arc<Vec<PathAttribute>>`, deduplicated by a small interner (pruned of unused entries as it
//! grows), so a table of a million routes with a few distinct attribute sets stores a few
//! lists, not a million.
//!
//! Pure.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use brindle_bgp_wire::{Family, PathAttribute, Prefix};

use crate::route::{Interner, family_of};

/// Wire attributes shared by every prefix advertised with them.
pub type SharedAttrs = Arc<Vec<PathAttribute>>;

/// The routes advertised to one neighbor.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    routes: BTreeMap<Prefix, SharedAttrs>,
    interned: Interner<Vec<PathAttribute>>,
}

impl AdjRibOut {
    /// What was advertised for `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<&Vec<PathAttribute>> {
        self.routes.get(prefix).map(|a| &**a)
    }

    /// What was advertised for `prefix`, shared.
    pub fn get_shared(&self, prefix: &Prefix) -> Option<&SharedAttrs> {
        self.routes.get(prefix)
    }

    /// Record an advertisement.
    pub fn insert(&mut self, prefix: Prefix, attrs: Vec<PathAttribute>) {
        let a = self.intern(Arc::new(attrs));
        self.routes.insert(prefix, a);
    }

    /// Record an advertisement whose attributes are already shared (see [`Self::intern`]).
    pub fn insert_shared(&mut self, prefix: Prefix, attrs: SharedAttrs) {
        self.routes.insert(prefix, attrs);
    }

    /// Record `attrs` for `prefix` unless an equal list is recorded already (always with
    /// `force`); true when recorded, i.e. when it must be sent.
    pub fn record(&mut self, prefix: Prefix, attrs: &SharedAttrs, force: bool) -> bool {
        match self.routes.entry(prefix) {
            Entry::Occupied(mut e) => {
                let same = Arc::ptr_eq(e.get(), attrs) || **e.get() == **attrs;
                if same && !force {
                    return false;
                }
                e.insert(attrs.clone());
            }
            Entry::Vacant(e) => {
                e.insert(attrs.clone());
            }
        }
        true
    }

    /// The interned copy of `attrs`: an equal list already stored here, or `attrs` itself.
    pub fn intern(&mut self, attrs: SharedAttrs) -> SharedAttrs {
        self.interned.intern(attrs)
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
            .map(|(p, a)| (p, &**a))
    }

    /// Forget everything (session down).
    pub fn clear(&mut self) {
        self.routes.clear();
        self.interned.clear();
    }
}
