//! IPAMHandle bookkeeping: how many addresses a handle holds in which block. The handle is
//! written before the block on allocation (and after it on release), so a crash in between
//! leaves a handle that over-counts, which release-by-handle repairs, never an allocation that
//! no handle can find.

use std::collections::BTreeMap;

use brindle_crds::document::resource_from_value;
use brindle_crds::{IPAMHandle, Resource};
use brindle_datastore::{Error as DsError, Key, Kind, retry_on_conflict};
use serde_json::json;

use crate::{Ipam, Result, handle_name};

/// The datastore key of a handle.
pub fn key(handle: &str) -> Key {
    Key::new(Kind::IPAMHandle, handle_name(handle))
}

/// Reads a handle; None when it does not exist.
pub async fn get(ipam: &Ipam, handle: &str) -> Result<Option<IPAMHandle>> {
    match ipam.datastore().get(&key(handle)).await {
        Ok(Resource::IPAMHandle(h)) => Ok(Some(h)),
        Ok(other) => Err(crate::Error::Invalid(format!(
            "{} is not a handle",
            other.display_name()
        ))),
        Err(DsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Annotation on a handle: Unix seconds when it was created (for the GC grace period).
pub const CREATED: &str = "brindle.dev/created";
/// Annotation on a handle: the node that created it.
pub const NODE: &str = "brindle.dev/node";

/// A new handle holding `n` addresses in `block`, created by `node` at `now` (Unix seconds).
pub fn fresh(
    handle: &str,
    block: &str,
    n: u32,
    node: &str,
    now: u64,
) -> std::result::Result<Resource, DsError> {
    resource_from_value(json!({"apiVersion": brindle_crds::API_VERSION,
        "kind": "IPAMHandle", "metadata": {"name": handle_name(handle),
            "annotations": {CREATED: now.to_string(), NODE: node}},
        "spec": {"handleID": handle, "block": {block: n}}}))
    .map_err(|e| DsError::Internal(format!("handle {handle}: {e:?}")))
}

/// Records `n` more addresses of `handle` in `block`; `node` and `now` (Unix seconds) are
/// recorded when the handle is created.
pub async fn add(
    ipam: &Ipam,
    handle: &str,
    block: &str,
    n: u32,
    node: &str,
    now: u64,
) -> Result<()> {
    let ds = ipam.datastore();
    let fresh = |n: u32| fresh(handle, block, n, node, now);
    // Most handles are new (one per pod): try creating first, saving a read.
    match ds.create(&fresh(n)?).await {
        Ok(_) => return Ok(()),
        Err(DsError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    retry_on_conflict(ipam.retry_policy(), &format!("handle {handle}"), || async {
        match ds.get(&key(handle)).await {
            Err(DsError::NotFound { .. }) => {
                let r = fresh(n)?;
                match ds.create(&r).await {
                    // Someone created it meanwhile: go round again and update it.
                    Err(DsError::AlreadyExists { key }) => Err(DsError::Conflict {
                        key,
                        expected: 0,
                        actual: None,
                    }),
                    other => other.map(|_| ()),
                }
            }
            Ok(Resource::IPAMHandle(mut h)) => {
                *h.spec.block.entry(block.to_string()).or_default() += n;
                h.spec.deleted = false;
                ds.update(&Resource::IPAMHandle(h)).await.map(|_| ())
            }
            Ok(other) => Err(DsError::Internal(format!(
                "{} is not a handle",
                other.display_name()
            ))),
            Err(e) => Err(e),
        }
    })
    .await?;
    Ok(())
}

/// Records that `n` addresses of `handle` in `block` were released; deletes the handle when it
/// holds nothing any more.
pub async fn sub(ipam: &Ipam, handle: &str, block: &str, n: u32) -> Result<()> {
    rewrite(ipam, handle, |counts| {
        let left = counts.get(block).copied().unwrap_or(0).saturating_sub(n);
        if left == 0 {
            counts.remove(block);
        } else {
            counts.insert(block.to_string(), left);
        }
    })
    .await
}

/// Rewrites a handle's counts to what the blocks really hold (`actual`), deleting it when it
/// holds nothing. Used by GC for handles left over-charged by a crash mid-allocation.
pub async fn repair(ipam: &Ipam, handle: &str, actual: &BTreeMap<String, u32>) -> Result<()> {
    rewrite(ipam, handle, |counts| *counts = actual.clone()).await
}

/// One compare-and-swap on a handle's block counts; a handle left empty is deleted, and a
/// handle that does not exist is left alone.
async fn rewrite(ipam: &Ipam, handle: &str, f: impl Fn(&mut BTreeMap<String, u32>)) -> Result<()> {
    let ds = ipam.datastore();
    retry_on_conflict(ipam.retry_policy(), &format!("handle {handle}"), || async {
        let mut h = match ds.get(&key(handle)).await {
            Err(DsError::NotFound { .. }) => return Ok(()),
            Ok(Resource::IPAMHandle(h)) => h,
            Ok(other) => {
                return Err(DsError::Internal(format!(
                    "{} is not a handle",
                    other.display_name()
                )));
            }
            Err(e) => return Err(e),
        };
        f(&mut h.spec.block);
        if h.spec.block.is_empty() {
            let rev = brindle_datastore::revision_of(&Resource::IPAMHandle(h.clone()));
            match ds.delete(&key(handle), rev).await {
                Err(DsError::NotFound { .. }) => Ok(()),
                other => other,
            }
        } else {
            ds.update(&Resource::IPAMHandle(h)).await.map(|_| ())
        }
    })
    .await?;
    Ok(())
}
