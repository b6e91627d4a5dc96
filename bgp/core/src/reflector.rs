//! Route reflection (RFC 4456): which iBGP-learned routes may be passed to which iBGP
//! neighbors, the ORIGINATOR_ID / CLUSTER_LIST a reflected route carries, and the loop checks
//! on receipt.
//!
//! ```text
//!   learned from      sent to client    sent to non-client (iBGP)
//!   client            yes               yes
//!   non-client iBGP   yes               no   (plain iBGP split horizon)
//!   eBGP / local      yes               yes  (not a reflection)
//! ```
//!
//! Pure.

use std::net::Ipv4Addr;

use crate::route::RouteAttrs;

/// May a route learned over iBGP from a neighbor (`from_client`) be sent to another iBGP
/// neighbor (`to_client`)? Never back to the neighbor it came from (checked by the caller).
pub fn may_reflect(from_client: bool, to_client: bool) -> bool {
    from_client || to_client
}

/// Apply RFC 4456 §8 to a reflected route: set ORIGINATOR_ID to the router id of the
/// neighbor it came from when absent, and prepend our cluster id to CLUSTER_LIST.
pub fn reflect(attrs: &mut RouteAttrs, source_router_id: Ipv4Addr, cluster_id: Ipv4Addr) {
    if attrs.originator_id.is_none() {
        attrs.originator_id = Some(source_router_id);
    }
    attrs.cluster_list.insert(0, cluster_id);
}

/// RFC 4456 §8 loop checks on receipt: our router id as ORIGINATOR_ID, or our cluster id in
/// CLUSTER_LIST. Returns the reason for a drop.
pub fn loop_reason(
    attrs: &RouteAttrs,
    router_id: Ipv4Addr,
    cluster_id: Ipv4Addr,
) -> Option<&'static str> {
    if attrs.originator_id == Some(router_id) {
        return Some("ORIGINATOR_ID is our router id");
    }
    if attrs.cluster_list.contains(&cluster_id) {
        return Some("CLUSTER_LIST holds our cluster id");
    }
    None
}
