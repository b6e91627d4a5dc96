//! Cross-crate and end-to-end tests.
//!
//! Network-namespace topologies, interop with real BGP peers (BIRD 2, FRR, GoBGP) and datastore
//! servers (etcd) live in this crate's `tests/` folder. Every topology is created and deleted by
//! the test that uses it and never touches the root namespace.
