//! The tokio driver around `brindle-bgp-core`, and the `brindle-bgp` daemon.
//!
//! One instance task owns the sans-IO [`brindle_bgp_core::Speaker`] and its timers; per
//! connection a reader task frames and decodes with `brindle-bgp-wire` and a writer task
//! writes; an accept task owns the listener; a kernel task owns the rtnetlink socket and
//! installs learned routes with Brindle's route protocol number. The task diagram is at the
//! top of [`instance`]; the design is in `docs/bgp-speaker.md`.
//!
//! * [`instance`]: [`start`], the owner task, timers, connection table.
//! * [`handle`]: [`SpeakerHandle`], runtime changes and status queries.
//! * [`connection`]: reader / writer tasks.
//! * [`transport`], [`sockopt`]: listener and connect with TCP MD5, GTSM, TTL, source address.
//! * [`kernel`]: kernel routes (ECMP, blackholes, graceful-restart reconcile).
//! * [`config`]: driver configuration and the daemon's YAML file.
//! * [`status`]: JSON status snapshot.

pub mod config;
pub mod connection;
pub mod error;
pub mod fib_stats;
pub mod file_filter;
pub mod handle;
pub mod instance;
pub mod kernel;
pub mod nexthop;
pub mod sockopt;
pub mod status;
pub mod transport;

pub use config::{
    DriverConfig, FileConfig, KernelConfig, NeighborConfig, OriginConfig, StartMode,
    TransportConfig,
};
pub use error::Error;
pub use handle::SpeakerHandle;
pub use instance::start;
pub use status::Snapshot;
