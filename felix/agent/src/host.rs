//! Host endpoints: a node's own interfaces under policy, as Calico does it.
//!
//! - A HostEndpoint names an interface of a node (or `*`: all of its interfaces but
//!   workloads' and loopback) and carries labels and profiles. Only GlobalNetworkPolicies
//!   apply to host endpoints; their addresses (`expectedIPs`) are selectable by rules like
//!   endpoints without a namespace.
//! - Normal policies police traffic to the host through the interface (ingress) and from the
//!   host out of it (egress); with no policy and no profile rule allowing it, that traffic is
//!   dropped, except on the failsafe ports.
//! - `applyOnForward` policies also police traffic forwarded through the interface; when no
//!   such policy applies, forwarded traffic is not policed by the host endpoint.
//! - `preDNAT` policies (ingress) run before DNAT: Deny drops, Allow ends the stage; no match
//!   lets the packet on to normal processing. `doNotTrack` policies run before connection
//!   tracking: Allow exempts the packet from tracking and from later policy, Deny drops; no
//!   match goes on to normal processing.

use std::collections::BTreeMap;

use brindle_crds::felix::FelixConfigurationSpec;
use brindle_crds::policy::PolicyType;
use brindle_crds::{HostEndpoint, Protocol};
use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::calc::{Compiler, Endpoint, EndpointPlan, Plan, Policy, TierPlan, parse_selector};

/// The part of a chain name that names a host endpoint's interface (`all` for `*`).
pub(crate) fn chain_suffix(iface: &str) -> &str {
    if iface == "*" { "all" } else { iface }
}

/// A host endpoint as the calculation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEp {
    /// The node.
    pub node: String,
    /// The interface, `*` for all.
    pub iface: String,
    /// Labels (the endpoint's; profiles' labels are not applied to host endpoints).
    pub labels: BTreeMap<String, String>,
    /// Profiles.
    pub profiles: Vec<String>,
    /// Expected addresses.
    pub ips: Vec<IpNetwork>,
}

impl HostEp {
    /// From the resource. An endpoint without `interfaceName` gets an empty one here: the
    /// calculation finds the node's interface that holds one of its `expectedIPs`.
    pub fn from_resource(h: &HostEndpoint) -> HostEp {
        let s = &h.spec;
        HostEp {
            node: s.node.clone(),
            iface: s.interface_name.clone().unwrap_or_default(),
            labels: h.metadata.labels.clone().unwrap_or_default(),
            profiles: s.profiles.clone(),
            ips: s
                .expected_ips
                .iter()
                .filter_map(|i| i.parse().ok())
                .collect(),
        }
    }

    /// The endpoint rules select (no namespace, no node, no interface).
    pub fn selectable(&self) -> Endpoint {
        Endpoint {
            iface: String::new(),
            node: String::new(),
            namespace: String::new(),
            labels: self.labels.clone(),
            ips: self.ips.clone(),
            profiles: Vec::new(),
            ports: BTreeMap::new(),
        }
    }
}

/// Ports that host endpoint policy never blocks: (protocol number, port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failsafe {
    /// To the host.
    pub inbound: Vec<(u8, u16)>,
    /// From the host.
    pub outbound: Vec<(u8, u16)>,
}

const TCP: u8 = 6;
const UDP: u8 = 17;

impl Default for Failsafe {
    /// Calico's defaults: SSH, DHCP, BGP, etcd, Typha, the Kubernetes API.
    fn default() -> Failsafe {
        let common = [
            (TCP, 179),
            (TCP, 2379),
            (TCP, 2380),
            (TCP, 5473),
            (TCP, 6443),
            (TCP, 6666),
            (TCP, 6667),
        ];
        Failsafe {
            inbound: [(TCP, 22), (UDP, 68)].into_iter().chain(common).collect(),
            outbound: [(UDP, 53), (UDP, 67)].into_iter().chain(common).collect(),
        }
    }
}

/// The failsafe ports FelixConfiguration sets (a side it leaves unset keeps the default).
pub fn failsafe_of(spec: &FelixConfigurationSpec) -> Option<Failsafe> {
    if spec.failsafe_inbound_host_ports.is_none() && spec.failsafe_outbound_host_ports.is_none() {
        return None;
    }
    let d = Failsafe::default();
    let conv = |list: &Option<Vec<brindle_crds::felix::ProtoPort>>, default: Vec<(u8, u16)>| {
        list.as_ref().map_or(default, |l| {
            l.iter()
                .map(|p| {
                    let proto = match p.protocol {
                        Protocol::Udp => UDP,
                        Protocol::Sctp => 132,
                        _ => TCP,
                    };
                    (proto, p.port)
                })
                .collect()
        })
    };
    Some(Failsafe {
        inbound: conv(&spec.failsafe_inbound_host_ports, d.inbound),
        outbound: conv(&spec.failsafe_outbound_host_ports, d.outbound),
    })
}

/// One host endpoint's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// Traffic to (ingress) and from (egress) the host through the interface, with the
    /// endpoint's profiles.
    pub normal: EndpointPlan,
    /// Traffic forwarded in (ingress) or out (egress) through the interface, when an
    /// `applyOnForward` policy applies.
    pub forward: Option<EndpointPlan>,
    /// `preDNAT` policies (ingress).
    pub pre_dnat: Vec<TierPlan>,
    /// `doNotTrack` policies.
    pub untracked: EndpointPlan,
}

/// The plans of `node`'s host endpoints, compiling the policies and profiles they use into
/// `plan`.
pub(crate) fn plan_hosts(
    c: &mut Compiler,
    policies: &[&Policy],
    node: &str,
    plan: &mut Plan,
) -> BTreeMap<String, HostPlan> {
    let mut out = BTreeMap::new();
    let hosts: Vec<HostEp> = c
        .inp
        .hosts
        .iter()
        .filter(|h| h.node == node)
        .cloned()
        .collect();
    for mut h in hosts {
        if h.iface.is_empty() {
            // Identified by address: the local interface that has one of the expected IPs.
            let found = c
                .inp
                .interfaces
                .iter()
                .find(|(_, addrs)| addrs.iter().any(|a| h.ips.iter().any(|ip| ip.ip() == *a)));
            match found {
                Some((name, _)) => h.iface = name.clone(),
                None => {
                    c.notes.push(format!(
                        "a host endpoint of {node} with expectedIPs {:?}: no interface has one of them, so it applies nowhere",
                        h.ips
                    ));
                    continue;
                }
            }
        }
        let mut hp = HostPlan {
            normal: EndpointPlan {
                profiles: h.profiles.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut fwd = EndpointPlan::default();
        let mut any_forward = false;
        for p in policies.iter().filter(|p| p.namespace.is_none()) {
            if !parse_selector(p.selector.as_deref()).is_some_and(|s| s.matches(&h.labels)) {
                continue;
            }
            let ing = p.types.contains(&PolicyType::Ingress);
            let eg = p.types.contains(&PolicyType::Egress);
            let f = p.flags;
            let mut add = |list: &mut Vec<TierPlan>, on: bool| {
                if on {
                    c.add_to_tiers(list, p, &mut plan.policies);
                }
            };
            if f.pre_dnat {
                add(&mut hp.pre_dnat, ing);
            } else if f.do_not_track {
                add(&mut hp.untracked.ingress, ing);
                add(&mut hp.untracked.egress, eg);
            } else {
                add(&mut hp.normal.ingress, ing);
                add(&mut hp.normal.egress, eg);
                if f.apply_on_forward {
                    any_forward = true;
                    add(&mut fwd.ingress, ing);
                    add(&mut fwd.egress, eg);
                }
            }
        }
        for pr in &h.profiles {
            c.add_profile(pr, &mut plan.profiles);
        }
        hp.forward = any_forward.then_some(fwd);
        out.insert(h.iface.clone(), hp);
    }
    out
}
