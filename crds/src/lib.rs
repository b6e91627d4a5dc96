//! Brindle's resources: Rust types with serde and kube's `CustomResource` derive (group
//! `brindle.dev`, version `v1`), OpenAPI schemas from schemars, validation that names the field
//! path of every rejection, conversion from Calico's `projectcalico.org/v3` kinds and from
//! Kubernetes NetworkPolicy, and the reader for multi-document YAML/JSON manifests.
//!
//! Spec field names, meanings and defaults follow Calico's `projectcalico.org/v3` API so that
//! admins can bring their manifests. Pure: no I/O beyond what callers hand in.

pub mod bgp;
pub mod common;
pub mod convert;
pub mod document;
pub mod felix;
pub mod ipam;
pub mod ippool;
pub mod netset;
pub mod node;
pub mod policy;
pub mod validate;
pub mod workload;

use ipnetwork::IpNetwork;
use kube::CustomResourceExt;
use kube::core::ObjectMeta;
use serde::Serialize;

pub use bgp::{
    BGPConfiguration, BGPConfigurationSpec, BGPFilter, BGPFilterSpec, BGPPeer, BGPPeerSpec,
};
pub use common::{AsNumber, Port, Protocol};
pub use document::{DocumentError, SourceDocument, parse_documents, parse_resources};
pub use felix::{FelixConfiguration, FelixConfigurationSpec};
pub use ipam::{
    BlockAffinity, BlockAffinitySpec, IPAMBlock, IPAMBlockSpec, IPAMConfiguration,
    IPAMConfigurationSpec, IPAMHandle, IPAMHandleSpec, IPReservation, IPReservationSpec,
};
pub use ippool::{IPPool, IPPoolSpec};
pub use netset::{GlobalNetworkSet, GlobalNetworkSetSpec, NetworkSet, NetworkSetSpec};
pub use node::{Node, NodeSpec};
pub use policy::{
    GlobalNetworkPolicy, GlobalNetworkPolicySpec, HostEndpoint, HostEndpointSpec, NetworkPolicy,
    NetworkPolicySpec, Tier, TierSpec,
};
pub use validate::{FieldError, Validate, ValidationErrors};
pub use workload::{Profile, ProfileSpec, WorkloadEndpoint, WorkloadEndpointSpec};

/// Brindle's API group.
pub const GROUP: &str = "brindle.dev";
/// Brindle's API version.
pub const VERSION: &str = "v1";
/// `apiVersion` of Brindle's resources.
pub const API_VERSION: &str = "brindle.dev/v1";
/// `apiVersion` of Calico's resources, accepted on input.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";
/// `apiVersion` of Kubernetes NetworkPolicy, accepted on input.
pub const K8S_NETWORKING_API_VERSION: &str = "networking.k8s.io/v1";

/// True when two networks share at least one address.
pub fn nets_overlap(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a.contains(b.network()) || b.contains(a.network()))
}

macro_rules! resources {
    ($( $kind:ident => $ty:ty, $plural:literal, $namespaced:literal; )*) => {
        /// Every kind of resource Brindle stores.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $(
                #[doc = concat!("`", stringify!($kind), "`")]
                $kind,
            )*
        }

        impl Kind {
            /// All kinds, in a fixed order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            /// The kind's name as written in `kind:`.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$kind => stringify!($kind)),* }
            }

            /// The lower-case plural used in URLs and on the command line.
            pub fn plural(self) -> &'static str {
                match self { $(Kind::$kind => $plural),* }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn namespaced(self) -> bool {
                match self { $(Kind::$kind => $namespaced),* }
            }

            /// Finds a kind by its name, plural or singular, case-insensitively.
            pub fn parse(s: &str) -> Option<Kind> {
                let l = s.to_ascii_lowercase();
                Kind::ALL.iter().copied().find(|k| {
                    let name = k.name().to_ascii_lowercase();
                    l == name || l == k.plural() || l == format!("{name}s")
                })
            }

            /// The generated CustomResourceDefinition.
            pub fn crd(self) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
                match self { $(Kind::$kind => <$ty>::crd()),* }
            }
        }

        /// One resource of any kind.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Resource {
            $(
                #[doc = concat!("A `", stringify!($kind), "`.")]
                $kind($ty),
            )*
        }

        impl Resource {
            /// The resource's kind.
            pub fn kind(&self) -> Kind {
                match self { $(Resource::$kind(_) => Kind::$kind),* }
            }

            /// The resource's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self { $(Resource::$kind(r) => &r.metadata),* }
            }

            /// The resource's metadata, mutably.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Resource::$kind(r) => &mut r.metadata),* }
            }

            /// Checks the resource; every error names its field path.
            pub fn validate(&self) -> Result<(), ValidationErrors> {
                match self { $(Resource::$kind(r) => r.validate()),* }
            }

            /// The resource as a JSON value with `apiVersion` and `kind`.
            pub fn to_value(&self) -> serde_json::Value {
                let mut v = match self {
                    $(Resource::$kind(r) => serde_json::to_value(r),)*
                }.unwrap_or(serde_json::Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("apiVersion".into(), API_VERSION.into());
                    o.insert("kind".into(), self.kind().name().into());
                }
                v
            }

            /// Decodes a resource of `kind` from JSON (apiVersion/kind are not checked here),
            /// naming the field path of the first decoding error.
            pub fn from_value_of_kind(kind: Kind, v: serde_json::Value) -> Result<Resource, FieldError> {
                fn de<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, FieldError> {
                    serde_path_to_error::deserialize(v).map_err(|e| {
                        let path = e.path().to_string();
                        FieldError {
                            path: if path == "." { "(document)".to_string() } else { path },
                            reason: e.into_inner().to_string(),
                        }
                    })
                }
                Ok(match kind { $(Kind::$kind => Resource::$kind(de(v)?)),* })
            }
        }

        $(
            impl From<$ty> for Resource {
                fn from(r: $ty) -> Resource { Resource::$kind(r) }
            }
        )*
    };
}

resources! {
    IPPool => IPPool, "ippools", false;
    BGPPeer => BGPPeer, "bgppeers", false;
    BGPConfiguration => BGPConfiguration, "bgpconfigurations", false;
    BGPFilter => BGPFilter, "bgpfilters", false;
    Node => Node, "nodes", false;
    NetworkPolicy => NetworkPolicy, "networkpolicies", true;
    GlobalNetworkPolicy => GlobalNetworkPolicy, "globalnetworkpolicies", false;
    Tier => Tier, "tiers", false;
    HostEndpoint => HostEndpoint, "hostendpoints", false;
    IPAMBlock => IPAMBlock, "ipamblocks", false;
    BlockAffinity => BlockAffinity, "blockaffinities", false;
    IPAMHandle => IPAMHandle, "ipamhandles", false;
    IPReservation => IPReservation, "ipreservations", false;
    FelixConfiguration => FelixConfiguration, "felixconfigurations", false;
    IPAMConfiguration => IPAMConfiguration, "ipamconfigurations", false;
    WorkloadEndpoint => WorkloadEndpoint, "workloadendpoints", true;
    Profile => Profile, "profiles", false;
    NetworkSet => NetworkSet, "networksets", true;
    GlobalNetworkSet => GlobalNetworkSet, "globalnetworksets", false;
}

impl Resource {
    /// `metadata.name`, or "" when unset.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace` for namespaced kinds.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// `Kind/name` or `Kind/namespace/name`, as printed to users.
    pub fn display_name(&self) -> String {
        match self.namespace() {
            Some(ns) if self.kind().namespaced() => {
                format!("{}/{ns}/{}", self.kind().name(), self.name())
            }
            _ => format!("{}/{}", self.kind().name(), self.name()),
        }
    }
}

/// Every CRD as one multi-document YAML text, in [`Kind::ALL`] order (what `crdgen` writes).
pub fn crds_yaml() -> Result<String, String> {
    let mut out = String::from(
        "# Generated by `cargo run -p brindle-crds --bin crdgen`; do not edit by hand.\n",
    );
    for k in Kind::ALL {
        out.push_str("---\n");
        out.push_str(&to_yaml(&k.crd())?);
    }
    Ok(out)
}

/// Serialises a value as YAML.
pub fn to_yaml<T: Serialize>(v: &T) -> Result<String, String> {
    serde_saphyr::to_string(v).map_err(|e| e.to_string())
}
