//! Conversion of Kubernetes `networking.k8s.io/v1` NetworkPolicy into Brindle's NetworkPolicy,
//! with Calico's semantics (one rule per peer and protocol; named `knp.default.<name>`, order
//! 1000). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1 as knet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::ObjectMeta;

use crate::common::{Port, Protocol};
use crate::policy::{Action, EntityRule, NetworkPolicy, NetworkPolicySpec, PolicyType, Rule};
use crate::validate::{FieldError, at};

/// The order Kubernetes policies get (Calico's choice: after most admin policies).
pub const K8S_POLICY_ORDER: f64 = 1000.0;

/// Quotes a selector value in the canonical way.
fn quote(v: &str) -> String {
    if v.contains('"') {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

/// Translates a Kubernetes label selector into the selector language. An empty selector
/// selects everything.
pub fn label_selector_to_string(sel: &LabelSelector, path: &str) -> Result<String, FieldError> {
    let mut terms: Vec<String> = Vec::new();
    let labels: BTreeMap<_, _> = sel.match_labels.clone().unwrap_or_default();
    for (k, v) in &labels {
        terms.push(format!("{k} == {}", quote(v)));
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let p = at(&format!("{path}.matchExpressions"), i);
        let values = || {
            let mut vs: Vec<String> = e.values.iter().flatten().map(|v| quote(v)).collect();
            vs.sort();
            vs.dedup();
            format!("{{{}}}", vs.join(", "))
        };
        let term = match e.operator.as_str() {
            "In" => format!("{} in {}", e.key, values()),
            "NotIn" => format!("{} not in {}", e.key, values()),
            "Exists" => format!("has({})", e.key),
            "DoesNotExist" => format!("!has({})", e.key),
            other => {
                return Err(FieldError {
                    path: format!("{p}.operator"),
                    reason: format!("'{other}' is not In, NotIn, Exists or DoesNotExist"),
                });
            }
        };
        terms.push(term);
    }
    Ok(if terms.is_empty() {
        "all()".to_string()
    } else {
        terms.join(" && ")
    })
}

/// Converts a Kubernetes NetworkPolicy. Errors name the field in the Kubernetes object.
pub fn from_k8s_network_policy(np: &knet::NetworkPolicy) -> Result<NetworkPolicy, Vec<FieldError>> {
    let mut errors = Vec::new();
    let spec = np.spec.clone().unwrap_or_default();
    let selector = match &spec.pod_selector {
        Some(s) => label_selector_to_string(s, "spec.podSelector")
            .map_err(|e| errors.push(e))
            .ok(),
        None => Some("all()".to_string()),
    };
    let mut ingress = Vec::new();
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        let p = at("spec.ingress", i);
        match convert_rule(r.from.as_deref(), r.ports.as_deref(), &p, "from", false) {
            Ok(rules) => ingress.extend(rules),
            Err(e) => errors.extend(e),
        }
    }
    let mut egress = Vec::new();
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        let p = at("spec.egress", i);
        match convert_rule(r.to.as_deref(), r.ports.as_deref(), &p, "to", true) {
            Ok(rules) => egress.extend(rules),
            Err(e) => errors.extend(e),
        }
    }
    let mut types = Vec::new();
    match &spec.policy_types {
        Some(ts) => {
            for (i, t) in ts.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => types.push(PolicyType::Ingress),
                    "Egress" => types.push(PolicyType::Egress),
                    other => errors.push(FieldError {
                        path: at("spec.policyTypes", i),
                        reason: format!("'{other}' is not Ingress or Egress"),
                    }),
                }
            }
        }
        None => {
            types.push(PolicyType::Ingress);
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push(PolicyType::Egress);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let name = np.metadata.name.clone().unwrap_or_default();
    let mut metadata = ObjectMeta {
        name: Some(format!("knp.default.{name}")),
        namespace: np.metadata.namespace.clone(),
        labels: np.metadata.labels.clone(),
        ..ObjectMeta::default()
    };
    if metadata.namespace.is_none() {
        metadata.namespace = Some("default".to_string());
    }
    Ok(NetworkPolicy {
        metadata,
        spec: NetworkPolicySpec {
            tier: None,
            order: Some(K8S_POLICY_ORDER),
            selector,
            types,
            // A policy type with no rules denies that direction: keep the rule list empty.
            ingress,
            egress,
            service_account_selector: None,
            performance_hints: None,
        },
    })
}

/// One Kubernetes rule becomes one Brindle rule per (peer, protocol).
fn convert_rule(
    peers: Option<&[knet::NetworkPolicyPeer]>,
    ports: Option<&[knet::NetworkPolicyPort]>,
    path: &str,
    peer_field: &str,
    egress: bool,
) -> Result<Vec<Rule>, Vec<FieldError>> {
    let mut errors = Vec::new();
    // Group ports by protocol (Calico renders one rule per protocol).
    let mut by_proto: BTreeMap<Protocol, Vec<Port>> = BTreeMap::new();
    let mut any_port_for: Vec<Protocol> = Vec::new();
    for (i, p) in ports.unwrap_or_default().iter().enumerate() {
        let pp = at(&format!("{path}.ports"), i);
        let proto = match Protocol::parse(p.protocol.as_deref().unwrap_or("TCP")) {
            Ok(pr) => pr,
            Err(e) => {
                errors.push(FieldError {
                    path: format!("{pp}.protocol"),
                    reason: e,
                });
                continue;
            }
        };
        let port = match (&p.port, p.end_port) {
            (None, _) => {
                any_port_for.push(proto);
                continue;
            }
            (Some(IntOrString::Int(n)), end) => {
                let first = u16::try_from(*n).ok();
                let last = end.map(u16::try_from).transpose().ok().flatten().or(first);
                match (first, last) {
                    (Some(first), Some(last)) if first <= last => Port::Range { first, last },
                    _ => {
                        errors.push(FieldError {
                            path: format!("{pp}.port"),
                            reason: format!("port {n} / endPort {end:?} is not a valid range"),
                        });
                        continue;
                    }
                }
            }
            (Some(IntOrString::String(s)), _) => match Port::parse(s) {
                Ok(port) => port,
                Err(e) => {
                    errors.push(FieldError {
                        path: format!("{pp}.port"),
                        reason: e,
                    });
                    continue;
                }
            },
        };
        by_proto.entry(proto).or_default().push(port);
    }
    let mut proto_groups: Vec<(Option<Protocol>, Vec<Port>)> = by_proto
        .into_iter()
        .map(|(p, ports)| (Some(p), ports))
        .collect();
    for p in any_port_for {
        proto_groups.retain(|(q, _)| q.as_ref() != Some(&p));
        proto_groups.push((Some(p), Vec::new()));
    }
    if proto_groups.is_empty() {
        proto_groups.push((None, Vec::new()));
    }

    let mut entities: Vec<EntityRule> = Vec::new();
    match peers {
        None | Some([]) => entities.push(EntityRule::default()),
        Some(peers) => {
            for (i, peer) in peers.iter().enumerate() {
                let pp = at(&format!("{path}.{peer_field}"), i);
                match convert_peer(peer, &pp) {
                    Ok(e) => entities.push(e),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rules = Vec::new();
    for peer in &entities {
        for (proto, ports) in &proto_groups {
            let mut rule = Rule::new(Action::Allow);
            rule.protocol = proto.clone();
            let mut dest = EntityRule {
                ports: ports.clone(),
                ..EntityRule::default()
            };
            if egress {
                dest.nets = peer.nets.clone();
                dest.not_nets = peer.not_nets.clone();
                dest.selector = peer.selector.clone();
                dest.namespace_selector = peer.namespace_selector.clone();
            } else {
                rule.source = peer.clone();
            }
            rule.destination = dest;
            rules.push(rule);
        }
    }
    Ok(rules)
}

fn convert_peer(peer: &knet::NetworkPolicyPeer, path: &str) -> Result<EntityRule, FieldError> {
    let mut e = EntityRule::default();
    if let Some(b) = &peer.ip_block {
        e.nets = vec![b.cidr.clone()];
        e.not_nets = b.except.clone().unwrap_or_default();
        return Ok(e);
    }
    if let Some(s) = &peer.pod_selector {
        e.selector = Some(label_selector_to_string(s, &format!("{path}.podSelector"))?);
    }
    if let Some(s) = &peer.namespace_selector {
        e.namespace_selector = Some(label_selector_to_string(
            s,
            &format!("{path}.namespaceSelector"),
        )?);
        if e.selector.is_none() {
            e.selector = Some("all()".to_string());
        }
    }
    Ok(e)
}
