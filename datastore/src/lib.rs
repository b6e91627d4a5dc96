//! One datastore API over the Kubernetes API, etcd v3 and an embedded SQLite store.
//!
//! This crate will own the async trait over typed resources from `brindle-crds` (get, list,
//! create, compare-and-swap update, guarded delete, watch with an in-sync marker and resumption),
//! its backends (memory, sqlite, etcd, kubernetes), and the one conflict-retry helper that every
//! compare-and-swap in Brindle goes through.
