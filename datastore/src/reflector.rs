//! The reflector pattern (as in kube-runtime): the objects of some kinds kept in memory from
//! datastore watches, for the node daemon's cache and IPAM's cache of pools and settings.
//!
//! A [`Reflector`] never shows a half-made listing: the initial listing and every re-list after
//! a [`WatchEvent::Resync`] are built aside and swapped in only at [`WatchEvent::InSync`], so a
//! re-list never empties what readers see for a moment. [`Reflector`] is pure; [`spawn`] is the
//! I/O around a set of them.

use std::collections::BTreeMap;

use futures::{FutureExt, StreamExt};

use crate::{Datastore, Key, Kind, Resource, WatchEvent};

/// Every watched kind's objects, by key.
pub type Objects = BTreeMap<Kind, BTreeMap<Key, Resource>>;

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

/// Watches `kinds`; each time what they hold changes, once every kind has been listed
/// completely, calls `publish` with all of it. Events that arrive together are applied
/// together and published once. The task ends when `publish` returns false. `target` names
/// the consumer in logs.
pub fn spawn(
    ds: &Datastore,
    kinds: &[Kind],
    target: &'static str,
    mut publish: impl FnMut(Objects) -> bool + Send + 'static,
) {
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
            let mut changed = apply(&mut reflectors, kind, ev, target);
            // Take whatever else is already waiting, then publish once.
            for _ in 0..10_000 {
                match merged.next().now_or_never() {
                    Some(Some((k, ev))) => changed |= apply(&mut reflectors, k, ev, target),
                    _ => break,
                }
            }
            let all_synced = reflectors.values().all(Reflector::synced);
            if all_synced && (changed || !published) {
                published = true;
                let objects = reflectors
                    .iter()
                    .map(|(k, r)| (*k, r.objects().clone()))
                    .collect();
                if !publish(objects) {
                    return;
                }
            }
        }
    });
}

fn apply(
    reflectors: &mut BTreeMap<Kind, Reflector>,
    kind: Kind,
    ev: WatchEvent,
    target: &'static str,
) -> bool {
    if matches!(ev, WatchEvent::Resync) {
        tracing::info!(target: "datastore.reflector", consumer = target, event = "resync", kind = kind.name(), "re-listing; serving the previous listing until in sync");
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
}
