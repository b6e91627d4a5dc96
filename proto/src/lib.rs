//! The gRPC status API's `.proto` files and the code generated from them (tonic/prost):
//! `brindle.status.v1`, served by `brindle-node` on a Unix socket and queried by `brindlectl`.
//! Only `node` and `ctl` depend on this crate; everything below them speaks domain types.

/// `brindle.status.v1`.
#[allow(
    clippy::doc_lazy_continuation,
    missing_debug_implementations,
    clippy::all
)]
pub mod status {
    tonic::include_proto!("brindle.status.v1");
}
