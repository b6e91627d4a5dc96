//! The node's status as one snapshot, collected by the daemon's loop and published through a
//! `tokio::sync::watch` channel, so status queries read the last snapshot and never wait behind
//! protocol work. Domain types only; [`crate::api`] turns them into the gRPC API's messages.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use brindle_bgp_core::{PeerStatus, RouteStatus};
use brindle_bgp_speaker::SpeakerHandle;
use brindle_bgp_wire::Prefix;

use crate::cache::Snapshot;
use crate::desired::DesiredBgp;

/// One session with the ages resolved against the speaker's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// The core's view.
    pub status: PeerStatus,
    /// Uptime when Established, else time since the last error (or since start).
    pub since: Duration,
    /// How long ago the last error was.
    pub last_error_age: Option<Duration>,
}

/// The policy applied on this node, as the status API shows it.
#[derive(Debug, Clone)]
pub struct PolicyStatus {
    /// The dataplane.
    pub kind: brindle_felix::dataplane::Kind,
    /// Workload endpoints by interface.
    pub endpoints: BTreeMap<String, brindle_felix::calc::EndpointPlan>,
    /// Host endpoints by interface (normal stage).
    pub hosts: BTreeMap<String, brindle_felix::calc::EndpointPlan>,
}

/// Everything `brindlectl` can ask about.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// The datastore's endpoint.
    pub datastore: String,
    /// When the daemon started.
    pub started: Option<Instant>,
    /// The cache has a complete listing.
    pub in_sync: bool,
    /// When the configuration last changed something, and what.
    pub last_change: Option<(Instant, String)>,
    /// The derived configuration.
    pub desired: Option<DesiredBgp>,
    /// The last error deriving it.
    pub desired_error: Option<String>,
    /// The datastore did not answer the last health read (the node keeps what it has).
    pub datastore_error: Option<String>,
    /// The last policy apply failed (the kernel keeps the rules it had).
    pub policy_error: Option<String>,
    /// The policy last applied: dataplane and per-endpoint plans.
    pub policy: Option<PolicyStatus>,
    /// Sessions.
    pub peers: Vec<PeerState>,
    /// Loc-RIB.
    pub routes: Vec<RouteStatus>,
    /// What the speaker wants in the kernel: prefix → next hops.
    pub fib: BTreeMap<Prefix, Vec<IpAddr>>,
    /// Blocks affine to this node.
    pub blocks: u32,
    /// Addresses allocated for this node.
    pub addresses_in_use: u32,
    /// What the tunnel driver could not do (e.g. no ipip module).
    pub dataplane_problems: Vec<String>,
    /// The kernel route writer's counters.
    pub fib_stats: Option<brindle_bgp_speaker::fib_stats::FibCounters>,
    /// When the daemon's loop last published this status (for liveness).
    pub updated: Option<Instant>,
    /// The running speaker, for queries answered on demand (Adj-RIBs, the kernel's routes).
    pub speaker: Option<SpeakerHandle>,
    /// Pools whose routes the tunnel driver owns: BGP does not install routes within them.
    pub kernel_excluded: Vec<Prefix>,
}

/// IPAM use of `node` in a snapshot: (blocks, addresses).
pub fn ipam_use(snap: &Snapshot, node: &str) -> (u32, u32) {
    let host = format!("host:{node}");
    let mut blocks = 0;
    let mut addrs = 0;
    for b in snap.blocks() {
        if b.spec.affinity.as_deref() == Some(host.as_str()) {
            blocks += 1;
        }
        addrs += b
            .spec
            .allocations
            .iter()
            .flatten()
            .filter_map(|i| b.spec.attributes.get(*i as usize))
            .filter(|a| {
                a.secondary
                    .get(brindle_ipam::attr::NODE)
                    .map(String::as_str)
                    == Some(node)
            })
            .count() as u32;
    }
    (blocks, addrs)
}

/// Reads peers, routes and the FIB view from a running speaker into `st`.
pub async fn collect_speaker(h: &SpeakerHandle, st: &mut NodeStatus) {
    if let Ok(peers) = h.peers().await {
        st.peers = peers
            .into_iter()
            .map(|p| {
                let since = match p.established_since {
                    Some(at) => h.elapsed_since(at),
                    None => p
                        .last_error
                        .as_ref()
                        .map(|e| h.elapsed_since(e.at))
                        .unwrap_or_else(|| h.uptime()),
                };
                let last_error_age = p.last_error.as_ref().map(|e| h.elapsed_since(e.at));
                PeerState {
                    status: p,
                    since,
                    last_error_age,
                }
            })
            .collect();
    }
    if let Ok(r) = h.routes().await {
        st.routes = r;
    }
    if let Ok(f) = h.installed_routes().await {
        st.fib = f;
    }
    st.fib_stats = h.fib_stats();
    st.speaker = Some(h.clone());
}
