//! Workload resources: WorkloadEndpoint (a pod's interface, written by the CNI plugin) and
//! Profile (labels and default rules for the endpoints that name it), with Calico's field
//! names.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{Rule, check_rules};
use crate::validate::{Collector, Validate, at, dns1123_subdomain};

/// A named port of a workload (`containerPort` with a name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadPort {
    /// The name policy rules refer to.
    pub name: String,
    /// TCP, UDP or SCTP.
    pub protocol: crate::Protocol,
    /// The port number.
    pub port: u16,
    /// The host port, if mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

/// `WorkloadEndpoint.spec`: one interface of one workload (pod).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "WorkloadEndpoint",
    plural = "workloadendpoints",
    namespaced,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"Pod","type":"string","jsonPath":".spec.pod"}"#,
    printcolumn = r#"{"name":"Interface","type":"string","jsonPath":".spec.interfaceName"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    /// `k8s`, or `cni` without Kubernetes.
    pub orchestrator: String,
    /// The workload (container id without Kubernetes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    /// The node the workload runs on.
    pub node: String,
    /// The container (sandbox) id.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    /// The pod's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// The interface inside the workload (`eth0`).
    pub endpoint: String,
    /// The service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The workload's addresses (`198.19.0.5/32`).
    #[serde(default, rename = "ipNetworks", skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<String>,
    /// Profiles whose labels and rules apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The host side of the veth.
    pub interface_name: String,
    /// The workload interface's MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WorkloadPort>,
}

impl Validate for WorkloadEndpoint {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        if let Err(e) = dns1123_subdomain(&s.node) {
            c.push("spec.node", e);
        }
        if s.orchestrator.is_empty() {
            c.push("spec.orchestrator", "required (k8s or cni)");
        }
        if s.endpoint.is_empty() {
            c.push(
                "spec.endpoint",
                "required (the interface inside the workload)",
            );
        }
        if s.interface_name.is_empty() || s.interface_name.len() > 15 {
            c.push("spec.interfaceName", "1 to 15 characters");
        }
        for (i, n) in s.ip_networks.iter().enumerate() {
            c.net(&at("spec.ipNetworks", i), n);
        }
        if let Some(m) = &s.mac
            && !crate::node::is_mac(m)
        {
            c.push("spec.mac", format!("'{m}' is not a MAC address"));
        }
    }
}

/// `Profile.spec`: labels and rules shared by the endpoints that name the profile.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "Profile",
    plural = "profiles"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSpec {
    /// Inbound rules (applied when no policy selects the endpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Outbound rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Labels added to every endpoint that names the profile.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels_to_apply: std::collections::BTreeMap<String, String>,
}

impl Validate for Profile {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        check_rules(c, "spec.ingress", &self.spec.ingress, false);
        check_rules(c, "spec.egress", &self.spec.egress, true);
    }
}

/// Calico's name of a workload endpoint: `<node>-<orchestrator>-<workload>-<endpoint>`, each
/// part with `-` doubled so the parts stay recoverable.
pub fn endpoint_name(node: &str, orchestrator: &str, workload: &str, endpoint: &str) -> String {
    [node, orchestrator, workload, endpoint]
        .iter()
        .map(|p| p.replace('-', "--"))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_as_calico() {
        assert_eq!(
            super::endpoint_name("node-1", "k8s", "nginx-5d4f", "eth0"),
            "node--1-k8s-nginx--5d4f-eth0"
        );
    }
}
