//! `brindle-node`: the per-node daemon (Calico's calico-node: confd + BIRD + the route half of
//! Felix). It registers the node, watches the datastore, and turns what it holds into BGP
//! sessions, advertised pod blocks and kernel routes.
//!
//! ```text
//!   datastore ──watch──> cache (one Reflector per kind, swapped at in-sync)
//!                          │  watch::Receiver<Arc<Snapshot>>
//!                          v
//!        desired_bgp(&snapshot, node)   (pure)
//!                          │  DesiredBgp
//!                          v
//!        SpeakerSync: diff against what was applied ──> SpeakerHandle (one owner task)
//!                                                            │ kernel routes, proto 80
//! ```
//!
//! - [`cache`]: the watch-fed cache and typed snapshot (pure reflector + the feeding task).
//! - [`autodetect`]: the node's address by Calico's autodetection methods.
//! - [`register`]: create/update this node's `Node`, refusing an address another node holds.
//! - [`desired`]: `desired_bgp`, the pure derivation of sessions and advertisements.
//! - [`sync`]: applies a `DesiredBgp` to a running speaker, changing only what differs.
//! - [`tunnels`], [`dataplane`]: VXLAN/IPIP devices and tunnel routes derived from the datastore
//!   (pure), and the netlink driver that makes the kernel match them.
//! - [`secrets`]: BGP passwords from a secrets directory.
//! - [`status`], [`api`]: the status snapshot and the gRPC status API on a Unix socket.

pub mod api;
pub mod autodetect;
pub mod cache;
pub mod dataplane;
pub mod desired;
pub mod metrics;
pub mod register;
pub mod secrets;
pub mod status;
pub mod sync;
pub mod tunnel_addr;
pub mod tunnels;

/// Node daemon errors; each names the field, node or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad or missing configuration.
    #[error("{field}: {reason}")]
    Config {
        /// The field or object.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Another node already holds this node's address.
    #[error("address {address} is already used by Node {other}; refusing to start")]
    AddressInUse {
        /// The address.
        address: String,
        /// The other node.
        other: String,
    },
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] brindle_datastore::Error),
    /// The speaker failed.
    #[error(transparent)]
    Speaker(#[from] brindle_bgp_speaker::Error),
    /// A local I/O failure.
    #[error("{0}")]
    Io(String),
}
