//! `desired_routes(snapshot, node)`: the tunnel devices and the non-BGP routes a node needs for
//! pools with VXLAN or IPIP encapsulation, derived from the datastore alone (blocks, affinities,
//! Nodes), as Calico's Felix derives them. Pure.
//!
//! For each IPv4 pool with `vxlanMode` (or `ipipMode`) `Always`, every confirmed block of another
//! node is routed through the tunnel: VXLAN `via <its VTEP address> dev vxlan.brindle onlink`
//! (with a permanent neighbour entry VTEP address → VTEP MAC and an FDB entry VTEP MAC → node
//! address), IPIP `via <node address> dev tunl0 onlink`. `CrossSubnet` encapsulates only towards
//! nodes outside this node's subnet and routes the others directly `via <node address>`. The
//! speaker keeps these pools' prefixes out of the kernel (they stay in its RIB and are still
//! reflected and advertised), so exactly one writer owns each route.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use brindle_crds::ipam::AffinityState;
use brindle_crds::ippool::EncapMode;
use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::cache::Snapshot;
use crate::desired::node_addrs;

/// The VXLAN device's name.
pub const VXLAN_DEVICE: &str = "vxlan.brindle";
/// The IPIP device's name (the kernel's fallback device).
pub const IPIP_DEVICE: &str = "tunl0";
/// Calico's VXLAN network identifier.
pub const VXLAN_VNI: u32 = 4096;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// The VTEP MAC of a node, derived from its name (locally administered, unicast), so every
/// node computes the same MAC for every other node without asking.
pub fn vtep_mac(node: &str) -> [u8; 6] {
    let h = brindle_ipam::block::stable_hash(&format!("vtep/{node}")).to_be_bytes();
    [0x66, h[0], h[1], h[2], h[3], h[4]]
}

/// Formats a MAC.
pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a MAC.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// How one remote block is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteVia {
    /// Through the VXLAN device to the remote VTEP address.
    Vxlan(Ipv4Addr),
    /// Through tunl0 to the remote node.
    Ipip(Ipv4Addr),
    /// Plain next hop (same subnet, CrossSubnet).
    Direct(Ipv4Addr),
}

/// This node's VXLAN endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vtep {
    /// The node's address (the outer source).
    pub local: Ipv4Addr,
    /// The device's address (from IPAM).
    pub address: Ipv4Addr,
    /// The device's MAC.
    pub mac: String,
}

/// A remote VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteVtep {
    /// The remote node.
    pub node: String,
    /// Its address (the outer destination, FDB).
    pub node_ip: Ipv4Addr,
    /// Its VTEP MAC.
    pub mac: String,
}

/// Everything the tunnel and route driver must make true.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePlan {
    /// Some pool needs VXLAN: this node's VTEP, once it has a tunnel address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<Vtep>,
    /// Remote VTEPs by their device address.
    pub vteps: BTreeMap<Ipv4Addr, RemoteVtep>,
    /// Some pool needs IPIP (tunl0).
    pub ipip: bool,
    /// Remote blocks and how to reach them.
    pub routes: BTreeMap<IpNetwork, RouteVia>,
    /// Pools whose prefixes BGP must not install (this plan owns them).
    pub owned_pools: Vec<IpNetwork>,
    /// A pool needs a VXLAN tunnel address for this node (none allocated yet).
    pub needs_vxlan_address: bool,
    /// What could not be planned, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn same_subnet(a: IpNetwork, b: Ipv4Addr) -> bool {
    a.contains(IpAddr::V4(b))
}

/// The plan for node `name`.
pub fn desired_routes(snap: &Snapshot, name: &str) -> RoutePlan {
    let mut plan = RoutePlan::default();
    let Some(me) = snap.node(name) else {
        return plan;
    };
    let (my4, _) = node_addrs(me);
    let Some(my4) = my4.filter(IpNetwork::is_ipv4) else {
        return plan;
    };
    let IpAddr::V4(my_ip) = my4.ip() else {
        return plan;
    };
    let pools: Vec<(IpNetwork, EncapMode, bool)> = snap
        .pools()
        .filter_map(|p| {
            let net = p.spec.network()?;
            if !net.is_ipv4() {
                return None;
            }
            if p.spec.vxlan_mode != EncapMode::Never {
                Some((net, p.spec.vxlan_mode, true))
            } else if p.spec.ipip_mode != EncapMode::Never {
                Some((net, p.spec.ipip_mode, false))
            } else {
                None
            }
        })
        .collect();
    if pools.is_empty() {
        return plan;
    }
    plan.owned_pools = pools.iter().map(|p| p.0).collect();
    let any_vxlan = pools.iter().any(|p| p.2);
    plan.ipip = pools.iter().any(|p| !p.2);
    if any_vxlan {
        match me
            .spec
            .ipv4_vxlan_tunnel_addr
            .as_deref()
            .and_then(|a| a.parse().ok())
        {
            Some(address) => {
                plan.vxlan = Some(Vtep {
                    local: my_ip,
                    address,
                    mac: mac_string(&vtep_mac(name)),
                })
            }
            None => plan.needs_vxlan_address = true,
        }
    }
    let confirmed: BTreeMap<&str, &str> = snap
        .affinities()
        .filter(|a| a.spec.state == AffinityState::Confirmed)
        .map(|a| (a.spec.cidr.as_str(), a.spec.node.as_str()))
        .collect();
    for b in snap.blocks() {
        let Ok(block) = b.spec.cidr.parse::<IpNetwork>() else {
            continue;
        };
        let Some(owner) = b
            .spec
            .affinity
            .as_deref()
            .and_then(|a| a.strip_prefix("host:"))
        else {
            continue;
        };
        if owner == name || confirmed.get(b.spec.cidr.as_str()) != Some(&owner) {
            continue;
        }
        let Some((_, mode, vxlan)) = pools.iter().find(|p| p.0.contains(block.network())) else {
            continue;
        };
        let Some(other) = snap.node(owner) else {
            plan.notes
                .push(format!("block {block}: node {owner} has no Node resource"));
            continue;
        };
        let Some(IpAddr::V4(their_ip)) = node_addrs(other).0.map(|n| n.ip()) else {
            plan.notes
                .push(format!("block {block}: node {owner} has no IPv4 address"));
            continue;
        };
        let encap = *mode == EncapMode::Always || !same_subnet(my4, their_ip);
        let via = if !encap {
            RouteVia::Direct(their_ip)
        } else if *vxlan {
            let Some(vtep) = other
                .spec
                .ipv4_vxlan_tunnel_addr
                .as_deref()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                plan.notes.push(format!(
                    "block {block}: node {owner} has no VXLAN tunnel address yet"
                ));
                continue;
            };
            let mac = other
                .spec
                .vxlan_tunnel_mac_addr
                .clone()
                .unwrap_or_else(|| mac_string(&vtep_mac(owner)));
            plan.vteps.insert(
                vtep,
                RemoteVtep {
                    node: owner.to_string(),
                    node_ip: their_ip,
                    mac,
                },
            );
            RouteVia::Vxlan(vtep)
        } else {
            RouteVia::Ipip(their_ip)
        };
        plan.routes.insert(block, via);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use brindle_crds::document::resource_from_value;
    use serde_json::json;

    fn snap(mode: &str, c_ip: &str) -> Snapshot {
        let r = |v| resource_from_value(v).unwrap();
        let node = |n: &str, ip: &str, vtep: &str| {
            r(
                json!({"apiVersion": "brindle.dev/v1", "kind": "Node", "metadata": {"name": n},
                "spec": {"bgp": {"ipv4Address": ip}, "ipv4VXLANTunnelAddr": vtep}}),
            )
        };
        let block = |cidr: &str, n: &str| {
            [
                r(
                    json!({"apiVersion": "brindle.dev/v1", "kind": "IPAMBlock", "metadata": {"name": cidr.replace(['.', '/'], "-")},
                    "spec": {"cidr": cidr, "affinity": format!("host:{n}"), "allocations": [null, null, null, null], "unallocated": [0, 1, 2, 3]}}),
                ),
                r(
                    json!({"apiVersion": "brindle.dev/v1", "kind": "BlockAffinity", "metadata": {"name": format!("{n}-{}", cidr.replace(['.', '/'], "-"))},
                    "spec": {"state": "confirmed", "node": n, "cidr": cidr}}),
                ),
            ]
        };
        let mut rs = vec![
            r(
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"},
                "spec": {"cidr": "198.19.0.0/24", "blockSize": 30, "vxlanMode": mode}}),
            ),
            node("a", "198.18.1.1/24", "198.19.0.100"),
            node("b", "198.18.1.2/24", "198.19.0.101"),
            node("c", c_ip, "198.19.0.102"),
        ];
        rs.extend(block("198.19.0.0/30", "a"));
        rs.extend(block("198.19.0.4/30", "b"));
        rs.extend(block("198.19.0.8/30", "c"));
        Snapshot::from_resources(rs)
    }

    #[test]
    fn always_routes_every_remote_block_through_its_vtep() {
        let p = desired_routes(&snap("Always", "198.18.2.1/24"), "a");
        assert_eq!(p.routes.len(), 2);
        assert_eq!(
            p.routes[&"198.19.0.4/30".parse().unwrap()],
            RouteVia::Vxlan("198.19.0.101".parse().unwrap())
        );
        assert_eq!(p.vteps.len(), 2);
        assert_eq!(
            p.vxlan.as_ref().unwrap().address,
            "198.19.0.100".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            p.vteps[&"198.19.0.101".parse().unwrap()].mac,
            mac_string(&vtep_mac("b"))
        );
        assert_eq!(p.owned_pools.len(), 1);
        assert!(!p.ipip);
    }

    #[test]
    fn cross_subnet_encapsulates_only_across_subnets() {
        let p = desired_routes(&snap("CrossSubnet", "198.18.2.1/24"), "a");
        assert_eq!(
            p.routes[&"198.19.0.4/30".parse().unwrap()],
            RouteVia::Direct("198.18.1.2".parse().unwrap())
        );
        assert_eq!(
            p.routes[&"198.19.0.8/30".parse().unwrap()],
            RouteVia::Vxlan("198.19.0.102".parse().unwrap())
        );
        assert_eq!(p.vteps.len(), 1);
    }

    #[test]
    fn no_encapsulation_no_plan() {
        let p = desired_routes(&snap("Never", "198.18.2.1/24"), "a");
        assert_eq!(p, RoutePlan::default());
        assert_eq!(vtep_mac("a"), vtep_mac("a"));
        assert_ne!(vtep_mac("a"), vtep_mac("b"));
        assert_eq!(
            vtep_mac("a")[0] & 0x03,
            0x02,
            "locally administered unicast"
        );
        assert_eq!(parse_mac(&mac_string(&vtep_mac("x"))), Some(vtep_mac("x")));
    }
}
