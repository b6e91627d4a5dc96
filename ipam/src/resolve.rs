//! Block writes whose outcome is unknown.
//!
//! A datastore call that times out may still commit: SQLite finishes the transaction the
//! caller stopped waiting for, etcd applies a proposal after the client's deadline. If the
//! allocator took such a failure at its word and gave the handle its charge back, a committed
//! allocation would be left with no handle counting it (breaking the handle-before-block
//! invariant), and a retried ADD would take a second address. So an ambiguous block write is
//! resolved before anything is undone:
//!
//! - re-read the block; if the addresses hold our handle with our sequence number, the write
//!   committed;
//! - if the block moved on (another revision) without them, our compare-and-swap can never
//!   land: the write definitely failed, reported as a conflict so the caller's retry loop
//!   tries again from the new block;
//! - if the block is still at the revision we wrote against, our write may be on its way:
//!   send the same compare-and-swap again. At most one of the two can land, since both expect
//!   the same revision; success settles it, a conflict sends us back to the re-read.
//!
//! When the datastore stays unreachable the error is returned still ambiguous, and the caller
//! must leave the handle charged (an over-count, which release and GC repair, is safe; an
//! under-count is not).

use std::net::IpAddr;

use brindle_crds::{IPAMBlock, Resource};
use brindle_datastore::{Error as DsError, Key, Op, Result as DsResult, revision_of};
use ipnetwork::IpNetwork;

use crate::{Ipam, block};

/// How many re-reads (and re-sends) before giving up and reporting the outcome as unknown.
const ATTEMPTS: u32 = 6;

/// True when every address in `ips` is held by `handle` with allocation sequence `seq`.
pub(crate) fn holds(b: &IPAMBlock, ips: &[IpAddr], seq: u64, handle: &str) -> bool {
    let Ok(net) = b.spec.cidr.parse::<IpNetwork>() else {
        return false;
    };
    ips.iter().all(|ip| {
        let Some(o) = block::addr_ordinal(&net, *ip) else {
            return false;
        };
        let owner = b
            .spec
            .allocations
            .get(o as usize)
            .copied()
            .flatten()
            .and_then(|i| b.spec.attributes.get(i as usize))
            .and_then(|a| a.handle_id.as_deref());
        owner == Some(handle)
            && b.spec.sequence_number_for_allocation.get(&o.to_string()) == Some(&seq)
    })
}

/// How the write is sent again while its block is unchanged.
#[derive(Clone, Copy)]
pub(crate) enum Resend<'a> {
    /// The block alone (the handle was charged before).
    Block,
    /// The transaction that charges the handle and writes the block together.
    Txn(&'a [Op]),
}

/// Settles a block write (`written`, which took `ips` for `handle` at sequence `seq`) that
/// failed ambiguously. Ok: it committed. Conflict: it did not and never will. Any other error
/// (ambiguous again): still unknown.
pub(crate) async fn block_write(
    ipam: &Ipam,
    key: &Key,
    written: &IPAMBlock,
    ips: &[IpAddr],
    seq: u64,
    handle: &str,
    resend: Resend<'_>,
) -> DsResult<()> {
    let ds = ipam.datastore();
    let base = revision_of(&Resource::IPAMBlock(written.clone()));
    let never = |actual| DsError::Conflict {
        key: key.to_string(),
        expected: base.unwrap_or(0),
        actual,
    };
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(ipam.retry_policy().delay(attempt)).await;
        }
        let now = match ds.get(key).await {
            Ok(Resource::IPAMBlock(b)) => b,
            // Gone (or replaced by something else): a compare-and-swap against it cannot land.
            Ok(_) | Err(DsError::NotFound { .. }) => return Err(never(None)),
            Err(e) if e.is_ambiguous() => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if holds(&now, ips, seq, handle) {
            tracing::info!(target: "ipam", %key, handle, "an ambiguous block write had committed");
            return Ok(());
        }
        let rev = revision_of(&Resource::IPAMBlock(now));
        if rev != base {
            tracing::info!(target: "ipam", %key, handle, "an ambiguous block write did not commit");
            return Err(never(rev));
        }
        let sent = match resend {
            Resend::Block => ds
                .update(&Resource::IPAMBlock(written.clone()))
                .await
                .map(|_| ()),
            Resend::Txn(ops) => ds.commit(ops).await.map(|_| ()),
        };
        match sent {
            Ok(()) => return Ok(()),
            // A precondition failed: the block (or the handle) moved meanwhile, perhaps by
            // our own first write landing late. The next read tells.
            Err(
                e @ (DsError::Conflict { .. }
                | DsError::AlreadyExists { .. }
                | DsError::NotFound { .. }),
            ) => last = Some(e),
            Err(e) if e.is_ambiguous() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    let e = last.unwrap_or_else(|| DsError::Unavailable {
        endpoint: ds.endpoint(),
        reason: "outcome of a block write unknown".into(),
    });
    // A conflict on the last re-send means the block moved: settled as not committed only
    // if a final read agrees, so report it as unknown rather than guess.
    Err(match e {
        DsError::Conflict { .. } | DsError::AlreadyExists { .. } | DsError::NotFound { .. } => {
            DsError::Unavailable {
                endpoint: ds.endpoint(),
                reason: format!("outcome of the write to {key} still unknown"),
            }
        }
        e => e,
    })
}
