//! `ipam check` and garbage collection.
//!
//! Check reads every block, affinity and handle and reports: leaked allocations (a handle whose
//! workload is not live, or an allocation made for a node that no longer exists), orphaned
//! affinities, blocks claimed by missing nodes, handles whose counts disagree with the blocks,
//! and any address allocated twice.
//!
//! GC is two steps: [`Ipam::gc_plan`] decides what is due (leaks older than the grace period,
//! default 15 minutes; allocations of missing nodes too, at once only when asked), and
//! [`Ipam::gc_apply`] frees it. GC refuses to plan from a view it cannot trust: when the set of
//! live nodes comes from the datastore and no Node exists at all, nothing is freed. A live handle
//! is never leaked, whatever its node. Each address is freed only if, inside the block's
//! compare-and-swap, it still holds the handle and sequence number the check saw; orphaned
//! affinities are deleted only at the revision the check read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use brindle_crds::Resource;
use brindle_datastore::{Error as DsError, Key, Kind, Revision, revision_of};
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
    /// Free the allocations of missing nodes without waiting for the grace period.
    pub missing_nodes_now: bool,
}

/// One leaked allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The address.
    pub ip: IpAddr,
    /// The block holding it.
    pub block: IpNetwork,
    /// The block's sequence number when it was allocated (identifies the allocation).
    pub seq: Option<u64>,
    /// Its handle.
    pub handle: Option<String>,
    /// The node it was allocated for.
    pub node: Option<String>,
    /// Seconds since it was allocated.
    pub age_secs: u64,
    /// Why it counts as leaked.
    pub reason: String,
    /// Its node no longer exists.
    pub node_missing: bool,
}

/// An affinity that no longer stands for a block of a live node, at the revision it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The BlockAffinity's name.
    pub name: String,
    /// Its revision when the check read it.
    pub revision: Option<Revision>,
    /// Its node no longer exists.
    pub node_missing: bool,
    /// Addresses its block still holds (0 when the block does not exist).
    pub block_in_use: usize,
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Allocated addresses seen.
    pub allocations: usize,
    /// Leaked allocations.
    pub leaked: Vec<Leak>,
    /// Affinities that point at no block, at a block held by another node, or at a missing node.
    pub orphaned_affinities: Vec<Orphan>,
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

/// What GC would free, decided from one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Leaked allocations that are due.
    pub release: Vec<Leak>,
    /// Stale handles that are due to be rewritten to what the blocks hold.
    pub repair: Vec<StaleHandle>,
    /// The live nodes the plan was made against.
    pub nodes: BTreeSet<String>,
    /// Free missing nodes' allocations at once (copied from the live state).
    pub missing_nodes_now: bool,
    /// The grace period, in seconds.
    pub grace_secs: u64,
    /// Blocks of missing nodes (deleted once empty) and orphaned affinities, as checked.
    pub report: CheckReport,
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

    /// Decides what GC would free, without freeing anything. Refuses when the set of live
    /// nodes is unknown (taken from the datastore, which holds no Node at all while addresses
    /// are allocated): that view would call every allocation leaked.
    pub async fn gc_plan(&self, live: &LiveState, now: u64, grace: Duration) -> Result<GcPlan> {
        let nodes = self.live_nodes(live).await?;
        let report = self.check_against(live, &nodes, now).await?;
        if nodes.is_empty() && (report.allocations > 0 || !report.orphaned_affinities.is_empty()) {
            return Err(crate::Error::UnknownLiveState(
                "the datastore holds no Node objects, so every allocation would look like a \
                 missing node's; refusing to collect garbage (register the nodes, or name the \
                 live nodes explicitly)"
                    .into(),
            ));
        }
        let due_missing = |missing: bool| missing && live.missing_nodes_now;
        let release = report
            .leaked
            .iter()
            .filter(|l| l.age_secs >= grace.as_secs() || due_missing(l.node_missing))
            .cloned()
            .collect();
        let repair = report
            .stale_handles
            .iter()
            .filter(|st| {
                let gone = st.node.as_ref().is_some_and(|n| !nodes.contains(n));
                st.age_secs >= grace.as_secs() || due_missing(gone)
            })
            .cloned()
            .collect();
        Ok(GcPlan {
            release,
            repair,
            nodes,
            missing_nodes_now: live.missing_nodes_now,
            grace_secs: grace.as_secs(),
            report,
        })
    }

    /// Checks IPAM's consistency against what is alive. `now` is Unix seconds.
    pub async fn check(&self, live: &LiveState, now: u64) -> Result<CheckReport> {
        let nodes = self.live_nodes(live).await?;
        self.check_against(live, &nodes, now).await
    }

    async fn check_against(
        &self,
        live: &LiveState,
        nodes: &BTreeSet<String>,
        now: u64,
    ) -> Result<CheckReport> {
        let ds = self.datastore();
        let mut report = CheckReport::default();
        let mut holders: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        let mut actual: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut block_aff: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut block_used: BTreeMap<String, usize> = BTreeMap::new();
        for b in self.blocks().await? {
            let Ok(net) = b.spec.cidr.parse::<IpNetwork>() else {
                continue;
            };
            block_aff.insert(b.spec.cidr.clone(), b.spec.affinity.clone());
            block_used.insert(b.spec.cidr.clone(), block::in_use(&b.spec));
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
                let node_missing = node.as_ref().is_some_and(|n| !nodes.contains(n));
                let handle_live = match (&live.handles, &handle) {
                    (Some(l), Some(h)) => Some(l.contains(h)),
                    _ => None,
                };
                // A live workload's address is never a leak, whatever its node looks like.
                let reason = match (handle_live, node_missing) {
                    (Some(true), _) => None,
                    (_, true) => Some("its node no longer exists"),
                    (Some(false), false) => Some("no live workload has its handle"),
                    (None, false) => None,
                };
                if let Some(reason) = reason {
                    report.leaked.push(Leak {
                        ip,
                        block: net,
                        seq: block::allocation_id(&b.spec, &net, ip).and_then(|id| id.seq),
                        handle,
                        node,
                        age_secs,
                        reason: reason.to_string(),
                        node_missing,
                    });
                }
            }
        }
        report.duplicates = holders.into_iter().filter(|(_, v)| v.len() > 1).collect();
        for r in ds.list(Kind::BlockAffinity, None, None).await? {
            let revision = revision_of(&r);
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
                report.orphaned_affinities.push(Orphan {
                    name,
                    revision,
                    node_missing: !nodes.contains(&a.spec.node),
                    block_in_use: block_used.get(&a.spec.cidr).copied().unwrap_or(0),
                });
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

    /// Plans and applies GC in one go (see [`Ipam::gc_plan`] and [`Ipam::gc_apply`]).
    pub async fn gc(&self, live: &LiveState, now: u64, grace: Duration) -> Result<GcSummary> {
        let plan = self.gc_plan(live, now, grace).await?;
        self.gc_apply(&plan, live, now).await
    }

    /// Frees what a plan found due: each leaked address only if it still holds the same
    /// allocation; then rewrites the due stale handles, deletes the now-empty blocks of missing
    /// nodes, and deletes orphaned affinities at the revision the check read.
    pub async fn gc_apply(&self, plan: &GcPlan, live: &LiveState, now: u64) -> Result<GcSummary> {
        let mut summary = GcSummary::default();
        let ids: Vec<(IpNetwork, block::AllocationId)> = plan
            .release
            .iter()
            .map(|l| {
                let id = block::AllocationId {
                    ip: l.ip,
                    handle: l.handle.clone(),
                    seq: l.seq,
                };
                (l.block, id)
            })
            .collect();
        if !ids.is_empty() {
            summary.released = self.release_exact(&ids).await?;
            tracing::info!(target: "ipam.gc", released = summary.released.len(), planned = ids.len(), "freed leaked addresses");
        }
        // Stale handles: rewrite only those the plan found due, to what the blocks hold now.
        let report = self.check_against(live, &plan.nodes, now).await?;
        for st in &report.stale_handles {
            if plan.repair.iter().any(|p| p.handle == st.handle) {
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
                    match ds.delete(&key, revision_of(&r)).await {
                        Ok(()) => summary.blocks_released.push(cidr.clone()),
                        Err(DsError::NotFound { .. } | DsError::Conflict { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        // An orphan is safe to drop: its node is gone, its block is another node's, or it
        // confirms a block that does not exist. Deleted only if unchanged since it was read,
        // so a claim made meanwhile survives.
        for o in &report.orphaned_affinities {
            // A missing node's affinity stays while its block still holds addresses that are
            // within their grace period.
            if o.node_missing && o.block_in_use > 0 {
                continue;
            }
            let key = Key::new(Kind::BlockAffinity, o.name.clone());
            match ds.delete(&key, o.revision).await {
                Ok(()) => summary.affinities_removed.push(o.name.clone()),
                Err(DsError::NotFound { .. } | DsError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(summary)
    }
}
