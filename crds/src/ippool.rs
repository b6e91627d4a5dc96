//! IPPool: a range of pod addresses, cut into blocks that nodes claim (Calico's `IPPool`).

use ipnetwork::IpNetwork;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Collector, FieldError, Validate, at};

/// Default block prefix length for IPv4 pools.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Default block prefix length for IPv6 pools.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

/// Encapsulation mode for IPIP or VXLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum EncapMode {
    /// No encapsulation (plain routing).
    #[default]
    Never,
    /// Always encapsulate traffic to other nodes.
    Always,
    /// Encapsulate only traffic to nodes in another subnet.
    CrossSubnet,
}

/// What a pool's addresses may be used for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Tunnel device addresses of nodes.
    Tunnel,
    /// Service LoadBalancer addresses.
    LoadBalancer,
}

/// Whether IPAM hands out the pool's addresses without being asked for the pool by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum AssignmentMode {
    /// Used for any allocation whose node matches.
    #[default]
    Automatic,
    /// Used only when requested explicitly (annotation).
    Manual,
}

/// `IPPool.spec`.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "IPPool",
    plural = "ippools",
    shortname = "ippool",
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"Block","type":"integer","jsonPath":".spec.blockSize"}"#,
    printcolumn = r#"{"name":"IPIP","type":"string","jsonPath":".spec.ipipMode"}"#,
    printcolumn = r#"{"name":"VXLAN","type":"string","jsonPath":".spec.vxlanMode"}"#,
    printcolumn = r#"{"name":"NAT","type":"boolean","jsonPath":".spec.natOutgoing"}"#,
    printcolumn = r#"{"name":"Disabled","type":"boolean","jsonPath":".spec.disabled"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPPoolSpec {
    /// The pool's CIDR, with no host bits set.
    pub cidr: String,
    /// Prefix length of the blocks nodes claim: 20-32 for IPv4 (default 26), 116-128 for IPv6
    /// (default 122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// IPIP encapsulation (IPv4 only).
    #[serde(default)]
    pub ipip_mode: EncapMode,
    /// VXLAN encapsulation.
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    /// SNAT traffic from pods to destinations outside every pool.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// No new addresses are handed out from a disabled pool.
    #[serde(default)]
    pub disabled: bool,
    /// Do not advertise this pool's blocks over BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    /// Nodes that may take blocks from this pool (default `all()`).
    #[serde(default = "all_selector")]
    pub node_selector: String,
    /// What the addresses may be used for (default Workload and Tunnel).
    #[serde(default = "default_allowed_uses")]
    pub allowed_uses: Vec<AllowedUse>,
    /// Automatic or Manual assignment.
    #[serde(default)]
    pub assignment_mode: AssignmentMode,
}

pub(crate) fn all_selector() -> String {
    "all()".to_string()
}

fn default_allowed_uses() -> Vec<AllowedUse> {
    vec![AllowedUse::Workload, AllowedUse::Tunnel]
}

impl IPPoolSpec {
    /// A pool spec with Calico's defaults for `cidr`.
    pub fn new(cidr: impl Into<String>) -> IPPoolSpec {
        IPPoolSpec {
            cidr: cidr.into(),
            block_size: None,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: all_selector(),
            allowed_uses: default_allowed_uses(),
            assignment_mode: AssignmentMode::Automatic,
        }
    }

    /// The parsed CIDR, if valid.
    pub fn network(&self) -> Option<IpNetwork> {
        crate::validate::parse_masked_cidr(&self.cidr).ok()
    }

    /// The effective block size: the configured one, or the family's default.
    pub fn effective_block_size(&self) -> u8 {
        match (self.block_size, self.network()) {
            (Some(b), _) => b,
            (None, Some(IpNetwork::V6(_))) => DEFAULT_BLOCK_SIZE_V6,
            (None, _) => DEFAULT_BLOCK_SIZE_V4,
        }
    }
}

impl Validate for IPPool {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        c.selector("spec.nodeSelector", &s.node_selector);
        if s.ipip_mode != EncapMode::Never && s.vxlan_mode != EncapMode::Never {
            c.push(
                "spec.vxlanMode",
                "ipipMode and vxlanMode cannot both be enabled",
            );
        }
        if s.allowed_uses.is_empty() {
            c.push("spec.allowedUses", "at least one use is required");
        }
        if s.allowed_uses.contains(&AllowedUse::LoadBalancer) && s.allowed_uses.len() > 1 {
            c.push(
                "spec.allowedUses",
                "LoadBalancer cannot be combined with other uses",
            );
        }
        for (i, u) in s.allowed_uses.iter().enumerate() {
            if s.allowed_uses[..i].contains(u) {
                c.push(at("spec.allowedUses", i), format!("{u:?} is listed twice"));
            }
        }
        if s.allowed_uses.contains(&AllowedUse::LoadBalancer) && s.node_selector.trim() != "all()" {
            c.push(
                "spec.nodeSelector",
                "LoadBalancer pools cannot have a nodeSelector",
            );
        }
        // Keep checking the block size when only the host bits are wrong.
        let masked = c.masked_cidr("spec.cidr", &s.cidr);
        let Some(net) = masked.or_else(|| s.cidr.parse::<IpNetwork>().ok()) else {
            return;
        };
        let v6 = net.is_ipv6();
        let bad_range = match net {
            IpNetwork::V4(n) => {
                let ip = n.network();
                if ip.is_loopback() || n.contains(std::net::Ipv4Addr::LOCALHOST) {
                    Some("loopback")
                } else if ip.is_link_local() || n.contains(std::net::Ipv4Addr::new(169, 254, 0, 1))
                {
                    Some("link-local")
                } else if ip.is_multicast() {
                    Some("multicast")
                } else {
                    None
                }
            }
            IpNetwork::V6(n) => {
                let ip = n.network();
                let ll: ipnetwork::Ipv6Network = "fe80::/10".parse().expect("constant");
                if ip.is_loopback() || n.contains(std::net::Ipv6Addr::LOCALHOST) {
                    Some("loopback")
                } else if ll.contains(ip) || n.contains(ll.network()) {
                    Some("link-local")
                } else if ip.is_multicast() {
                    Some("multicast")
                } else {
                    None
                }
            }
        };
        if let Some(kind) = bad_range {
            c.push(
                "spec.cidr",
                format!("'{}' overlaps the {kind} range", s.cidr),
            );
        }
        let block = s.block_size.unwrap_or(if v6 {
            DEFAULT_BLOCK_SIZE_V6
        } else {
            DEFAULT_BLOCK_SIZE_V4
        });
        let (lo, hi) = if v6 { (116, 128) } else { (20, 32) };
        if block < lo || block > hi {
            c.push(
                "spec.blockSize",
                format!(
                    "{block} is outside {lo}-{hi} for an IPv{} pool",
                    if v6 { 6 } else { 4 }
                ),
            );
        } else if net.prefix() > block {
            c.push(
                "spec.blockSize",
                format!(
                    "block size /{block} is larger than the pool /{} (the pool must hold at least \
                     one block)",
                    net.prefix()
                ),
            );
        }
        if v6 && s.ipip_mode != EncapMode::Never {
            c.push(
                "spec.ipipMode",
                "IPIP is IPv4 only; use vxlanMode for IPv6 pools",
            );
        }
    }
}

/// Checks a set of pools against each other: no two CIDRs may overlap. Each error's path starts
/// with `IPPool/<name>`.
pub fn check_pool_overlaps(pools: &[IPPool]) -> Vec<FieldError> {
    let mut out = Vec::new();
    let nets: Vec<(String, Option<IpNetwork>)> = pools
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.spec.network(),
            )
        })
        .collect();
    for (i, (name, net)) in nets.iter().enumerate() {
        let Some(net) = net else { continue };
        for (other, onet) in &nets[..i] {
            let Some(onet) = onet else { continue };
            if crate::nets_overlap(net, onet) {
                out.push(FieldError {
                    path: format!("IPPool/{name}: spec.cidr"),
                    reason: format!("{net} overlaps IPPool {other} ({onet})"),
                });
            }
        }
    }
    out
}
