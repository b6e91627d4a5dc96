//! The tokio driver around `brindle-bgp-core`.
//!
//! This crate will own the listener, the per-peer socket tasks (TCP MD5, GTSM / IP_MINTTL,
//! multihop TTL, source address), the timers that feed expiries back into the core, the single
//! task that owns a BGP instance, and the kernel route sink that installs learned routes with
//! Brindle's own route protocol number through rtnetlink.
