//! The gRPC status API's `.proto` files and the code generated from them (tonic/prost).
//!
//! This crate will hold only the service definitions that `brindlectl` queries on the node
//! daemon's Unix socket — BGP peers and their states, routes, IPAM usage and policy counters —
//! and the generated types. Everything below `node` and `ctl` speaks domain types instead.
