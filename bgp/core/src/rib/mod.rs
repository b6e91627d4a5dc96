//! The routing information bases (RFC 4271 §3.2): per-neighbor Adj-RIB-In ([`adj_in`]), the
//! Loc-RIB with the decision process results ([`loc`]), and per-neighbor Adj-RIB-Out
//! ([`adj_out`]). Plain data structures; the speaker decides when to change them.
//!
//! Pure.

pub mod adj_in;
pub mod adj_out;
pub mod loc;

pub use adj_in::{AdjRibIn, InEntry};
pub use adj_out::{AdjOut, PeerOut, PeerOutMut};
pub use loc::{Destination, LocRib};
