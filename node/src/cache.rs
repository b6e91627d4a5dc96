//! The watch-fed cache: one [`Reflector`] per kind (the kube-runtime reflector pattern) and a
//! task that feeds them from datastore watches and publishes consistent [`Snapshot`]s.
//!
//! A reflector never shows a half-made listing: the initial listing and every re-list after a
//! [`WatchEvent::Resync`] are built aside and swapped in only at [`WatchEvent::InSync`], so a
//! re-list never empties desired state for a moment (no withdrawn routes, no dropped sessions).
//! Consumers hold a `tokio::sync::watch::Receiver<Arc<Snapshot>>`, are woken on change, and
//! compute desired state from one snapshot with pure functions.
//!
//! [`Reflector`] and [`Snapshot`] are pure; [`spawn`] is the I/O around them.

use std::collections::BTreeMap;
use std::sync::Arc;

use brindle_crds::{
    BGPConfiguration, BGPFilter, BGPPeer, BlockAffinity, IPAMBlock, IPPool, Kind, Node, Resource,
};
use brindle_datastore::{Datastore, Key, WatchEvent};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

/// The objects of one kind, fed by a watch.
#[derive(Debug, Clone, Default)]
pub struct Reflector {
    live: BTreeMap<Key, Resource>,
    /// A listing being built (initial or after a resync); swapped in at InSync.
    aside: Option<BTreeMap<Key, Resource>>,
    synced: bool,
}

impl Reflector {
    /// An empty reflector waiting for its initial listing.
    pub fn new() -> Reflector {
        Reflector {
            live: BTreeMap::new(),
            aside: Some(BTreeMap::new()),
            synced: false,
        }
    }

    /// Applies one event; true when what readers see changed.
    pub fn apply(&mut self, ev: WatchEvent) -> bool {
        match ev {
            WatchEvent::Added(r) | WatchEvent::Modified(r) => {
                let key = Key::of(&r);
                match &mut self.aside {
                    Some(a) => {
                        a.insert(key, r);
                        false
                    }
                    None => self.live.insert(key, r.clone()).as_ref() != Some(&r),
                }
            }
            WatchEvent::Deleted(key, _) => match &mut self.aside {
                Some(a) => {
                    a.remove(&key);
                    false
                }
                None => self.live.remove(&key).is_some(),
            },
            WatchEvent::InSync(_) => {
                let Some(fresh) = self.aside.take() else {
                    return false;
                };
                let changed = fresh != self.live || !self.synced;
                self.live = fresh;
                self.synced = true;
                changed
            }
            WatchEvent::Resync => {
                // Keep serving the old listing until the new one is complete.
                self.aside = Some(BTreeMap::new());
                false
            }
        }
    }

    /// True once a complete listing has been seen.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The objects, by key.
    pub fn objects(&self) -> &BTreeMap<Key, Resource> {
        &self.live
    }
}

/// The kinds the node daemon watches.
pub const NODE_KINDS: &[Kind] = &[
    Kind::Node,
    Kind::BGPPeer,
    Kind::BGPConfiguration,
    Kind::BGPFilter,
    Kind::IPPool,
    Kind::IPAMBlock,
    Kind::BlockAffinity,
];

/// One consistent view of every watched kind, with typed accessors (the only place that
/// downcasts [`Resource`]s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every kind's objects, by key.
    pub objects: BTreeMap<Kind, BTreeMap<Key, Resource>>,
}

macro_rules! typed {
    ($fn:ident, $kind:ident, $ty:ty) => {
        /// Every object of this kind, by name.
        pub fn $fn(&self) -> impl Iterator<Item = &$ty> {
            self.objects
                .get(&Kind::$kind)
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(|r| match r {
                    Resource::$kind(x) => Some(x),
                    _ => None,
                })
        }
    };
}

impl Snapshot {
    typed!(nodes, Node, Node);
    typed!(peers, BGPPeer, BGPPeer);
    typed!(bgp_configurations, BGPConfiguration, BGPConfiguration);
    typed!(filters, BGPFilter, BGPFilter);
    typed!(pools, IPPool, IPPool);
    typed!(blocks, IPAMBlock, IPAMBlock);
    typed!(affinities, BlockAffinity, BlockAffinity);

    /// Builds a snapshot from a list of resources (tests, `plan`).
    pub fn from_resources(rs: impl IntoIterator<Item = Resource>) -> Snapshot {
        let mut s = Snapshot::default();
        for r in rs {
            s.objects
                .entry(r.kind())
                .or_default()
                .insert(Key::of(&r), r);
        }
        s
    }

    /// One Node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }

    /// One BGPConfiguration by name (`default`, `node.<name>`).
    pub fn bgp_configuration(&self, name: &str) -> Option<&BGPConfiguration> {
        self.bgp_configurations()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    }

    /// One BGPFilter by name.
    pub fn filter(&self, name: &str) -> Option<&BGPFilter> {
        self.filters()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    }
}

/// Reads everything once (for `brindle-node plan`).
pub async fn load(ds: &Datastore, kinds: &[Kind]) -> brindle_datastore::Result<Snapshot> {
    let mut all = Vec::new();
    for k in kinds {
        all.extend(ds.list(*k, None, None).await?);
    }
    Ok(Snapshot::from_resources(all))
}

/// Watches `kinds` and publishes a snapshot each time what they hold changes, once every kind
/// has been listed completely. Events that arrive together are applied together and published
/// once. The task ends when every receiver is gone.
pub fn spawn(ds: &Datastore, kinds: &[Kind]) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let streams: Vec<_> = kinds
        .iter()
        .map(|k| {
            let k = *k;
            ds.watch(k, None).map(move |ev| (k, ev)).boxed()
        })
        .collect();
    let mut reflectors: BTreeMap<Kind, Reflector> =
        kinds.iter().map(|k| (*k, Reflector::new())).collect();
    tokio::spawn(async move {
        let mut merged = futures::stream::select_all(streams);
        let mut published = false;
        while let Some((kind, ev)) = merged.next().await {
            let mut changed = apply(&mut reflectors, kind, ev);
            // Take whatever else is already waiting, then publish once.
            for _ in 0..10_000 {
                match merged.next().now_or_never() {
                    Some(Some((k, ev))) => changed |= apply(&mut reflectors, k, ev),
                    _ => break,
                }
            }
            let all_synced = reflectors.values().all(Reflector::synced);
            if all_synced && (changed || !published) {
                let snap = Snapshot {
                    objects: reflectors
                        .iter()
                        .map(|(k, r)| (*k, r.objects().clone()))
                        .collect(),
                };
                published = true;
                if tx.send(Arc::new(snap)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn apply(reflectors: &mut BTreeMap<Kind, Reflector>, kind: Kind, ev: WatchEvent) -> bool {
    if matches!(ev, WatchEvent::Resync) {
        tracing::info!(target: "node.cache", event = "resync", kind = kind.name(), "re-listing; serving the previous listing until in sync");
    }
    reflectors.get_mut(&kind).is_some_and(|r| r.apply(ev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brindle_crds::document::resource_from_value;
    use serde_json::json;

    fn pool(name: &str, cidr: &str) -> Resource {
        resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
            "metadata": {"name": name}, "spec": {"cidr": cidr}}))
        .unwrap()
    }

    #[test]
    fn listing_appears_only_at_in_sync() {
        let mut r = Reflector::new();
        assert!(!r.apply(WatchEvent::Added(pool("a", "198.18.0.0/24"))));
        assert!(r.objects().is_empty() && !r.synced());
        assert!(r.apply(WatchEvent::InSync(1)));
        assert_eq!(r.objects().len(), 1);
        // An empty cluster is in sync too (and that is a change: readers learn it is empty).
        let mut e = Reflector::new();
        assert!(e.apply(WatchEvent::InSync(0)));
        assert!(e.synced());
    }

    #[test]
    fn resync_keeps_the_old_listing_until_the_new_one_is_complete() {
        let mut r = Reflector::new();
        r.apply(WatchEvent::Added(pool("a", "198.18.0.0/24")));
        r.apply(WatchEvent::Added(pool("b", "198.18.1.0/24")));
        r.apply(WatchEvent::InSync(2));
        assert!(!r.apply(WatchEvent::Resync));
        assert_eq!(r.objects().len(), 2, "a resync must not empty the view");
        assert!(!r.apply(WatchEvent::Added(pool("a", "198.18.0.0/24"))));
        assert_eq!(r.objects().len(), 2);
        // b went away while the history was lost: gone only once the new listing is complete.
        assert!(r.apply(WatchEvent::InSync(9)));
        assert_eq!(r.objects().len(), 1);
        // A re-list that finds exactly what we had changes nothing.
        r.apply(WatchEvent::Resync);
        r.apply(WatchEvent::Added(pool("a", "198.18.0.0/24")));
        assert!(!r.apply(WatchEvent::InSync(10)));
    }

    #[test]
    fn live_changes_after_sync() {
        let mut r = Reflector::new();
        r.apply(WatchEvent::InSync(0));
        assert!(r.apply(WatchEvent::Added(pool("a", "198.18.0.0/24"))));
        assert!(!r.apply(WatchEvent::Modified(pool("a", "198.18.0.0/24"))));
        assert!(r.apply(WatchEvent::Modified(pool("a", "198.18.2.0/24"))));
        let key = Key::new(Kind::IPPool, "a");
        assert!(r.apply(WatchEvent::Deleted(key.clone(), 5)));
        assert!(!r.apply(WatchEvent::Deleted(key, 6)));
    }

    #[test]
    fn typed_accessors() {
        let s = Snapshot::from_resources([pool("a", "198.18.0.0/24")]);
        assert_eq!(s.pools().count(), 1);
        assert_eq!(s.nodes().count(), 0);
    }
}
