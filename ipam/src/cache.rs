//! A watch-fed view of what every allocation reads besides blocks and handles: the pools, the
//! reservations, the IPAM configuration and the nodes' labels. Without it an allocation lists
//! the pools and reservations and reads two more objects each time (decoding and validating
//! all of it); with it, the common allocation is one block read and one commit.
//!
//! Long-running allocators (the node daemon, benchmarks, a CNI helper) opt in with
//! [`Ipam::with_cache`]. Until the view is in sync, reads go to the datastore. The view trails
//! the datastore by the watch's latency (milliseconds): a pool created a moment ago may not be
//! offered yet, exactly as if the allocation had started a moment earlier. Safety never
//! depends on it: blocks and handles are always read and compare-and-swapped in the datastore.

use std::collections::BTreeMap;
use std::sync::Arc;

use brindle_crds::{IPPool, Kind, Resource};
use brindle_datastore::reflector;
use ipnetwork::IpNetwork;
use tokio::sync::watch;

use crate::{Ipam, IpamConfig};

/// One consistent view.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub pools: Vec<IPPool>,
    pub reserved: Vec<IpNetwork>,
    pub config: IpamConfig,
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// The kinds the view is built from.
const KINDS: &[Kind] = &[
    Kind::IPPool,
    Kind::IPReservation,
    Kind::IPAMConfiguration,
    Kind::Node,
];

fn build(objects: &reflector::Objects) -> View {
    let all = |k: Kind| objects.get(&k).into_iter().flat_map(|m| m.values());
    let mut v = View::default();
    for r in all(Kind::IPPool) {
        if let Resource::IPPool(p) = r {
            v.pools.push(p.clone());
        }
    }
    for r in all(Kind::IPReservation) {
        if let Resource::IPReservation(res) = r {
            v.reserved.extend(
                res.spec
                    .reserved_cidrs
                    .iter()
                    .filter_map(|c| brindle_crds::validate::parse_net(c).ok()),
            );
        }
    }
    for r in all(Kind::IPAMConfiguration) {
        if let Resource::IPAMConfiguration(c) = r
            && c.metadata.name.as_deref() == Some("default")
        {
            v.config = IpamConfig::from_spec(&c.spec);
        }
    }
    for r in all(Kind::Node) {
        let labels = r.metadata().labels.clone().unwrap_or_default();
        v.labels.insert(r.name().to_string(), labels);
    }
    v
}

/// The receiving end: None until every kind has been listed.
pub(crate) type Feed = watch::Receiver<Option<Arc<View>>>;

impl Ipam {
    /// This allocator with pools, reservations, configuration and node labels served from
    /// datastore watches (see the module documentation). Needs a Tokio runtime.
    pub fn with_cache(mut self) -> Ipam {
        let (tx, rx) = watch::channel(None);
        reflector::spawn(self.datastore(), KINDS, "ipam.cache", move |objects| {
            tx.send(Some(Arc::new(build(&objects)))).is_ok()
        });
        self.cache = Some(rx);
        self
    }

    /// The cached view, when there is one and it is in sync.
    pub(crate) fn view(&self) -> Option<Arc<View>> {
        self.cache.as_ref().and_then(|rx| rx.borrow().clone())
    }
}
