//! `brindlectl ipam show | check | release`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use brindle_datastore::Datastore;
use brindle_ipam::block;
use brindle_ipam::{Ipam, LiveState};
use comfy_table::{Table, presets};
use ipnetwork::IpNetwork;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    t
}

/// Pools with their utilisation, then nodes with their blocks.
pub async fn show(ds: &Datastore, out: &mut dyn Write) -> Result<bool> {
    let ipam = Ipam::new(ds.clone());
    let pools = ipam.pools().await?;
    let blocks = ipam.blocks().await?;
    let mut pt = table(&[
        "POOL",
        "CIDR",
        "BLOCK",
        "BLOCKS CLAIMED",
        "IN USE",
        "CAPACITY",
        "USED",
    ]);
    // node → (blocks, in use in own blocks, addresses it holds in others' blocks)
    let mut nodes: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for p in &pools {
        let Some(net) = p.spec.network() else {
            continue;
        };
        let bs = p.spec.effective_block_size();
        let mut claimed = 0usize;
        let mut used = 0usize;
        for b in &blocks {
            let Ok(bn) = b.spec.cidr.parse::<IpNetwork>() else {
                continue;
            };
            if !net.contains(bn.network()) {
                continue;
            }
            claimed += 1;
            used += block::in_use(&b.spec);
            let owner = b
                .spec
                .affinity
                .as_deref()
                .and_then(|a| a.strip_prefix("host:"))
                .unwrap_or("-")
                .to_string();
            let e = nodes.entry(owner.clone()).or_default();
            e.0 += 1;
            for (_, a) in block::allocations(&b.spec, &bn) {
                let holder = a
                    .secondary
                    .get(brindle_ipam::attr::NODE)
                    .cloned()
                    .unwrap_or_default();
                if holder == owner {
                    nodes.entry(owner.clone()).or_default().1 += 1;
                } else {
                    nodes.entry(holder).or_default().2 += 1;
                }
            }
        }
        let total = block::block_count(&net, bs);
        let capacity: u128 = if net.is_ipv4() {
            1u128 << (32 - u32::from(net.prefix()))
        } else {
            1u128
                .checked_shl(128 - u32::from(net.prefix()))
                .unwrap_or(u128::MAX)
        };
        let pct = if capacity == 0 {
            0.0
        } else {
            used as f64 * 100.0 / capacity as f64
        };
        pt.add_row(vec![
            p.metadata.name.clone().unwrap_or_default(),
            p.spec.cidr.clone(),
            format!("/{bs}"),
            format!("{claimed} of {total}"),
            used.to_string(),
            capacity.to_string(),
            format!("{pct:.1}%"),
        ]);
    }
    if pools.is_empty() {
        writeln!(out, "No IP pools.")?;
        return Ok(true);
    }
    writeln!(out, "{pt}\n")?;
    let mut nt = table(&["NODE", "BLOCKS", "IN USE (OWN BLOCKS)", "BORROWED"]);
    for (n, (b, u, borrowed)) in nodes {
        nt.add_row(vec![n, b.to_string(), u.to_string(), borrowed.to_string()]);
    }
    writeln!(out, "{nt}")?;
    Ok(true)
}

/// Reads live handles, one per line (`#` comments allowed).
fn read_handles(path: &PathBuf) -> Result<BTreeSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// What `ipam check` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CheckArgs {
    /// File with the handles of live workloads.
    pub live_handles: Option<PathBuf>,
    /// Plan garbage collection (and print it).
    pub gc: bool,
    /// Act on the plan; without it GC is a dry run.
    pub yes: bool,
    /// Free missing nodes' allocations without waiting for the grace period.
    pub missing_nodes_now: bool,
    /// Leaks younger than this are kept.
    pub grace: Duration,
}

/// `ipam check [--live-handles FILE] [--gc [--yes] [--missing-nodes-now] --grace D]`.
pub async fn check(ds: &Datastore, args: &CheckArgs, out: &mut dyn Write) -> Result<bool> {
    let ipam = Ipam::new(ds.clone());
    let live = LiveState {
        nodes: None,
        handles: args.live_handles.as_ref().map(read_handles).transpose()?,
        missing_nodes_now: args.missing_nodes_now,
    };
    let report = ipam.check(&live, now()).await?;
    writeln!(out, "{} allocations checked", report.allocations)?;
    if live.handles.is_none() {
        writeln!(
            out,
            "(no --live-handles given: allocations are judged by their node only)"
        )?;
    }
    for l in &report.leaked {
        writeln!(out, "leaked: {}", describe(l))?;
    }
    for a in &report.orphaned_affinities {
        writeln!(out, "orphaned affinity: {}", a.name)?;
    }
    for b in &report.blocks_of_missing_nodes {
        writeln!(out, "block of a missing node: {b}")?;
    }
    for m in &report.handle_mismatches {
        writeln!(out, "handle mismatch: {m}")?;
    }
    for (ip, holders) in &report.duplicates {
        writeln!(out, "DUPLICATE: {ip} allocated in {}", holders.join(", "))?;
    }
    if args.gc {
        let plan = ipam.gc_plan(&live, now(), args.grace).await?;
        for l in &plan.release {
            writeln!(out, "gc: would free {}", describe(l))?;
        }
        for h in &plan.repair {
            writeln!(out, "gc: would rewrite stale handle {}", h.handle)?;
        }
        let kept = report.leaked.len() - plan.release.len();
        if kept > 0 {
            writeln!(
                out,
                "gc: keeping {kept} leaked addresses still within the {}s grace period{}",
                args.grace.as_secs(),
                if args.missing_nodes_now {
                    ""
                } else {
                    " (--missing-nodes-now frees missing nodes' at once)"
                }
            )?;
        }
        if !args.yes {
            writeln!(
                out,
                "gc: dry run, nothing freed ({} addresses due); pass --yes to free them",
                plan.release.len()
            )?;
            return Ok(report.duplicates.is_empty());
        }
        let s = ipam.gc_apply(&plan, &live, now()).await?;
        writeln!(
            out,
            "gc: released {} addresses, {} blocks, {} affinities",
            s.released.len(),
            s.blocks_released.len(),
            s.affinities_removed.len()
        )?;
        return Ok(report.duplicates.is_empty());
    }
    if report.is_clean() {
        writeln!(out, "ok: no leaks, orphans or duplicates")?;
    }
    Ok(report.is_clean())
}

fn describe(l: &brindle_ipam::check::Leak) -> String {
    format!(
        "{} handle={} node={} age={}s: {}",
        l.ip,
        l.handle.as_deref().unwrap_or("-"),
        l.node.as_deref().unwrap_or("-"),
        l.age_secs,
        l.reason
    )
}

/// `ipam release --ip ... | --handle ...`.
pub async fn release(
    ds: &Datastore,
    ips: &[IpAddr],
    handles: &[String],
    out: &mut dyn Write,
) -> Result<bool> {
    let ipam = Ipam::new(ds.clone());
    if !ips.is_empty() {
        let freed = ipam.release_ips(ips).await?;
        for ip in ips {
            let what = if freed.contains(ip) {
                "released"
            } else {
                "was not allocated"
            };
            writeln!(out, "{ip} {what}")?;
        }
    }
    for h in handles {
        let freed = ipam.release_by_handle(h).await?;
        writeln!(out, "handle {h}: released {} address(es)", freed.len())?;
    }
    Ok(true)
}
