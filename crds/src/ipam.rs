//! IPAM resources: IPAMBlock, BlockAffinity, IPAMHandle and IPReservation. Blocks follow
//! Calico's layout (an `allocations` array indexed by ordinal pointing into `attributes`, and
//! an `unallocated` free list) so the allocator can compare-and-swap one object per block.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Collector, Validate, at};

/// Who owns an allocation and why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationAttribute {
    /// The allocation handle (`<network>.<containerID>` for pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    /// Namespace, pod, node, container...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: BTreeMap<String, String>,
}

/// `IPAMBlock.spec`: one block of a pool and who holds each of its addresses.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "IPAMBlock",
    plural = "ipamblocks",
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"Affinity","type":"string","jsonPath":".spec.affinity"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPAMBlockSpec {
    /// The block's CIDR.
    pub cidr: String,
    /// `host:<node>` when a node holds the block's affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// The pool had strictAffinity when the block was claimed (no borrowing).
    #[serde(default)]
    pub strict_affinity: bool,
    /// Per ordinal: index into `attributes`, or null when free.
    pub allocations: Vec<Option<u32>>,
    /// Free ordinals, in the order they will be handed out.
    pub unallocated: Vec<u32>,
    /// Allocation attributes.
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    /// Being released; no new allocations.
    #[serde(default)]
    pub deleted: bool,
    /// Bumped on every allocation, for clients that cache the block.
    #[serde(default)]
    pub sequence_number: u64,
    /// Per allocated ordinal (as a decimal string), the block's sequence number when it was
    /// handed out: with the handle it identifies one allocation, so a release that was decided
    /// earlier never frees an address that has since been given to someone else.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
}

impl Validate for IPAMBlock {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        let s = &self.spec;
        let Some(net) = c.masked_cidr("spec.cidr", &s.cidr) else {
            return;
        };
        let host_bits = u32::from(if net.is_ipv4() { 32u8 } else { 128 }) - u32::from(net.prefix());
        if host_bits > 12 {
            c.push(
                "spec.cidr",
                format!(
                    "a block holds at most 4096 addresses, /{} is larger",
                    net.prefix()
                ),
            );
            return;
        }
        let size = 1usize << host_bits;
        if s.allocations.len() != size {
            c.push(
                "spec.allocations",
                format!(
                    "has {} entries, the block has {size} addresses",
                    s.allocations.len()
                ),
            );
        }
        let mut seen = vec![false; size];
        for (i, &o) in s.unallocated.iter().enumerate() {
            let p = at("spec.unallocated", i);
            match seen.get_mut(o as usize) {
                None => c.push(p, format!("ordinal {o} is outside the block")),
                Some(true) => c.push(p, format!("ordinal {o} is listed twice")),
                Some(flag) => {
                    *flag = true;
                    if s.allocations.get(o as usize).copied().flatten().is_some() {
                        c.push(p, format!("ordinal {o} is both free and allocated"));
                    }
                }
            }
        }
        for (i, a) in s.allocations.iter().enumerate() {
            match a {
                Some(idx) if *idx as usize >= s.attributes.len() => c.push(
                    at("spec.allocations", i),
                    format!(
                        "attribute index {idx} but only {} attributes",
                        s.attributes.len()
                    ),
                ),
                None if !seen.get(i).copied().unwrap_or(true) => c.push(
                    at("spec.allocations", i),
                    format!("ordinal {i} is neither allocated nor in unallocated"),
                ),
                _ => {}
            }
        }
        if let Some(a) = &s.affinity
            && !a.starts_with("host:")
        {
            c.push("spec.affinity", format!("'{a}' is not host:<node>"));
        }
    }
}

/// The state of a node's claim on a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    /// The node is claiming the block (the block may not exist yet).
    Pending,
    /// The block is the node's.
    Confirmed,
    /// The node is giving the block up.
    PendingDeletion,
}

/// `BlockAffinity.spec`: node N claims block B.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "BlockAffinity",
    plural = "blockaffinities",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinitySpec {
    /// Claim state.
    pub state: AffinityState,
    /// The node.
    pub node: String,
    /// The block.
    pub cidr: String,
    /// Marked for deletion.
    #[serde(default)]
    pub deleted: bool,
}

impl Validate for BlockAffinity {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        if self.spec.node.is_empty() {
            c.push("spec.node", "must not be empty");
        }
        c.masked_cidr("spec.cidr", &self.spec.cidr);
    }
}

/// `IPAMHandle.spec`: how many addresses a handle holds in which blocks.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "IPAMHandle",
    plural = "ipamhandles",
    printcolumn = r#"{"name":"Handle","type":"string","jsonPath":".spec.handleID"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPAMHandleSpec {
    /// The handle.
    #[serde(rename = "handleID")]
    pub handle_id: String,
    /// Block CIDR → number of addresses held there.
    #[serde(default)]
    pub block: BTreeMap<String, u32>,
    /// Being released.
    #[serde(default)]
    pub deleted: bool,
}

impl Validate for IPAMHandle {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        if self.spec.handle_id.is_empty() {
            c.push("spec.handleID", "must not be empty");
        }
        for cidr in self.spec.block.keys() {
            c.masked_cidr(&format!("spec.block[{cidr}]"), cidr);
        }
    }
}

/// `IPReservation.spec`: addresses IPAM never hands out.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "IPReservation",
    plural = "ipreservations"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPReservationSpec {
    /// Reserved CIDRs or addresses.
    #[serde(rename = "reservedCIDRs")]
    pub reserved_cidrs: Vec<String>,
}

impl Validate for IPReservation {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        if self.spec.reserved_cidrs.is_empty() {
            c.push("spec.reservedCIDRs", "at least one CIDR is required");
        }
        for (i, n) in self.spec.reserved_cidrs.iter().enumerate() {
            c.net(&at("spec.reservedCIDRs", i), n);
        }
    }
}

/// `IPAMConfiguration.spec` (the one named `default`): cluster-wide IPAM behaviour.
#[derive(
    CustomResource, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "brindle.dev",
    version = "v1",
    derive = "PartialEq",
    kind = "IPAMConfiguration",
    plural = "ipamconfigurations",
    printcolumn = r#"{"name":"StrictAffinity","type":"boolean","jsonPath":".spec.strictAffinity"}"#,
    printcolumn = r#"{"name":"MaxBlocksPerHost","type":"integer","jsonPath":".spec.maxBlocksPerHost"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPAMConfigurationSpec {
    /// Never borrow addresses from blocks affine to other nodes.
    #[serde(default)]
    pub strict_affinity: bool,
    /// Most blocks one node may claim; unset or 0 means unlimited (Brindle has no hidden cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_blocks_per_host: Option<u32>,
    /// Claim new blocks when the node's blocks are full (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_allocate_blocks: Option<bool>,
}

impl Validate for IPAMConfiguration {
    fn check(&self, c: &mut Collector) {
        c.metadata(&self.metadata);
        if self.metadata.name.as_deref() != Some("default") {
            c.push("metadata.name", "must be 'default'");
        }
    }
}
