//! Policy resources: NetworkPolicy (namespaced), GlobalNetworkPolicy, Tier and HostEndpoint,
//! with Calico's rule model (actions, entity rules, ports, protocols, ICMP matches).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Port, Protocol};
use crate::validate::{Collector, Validate, at, dns1123_subdomain};

/// The tier policies without a `tier` field belong to.
pub const DEFAULT_TIER: &str = "default";

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Action {
    /// Accept the packet.
    Allow,
    /// Drop the packet.
    Deny,
    /// Log the packet and continue with the next rule.
    Log,
    /// Skip the rest of this tier; continue with the next tier.
    Pass,
}

/// Traffic directions a policy applies to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum PolicyType {
    /// Traffic into the endpoint.
    Ingress,
    /// Traffic out of the endpoint.
    Egress,
}

/// An ICMP type/code match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpFields {
    /// ICMP type 0-254.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code 0-255 (requires a type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// Service accounts to match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountMatch {
    /// Service account names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// A selector over service account labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A Kubernetes Service to match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMatch {
    /// Service name.
    pub name: String,
    /// Service namespace (default: the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The source or destination of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    /// Match these CIDRs (or addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
    /// Match everything but these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<String>,
    /// Endpoints whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Endpoints whose labels do not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_selector: Option<String>,
    /// Endpoints in namespaces whose labels match (`global()`: non-namespaced endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Ports (TCP, UDP, SCTP, UDPLite only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Ports not matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<Port>,
    /// Endpoints running as these service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatch>,
    /// A Kubernetes Service's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceMatch>,
}

/// HTTP match (needs an L7 proxy; validated and stored, enforced only where one runs).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatch {
    /// HTTP methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Path matches (`exact` or `prefix`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<std::collections::BTreeMap<String, String>>,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// Match only IPv4 (4) or IPv6 (6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// The protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Any protocol but this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    /// ICMP type/code (protocol ICMP or ICMPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpFields>,
    /// Not this ICMP type/code.
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpFields>,
    /// Source match.
    #[serde(default, skip_serializing_if = "is_empty_entity")]
    pub source: EntityRule,
    /// Destination match.
    #[serde(default, skip_serializing_if = "is_empty_entity")]
    pub destination: EntityRule,
    /// HTTP match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpMatch>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

fn is_empty_entity(e: &EntityRule) -> bool {
    *e == EntityRule::default()
}

/// Rule annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleMetadata {
    /// Annotations.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl Rule {
    /// A rule with only an action.
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: EntityRule::default(),
            destination: EntityRule::default(),
            http: None,
            metadata: None,
        }
    }
}

/// `NetworkPolicy.spec` (namespaced).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "NetworkPolicy",
    plural = "networkpolicies",
    namespaced,
    printcolumn = r#"{"name":"Tier","type":"string","jsonPath":".spec.tier"}"#,
    printcolumn = r#"{"name":"Order","type":"number","jsonPath":".spec.order"}"#,
    printcolumn = r#"{"name":"Selector","type":"string","jsonPath":".spec.selector"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// The tier (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Lower orders apply first; policies without an order come last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoints the policy applies to (default `all()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Directions; inferred from the rules when empty (Ingress, plus Egress if any egress rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Endpoints running as matching service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<String>,
    /// Hints for the policy calculation (`AssumeNeededOnEveryNode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_hints: Option<Vec<String>>,
}

/// `GlobalNetworkPolicy.spec` (cluster-wide).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "GlobalNetworkPolicy",
    plural = "globalnetworkpolicies",
    printcolumn = r#"{"name":"Tier","type":"string","jsonPath":".spec.tier"}"#,
    printcolumn = r#"{"name":"Order","type":"number","jsonPath":".spec.order"}"#,
    printcolumn = r#"{"name":"Selector","type":"string","jsonPath":".spec.selector"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkPolicySpec {
    /// The tier (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Lower orders apply first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoints the policy applies to (default `all()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Namespaces whose endpoints the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Endpoints running as matching service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<String>,
    /// Directions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Apply before connection tracking (host endpoints; Allow/Deny only, no Log/Pass).
    #[serde(default)]
    pub do_not_track: bool,
    /// Apply before DNAT (host endpoints, ingress only).
    #[serde(default, rename = "preDNAT")]
    pub pre_dnat: bool,
    /// Also apply to traffic forwarded through host endpoints.
    #[serde(default)]
    pub apply_on_forward: bool,
}

/// `Tier.spec`: an ordered group of policies.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "Tier",
    plural = "tiers",
    printcolumn = r#"{"name":"Order","type":"number","jsonPath":".spec.order"}"#,
    printcolumn = r#"{"name":"Default","type":"string","jsonPath":".spec.defaultAction"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierSpec {
    /// Lower orders apply first; no order means last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// What happens to traffic no policy in the tier decides (Deny or Pass; default Deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<Action>,
}

/// A named port on a host endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPort {
    /// The name policy rules refer to.
    pub name: String,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The port number.
    pub port: u16,
}

/// `HostEndpoint.spec`: one of a node's interfaces, subject to policy.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "HostEndpoint",
    plural = "hostendpoints",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"Interface","type":"string","jsonPath":".spec.interfaceName"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostEndpointSpec {
    /// The node the interface is on.
    pub node: String,
    /// The interface (`*` for all of the node's interfaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Addresses expected on the interface (identifies it when no name is given).
    #[serde(default, rename = "expectedIPs", skip_serializing_if = "Vec::is_empty")]
    pub expected_ips: Vec<String>,
    /// Profiles whose labels and rules apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// Common checks of a rule list.
pub(crate) fn check_rules(c: &mut Collector, path: &str, rules: &[Rule], is_egress: bool) {
    for (i, r) in rules.iter().enumerate() {
        check_rule(c, &at(path, i), r, is_egress);
    }
}

fn check_rule(c: &mut Collector, p: &str, r: &Rule, _is_egress: bool) {
    if let Some(v) = r.ip_version
        && v != 4
        && v != 6
    {
        c.push(format!("{p}.ipVersion"), format!("{v} is neither 4 nor 6"));
    }
    let has_ports = r.protocol.as_ref().is_some_and(Protocol::has_ports);
    for (side, e) in [("source", &r.source), ("destination", &r.destination)] {
        let ep = format!("{p}.{side}");
        check_entity(c, &ep, e, r.ip_version);
        if (!e.ports.is_empty() || !e.not_ports.is_empty()) && !has_ports {
            let field = if e.ports.is_empty() {
                "notPorts"
            } else {
                "ports"
            };
            c.push(
                format!("{ep}.{field}"),
                "ports need protocol TCP, UDP, SCTP or UDPLite on the rule",
            );
        }
    }
    for (field, icmp) in [("icmp", &r.icmp), ("notICMP", &r.not_icmp)] {
        let Some(icmp) = icmp else { continue };
        let proto = r.protocol.as_ref().map(Protocol::number);
        let v6 = match proto {
            Some(1) => false,
            Some(58) => true,
            _ => {
                c.push(
                    format!("{p}.{field}"),
                    "needs protocol ICMP or ICMPv6 on the rule",
                );
                continue;
            }
        };
        if (v6 && r.ip_version == Some(4)) || (!v6 && r.ip_version == Some(6)) {
            c.push(format!("{p}.protocol"), "does not match ipVersion");
        }
        if icmp.icmp_type == Some(255) {
            c.push(format!("{p}.{field}.type"), "must be 0-254");
        }
        if icmp.code.is_some() && icmp.icmp_type.is_none() {
            c.push(format!("{p}.{field}.code"), "a code needs a type");
        }
    }
    if let (Some(a), Some(b)) = (&r.protocol, &r.not_protocol)
        && a == b
    {
        c.push(
            format!("{p}.notProtocol"),
            "equals protocol: the rule can never match",
        );
    }
    if let Some(h) = &r.http {
        for (i, m) in h.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                c.push(
                    at(&format!("{p}.http.methods"), i),
                    format!("'{m}' is not an HTTP method"),
                );
            }
        }
        for (i, m) in h.paths.iter().enumerate() {
            let ok = m.len() == 1 && m.keys().all(|k| k == "exact" || k == "prefix");
            if !ok {
                c.push(
                    at(&format!("{p}.http.paths"), i),
                    "each path match has one of exact or prefix",
                );
            }
        }
    }
}

fn check_entity(c: &mut Collector, p: &str, e: &EntityRule, ip_version: Option<u8>) {
    for (field, nets) in [("nets", &e.nets), ("notNets", &e.not_nets)] {
        for (i, n) in nets.iter().enumerate() {
            let path = at(&format!("{p}.{field}"), i);
            if let Some(net) = c.net(&path, n)
                && let Some(v) = ip_version
                && (net.is_ipv6() != (v == 6))
            {
                c.push(path, format!("'{n}' does not match ipVersion {v}"));
            }
        }
    }
    for (field, sel) in [
        ("selector", &e.selector),
        ("notSelector", &e.not_selector),
        ("namespaceSelector", &e.namespace_selector),
    ] {
        if let Some(s) = sel {
            c.selector(&format!("{p}.{field}"), s);
        }
    }
    if let Some(sa) = &e.service_accounts
        && let Some(s) = &sa.selector
    {
        c.selector(&format!("{p}.serviceAccounts.selector"), s);
    }
    if let Some(svc) = &e.services {
        if let Err(err) = dns1123_subdomain(&svc.name) {
            c.push(format!("{p}.services.name"), err);
        }
        if !e.nets.is_empty() || e.selector.is_some() || !e.ports.is_empty() {
            c.push(
                format!("{p}.services"),
                "cannot be combined with nets, selector or ports",
            );
        }
    }
}

fn check_order(c: &mut Collector, order: Option<f64>) {
    if let Some(o) = order
        && !o.is_finite()
    {
        c.push("spec.order", "must be a finite number");
    }
}

fn check_tier_name(c: &mut Collector, tier: &Option<String>, name: Option<&str>) {
    let tier = tier.as_deref().unwrap_or(DEFAULT_TIER);
    if let Err(e) = dns1123_subdomain(tier) {
        c.push("spec.tier", e);
    }
    // Calico's rule: a policy outside the default tier is named `<tier>.<name>`.
    if tier != DEFAULT_TIER
        && let Some(n) = name
        && !n.starts_with(&format!("{tier}."))
    {
        c.push(
            "metadata.name",
            format!("a policy in tier '{tier}' must be named '{tier}.<name>'"),
        );
    }
}

fn check_types(c: &mut Collector, types: &[PolicyType], ingress: &[Rule], egress: &[Rule]) {
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) {
            c.push(at("spec.types", i), format!("{t:?} is listed twice"));
        }
    }
    if !types.is_empty() {
        if !ingress.is_empty() && !types.contains(&PolicyType::Ingress) {
            c.push(
                "spec.ingress",
                "ingress rules given but types does not include Ingress",
            );
        }
        if !egress.is_empty() && !types.contains(&PolicyType::Egress) {
            c.push(
                "spec.egress",
                "egress rules given but types does not include Egress",
            );
        }
    }
}

/// The checks NetworkPolicy and GlobalNetworkPolicy share.
struct PolicyParts<'a> {
    meta: &'a kube::core::ObjectMeta,
    tier: &'a Option<String>,
    order: Option<f64>,
    selectors: &'a [(&'static str, &'a Option<String>)],
    types: &'a [PolicyType],
    ingress: &'a [Rule],
    egress: &'a [Rule],
}

fn check_policy(c: &mut Collector, p: PolicyParts<'_>) {
    c.metadata(p.meta);
    check_tier_name(c, p.tier, p.meta.name.as_deref());
    check_order(c, p.order);
    for (field, sel) in p.selectors {
        if let Some(sel) = sel {
            c.selector(field, sel);
        }
    }
    check_types(c, p.types, p.ingress, p.egress);
    check_rules(c, "spec.ingress", p.ingress, false);
    check_rules(c, "spec.egress", p.egress, true);
}

impl Validate for NetworkPolicy {
    fn check(&self, c: &mut Collector) {
        let s = &self.spec;
        check_policy(
            c,
            PolicyParts {
                meta: &self.metadata,
                tier: &s.tier,
                order: s.order,
                selectors: &[
                    ("spec.selector", &s.selector),
                    ("spec.serviceAccountSelector", &s.service_account_selector),
                ],
                types: &s.types,
                ingress: &s.ingress,
                egress: &s.egress,
            },
        );
    }
}

impl Validate for GlobalNetworkPolicy {
    fn check(&self, c: &mut Collector) {
        let s = &self.spec;
        check_policy(
            c,
            PolicyParts {
                meta: &self.metadata,
                tier: &s.tier,
                order: s.order,
                selectors: &[
                    ("spec.selector", &s.selector),
                    ("spec.namespaceSelector", &s.namespace_selector),
                    ("spec.serviceAccountSelector", &s.service_account_selector),
                ],
                types: &s.types,
                ingress: &s.ingress,
                egress: &s.egress,
            },
        );
        if s.do_not_track {
            if s.pre_dnat {
                c.push("spec.preDNAT", "cannot be combined with doNotTrack");
            }
            if !s.apply_on_forward {
                c.push("spec.applyOnForward", "must be true when doNotTrack is set");
            }
            for (field, rules) in [("spec.ingress", &s.ingress), ("spec.egress", &s.egress)] {
                for (i, r) in rules.iter().enumerate() {
                    if matches!(r.action, Action::Log | Action::Pass) {
                        c.push(
                            format!("{}.action", at(field, i)),
                            "doNotTrack policies allow only Allow and Deny",
                        );
                    }
                }
            }
        }
        if s.pre_dnat {
            if !s.egress.is_empty() {
                c.push("spec.egress", "preDNAT policies have ingress rules only");
            }
            if !s.apply_on_forward {
                c.push("spec.applyOnForward", "must be true when preDNAT is set");
            }
        }
    }
}

impl Validate for Tier {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        check_order(c, self.spec.order);
        if let Some(a) = self.spec.default_action
            && !matches!(a, Action::Deny | Action::Pass)
        {
            c.push("spec.defaultAction", format!("{a:?} is not Deny or Pass"));
        }
    }
}

impl Validate for HostEndpoint {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        if let Err(e) = dns1123_subdomain(&s.node) {
            c.push("spec.node", e);
        }
        match s.interface_name.as_deref() {
            None | Some("") if s.expected_ips.is_empty() => {
                c.push(
                    "spec.interfaceName",
                    "interfaceName or expectedIPs is required",
                );
            }
            Some(n) if n.len() > 15 => c.push("spec.interfaceName", "longer than 15 characters"),
            _ => {}
        }
        for (i, ip) in s.expected_ips.iter().enumerate() {
            c.ip(&at("spec.expectedIPs", i), ip);
        }
        for (i, port) in s.ports.iter().enumerate() {
            let p = at("spec.ports", i);
            if let Err(e) = Port::parse(&port.name).and_then(|n| {
                if matches!(n, Port::Named(_)) {
                    Ok(())
                } else {
                    Err("a name, not a number".into())
                }
            }) {
                c.push(format!("{p}.name"), e);
            }
            if !port.protocol.has_ports() {
                c.push(format!("{p}.protocol"), "must be TCP, UDP, SCTP or UDPLite");
            }
        }
    }
}
