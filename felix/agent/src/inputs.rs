//! Resources to the calculation's [`Inputs`]: WorkloadEndpoints, Profiles, Tiers, Calico and
//! (converted) Kubernetes policies, network sets, host endpoints, IP pools and the default
//! FelixConfiguration's failsafe ports.

use std::collections::BTreeMap;

use brindle_crds::Resource;
use brindle_crds::policy::{Action, PolicyType};

use crate::calc::{Endpoint, HostFlags, Inputs, Policy};

/// Types of a policy, inferred as Calico does when unset.
pub fn types_of(types: &[PolicyType], has_egress: bool) -> Vec<PolicyType> {
    if !types.is_empty() {
        return types.to_vec();
    }
    let mut t = vec![PolicyType::Ingress];
    if has_egress {
        t.push(PolicyType::Egress);
    }
    t
}

/// Builds the inputs from resources (WorkloadEndpoints, Profiles, Tiers, policies).
pub fn inputs_from<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Inputs {
    let mut inp = Inputs::default();
    let mut profile_labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut weps = Vec::new();
    for r in resources {
        match r {
            Resource::WorkloadEndpoint(w) => weps.push(w.clone()),
            Resource::Profile(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                profile_labels.insert(name.clone(), p.spec.labels_to_apply.clone());
                inp.profiles
                    .insert(name, (p.spec.ingress.clone(), p.spec.egress.clone()));
            }
            // Network sets are selected like endpoints that are on no node: their labels,
            // their nets as addresses. A global one has no namespace.
            Resource::NetworkSet(n) => {
                let ns = n
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                inp.endpoints
                    .push(net_set(n.metadata.labels.as_ref(), ns, &n.spec.nets));
            }
            Resource::GlobalNetworkSet(n) => {
                inp.endpoints.push(net_set(
                    n.metadata.labels.as_ref(),
                    String::new(),
                    &n.spec.nets,
                ));
            }
            Resource::IPPool(p) => {
                if let Ok(net) = p.spec.cidr.parse() {
                    inp.pools.push((net, p.spec.nat_outgoing));
                }
            }
            Resource::Tier(t) => {
                let name = t.metadata.name.clone().unwrap_or_default();
                let pass = t.spec.default_action == Some(Action::Pass);
                inp.tiers.insert(name, (t.spec.order, pass));
            }
            Resource::GlobalNetworkPolicy(p) => {
                let s = &p.spec;
                let tier = s.tier.clone().unwrap_or_else(|| "default".into());
                let name = p.metadata.name.clone().unwrap_or_default();
                inp.policies.push(Policy {
                    id: format!("{tier}/{name}"),
                    tier,
                    order: s.order,
                    namespace: None,
                    selector: with_sa_selector(&s.selector, &s.service_account_selector),
                    types: types_of(&s.types, !s.egress.is_empty()),
                    ingress: s.ingress.clone(),
                    egress: s.egress.clone(),
                    flags: HostFlags {
                        pre_dnat: s.pre_dnat,
                        do_not_track: s.do_not_track,
                        apply_on_forward: s.apply_on_forward,
                    },
                });
            }
            Resource::NetworkPolicy(p) => {
                let s = &p.spec;
                let tier = s.tier.clone().unwrap_or_else(|| "default".into());
                let name = p.metadata.name.clone().unwrap_or_default();
                let ns = p
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                inp.policies.push(Policy {
                    id: format!("{tier}/{ns}/{name}"),
                    tier,
                    order: s.order,
                    namespace: Some(ns),
                    selector: with_sa_selector(&s.selector, &s.service_account_selector),
                    types: types_of(&s.types, !s.egress.is_empty()),
                    ingress: s.ingress.clone(),
                    egress: s.egress.clone(),
                    flags: HostFlags::default(),
                });
            }
            Resource::HostEndpoint(h) => {
                inp.hosts.push(crate::host::HostEp::from_resource(h));
            }
            Resource::FelixConfiguration(f) if f.metadata.name.as_deref() == Some("default") => {
                inp.failsafe = crate::host::failsafe_of(&f.spec);
            }
            _ => {}
        }
    }
    for h in &inp.hosts {
        inp.endpoints.push(h.selectable());
    }
    for w in weps {
        let s = &w.spec;
        let mut labels = BTreeMap::new();
        for p in &s.profiles {
            if let Some(l) = profile_labels.get(p) {
                labels.extend(l.clone());
            }
        }
        labels.extend(w.metadata.labels.clone().unwrap_or_default());
        let namespace = w
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        labels
            .entry("projectcalico.org/namespace".into())
            .or_insert_with(|| namespace.clone());
        // The service account: its name, and its labels (as `pcsa.<key>`) from the profile
        // `ksa.<namespace>.<name>`, as Calico's controllers write them.
        if let Some(sa) = &s.service_account_name {
            labels.insert(SA_LABEL.into(), sa.clone());
            if let Some(l) = profile_labels.get(&format!("ksa.{namespace}.{sa}")) {
                labels.extend(l.clone());
            }
        }
        inp.endpoints.push(Endpoint {
            iface: s.interface_name.clone(),
            node: s.node.clone(),
            namespace,
            labels,
            ips: s
                .ip_networks
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            profiles: s.profiles.clone(),
            ports: s
                .ports
                .iter()
                .map(|p| (p.name.clone(), (p.protocol.number(), p.port)))
                .collect(),
        });
    }
    inp
}

/// A network set as the calculation sees it: an endpoint on no node, without interface.
fn net_set(
    labels: Option<&BTreeMap<String, String>>,
    namespace: String,
    nets: &[String],
) -> Endpoint {
    let mut labels = labels.cloned().unwrap_or_default();
    if !namespace.is_empty() {
        labels
            .entry("projectcalico.org/namespace".into())
            .or_insert_with(|| namespace.clone());
    }
    Endpoint {
        iface: String::new(),
        node: String::new(),
        namespace,
        labels,
        ips: nets.iter().filter_map(|n| n.parse().ok()).collect(),
        profiles: Vec::new(),
        ports: BTreeMap::new(),
    }
}

/// The label that carries an endpoint's service account name.
pub const SA_LABEL: &str = "projectcalico.org/serviceaccount";
/// The prefix of a service account's labels on its endpoints.
pub const SA_PREFIX: &str = "pcsa.";

/// A selector over service account labels, as one over endpoint labels.
pub fn sa_selector(sel: &str) -> Option<String> {
    brindle_selector::Selector::parse(sel)
        .ok()
        .map(|s| s.map_keys(&|k| format!("{SA_PREFIX}{k}")).to_string())
}

/// A policy's selector ANDed with its `serviceAccountSelector` (made to read `pcsa.*`).
fn with_sa_selector(sel: &Option<String>, sa: &Option<String>) -> Option<String> {
    let Some(sa) = sa.as_deref().filter(|s| !s.trim().is_empty()) else {
        return sel.clone();
    };
    // A service account selector that does not parse selects nothing.
    let sa = sa_selector(sa).unwrap_or_else(|| "!all()".into());
    Some(match sel.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => format!("({s}) && ({sa})"),
        None => sa,
    })
}
