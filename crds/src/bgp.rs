//! BGP resources: BGPPeer, BGPConfiguration and BGPFilter (Calico's field names and defaults).

use std::net::IpAddr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{AsNumber, BgpPassword, CidrEntry};
use crate::validate::{Collector, Validate, at, dns1123_subdomain};

/// Whether the session is sourced from the node's own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum SourceAddress {
    /// Bind the session to the node's IP (default).
    #[default]
    UseNodeIP,
    /// Let the kernel choose the source address.
    None,
}

/// How the next hop of advertised routes is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum NextHopMode {
    /// eBGP: self; iBGP: unchanged (the usual rule).
    #[default]
    Auto,
    /// Always this node.
    #[serde(rename = "Self")]
    SelfNode,
    /// Keep the original next hop.
    Keep,
}

/// Whether a node-to-node BGPPeer is configured on the selected peers too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ReversePeering {
    /// The peer nodes get the reverse session automatically (default).
    #[default]
    Auto,
    /// The reverse session needs its own BGPPeer.
    Manual,
}

/// `BGPPeer.spec`: a BGP session to configure on the selected nodes.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "BGPPeer",
    plural = "bgppeers",
    printcolumn = r#"{"name":"PeerIP","type":"string","jsonPath":".spec.peerIP"}"#,
    printcolumn = r#"{"name":"AS","type":"string","jsonPath":".spec.asNumber"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"NodeSelector","type":"string","jsonPath":".spec.nodeSelector"}"#,
    printcolumn = r#"{"name":"PeerSelector","type":"string","jsonPath":".spec.peerSelector"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPPeerSpec {
    /// The one node that peers (empty: every node, or those matching `nodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Nodes that peer (instead of `node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// The peer's address, with an optional port: `198.18.0.1`, `198.18.0.1:1179`,
    /// `2001:db8::1` or `[2001:db8::1]:1179`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<String>,
    /// The peer's AS number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Peer with the Brindle nodes this selector matches (instead of `peerIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
    /// Do not rewrite the next hop of routes sent to this peer (deprecated by `nextHopMode`).
    #[serde(default)]
    pub keep_original_next_hop: bool,
    /// Next-hop handling for routes sent to this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,
    /// TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    /// Source address of the session.
    #[serde(default)]
    pub source_address: SourceAddress,
    /// How long to keep the peer's routes when it restarts gracefully (e.g. `120s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<String>,
    /// Accept routes whose AS_PATH contains our AS up to this many times (allowas-in).
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<u32>,
    /// GTSM: the peer is at most this many hops away (1-255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// BGPFilter names applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// A gateway through which the peer is reached (adds a route before peering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<String>,
    /// Advertise only the routes of local workloads matching this selector to this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_workload_selector: Option<String>,
    /// Largest number of prefixes accepted from this peer before the session is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<u32>,
    /// With `peerSelector`: whether the selected nodes get the reverse session by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_peering: Option<ReversePeering>,
}

/// Parses `peerIP`: `addr`, `addr:port` (IPv4) or `[addr]:port` (IPv6).
pub fn parse_peer_ip(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let bad_port = |p: &str| format!("'{p}' in '{s}' is not a port 1-65535");
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad_port(p)),
        Ok(n) => Ok(n),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{s}' is missing the closing ']'"))?;
        let ip: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("'{addr}' in '{s}' is not an IPv6 address"))?;
        let p = match tail.strip_prefix(':') {
            Some(p) => Some(port(p)?),
            None if tail.is_empty() => None,
            None => return Err(format!("'{s}': expected ':port' after ']'")),
        };
        return Ok((IpAddr::V6(ip), p));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Some((addr, p)) = s.rsplit_once(':')
        && let Ok(ip) = addr.parse::<std::net::Ipv4Addr>()
    {
        return Ok((IpAddr::V4(ip), Some(port(p)?)));
    }
    Err(format!(
        "'{s}' is not an IP address, IPv4:port or [IPv6]:port"
    ))
}

impl Validate for BGPPeer {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        if let Some(n) = &s.node
            && let Err(e) = dns1123_subdomain(n)
        {
            c.push("spec.node", e);
        }
        if let Some(sel) = &s.node_selector {
            c.selector("spec.nodeSelector", sel);
            if s.node.is_some() {
                c.push(
                    "spec.nodeSelector",
                    "node and nodeSelector cannot both be set",
                );
            }
        }
        if let Some(sel) = &s.peer_selector {
            c.selector("spec.peerSelector", sel);
            if s.peer_ip.is_some() {
                c.push(
                    "spec.peerSelector",
                    "peerIP and peerSelector cannot both be set",
                );
            }
            if s.as_number.is_some() {
                c.push(
                    "spec.asNumber",
                    "asNumber is taken from the selected nodes with peerSelector",
                );
            }
        }
        match &s.peer_ip {
            Some(ip) => {
                c.check_result("spec.peerIP", parse_peer_ip(ip));
                if s.as_number.is_none() {
                    c.push("spec.asNumber", "required when peerIP is set");
                }
            }
            None if s.peer_selector.is_none() => {
                c.push("spec.peerIP", "one of peerIP or peerSelector is required");
            }
            None => {}
        }
        if s.keep_original_next_hop && s.next_hop_mode == Some(NextHopMode::SelfNode) {
            c.push(
                "spec.nextHopMode",
                "Self contradicts keepOriginalNextHop: true",
            );
        }
        if let Some(pw) = &s.password {
            match &pw.secret_key_ref {
                None => c.push("spec.password.secretKeyRef", "required in password"),
                Some(r) => {
                    if let Err(e) = dns1123_subdomain(&r.name) {
                        c.push("spec.password.secretKeyRef.name", e);
                    }
                    if r.key.is_empty() {
                        c.push("spec.password.secretKeyRef.key", "must not be empty");
                    }
                }
            }
        }
        if let Some(d) = &s.max_restart_time {
            c.duration("spec.maxRestartTime", d);
        }
        if let Some(n) = s.num_allowed_local_as_numbers
            && n > 10
        {
            c.push(
                "spec.numAllowedLocalASNumbers",
                format!("{n} is more than 10"),
            );
        }
        if s.ttl_security == Some(0) {
            c.push(
                "spec.ttlSecurity",
                "must be 1-255 hops (omit it to turn GTSM off)",
            );
        }
        for (i, f) in s.filters.iter().enumerate() {
            if let Err(e) = dns1123_subdomain(f) {
                c.push(at("spec.filters", i), e);
            }
        }
        if let Some(r) = &s.reachable_by {
            c.ip("spec.reachableBy", r);
        }
        if let Some(sel) = &s.local_workload_selector {
            c.selector("spec.localWorkloadSelector", sel);
        }
        if s.max_prefixes == Some(0) {
            c.push(
                "spec.maxPrefixes",
                "must be at least 1 (omit it for no limit)",
            );
        }
    }
}

/// A named BGP community value usable in prefix advertisements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Community {
    /// The name prefix advertisements refer to.
    pub name: String,
    /// `aa:nn` (standard) or `aa:nn:mm` (large).
    pub value: String,
}

/// Communities attached to the routes of one CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// The CIDR whose routes carry the communities.
    pub cidr: String,
    /// Community names (from `communities`) or literal values.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// Log levels accepted by `logSeverityScreen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum LogSeverity {
    /// Everything.
    Debug,
    /// Default.
    #[default]
    Info,
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
    /// Fatal errors only.
    Fatal,
}

/// Where the BGP listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum BindMode {
    /// All addresses.
    #[default]
    None,
    /// The node's own address.
    NodeIP,
}

/// `BGPConfiguration.spec`: cluster-wide (`default`) or per-node (`node.<name>`) BGP settings.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "BGPConfiguration",
    plural = "bgpconfigurations",
    printcolumn = r#"{"name":"AS","type":"string","jsonPath":".spec.asNumber"}"#,
    printcolumn = r#"{"name":"Mesh","type":"boolean","jsonPath":".spec.nodeToNodeMeshEnabled"}"#,
    printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".spec.listenPort"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPConfigurationSpec {
    /// Log level of the BGP speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<LogSeverity>,
    /// Full mesh between all nodes (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// The cluster's default AS number (default 64512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Service cluster IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<CidrEntry>,
    /// Service external IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<CidrEntry>,
    /// Service LoadBalancer IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<CidrEntry>,
    /// TCP port of the BGP listener (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// Named community values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Communities to attach per CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// TCP MD5 password of the node-to-node mesh sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    /// Graceful-restart time of mesh sessions (e.g. `120s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<String>,
    /// Listener binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_mode: Option<BindMode>,
    /// Interfaces whose addresses are never exported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
}

impl BGPConfigurationSpec {
    /// Effective AS number.
    pub fn as_number_or_default(&self) -> AsNumber {
        self.as_number.unwrap_or(crate::common::DEFAULT_AS_NUMBER)
    }
    /// Effective mesh setting.
    pub fn mesh_enabled(&self) -> bool {
        self.node_to_node_mesh_enabled.unwrap_or(true)
    }
    /// Effective listen port.
    pub fn listen_port_or_default(&self) -> u16 {
        self.listen_port.unwrap_or(179)
    }
}

/// Parses a standard (`aa:nn`, 16 bits each) or large (`aa:nn:mm`, 32 bits each) community.
pub fn parse_community(s: &str) -> Result<Vec<u32>, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let max: u64 = match parts.len() {
        2 => 65535,
        3 => u64::from(u32::MAX),
        _ => return Err(format!("'{s}' is not a community (aa:nn or aa:nn:mm)")),
    };
    parts
        .iter()
        .map(|p| match p.parse::<u64>() {
            Ok(n) if n <= max => Ok(n as u32),
            _ => Err(format!("'{p}' in community '{s}' is not 0-{max}")),
        })
        .collect()
}

impl Validate for BGPConfiguration {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name != "default" && !name.starts_with("node.") {
            c.push("metadata.name", "must be 'default' or 'node.<node name>'");
        }
        if name != "default" {
            for (field, set) in [
                ("spec.serviceClusterIPs", !s.service_cluster_ips.is_empty()),
                (
                    "spec.nodeToNodeMeshEnabled",
                    s.node_to_node_mesh_enabled.is_some(),
                ),
                ("spec.asNumber", s.as_number.is_some()),
            ] {
                if set {
                    c.push(field, "may only be set in the 'default' BGPConfiguration");
                }
            }
        }
        for (field, list) in [
            ("spec.serviceClusterIPs", &s.service_cluster_ips),
            ("spec.serviceExternalIPs", &s.service_external_ips),
            ("spec.serviceLoadBalancerIPs", &s.service_load_balancer_ips),
        ] {
            for (i, e) in list.iter().enumerate() {
                c.masked_cidr(&format!("{}.cidr", at(field, i)), &e.cidr);
            }
        }
        if s.listen_port == Some(0) {
            c.push("spec.listenPort", "must be 1-65535");
        }
        for (i, com) in s.communities.iter().enumerate() {
            let p = at("spec.communities", i);
            if com.name.is_empty() {
                c.push(format!("{p}.name"), "must not be empty");
            }
            c.check_result(&format!("{p}.value"), parse_community(&com.value));
        }
        for (i, adv) in s.prefix_advertisements.iter().enumerate() {
            let p = at("spec.prefixAdvertisements", i);
            c.masked_cidr(&format!("{p}.cidr"), &adv.cidr);
            for (j, com) in adv.communities.iter().enumerate() {
                let known = s.communities.iter().any(|k| &k.name == com);
                if !known && parse_community(com).is_err() {
                    c.push(
                        at(&format!("{p}.communities"), j),
                        format!("'{com}' is neither a community defined in spec.communities nor aa:nn / aa:nn:mm"),
                    );
                }
            }
        }
        if let Some(d) = &s.node_mesh_max_restart_time {
            c.duration("spec.nodeMeshMaxRestartTime", d);
        }
    }
}

/// Accept or reject a matching route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FilterAction {
    /// Accept the route.
    Accept,
    /// Reject the route.
    Reject,
}

/// How a route's prefix is compared with the rule's CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MatchOperator {
    /// The route's prefix is exactly the CIDR.
    Equal,
    /// The route's prefix is not the CIDR.
    NotEqual,
    /// The route's prefix lies within the CIDR.
    In,
    /// The route's prefix lies outside the CIDR.
    NotIn,
}

/// Prefix-length bounds for `In` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixLength {
    /// Shortest accepted prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u8>,
    /// Longest accepted prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u8>,
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RouteSource {
    /// Learned from a BGP peer.
    RemotePeers,
}

/// One filter rule; rules are evaluated in order and the first match decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPFilterRule {
    /// What to do with a matching route.
    pub action: FilterAction,
    /// How `cidr` is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_operator: Option<MatchOperator>,
    /// The CIDR to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Prefix-length bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<PrefixLength>,
    /// Match only routes from this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RouteSource>,
    /// Match only routes through this interface (glob `*` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// `BGPFilter.spec`: import and export rules per address family.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "BGPFilter",
    plural = "bgpfilters"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPFilterSpec {
    /// Rules for IPv4 routes we advertise.
    #[serde(default, rename = "exportV4", skip_serializing_if = "Vec::is_empty")]
    pub export_v4: Vec<BGPFilterRule>,
    /// Rules for IPv4 routes we learn.
    #[serde(default, rename = "importV4", skip_serializing_if = "Vec::is_empty")]
    pub import_v4: Vec<BGPFilterRule>,
    /// Rules for IPv6 routes we advertise.
    #[serde(default, rename = "exportV6", skip_serializing_if = "Vec::is_empty")]
    pub export_v6: Vec<BGPFilterRule>,
    /// Rules for IPv6 routes we learn.
    #[serde(default, rename = "importV6", skip_serializing_if = "Vec::is_empty")]
    pub import_v6: Vec<BGPFilterRule>,
}

impl Validate for BGPFilter {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        for (field, rules, v6) in [
            ("spec.exportV4", &s.export_v4, false),
            ("spec.importV4", &s.import_v4, false),
            ("spec.exportV6", &s.export_v6, true),
            ("spec.importV6", &s.import_v6, true),
        ] {
            for (i, r) in rules.iter().enumerate() {
                check_filter_rule(c, &at(field, i), r, v6);
            }
        }
    }
}

fn check_filter_rule(c: &mut Collector, p: &str, r: &BGPFilterRule, v6: bool) {
    let max_len = if v6 { 128 } else { 32 };
    match (&r.cidr, r.match_operator) {
        (Some(cidr), Some(_)) => {
            if let Some(net) = c.masked_cidr(&format!("{p}.cidr"), cidr)
                && net.is_ipv6() != v6
            {
                c.push(
                    format!("{p}.cidr"),
                    format!("'{cidr}' is not an IPv{} CIDR", if v6 { 6 } else { 4 }),
                );
            }
        }
        (Some(_), None) => c.push(format!("{p}.matchOperator"), "required when cidr is set"),
        (None, Some(_)) => c.push(format!("{p}.cidr"), "required when matchOperator is set"),
        (None, None) => {}
    }
    if let Some(pl) = r.prefix_length {
        if r.cidr.is_none() {
            c.push(format!("{p}.prefixLength"), "requires cidr");
        }
        for (name, v) in [("min", pl.min), ("max", pl.max)] {
            if let Some(v) = v
                && v > max_len
            {
                c.push(
                    format!("{p}.prefixLength.{name}"),
                    format!("{v} is more than {max_len}"),
                );
            }
        }
        if let (Some(min), Some(max)) = (pl.min, pl.max)
            && min > max
        {
            c.push(
                format!("{p}.prefixLength"),
                format!("min {min} is greater than max {max}"),
            );
        }
        if let (Some(cidr), Some(min)) = (
            r.cidr
                .as_deref()
                .and_then(|s| s.parse::<ipnetwork::IpNetwork>().ok()),
            pl.min,
        ) && min < cidr.prefix()
        {
            c.push(
                format!("{p}.prefixLength.min"),
                format!("{min} is shorter than the cidr's /{}", cidr.prefix()),
            );
        }
    }
    if let Some(i) = &r.interface
        && (i.is_empty() || i.len() > 15)
    {
        c.push(format!("{p}.interface"), "must be 1-15 characters");
    }
}
