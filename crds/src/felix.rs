//! FelixConfiguration: the per-node policy agent's settings (the subset Brindle's agent uses,
//! under Calico's field names).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bgp::LogSeverity;
use crate::common::Protocol;
use crate::validate::{Collector, Validate, at};

/// The route protocol number Brindle marks its kernel routes with (unassigned in
/// `/etc/iproute2/rt_protos`; BIRD uses 12, zebra 11).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 80;

/// What happens to traffic from a workload to its own host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum EndpointToHostAction {
    /// Drop it.
    #[default]
    Drop,
    /// Accept it.
    Accept,
    /// Continue with the host's own rules.
    Return,
}

/// Which packet filter renders policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum NftablesMode {
    /// nftables when the kernel and `nft` support it, otherwise iptables.
    #[default]
    Auto,
    /// Always nftables.
    Enabled,
    /// Always iptables.
    Disabled,
}

/// A port that host endpoint policy never blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtoPort {
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The port.
    pub port: u16,
    /// Only to/from this CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
}

/// `FelixConfiguration.spec`: `default` for the cluster, `node.<name>` per node.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "FelixConfiguration",
    plural = "felixconfigurations"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FelixConfigurationSpec {
    /// Log level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<LogSeverity>,
    /// Create the IPIP tunnel device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_enabled: Option<bool>,
    /// MTU of the IPIP device (0: detect).
    #[serde(default, rename = "ipipMTU", skip_serializing_if = "Option::is_none")]
    pub ipip_mtu: Option<u32>,
    /// Create the VXLAN device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_enabled: Option<bool>,
    /// MTU of the IPv4 VXLAN device (0: detect).
    #[serde(default, rename = "vxlanMTU", skip_serializing_if = "Option::is_none")]
    pub vxlan_mtu: Option<u32>,
    /// MTU of the IPv6 VXLAN device (0: detect).
    #[serde(
        default,
        rename = "vxlanMTUV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_mtu_v6: Option<u32>,
    /// UDP port of VXLAN (default 4789).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<u16>,
    /// VXLAN network identifier (default 4096).
    #[serde(default, rename = "vxlanVNI", skip_serializing_if = "Option::is_none")]
    pub vxlan_vni: Option<u32>,
    /// Traffic from workloads to their host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint_to_host_action: Option<EndpointToHostAction>,
    /// nftables or iptables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_mode: Option<NftablesMode>,
    /// How often routes are re-read and repaired (e.g. `90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_refresh_interval: Option<String>,
    /// How often packet-filter state is re-read and repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_refresh_interval: Option<String>,
    /// Route protocol number on Brindle's routes (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_route_protocol: Option<u8>,
    /// Prefix of the host side of workload veths (default `brd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_prefix: Option<String>,
    /// Source address for NAT outgoing (default: masquerade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing_address: Option<String>,
    /// Serve health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_enabled: Option<bool>,
    /// Port of the health endpoint (default 9099).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u16>,
    /// Serve Prometheus metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_enabled: Option<bool>,
    /// Port of the metrics endpoint (default 9091).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_port: Option<u16>,
    /// Inbound host ports never blocked by host endpoint policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_inbound_host_ports: Option<Vec<ProtoPort>>,
    /// Outbound host ports never blocked by host endpoint policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_outbound_host_ports: Option<Vec<ProtoPort>>,
}

impl Validate for FelixConfiguration {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name != "default" && !name.starts_with("node.") {
            c.push("metadata.name", "must be 'default' or 'node.<node name>'");
        }
        for (field, mtu) in [
            ("spec.ipipMTU", s.ipip_mtu),
            ("spec.vxlanMTU", s.vxlan_mtu),
            ("spec.vxlanMTUV6", s.vxlan_mtu_v6),
        ] {
            if let Some(m) = mtu
                && m != 0
                && !(576..=65535).contains(&m)
            {
                c.push(field, format!("{m} is not 0 (detect) or 576-65535"));
            }
        }
        if let Some(v) = s.vxlan_mtu_v6
            && v != 0
            && v < 1280
        {
            c.push(
                "spec.vxlanMTUV6",
                format!("{v} is below IPv6's minimum MTU of 1280"),
            );
        }
        if s.vxlan_port == Some(0) {
            c.push("spec.vxlanPort", "must be 1-65535");
        }
        if let Some(v) = s.vxlan_vni
            && !(1..=16_777_215).contains(&v)
        {
            c.push("spec.vxlanVNI", format!("{v} is outside 1-16777215"));
        }
        for (field, d) in [
            ("spec.routeRefreshInterval", &s.route_refresh_interval),
            ("spec.iptablesRefreshInterval", &s.iptables_refresh_interval),
        ] {
            if let Some(d) = d {
                c.duration(field, d);
            }
        }
        if let Some(p) = &s.interface_prefix
            && (p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_lowercase()))
        {
            c.push("spec.interfacePrefix", "1-6 lowercase letters");
        }
        if let Some(a) = &s.nat_outgoing_address {
            c.ip("spec.natOutgoingAddress", a);
        }
        if s.device_route_protocol == Some(0) {
            c.push("spec.deviceRouteProtocol", "0 (unspec) cannot mark routes");
        }
        for (field, list) in [
            (
                "spec.failsafeInboundHostPorts",
                &s.failsafe_inbound_host_ports,
            ),
            (
                "spec.failsafeOutboundHostPorts",
                &s.failsafe_outbound_host_ports,
            ),
        ] {
            for (i, pp) in list.iter().flatten().enumerate() {
                let p = at(field, i);
                if !pp.protocol.has_ports() {
                    c.push(format!("{p}.protocol"), "must be TCP, UDP or SCTP");
                }
                if let Some(n) = &pp.net {
                    c.net(&format!("{p}.net"), n);
                }
            }
        }
    }
}
