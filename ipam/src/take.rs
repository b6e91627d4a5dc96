//! Taking addresses from one block for a handle.
//!
//! Where the datastore has multi-object transactions (memory, SQLite, etcd), the handle's
//! charge and the block's compare-and-swap are one commit: one read of the block and one
//! write in the common case, and no crash or timeout can leave one without the other. On the
//! Kubernetes API, which has none, the handle is charged first, then the block is swapped,
//! then any over-charge is given back (handle before block: a crash in between leaves an
//! over-count that release and GC repair, never an allocation no handle counts).

use std::net::IpAddr;
use std::sync::Mutex;

use brindle_crds::ipam::AllocationAttribute;
use brindle_crds::{IPAMBlock, IPAMHandle, Resource};
use brindle_datastore::{Error as DsError, Key, Kind, Op, retry_on_conflict};
use ipnetwork::IpNetwork;

use crate::allocator::Mode;
use crate::claim::host_affinity;
use crate::resolve::{self, Resend};
use crate::{Ipam, Result, attr, block, block_name, handle};

impl Ipam {
    /// Takes up to `n` addresses from the block `cidr` (affine to `node`, or not, per `mode`),
    /// avoiding `reserved`. Returns what it took (empty when the block is full or not usable).
    pub(crate) async fn allocate_in(
        &self,
        cidr: &IpNetwork,
        n: usize,
        attr: &AllocationAttribute,
        reserved: &[IpNetwork],
        node: &str,
        mode: Mode,
    ) -> Result<Vec<IpAddr>> {
        let key = Key::new(Kind::IPAMBlock, block_name(cidr));
        let usable = |b: &IPAMBlock| {
            let mine = b.spec.affinity.as_deref() == Some(host_affinity(node).as_str());
            !b.spec.deleted
                && (mode == Mode::Affine) == mine
                && b.spec.unallocated.iter().any(|o| {
                    !reserved
                        .iter()
                        .any(|r| r.contains(block::ordinal_addr(cidr, *o)))
                })
        };
        // Look before writing anything: a full block costs one read. The block read here
        // also serves the first compare-and-swap attempt.
        let first = match self.datastore().get(&key).await {
            Ok(Resource::IPAMBlock(b)) if usable(&b) => b,
            Ok(_) | Err(DsError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let now: u64 = attr
            .secondary
            .get(attr::TIMESTAMP)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let take = |b: &mut IPAMBlock| {
            block::allocate(&mut b.spec, cidr, n, attr, |ip| {
                reserved.iter().any(|r| r.contains(ip))
            })
        };
        let cas = Cas {
            ipam: self,
            key: &key,
            handle: attr.handle_id.as_deref().unwrap_or_default(),
            node,
            now,
            usable: &usable,
            take: &take,
        };
        if self.datastore().transactions() {
            cas.together(first).await
        } else {
            cas.handle_first(first, n).await
        }
    }
}

/// One block's compare-and-swap loop for one handle.
struct Cas<'a> {
    ipam: &'a Ipam,
    key: &'a Key,
    handle: &'a str,
    node: &'a str,
    now: u64,
    usable: &'a (dyn Fn(&IPAMBlock) -> bool + Sync),
    take: &'a (dyn Fn(&mut IPAMBlock) -> Vec<IpAddr> + Sync),
}

impl Cas<'_> {
    /// The block to try next: the one read already (first attempt), or a fresh read.
    async fn block(
        &self,
        pending: &Mutex<Option<IPAMBlock>>,
    ) -> Result<Option<IPAMBlock>, DsError> {
        let cached = pending.lock().ok().and_then(|mut p| p.take());
        match cached {
            Some(b) => Ok(Some(b)),
            None => match self.ipam.datastore().get(self.key).await {
                Ok(Resource::IPAMBlock(b)) => Ok(Some(b)),
                Ok(_) | Err(DsError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// The next attempt's allocation: the block as read, the block with the addresses taken,
    /// the block's sequence number before, and the addresses. None when the block is gone,
    /// not usable, or full.
    async fn attempt(
        &self,
        pending: &Mutex<Option<IPAMBlock>>,
    ) -> Result<Option<(IPAMBlock, IPAMBlock, u64, Vec<IpAddr>)>, DsError> {
        let Some(before) = self.block(pending).await? else {
            return Ok(None);
        };
        if !(self.usable)(&before) {
            return Ok(None);
        }
        let mut after = before.clone();
        let seq = after.spec.sequence_number;
        let ips = (self.take)(&mut after);
        Ok((!ips.is_empty()).then_some((before, after, seq, ips)))
    }

    /// Settles a write of `b` (which took `ips` at sequence `seq`) that failed ambiguously;
    /// see [`resolve::block_write`].
    async fn settle(
        &self,
        b: &IPAMBlock,
        ips: &[IpAddr],
        seq: u64,
        resend: Resend<'_>,
    ) -> Result<(), DsError> {
        resolve::block_write(self.ipam, self.key, b, ips, seq, self.handle, resend).await
    }

    /// Handle and block in one transaction.
    async fn together(&self, first: IPAMBlock) -> Result<Vec<IpAddr>> {
        let ds = self.ipam.datastore();
        let cidr = first.spec.cidr.clone();
        let hkey = handle::key(self.handle).to_string();
        let pending = Mutex::new(Some(first));
        // None: assume the handle is new (one per pod: the common case); Some: as last read.
        let known: Mutex<Option<IPAMHandle>> = Mutex::new(None);
        let taken = retry_on_conflict(self.ipam.retry_policy(), &self.key.to_string(), || async {
            let Some((before, b, seq, ips)) = self.attempt(&pending).await? else {
                return Ok(Vec::new());
            };
            let charge = ips.len() as u32;
            let handle_op = match known.lock().ok().and_then(|k| k.clone()) {
                None => Op::Create(handle::fresh(
                    self.handle,
                    &cidr,
                    charge,
                    self.node,
                    self.now,
                )?),
                Some(mut h) => {
                    *h.spec.block.entry(cidr.clone()).or_default() += charge;
                    h.spec.deleted = false;
                    Op::Update(Resource::IPAMHandle(h))
                }
            };
            let ops = [handle_op, Op::Update(Resource::IPAMBlock(b.clone()))];
            let sent = match ds.commit(&ops).await {
                Err(e) if e.is_ambiguous() => self.settle(&b, &ips, seq, Resend::Txn(&ops)).await,
                other => other.map(|_| ()),
            };
            match sent {
                Ok(()) => Ok(ips),
                // The handle exists already or moved: read it, and try again with the same
                // block (it did not change: the transaction wrote nothing).
                Err(DsError::AlreadyExists { key } | DsError::Conflict { key, .. })
                    if key == hkey =>
                {
                    let h = handle::get(self.ipam, self.handle)
                        .await
                        .map_err(|e| DsError::Internal(e.to_string()))?;
                    if let Ok(mut k) = known.lock() {
                        *k = h;
                    }
                    if let Ok(mut p) = pending.lock() {
                        *p = Some(before);
                    }
                    Err(DsError::Conflict {
                        key,
                        expected: 0,
                        actual: None,
                    })
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        Ok(taken)
    }

    /// Handle first, then the block, then any over-charge given back (no transactions).
    async fn handle_first(&self, first: IPAMBlock, n: usize) -> Result<Vec<IpAddr>> {
        let ds = self.ipam.datastore();
        let cidr = first.spec.cidr.clone();
        handle::add(self.ipam, self.handle, &cidr, n as u32, self.node, self.now).await?;
        let pending = Mutex::new(Some(first));
        let taken = retry_on_conflict(self.ipam.retry_policy(), &self.key.to_string(), || async {
            let Some((_, b, seq, ips)) = self.attempt(&pending).await? else {
                return Ok(Vec::new());
            };
            match ds.update(&Resource::IPAMBlock(b.clone())).await {
                Ok(_) => Ok(ips),
                Err(e) if e.is_ambiguous() => self
                    .settle(&b, &ips, seq, Resend::Block)
                    .await
                    .map(|()| ips),
                Err(e) => Err(e),
            }
        })
        .await;
        let taken = match taken {
            Ok(t) => t,
            Err(e) => {
                // Give the charge back only when the block write surely failed; if its outcome
                // is unknown the handle stays over-charged, which release and GC repair.
                if !e.is_ambiguous() {
                    handle::sub(self.ipam, self.handle, &cidr, n as u32).await?;
                }
                return Err(e.into());
            }
        };
        if taken.len() < n {
            handle::sub(self.ipam, self.handle, &cidr, (n - taken.len()) as u32).await?;
        }
        Ok(taken)
    }
}
