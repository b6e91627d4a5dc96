//! Node: Brindle's view of a cluster node (BGP addresses, AS, tunnel addresses).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::AsNumber;
use crate::validate::{Collector, Validate, at};

/// The node's BGP identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBgpSpec {
    /// The node's IPv4 address and subnet (`198.18.0.10/24`).
    #[serde(
        default,
        rename = "ipv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<String>,
    /// The node's IPv6 address and subnet.
    #[serde(
        default,
        rename = "ipv6Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_address: Option<String>,
    /// The node's AS (default: the cluster's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Makes the node a route reflector with this cluster ID (an IPv4 address).
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<String>,
    /// Address of the node's IPIP tunnel device.
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_ipip_tunnel_addr: Option<String>,
}

/// An address of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAddress {
    /// The address (optionally with a prefix length).
    pub address: String,
    /// `InternalIP`, `ExternalIP`, `CalicoNodeIP`...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub address_type: Option<String>,
}

/// A reference to the orchestrator's object for the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrchRef {
    /// The node's name in the orchestrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The orchestrator (`k8s`).
    pub orchestrator: String,
}

/// `Node.spec`.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "Node",
    plural = "nodes",
    printcolumn = r#"{"name":"IPv4","type":"string","jsonPath":".spec.bgp.ipv4Address"}"#,
    printcolumn = r#"{"name":"IPv6","type":"string","jsonPath":".spec.bgp.ipv6Address"}"#,
    printcolumn = r#"{"name":"AS","type":"string","jsonPath":".spec.bgp.asNumber"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// BGP settings; absent on nodes that do not run BGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// Address of the node's VXLAN device.
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<String>,
    /// MAC of the node's VXLAN device.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    /// Address of the node's IPv6 VXLAN device.
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<String>,
    /// The node's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Orchestrator references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
}

pub(crate) fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
}

impl Validate for Node {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        if let Some(b) = &s.bgp {
            if let Some(a) = &b.ipv4_address
                && let Some(n) = c.net("spec.bgp.ipv4Address", a)
                && !n.is_ipv4()
            {
                c.push("spec.bgp.ipv4Address", format!("'{a}' is not IPv4"));
            }
            if let Some(a) = &b.ipv6_address
                && let Some(n) = c.net("spec.bgp.ipv6Address", a)
                && !n.is_ipv6()
            {
                c.push("spec.bgp.ipv6Address", format!("'{a}' is not IPv6"));
            }
            if b.ipv4_address.is_none() && b.ipv6_address.is_none() {
                c.push("spec.bgp", "needs ipv4Address or ipv6Address");
            }
            if let Some(id) = &b.route_reflector_cluster_id
                && id.parse::<std::net::Ipv4Addr>().is_err()
            {
                c.push(
                    "spec.bgp.routeReflectorClusterID",
                    format!("'{id}' is not an IPv4 address"),
                );
            }
            if let Some(t) = &b.ipv4_ipip_tunnel_addr {
                c.ip("spec.bgp.ipv4IPIPTunnelAddr", t);
            }
        }
        if let Some(t) = &s.ipv4_vxlan_tunnel_addr {
            c.ip("spec.ipv4VXLANTunnelAddr", t);
        }
        if let Some(t) = &s.ipv6_vxlan_tunnel_addr {
            c.ip("spec.ipv6VXLANTunnelAddr", t);
        }
        if let Some(m) = &s.vxlan_tunnel_mac_addr
            && !is_mac(m)
        {
            c.push(
                "spec.vxlanTunnelMACAddr",
                format!("'{m}' is not a MAC address"),
            );
        }
        for (i, a) in s.addresses.iter().enumerate() {
            c.net(&format!("{}.address", at("spec.addresses", i)), &a.address);
        }
    }
}
