//! The Loc-RIB: for every prefix, the candidate paths (one per source, after import policy)
//! and the result of the decision process. Changed prefixes are remembered as dirty until
//! the speaker runs the decision process over them.
//!
//! Pure.

use std::collections::{BTreeMap, BTreeSet};

use brindle_bgp_wire::Prefix;

use crate::decision::{DecisionOptions, Selection, select_eligible};
use crate::route::{Path, RouteSource};

/// The paths of one prefix and the current selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    /// Candidates, sorted by source.
    pub paths: Vec<Path>,
    /// The selection over `paths` as of the last decision run.
    pub selection: Selection,
}

impl Destination {
    /// The best path.
    pub fn best(&self) -> Option<&Path> {
        self.selection.best.and_then(|i| self.paths.get(i))
    }

    /// The paths installed together: the multipath set (best first), or the best alone.
    pub fn multipath(&self) -> impl Iterator<Item = &Path> {
        let alone = self.selection.multipath.is_empty();
        let best = alone.then(|| self.best()).flatten();
        best.into_iter().chain(
            self.selection
                .multipath
                .iter()
                .filter_map(|&i| self.paths.get(i)),
        )
    }
}

/// The Loc-RIB.
#[derive(Debug, Clone, Default)]
pub struct LocRib {
    dests: BTreeMap<Prefix, Destination>,
    dirty: BTreeSet<Prefix>,
}

impl LocRib {
    /// Insert or replace the path of `path.source` for `prefix`.
    pub fn upsert(&mut self, prefix: Prefix, path: Path) {
        let d = self.dests.entry(prefix).or_default();
        match d.paths.binary_search_by(|p| p.source.cmp(&path.source)) {
            Ok(i) => {
                // The same route announced again keeps its age and changes nothing.
                if d.paths[i].same_route(&path) {
                    return;
                }
                d.paths[i] = path;
            }
            Err(i) => {
                // Most prefixes have one path: do not let the first insert allocate room for
                // four (the default growth), which would triple the Loc-RIB's heap use. Later
                // inserts grow as usual (exact growth would reallocate on every new path).
                if d.paths.is_empty() {
                    d.paths.reserve_exact(1);
                }
                d.paths.insert(i, path)
            }
        }
        self.dirty.insert(prefix);
    }

    /// Remove the path of `source` for `prefix`; true when there was one.
    pub fn remove(&mut self, prefix: &Prefix, source: RouteSource) -> bool {
        let Some(d) = self.dests.get_mut(prefix) else {
            return false;
        };
        let Ok(i) = d.paths.binary_search_by(|p| p.source.cmp(&source)) else {
            return false;
        };
        d.paths.remove(i);
        self.dirty.insert(*prefix);
        true
    }

    /// Set the stale mark of one path.
    pub fn set_stale(&mut self, prefix: &Prefix, source: RouteSource, stale: bool) {
        if let Some(d) = self.dests.get_mut(prefix)
            && let Ok(i) = d.paths.binary_search_by(|p| p.source.cmp(&source))
        {
            d.paths[i].stale = stale;
        }
    }

    /// A destination.
    pub fn get(&self, prefix: &Prefix) -> Option<&Destination> {
        self.dests.get(prefix)
    }

    /// All destinations in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Destination)> {
        self.dests.iter()
    }

    /// The prefixes awaiting the decision process.
    pub fn dirty(&self) -> impl Iterator<Item = &Prefix> {
        self.dirty.iter()
    }

    /// Make `prefix` await the decision process again.
    pub fn mark_dirty(&mut self, prefix: Prefix) {
        if self.dests.contains_key(&prefix) {
            self.dirty.insert(prefix);
        }
    }

    /// True when some prefix awaits the decision process.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Run the decision process over the dirty prefixes; returns them in order. Destinations
    /// left without paths are dropped.
    /// Only paths `eligible` accepts take part.
    pub fn decide(
        &mut self,
        opts: &DecisionOptions,
        eligible: impl Fn(&Path) -> bool,
    ) -> Vec<Prefix> {
        let dirty = std::mem::take(&mut self.dirty);
        for p in &dirty {
            let empty = match self.dests.get_mut(p) {
                Some(d) => {
                    d.selection = select_eligible(&d.paths, opts, &eligible);
                    d.paths.is_empty()
                }
                None => false,
            };
            if empty {
                self.dests.remove(p);
            }
        }
        dirty.into_iter().collect()
    }

    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{RouteAttrs, RouteSource};
    use crate::time::Instant;
    use std::sync::Arc;

    fn path(lp: u32, at: u64) -> Path {
        Path {
            source: RouteSource::Peer("198.18.0.2".parse().unwrap()),
            attrs: Arc::new(RouteAttrs {
                local_pref: Some(lp),
                ..RouteAttrs::default()
            }),
            ebgp: false,
            peer_router_id: "198.18.0.2".parse().unwrap(),
            stale: false,
            since: Instant::from_secs(at),
        }
    }

    #[test]
    fn the_same_route_again_keeps_its_age() {
        let p = Prefix::v4("198.19.0.0".parse().unwrap(), 26).unwrap();
        let mut rib = LocRib::default();
        rib.upsert(p, path(100, 1));
        rib.dirty.clear();
        rib.upsert(p, path(100, 5));
        assert!(
            rib.dirty.is_empty(),
            "an identical announcement is not a change"
        );
        assert_eq!(rib.get(&p).unwrap().paths[0].since, Instant::from_secs(1));
        rib.upsert(p, path(200, 7));
        assert!(!rib.dirty.is_empty());
        assert_eq!(rib.get(&p).unwrap().paths[0].since, Instant::from_secs(7));
    }
}
