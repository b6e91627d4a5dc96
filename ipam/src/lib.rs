//! Block-based IP address management.
//!
//! IPPools are cut into blocks of `blockSize` addresses; a node claims blocks by affinity and
//! hands its pods addresses from them; when its blocks are full it claims another (up to
//! `maxBlocksPerHost`, unlimited by default), then, unless `strictAffinity` is on, borrows a free
//! address from another node's block. Every allocation has a handle (`<network>.<containerID>`
//! for the CNI) and attributes; release works by handle or by address and is idempotent.
//!
//! - [`block`]: pure block arithmetic and allocation inside one block (property-tested).
//! - [`pools`]: pure pool selection (node selector, disabled, allowed uses, requested pools).
//! - [`Ipam`] ([`allocator`], [`claim`], [`handle`]): the allocator over the datastore. Every
//!   write is a compare-and-swap on one object through the datastore's retry helper; no lock
//!   outside the datastore is needed for correctness across nodes.
//!   A block write that times out is resolved (committed or not) before anything is undone
//!   (`resolve`).
//! - [`check`]: `ipam check` (leaks, orphaned affinities, blocks of missing nodes, addresses
//!   allocated twice) and garbage collection.

pub mod allocator;
pub mod block;
mod cache;
pub mod check;
pub mod claim;
pub mod handle;
pub mod pools;
mod resolve;
mod take;

use std::net::IpAddr;

pub use allocator::{AssignArgs, Assigned, Ipam, IpamConfig};
pub use check::{CheckReport, GcPlan, GcSummary, LiveState};

/// Attribute keys stored with every allocation.
pub mod attr {
    /// The node that asked for the address.
    pub const NODE: &str = "node";
    /// The pod's namespace.
    pub const NAMESPACE: &str = "namespace";
    /// The pod's name.
    pub const POD: &str = "pod";
    /// The container ID.
    pub const CONTAINER: &str = "container";
    /// Unix seconds when the address was handed out (for the leak grace period).
    pub const TIMESTAMP: &str = "timestamp";
}

/// IPAM errors; each names the pool, node, handle or address concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] brindle_datastore::Error),
    /// No pool can serve the request.
    #[error("no usable IPv{family} pool for node {node}: {reason}")]
    NoPool {
        /// 4 or 6.
        family: u8,
        /// The node.
        node: String,
        /// Why each candidate was refused.
        reason: String,
    },
    /// The pools are full for this node.
    #[error("IPv{family} pools {pools:?} are exhausted for node {node}: {reason}")]
    Exhausted {
        /// 4 or 6.
        family: u8,
        /// The pools tried.
        pools: Vec<String>,
        /// The node.
        node: String,
        /// Which limit was hit.
        reason: String,
    },
    /// A requested fixed address cannot be given.
    #[error("{ip}: {reason}")]
    Address {
        /// The address.
        ip: IpAddr,
        /// Why.
        reason: String,
    },
    /// Bad arguments.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// GC cannot establish which nodes and workloads are alive, so it frees nothing.
    #[error("ipam gc refused: {0}")]
    UnknownLiveState(String),
}

/// The IPAM result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The datastore name of a block: its CIDR with `.`, `:` and `/` turned into `-`.
pub fn block_name(cidr: &ipnetwork::IpNetwork) -> String {
    cidr.to_string().replace(['.', ':', '/'], "-")
}

/// The datastore name of node `node`'s affinity for a block.
pub fn affinity_name(node: &str, cidr: &ipnetwork::IpNetwork) -> String {
    format!("{node}-{}", block_name(cidr))
}

/// The datastore name for a handle: the handle itself when it is a valid object name,
/// otherwise a stable hash of it.
pub fn handle_name(handle: &str) -> String {
    if brindle_crds::validate::dns1123_subdomain(handle).is_ok() {
        handle.to_string()
    } else {
        format!("h-{:016x}", block::stable_hash(handle))
    }
}
