//! `ipam check` and garbage collection.
//!
//! Check reads every block, affinity and handle and reports: leaked allocations (a handle whose
//! workload is not live, or an allocation made for a node that no longer exists), orphaned
//! affinities, blocks claimed by missing nodes, handles whose counts disagree with the blocks,
//! and any address allocated twice. GC frees leaks older than the grace period (default 15
//! minutes) and, at once, the allocations of nodes that are gone; then releases empty blocks of
//! missing nodes and their affinities.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use brindle_crds::Resource;
use brindle_datastore::{Error as DsError, Key, Kind};
use ipnetwork::IpNetwork;

use crate::{Ipam, Result, attr, block, block_name};

/// The default grace period before a leaked address is freed.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);

/// What is alive, as the caller knows it.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// Live nodes; None = the Node resources in the datastore.
    pub nodes: Option<BTreeSet<String>>,
    /// Live allocation handles (one per running workload); None = unknown, so no allocation
    /// is called leaked for lack of a workload.
    pub handles: Option<BTreeSet<String>>,
}

/// One leaked allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The address.
    pub ip: IpAddr,
    /// Its handle.
    pub handle: Option<String>,
    /// The node it was allocated for.
    pub node: Option<String>,
    /// Seconds since it was allocated.
    pub age_secs: u64,
    /// Why it counts as leaked.
    pub reason: String,
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Allocated addresses seen.
    pub allocations: usize,
    /// Leaked allocations.
    pub leaked: Vec<Leak>,
    /// Affinities that point at no block, at a block held by another node, or at a missing node.
    pub orphaned_affinities: Vec<String>,
    /// Blocks whose affinity names a node that does not exist.
    pub blocks_of_missing_nodes: Vec<String>,
    /// Handles whose recorded counts differ from the blocks.
    pub handle_mismatches: Vec<String>,
    /// Addresses allocated more than once, with the blocks holding them.
    pub duplicates: Vec<(IpAddr, Vec<String>)>,
    /// Handles that disagree with the blocks and are not live, with their age in seconds,
    /// their node, and what the blocks really hold (what GC rewrites them to).
    pub stale_handles: Vec<StaleHandle>,
}

/// A handle whose counts disagree with the blocks and whose workload is not live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleHandle {
    /// The handle.
    pub handle: String,
    /// Seconds since it was created.
    pub age_secs: u64,
    /// The node that created it.
    pub node: Option<String>,
    /// Block → addresses really held.
    pub actual: BTreeMap<String, u32>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.leaked.is_empty()
            && self.orphaned_affinities.is_empty()
            && self.blocks_of_missing_nodes.is_empty()
            && self.handle_mismatches.is_empty()
            && self.duplicates.is_empty()
            && self.stale_handles.is_empty()
    }
}

/// What GC did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcSummary {
    /// Addresses freed.
    pub released: Vec<IpAddr>,
    /// Affinities deleted.
    pub affinities_removed: Vec<String>,
    /// Empty blocks of missing nodes deleted.
    pub blocks_released: Vec<String>,
}

impl Ipam {
    async fn live_nodes(&self, live: &LiveState) -> Result<BTreeSet<String>> {
        if let Some(n) = &live.nodes {
            return Ok(n.clone());
        }
        Ok(self
            .datastore()
            .list(Kind::Node, None, None)
            .await?
            .iter()
            .map(|r| r.name().to_string())
            .collect())
    }

    /// Checks IPAM's consistency against what is alive. `now` is Unix seconds.
    pub async fn check(&self, live: &LiveState, now: u64) -> Result<CheckReport> {
        let nodes = self.live_nodes(live).await?;
        let ds = self.datastore();
        let mut report = CheckReport::default();
        let mut holders: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        let mut actual: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut block_aff: BTreeMap<String, Option<String>> = BTreeMap::new();
        for b in self.blocks().await? {
            let Ok(net) = b.spec.cidr.parse::<IpNetwork>() else {
                continue;
            };
            block_aff.insert(b.spec.cidr.clone(), b.spec.affinity.clone());
            if let Some(n) = b
                .spec
                .affinity
                .as_deref()
                .and_then(|a| a.strip_prefix("host:"))
                && !nodes.contains(n)
            {
                report.blocks_of_missing_nodes.push(b.spec.cidr.clone());
            }
            for (ip, a) in block::allocations(&b.spec, &net) {
                report.allocations += 1;
                holders.entry(ip).or_default().push(b.spec.cidr.clone());
                let handle = a.handle_id.clone();
                if let Some(h) = &handle {
                    *actual.entry((h.clone(), b.spec.cidr.clone())).or_default() += 1;
                }
                let node = a.secondary.get(attr::NODE).cloned();
                let born: u64 = a
                    .secondary
                    .get(attr::TIMESTAMP)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let age_secs = now.saturating_sub(born);
                let reason = if node.as_ref().is_some_and(|n| !nodes.contains(n)) {
                    Some("its node no longer exists".to_string())
                } else if let (Some(live_handles), Some(h)) = (&live.handles, &handle)
                    && !live_handles.contains(h)
                {
                    Some("no live workload has its handle".to_string())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    report.leaked.push(Leak {
                        ip,
                        handle,
                        node,
                        age_secs,
                        reason,
                    });
                }
            }
        }
        report.duplicates = holders.into_iter().filter(|(_, v)| v.len() > 1).collect();
        for r in ds.list(Kind::BlockAffinity, None, None).await? {
            let Resource::BlockAffinity(a) = r else {
                continue;
            };
            let name = a.metadata.name.clone().unwrap_or_default();
            let want = format!("host:{}", a.spec.node);
            let ok = nodes.contains(&a.spec.node)
                && match block_aff.get(&a.spec.cidr) {
                    Some(Some(holder)) => *holder == want,
                    // A pending claim of a live node may not have written its block yet.
                    None => a.spec.state == brindle_crds::ipam::AffinityState::Pending,
                    Some(None) => false,
                };
            if !ok {
                report.orphaned_affinities.push(name);
            }
        }
        for r in ds.list(Kind::IPAMHandle, None, None).await? {
            let Resource::IPAMHandle(h) = r else { continue };
            let hid = h.spec.handle_id.clone();
            let mut mismatch = false;
            let mut real_map = BTreeMap::new();
            for (cidr, n) in &h.spec.block {
                let real = actual.remove(&(hid.clone(), cidr.clone())).unwrap_or(0);
                if real > 0 {
                    real_map.insert(cidr.clone(), real);
                }
                if real != *n {
                    mismatch = true;
                    report.handle_mismatches.push(format!(
                        "{hid} records {n} in {cidr}, the block holds {real}"
                    ));
                }
            }
            let live_handle = live.handles.as_ref().is_none_or(|l| l.contains(&hid));
            if mismatch && !live_handle {
                let ann = h.metadata.annotations.clone().unwrap_or_default();
                let born: u64 = ann
                    .get(crate::handle::CREATED)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                report.stale_handles.push(StaleHandle {
                    handle: hid,
                    age_secs: now.saturating_sub(born),
                    node: ann.get(crate::handle::NODE).cloned(),
                    actual: real_map,
                });
            }
        }
        for ((h, cidr), n) in actual {
            report.handle_mismatches.push(format!(
                "{h} holds {n} in {cidr} but its handle does not record them"
            ));
        }
        Ok(report)
    }

    /// Frees leaks older than `grace` (at once for missing nodes), then deletes orphaned
    /// affinities of missing nodes and empty blocks of missing nodes.
    pub async fn gc(&self, live: &LiveState, now: u64, grace: Duration) -> Result<GcSummary> {
        let report = self.check(live, now).await?;
        let mut summary = GcSummary::default();
        let nodes = self.live_nodes(live).await?;
        let due: Vec<IpAddr> = report
            .leaked
            .iter()
            .filter(|l| {
                l.age_secs >= grace.as_secs() || l.node.as_ref().is_some_and(|n| !nodes.contains(n))
            })
            .map(|l| l.ip)
            .collect();
        if !due.is_empty() {
            summary.released = self.release_ips(&due).await?;
            tracing::info!(target: "ipam.gc", released = summary.released.len(), "freed leaked addresses");
        }
        // Look again now that the leaks are gone.
        let report = self.check(live, now).await?;
        // Handles over-charged by a crash mid-allocation: rewrite them to the truth.
        for st in &report.stale_handles {
            let node_gone = st.node.as_ref().is_some_and(|n| !nodes.contains(n));
            if st.age_secs >= grace.as_secs() || node_gone {
                crate::handle::repair(self, &st.handle, &st.actual).await?;
            }
        }
        let ds = self.datastore();
        for cidr in &report.blocks_of_missing_nodes {
            let Ok(net) = cidr.parse::<IpNetwork>() else {
                continue;
            };
            let key = Key::new(Kind::IPAMBlock, block_name(&net));
            if let Ok(r @ Resource::IPAMBlock(_)) = ds.get(&key).await {
                let Resource::IPAMBlock(b) = &r else { continue };
                if block::in_use(&b.spec) == 0 {
                    match ds.delete(&key, brindle_datastore::revision_of(&r)).await {
                        Ok(()) => summary.blocks_released.push(cidr.clone()),
                        Err(DsError::NotFound { .. } | DsError::Conflict { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        // Every orphan is safe to drop: its node is gone, its block is another node's, or it
        // confirms a block that does not exist (the node would claim a new one anyway).
        for name in &report.orphaned_affinities {
            match ds
                .delete(&Key::new(Kind::BlockAffinity, name.clone()), None)
                .await
            {
                Ok(()) => summary.affinities_removed.push(name.clone()),
                Err(DsError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(summary)
    }
}
