//! The watch-fed cache: one [`Reflector`] per kind (the kube-runtime reflector pattern, shared
//! with IPAM in [`brindle_datastore::reflector`]) and typed, consistent [`Snapshot`]s of them.
//!
//! A reflector never shows a half-made listing: the initial listing and every re-list after a
//! resync are built aside and swapped in only when in sync, so a re-list never empties desired
//! state for a moment (no withdrawn routes, no dropped sessions). Consumers hold a
//! `tokio::sync::watch::Receiver<Arc<Snapshot>>`, are woken on change, and compute desired
//! state from one snapshot with pure functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use brindle_crds::{
    BGPConfiguration, BGPFilter, BGPPeer, BlockAffinity, IPAMBlock, IPPool, Kind, Node, Resource,
};
pub use brindle_datastore::reflector::{self, Reflector};
use brindle_datastore::{Datastore, Key};
use tokio::sync::watch;

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
/// has been listed completely (see [`brindle_datastore::reflector`]). The task ends when every
/// receiver is gone.
pub fn spawn(ds: &Datastore, kinds: &[Kind]) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    reflector::spawn(ds, kinds, "node.cache", move |objects| {
        tx.send(Arc::new(Snapshot { objects })).is_ok()
    });
    rx
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
    fn typed_accessors() {
        let s = Snapshot::from_resources([pool("a", "198.18.0.0/24")]);
        assert_eq!(s.pools().count(), 1);
        assert_eq!(s.nodes().count(), 0);
    }
}
