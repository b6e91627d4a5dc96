//! The pure BGP protocol core (no tokio, no sockets, no clock).
//!
//! This crate will own the RFC 4271 §8 finite state machine with its timers expressed as
//! deadlines, collision detection (§6.8), capability negotiation, the Adj-RIB-In, Loc-RIB and
//! per-peer Adj-RIB-Out, the decision process (§9.1), route reflection (RFC 4456), graceful
//! restart (RFC 4724) in both roles, BGPFilter import/export policy, and update packing. Its one
//! entry point takes an input (a decoded message from `brindle-bgp-wire`, a timer expiry, a TCP
//! event or an admin command) and the current time, and returns the outputs to perform.
