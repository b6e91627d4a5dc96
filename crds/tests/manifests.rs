//! The checked-in CRD manifests must match the types: regenerate with
//! `cargo run -p brindle-crds --bin crdgen` when this fails.

use brindle_crds::{Kind, crds_yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

#[test]
fn checked_in_crds_are_current() {
    let want = crds_yaml().expect("render");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds.yaml");
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{path} is stale: run `cargo run -p brindle-crds --bin crdgen` and commit the result"
    );
}

#[test]
fn crds_round_trip_through_kubernetes_types() {
    let yaml = crds_yaml().unwrap();
    let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(docs.len(), Kind::ALL.len());
    for (crd, kind) in docs.iter().zip(Kind::ALL) {
        assert_eq!(crd.spec.group, "brindle.dev");
        assert_eq!(crd.spec.names.kind, kind.name());
        assert_eq!(crd.spec.names.plural, kind.plural());
        let scope = if kind.namespaced() {
            "Namespaced"
        } else {
            "Cluster"
        };
        assert_eq!(crd.spec.scope, scope, "{}", kind.name());
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1");
        assert!(v.served && v.storage);
        assert!(
            v.schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .is_some()
        );
    }
}

#[test]
fn ippool_has_printer_columns_and_int_or_string_fields() {
    let crd = Kind::IPPool.crd();
    let cols = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let names: Vec<_> = cols.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"CIDR") && names.contains(&"Block"),
        "{names:?}"
    );
    let peer = serde_json::to_value(Kind::BGPPeer.crd()).unwrap();
    let as_field = peer
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/asNumber")
        .expect("asNumber in schema");
    assert_eq!(as_field["x-kubernetes-int-or-string"], true, "{as_field}");
}
