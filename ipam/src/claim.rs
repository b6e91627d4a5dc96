//! Claiming a block for a node, written so that a crash between any two steps leaves state
//! that the next claim or `ipam check` repairs:
//!
//! 1. create `BlockAffinity <node>-<block>` in state `pending` (the name is per node, so an
//!    old pending affinity of ours is simply reused);
//! 2. create the `IPAMBlock` with `affinity: host:<node>` — if another node created it first,
//!    delete our pending affinity and report the block as taken;
//! 3. mark the affinity `confirmed`.
//!
//! A pending affinity whose block exists with our affinity is confirmed on sight
//! ([`node_blocks`]); one whose block does not exist is an orphan that `ipam check` reports and
//! garbage collection removes.

use brindle_crds::document::resource_from_value;
use brindle_crds::ipam::AffinityState;
use brindle_crds::{BlockAffinity, Resource};
use brindle_datastore::{Error as DsError, Key, Kind, retry_on_conflict};
use ipnetwork::IpNetwork;
use serde_json::json;

use crate::{Ipam, Result, affinity_name, block, block_name};

/// What became of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The block is now the node's.
    Claimed,
    /// Another node holds it.
    TakenByOther,
}

/// The `affinity` value of a node's blocks.
pub fn host_affinity(node: &str) -> String {
    format!("host:{node}")
}

/// Claims `cidr` for `node`.
pub async fn claim(ipam: &Ipam, node: &str, cidr: IpNetwork, strict: bool) -> Result<Claim> {
    let ds = ipam.datastore();
    let aff = resource_from_value(
        json!({"apiVersion": brindle_crds::API_VERSION, "kind": "BlockAffinity",
        "metadata": {"name": affinity_name(node, &cidr)},
        "spec": {"state": "pending", "node": node, "cidr": cidr.to_string()}}),
    )
    .map_err(|e| crate::Error::Invalid(format!("affinity for {node}: {e:?}")))?;
    match ds.create(&aff).await {
        Ok(_) | Err(DsError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let spec = block::new_block(cidr, Some(host_affinity(node)), strict);
    let mut value = json!({"apiVersion": brindle_crds::API_VERSION, "kind": "IPAMBlock",
        "metadata": {"name": block_name(&cidr)}});
    value["spec"] =
        serde_json::to_value(&spec).map_err(|e| crate::Error::Invalid(e.to_string()))?;
    let blk = resource_from_value(value)
        .map_err(|e| crate::Error::Invalid(format!("block {cidr}: {e:?}")))?;
    match ds.create(&blk).await {
        Ok(_) => {}
        Err(DsError::AlreadyExists { .. }) => {
            let mine = match ds.get(&Key::new(Kind::IPAMBlock, block_name(&cidr))).await {
                Ok(Resource::IPAMBlock(b)) => {
                    b.spec.affinity.as_deref() == Some(host_affinity(node).as_str())
                }
                _ => false,
            };
            if !mine {
                match ds
                    .delete(
                        &Key::new(Kind::BlockAffinity, affinity_name(node, &cidr)),
                        None,
                    )
                    .await
                {
                    Ok(()) | Err(DsError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(Claim::TakenByOther);
            }
        }
        Err(e) => return Err(e.into()),
    }
    confirm(ipam, node, &cidr).await?;
    tracing::info!(target: "ipam.claim", node, block = %cidr, "claimed block");
    Ok(Claim::Claimed)
}

/// Marks the node's affinity for `cidr` confirmed.
async fn confirm(ipam: &Ipam, node: &str, cidr: &IpNetwork) -> Result<()> {
    let ds = ipam.datastore();
    let key = Key::new(Kind::BlockAffinity, affinity_name(node, cidr));
    retry_on_conflict(ipam.retry_policy(), &key.to_string(), || async {
        match ds.get(&key).await? {
            Resource::BlockAffinity(mut a) if a.spec.state != AffinityState::Confirmed => {
                a.spec.state = AffinityState::Confirmed;
                ds.update(&Resource::BlockAffinity(a)).await.map(|_| ())
            }
            _ => Ok(()),
        }
    })
    .await?;
    Ok(())
}

/// The node's blocks (confirmed affinities, and pending ones whose block is the node's,
/// which are confirmed on the way), sorted.
pub async fn node_blocks(ipam: &Ipam, node: &str) -> Result<Vec<IpNetwork>> {
    let ds = ipam.datastore();
    let mut out = Vec::new();
    // Affinities are named `<node>-<block>`: read only this node's (and the few of nodes
    // whose names extend it, filtered below), not every node's.
    for r in ds
        .list_prefix(Kind::BlockAffinity, &format!("{node}-"))
        .await?
    {
        let Resource::BlockAffinity(BlockAffinity { spec, .. }) = r else {
            continue;
        };
        if spec.node != node || spec.deleted {
            continue;
        }
        let Ok(cidr) = spec.cidr.parse::<IpNetwork>() else {
            continue;
        };
        match spec.state {
            AffinityState::Confirmed => out.push(cidr),
            AffinityState::Pending => {
                let ours = matches!(ds.get(&Key::new(Kind::IPAMBlock, block_name(&cidr))).await,
                    Ok(Resource::IPAMBlock(b)) if b.spec.affinity.as_deref() == Some(host_affinity(node).as_str()));
                if ours {
                    confirm(ipam, node, &cidr).await?;
                    out.push(cidr);
                }
            }
            AffinityState::PendingDeletion => {}
        }
    }
    out.sort();
    Ok(out)
}
