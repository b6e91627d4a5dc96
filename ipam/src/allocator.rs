//! The allocator over the datastore: auto-assignment (affine blocks, then a new block, then
//! borrowing), fixed addresses, and release by address or handle.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use brindle_crds::ipam::AllocationAttribute;
use brindle_crds::ippool::AllowedUse;
use brindle_crds::{IPAMBlock, IPPool, Resource};
use brindle_datastore::{Datastore, Error as DsError, Key, Kind, RetryPolicy, retry_on_conflict};
use ipnetwork::IpNetwork;

use crate::claim::{Claim, claim, host_affinity, node_blocks};
use crate::pools::{Candidate, eligible};
use crate::resolve::{self, Resend};
use crate::{Error, Result, attr, block, block_name, handle};

/// Cluster-wide IPAM settings (from the `default` IPAMConfiguration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// Never borrow from other nodes' blocks.
    pub strict_affinity: bool,
    /// Most blocks per node; None = unlimited.
    pub max_blocks_per_host: Option<u32>,
    /// Claim new blocks when the node's are full.
    pub auto_allocate_blocks: bool,
}

impl IpamConfig {
    /// The settings an IPAMConfiguration asks for.
    pub fn from_spec(spec: &brindle_crds::ipam::IPAMConfigurationSpec) -> IpamConfig {
        IpamConfig {
            strict_affinity: spec.strict_affinity,
            max_blocks_per_host: spec.max_blocks_per_host.filter(|n| *n > 0),
            auto_allocate_blocks: spec.auto_allocate_blocks.unwrap_or(true),
        }
    }
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            strict_affinity: false,
            max_blocks_per_host: None,
            auto_allocate_blocks: true,
        }
    }
}

/// An allocation request.
#[derive(Debug, Clone, Default)]
pub struct AssignArgs {
    /// The handle (`<network>.<containerID>` for pods).
    pub handle: String,
    /// The node asking.
    pub node: String,
    /// How many IPv4 addresses (0 or 1 for pods).
    pub num_v4: u32,
    /// How many IPv6 addresses.
    pub num_v6: u32,
    /// Pools to use for IPv4 (names or CIDRs; the `ipv4pools` annotation); empty = automatic.
    pub v4_pools: Vec<String>,
    /// Pools to use for IPv6.
    pub v6_pools: Vec<String>,
    /// Extra attributes (namespace, pod, container).
    pub attrs: BTreeMap<String, String>,
    /// Unix seconds now (time is passed in; recorded for the leak grace period).
    pub timestamp: u64,
    /// A node's tunnel address (pools that allow `Tunnel`), not a workload's.
    pub tunnel: bool,
}

/// What was handed out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assigned {
    /// IPv4 addresses.
    pub v4: Vec<IpAddr>,
    /// IPv6 addresses.
    pub v6: Vec<IpAddr>,
}

/// The allocator. Cheap to clone; every method is safe to call from any number of processes
/// on any number of nodes at once.
#[derive(Debug, Clone)]
pub struct Ipam {
    ds: Datastore,
    retry: RetryPolicy,
    /// Per node, the block that last had room: tried first next time, so a node with many
    /// full blocks does not read them all for every allocation. A cache only: correctness
    /// never depends on it.
    hints: std::sync::Arc<std::sync::Mutex<BTreeMap<String, IpNetwork>>>,
    /// Pools, reservations, configuration and node labels from watches ([`Ipam::with_cache`]).
    pub(crate) cache: Option<crate::cache::Feed>,
}

/// Which blocks an allocation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only a block affine to this node.
    Affine,
    /// Any block not affine to this node (borrowing).
    Borrow,
}

impl Ipam {
    /// An allocator over a datastore.
    pub fn new(ds: Datastore) -> Ipam {
        Ipam {
            ds,
            retry: RetryPolicy {
                max_attempts: 1000,
                ..RetryPolicy::default()
            },
            hints: Default::default(),
            cache: None,
        }
    }

    /// The datastore.
    pub fn datastore(&self) -> &Datastore {
        &self.ds
    }

    /// The retry policy every compare-and-swap uses.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The cluster's IPAM settings (defaults when no IPAMConfiguration exists).
    pub async fn config(&self) -> Result<IpamConfig> {
        if let Some(v) = self.view() {
            return Ok(v.config.clone());
        }
        match self
            .ds
            .get(&Key::new(Kind::IPAMConfiguration, "default"))
            .await
        {
            Ok(Resource::IPAMConfiguration(c)) => Ok(IpamConfig::from_spec(&c.spec)),
            Ok(_) | Err(DsError::NotFound { .. }) => Ok(IpamConfig::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// All pools.
    pub async fn pools(&self) -> Result<Vec<IPPool>> {
        if let Some(v) = self.view() {
            return Ok(v.pools.clone());
        }
        Ok(self
            .ds
            .list(Kind::IPPool, None, None)
            .await?
            .into_iter()
            .filter_map(|r| {
                if let Resource::IPPool(p) = r {
                    Some(p)
                } else {
                    None
                }
            })
            .collect())
    }

    /// Every reserved network (IPReservations).
    pub async fn reservations(&self) -> Result<Vec<IpNetwork>> {
        if let Some(v) = self.view() {
            return Ok(v.reserved.clone());
        }
        let mut out = Vec::new();
        for r in self.ds.list(Kind::IPReservation, None, None).await? {
            if let Resource::IPReservation(res) = r {
                out.extend(
                    res.spec
                        .reserved_cidrs
                        .iter()
                        .filter_map(|c| brindle_crds::validate::parse_net(c).ok()),
                );
            }
        }
        Ok(out)
    }

    /// The node's labels (from its Node resource; empty when it has none).
    pub async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>> {
        if let Some(v) = self.view() {
            return Ok(v.labels.get(node).cloned().unwrap_or_default());
        }
        match self.ds.get(&Key::new(Kind::Node, node)).await {
            Ok(r) => Ok(r.metadata().labels.clone().unwrap_or_default()),
            Err(DsError::NotFound { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// The blocks affine to `node`.
    pub async fn node_blocks(&self, node: &str) -> Result<Vec<IpNetwork>> {
        node_blocks(self, node).await
    }

    /// Hands out `num_v4` IPv4 and `num_v6` IPv6 addresses under one handle. Either every
    /// address requested is given, or none is (partial results are released before the error).
    pub async fn auto_assign(&self, args: &AssignArgs) -> Result<Assigned> {
        if args.handle.is_empty() || args.node.is_empty() {
            return Err(Error::Invalid("handle and node are required".into()));
        }
        let config = self.config().await?;
        let pools = self.pools().await?;
        let reserved = self.reservations().await?;
        let labels = self.node_labels(&args.node).await?;
        let mut out = Assigned::default();
        for (v4, n, requested) in [
            (true, args.num_v4, &args.v4_pools),
            (false, args.num_v6, &args.v6_pools),
        ] {
            if n == 0 {
                continue;
            }
            let use_ = if args.tunnel {
                AllowedUse::Tunnel
            } else {
                AllowedUse::Workload
            };
            let result = match eligible(&pools, v4, &labels, requested, use_) {
                Err(reason) => Err(Error::NoPool {
                    family: if v4 { 4 } else { 6 },
                    node: args.node.clone(),
                    reason,
                }),
                Ok(cands) => {
                    self.assign_family(args, &config, &cands, &reserved, n as usize, v4)
                        .await
                }
            };
            match result {
                Ok(ips) if v4 => out.v4 = ips,
                Ok(ips) => out.v6 = ips,
                Err(e) => {
                    // All or nothing: give back what the other family got.
                    let got: Vec<IpAddr> = out.v4.iter().chain(&out.v6).copied().collect();
                    if !got.is_empty() {
                        self.release_ips(&got).await?;
                    }
                    return Err(e);
                }
            }
        }
        tracing::debug!(target: "ipam.assign", handle = %args.handle, node = %args.node, v4 = ?out.v4, v6 = ?out.v6, "assigned");
        Ok(out)
    }

    fn attribute(args: &AssignArgs) -> AllocationAttribute {
        let mut secondary = args.attrs.clone();
        secondary.insert(attr::NODE.into(), args.node.clone());
        secondary.insert(attr::TIMESTAMP.into(), args.timestamp.to_string());
        AllocationAttribute {
            handle_id: Some(args.handle.clone()),
            secondary,
        }
    }

    async fn assign_family(
        &self,
        args: &AssignArgs,
        config: &IpamConfig,
        cands: &[Candidate],
        reserved: &[IpNetwork],
        n: usize,
        v4: bool,
    ) -> Result<Vec<IpAddr>> {
        let attr = Self::attribute(args);
        let mut got: Vec<IpAddr> = Vec::new();
        let in_pools = |c: &IpNetwork| cands.iter().any(|p| p.net.contains(c.network()));
        // 1. The node's own blocks: the one that last had room first, without listing the
        //    node's affinities when it still has room (allocate_in checks the block is ours).
        let hint = self
            .hints
            .lock()
            .ok()
            .and_then(|h| h.get(&args.node).copied())
            .filter(|h| in_pools(h));
        if let Some(h) = hint {
            got.extend(
                self.allocate_in(&h, n, &attr, reserved, &args.node, Mode::Affine)
                    .await?,
            );
        }
        let mut mine: Vec<IpNetwork> = Vec::new();
        if got.len() < n {
            mine = self
                .node_blocks(&args.node)
                .await?
                .into_iter()
                .filter(|c| in_pools(c))
                .collect();
            for b in mine.iter().filter(|b| Some(**b) != hint) {
                if got.len() >= n {
                    break;
                }
                let more = self
                    .allocate_in(b, n - got.len(), &attr, reserved, &args.node, Mode::Affine)
                    .await?;
                if !more.is_empty() {
                    self.remember(&args.node, *b);
                }
                got.extend(more);
            }
        }
        // 2. New blocks, while allowed.
        let mut limit_reason = None;
        let mut owned = mine.len() as u32;
        while got.len() < n {
            if !config.auto_allocate_blocks {
                limit_reason = Some("autoAllocateBlocks is off".to_string());
                break;
            }
            if let Some(max) = config.max_blocks_per_host
                && owned >= max
            {
                limit_reason = Some(format!("node holds maxBlocksPerHost={max} blocks"));
                break;
            }
            let Some(b) = self
                .claim_any(&args.node, cands, config.strict_affinity)
                .await?
            else {
                limit_reason = Some("no free block left in the pools".to_string());
                break;
            };
            owned += 1;
            self.remember(&args.node, b);
            got.extend(
                self.allocate_in(&b, n - got.len(), &attr, reserved, &args.node, Mode::Affine)
                    .await?,
            );
        }
        // 3. Borrow from other nodes' blocks.
        if got.len() < n && !config.strict_affinity {
            let mut others: Vec<IpNetwork> = self
                .blocks()
                .await?
                .into_iter()
                // The current strictAffinity setting decides, not the one a block was claimed
                // under (so turning it off takes effect for existing blocks too).
                .filter(|b| b.spec.affinity.as_deref() != Some(host_affinity(&args.node).as_str()))
                .filter(|b| block::in_use(&b.spec) < b.spec.allocations.len())
                .filter_map(|b| b.spec.cidr.parse().ok())
                .filter(|c| in_pools(c))
                .collect();
            others.sort_by_key(|c: &IpNetwork| block::stable_hash(&format!("{}{c}", args.node)));
            for b in &others {
                if got.len() >= n {
                    break;
                }
                got.extend(
                    self.allocate_in(b, n - got.len(), &attr, reserved, &args.node, Mode::Borrow)
                        .await?,
                );
            }
        }
        if got.len() < n {
            if !got.is_empty() {
                self.release_ips(&got).await?;
            }
            let mut reason = limit_reason.unwrap_or_else(|| "no free address".into());
            if config.strict_affinity {
                reason.push_str("; strictAffinity forbids borrowing from other nodes' blocks");
            } else {
                reason.push_str("; no other node's block has a free address");
            }
            return Err(Error::Exhausted {
                family: if v4 { 4 } else { 6 },
                pools: cands.iter().map(|c| c.name.clone()).collect(),
                node: args.node.clone(),
                reason,
            });
        }
        Ok(got)
    }

    fn remember(&self, node: &str, block: IpNetwork) {
        if let Ok(mut h) = self.hints.lock() {
            h.insert(node.to_string(), block);
        }
    }

    /// Every block.
    pub async fn blocks(&self) -> Result<Vec<IPAMBlock>> {
        Ok(self
            .ds
            .list(Kind::IPAMBlock, None, None)
            .await?
            .into_iter()
            .filter_map(|r| {
                if let Resource::IPAMBlock(b) = r {
                    Some(b)
                } else {
                    None
                }
            })
            .collect())
    }

    /// Claims the first free block, in the node's own order, of the first pool that has one.
    async fn claim_any(
        &self,
        node: &str,
        cands: &[Candidate],
        strict: bool,
    ) -> Result<Option<IpNetwork>> {
        let taken: BTreeSet<String> = self
            .blocks()
            .await?
            .into_iter()
            .map(|b| b.spec.cidr)
            .collect();
        for pool in cands {
            // Bounded: at most every taken block plus a few races per pool.
            let budget = taken.len() + 64;
            for cidr in block::node_block_order(pool.net, pool.block_size, node).take(budget) {
                if taken.contains(&cidr.to_string()) {
                    continue;
                }
                match claim(self, node, cidr, strict).await? {
                    Claim::Claimed => return Ok(Some(cidr)),
                    Claim::TakenByOther => continue,
                }
            }
        }
        Ok(None)
    }

    /// Assigns one specific address (the `ipAddrs` annotation). It must lie in a pool, not be
    /// reserved, and be free.
    pub async fn assign_ip(&self, ip: IpAddr, args: &AssignArgs) -> Result<()> {
        let cidr = Self::block_of(&self.pools().await?, ip).ok_or_else(|| Error::Address {
            ip,
            reason: "is not inside any IPPool".into(),
        })?;
        if self.reservations().await?.iter().any(|r| r.contains(ip)) {
            return Err(Error::Address {
                ip,
                reason: "is reserved by an IPReservation".into(),
            });
        }
        let attr = Self::attribute(args);
        let bname = cidr.to_string();
        handle::add(self, &args.handle, &bname, 1, &args.node, args.timestamp).await?;
        let key = Key::new(Kind::IPAMBlock, block_name(&cidr));
        if matches!(self.ds.get(&key).await, Err(DsError::NotFound { .. })) {
            let strict = self.config().await?.strict_affinity;
            claim(self, &args.node, cidr, strict).await?;
        }
        let ds = &self.ds;
        let res = retry_on_conflict(&self.retry, &key.to_string(), || async {
            let Resource::IPAMBlock(mut b) = ds.get(&key).await? else {
                return Err(DsError::Internal(format!("{key} is not a block")));
            };
            let seq = b.spec.sequence_number;
            if let Err(e) = block::allocate_specific(&mut b.spec, &cidr, ip, &attr) {
                return Ok(Err(e));
            }
            match ds.update(&Resource::IPAMBlock(b.clone())).await {
                Ok(_) => Ok(Ok(())),
                Err(e) if e.is_ambiguous() => {
                    resolve::block_write(self, &key, &b, &[ip], seq, &args.handle, Resend::Block)
                        .await
                        .map(Ok)
                }
                Err(e) => Err(e),
            }
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                handle::sub(self, &args.handle, &bname, 1).await?;
                Err(Error::Address {
                    ip,
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                if !e.is_ambiguous() {
                    handle::sub(self, &args.handle, &bname, 1).await?;
                }
                Err(e.into())
            }
        }
    }

    /// The block that holds `ip` under the current pools, if any.
    fn block_of(pools: &[IPPool], ip: IpAddr) -> Option<IpNetwork> {
        pools.iter().find_map(|p| {
            let net = p.spec.network()?;
            block::block_containing(&net, p.spec.effective_block_size(), ip)
        })
    }

    /// Releases addresses (idempotent: free or unknown ones are skipped). Returns those freed.
    /// Blocks are found among the blocks that exist, not recomputed from today's pools, so an
    /// address in a deleted pool, or in a pool whose block size changed, can still be released.
    pub async fn release_ips(&self, ips: &[IpAddr]) -> Result<Vec<IpAddr>> {
        let blocks: Vec<IpNetwork> = self
            .blocks()
            .await?
            .iter()
            .filter_map(|b| b.spec.cidr.parse().ok())
            .collect();
        let mut by_block: BTreeMap<IpNetwork, Vec<IpAddr>> = BTreeMap::new();
        for &ip in ips {
            if let Some(b) = blocks.iter().find(|b| b.contains(ip)) {
                by_block.entry(*b).or_default().push(ip);
            }
        }
        let mut freed = Vec::new();
        for (cidr, ips) in by_block {
            freed.extend(
                self.release_and_uncharge(&cidr, |spec, net| block::release(spec, net, &ips))
                    .await?,
            );
        }
        Ok(freed)
    }

    /// Releases allocations exactly as a reader saw them: each address is freed only if it still
    /// holds the same handle and sequence number, inside the same compare-and-swap, so an address
    /// handed to a new workload since then is never freed. Returns those freed.
    pub async fn release_exact(
        &self,
        ids: &[(IpNetwork, block::AllocationId)],
    ) -> Result<Vec<IpAddr>> {
        let mut by_block: BTreeMap<IpNetwork, Vec<block::AllocationId>> = BTreeMap::new();
        for (b, id) in ids {
            by_block.entry(*b).or_default().push(id.clone());
        }
        let mut freed = Vec::new();
        for (cidr, ids) in by_block {
            freed.extend(
                self.release_and_uncharge(&cidr, |spec, net| block::release_exact(spec, net, &ids))
                    .await?,
            );
        }
        Ok(freed)
    }

    /// Frees what `f` frees in one block, then takes the freed addresses off their handles.
    async fn release_and_uncharge<F>(&self, cidr: &IpNetwork, f: F) -> Result<Vec<IpAddr>>
    where
        F: Fn(&mut brindle_crds::IPAMBlockSpec, &IpNetwork) -> Vec<(IpAddr, Option<String>)>,
    {
        let done = self.release_in_block(cidr, f).await?;
        let mut per_handle: BTreeMap<String, u32> = BTreeMap::new();
        for h in done.iter().filter_map(|(_, h)| h.clone()) {
            *per_handle.entry(h).or_default() += 1;
        }
        for (h, n) in per_handle {
            handle::sub(self, &h, &cidr.to_string(), n).await?;
        }
        Ok(done.into_iter().map(|(ip, _)| ip).collect())
    }

    /// The addresses a handle holds, read from the blocks its handle records.
    pub async fn addresses_of(&self, handle_id: &str) -> Result<Vec<IpAddr>> {
        let Some(h) = handle::get(self, handle_id).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for cidr_s in h.spec.block.keys() {
            let Ok(cidr) = cidr_s.parse::<IpNetwork>() else {
                continue;
            };
            if let Ok(Resource::IPAMBlock(b)) = self
                .ds
                .get(&Key::new(Kind::IPAMBlock, block_name(&cidr)))
                .await
            {
                out.extend(
                    block::allocations(&b.spec, &cidr)
                        .filter(|(_, a)| a.handle_id.as_deref() == Some(handle_id))
                        .map(|(ip, _)| ip),
                );
            }
        }
        out.sort();
        Ok(out)
    }

    /// Releases everything a handle holds (idempotent: an unknown handle releases nothing).
    pub async fn release_by_handle(&self, handle_id: &str) -> Result<Vec<IpAddr>> {
        let Some(h) = handle::get(self, handle_id).await? else {
            return Ok(Vec::new());
        };
        let mut freed = Vec::new();
        for (cidr_s, n) in &h.spec.block {
            let Ok(cidr) = cidr_s.parse::<IpNetwork>() else {
                continue;
            };
            let done = self
                .release_in_block(&cidr, |spec, net| {
                    block::release_handle(spec, net, handle_id)
                        .into_iter()
                        .map(|ip| (ip, None))
                        .collect()
                })
                .await?;
            freed.extend(done.into_iter().map(|(ip, _)| ip));
            handle::sub(self, handle_id, cidr_s, *n).await?;
        }
        Ok(freed)
    }

    /// One compare-and-swap on a block that frees what `f` frees.
    pub(crate) async fn release_in_block<F>(
        &self,
        cidr: &IpNetwork,
        f: F,
    ) -> Result<Vec<(IpAddr, Option<String>)>>
    where
        F: Fn(&mut brindle_crds::IPAMBlockSpec, &IpNetwork) -> Vec<(IpAddr, Option<String>)>,
    {
        let key = Key::new(Kind::IPAMBlock, block_name(cidr));
        let ds = &self.ds;
        let f = &f;
        let key = &key;
        Ok(
            retry_on_conflict(&self.retry, &key.to_string(), || async move {
                let Resource::IPAMBlock(mut b) = (match ds.get(key).await {
                    Err(DsError::NotFound { .. }) => return Ok(Vec::new()),
                    other => other?,
                }) else {
                    return Ok(Vec::new());
                };
                let done = f(&mut b.spec, cidr);
                if done.is_empty() {
                    return Ok(done);
                }
                ds.update(&Resource::IPAMBlock(b)).await.map(|_| done)
            })
            .await?,
        )
    }
}
