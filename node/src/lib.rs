//! The node daemon `brindle-node`.
//!
//! This crate will wire the datastore, the BGP speaker, IPAM and the policy agent together on
//! one node, and serve the gRPC status API (from `brindle-proto`) on a Unix socket authorised by
//! the caller's peer credentials.
