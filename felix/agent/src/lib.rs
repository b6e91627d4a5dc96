//! The per-node policy agent: Kubernetes and Calico network policy, enforced with nftables.
//!
//! - [`calc`]: the calculation (pure): endpoints, profiles, tiers and policies to per-endpoint
//!   tier/policy lists, compiled rules and address sets, with Calico's semantics.
//! - [`nft`]: the renderer (pure): the plan to one nftables script for Brindle's own table.
//! - [`driver`]: applies the script in one transaction, reads the kernel back, re-applies when
//!   the table was deleted or altered, and leaves an unchanged table alone across restarts.
//!
//! `brindle-node` runs the agent (`--policy on`, the default): fail-closed (a workload interface
//! with no endpoint is dropped), and nothing is written before the datastore's first in-sync.

pub mod calc;
pub mod counters;
pub mod dataplane;
pub mod driver;
pub mod host;
pub mod inputs;
pub mod ipt;
pub mod ipt_driver;
mod ipt_host;
pub mod nft;
mod nft_host;
