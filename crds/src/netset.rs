//! Network sets: named, labelled lists of networks that policy rules select like endpoints.
//! NetworkSet is namespaced (selectable from policies of its namespace, or with a
//! `namespaceSelector`); GlobalNetworkSet is not (selectable from global policies, or with
//! `namespaceSelector: global()`). Calico's field names.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Collector, Validate, at};

/// `NetworkSet.spec`: networks selected by the set's labels.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "NetworkSet",
    plural = "networksets",
    namespaced
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSetSpec {
    /// Networks (CIDRs or addresses), IPv4 and IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
}

/// `GlobalNetworkSet.spec`: networks selected by the set's labels, cluster wide.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "GlobalNetworkSet",
    plural = "globalnetworksets"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkSetSpec {
    /// Networks (CIDRs or addresses), IPv4 and IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
}

fn check_nets(c: &mut Collector, nets: &[String]) {
    for (i, n) in nets.iter().enumerate() {
        c.net(&at("spec.nets", i), n);
    }
}

impl Validate for NetworkSet {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        check_nets(c, &self.spec.nets);
    }
}

impl Validate for GlobalNetworkSet {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        check_nets(c, &self.spec.nets);
    }
}

#[cfg(test)]
mod tests {
    use crate::document::parse_resources;

    #[test]
    fn a_bad_net_is_rejected_with_its_path() {
        let docs = parse_resources(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: trusted, labels: {role: trusted}}\nspec: {nets: [198.51.100.0/24, 'not a net']}\n",
        )
        .unwrap();
        let err = docs[0].result.as_ref().unwrap_err();
        assert!(err.iter().any(|e| e.path == "spec.nets[1]"), "{err:?}");
        let ok = parse_resources(
            "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: lab-nets, namespace: demo}\nspec: {nets: [198.51.100.0/24, 2001:db8::/64]}\n",
        )
        .unwrap();
        assert!(ok[0].result.is_ok(), "{:?}", ok[0].result);
    }
}
