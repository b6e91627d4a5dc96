//! The iptables driver: makes the kernel hold a [`Rendered`] iptables rule set, the way the
//! nftables driver does for its table. ipsets are filled aside and swapped in; each family's
//! chains are replaced in one `iptables-restore --noflush` transaction (declaring a chain
//! flushes it; chains of ours no longer wanted are flushed and deleted in the same
//! transaction; the jumps from FORWARD and INPUT are added only when missing); then ipsets no
//! longer referenced are destroyed. At every pass the kernel's state of our chains, jumps and
//! ipsets is read back (`iptables-save`, `ipset save`) and compared with what was applied:
//! anything added, changed or deleted by hand is put back. After a restart, the marker rule
//! carrying the content hash means there is nothing to do. Nothing outside our `brindle-`
//! chains and sets is touched, but for the two jumps.

use std::collections::BTreeSet;

use crate::driver::{Error, run};
use crate::ipt::{PREFIX, Rendered};

/// Applies rendered iptables rule sets.
#[derive(Debug, Default)]
pub struct IptDriver {
    /// Hash and kernel state right after the last apply.
    applied: Option<(String, String)>,
}

const SAVE: [&str; 2] = ["iptables-save", "ip6tables-save"];
const RESTORE: [&str; 2] = ["iptables-restore", "ip6tables-restore"];
const BUILTIN: [&str; 2] = ["FORWARD", "INPUT"];

/// One family's filter table as `iptables-save` prints it.
async fn save(v6: bool) -> Result<String, Error> {
    run(SAVE[usize::from(v6)], &["-t", "filter"], None, "save").await
}

/// Our chains in a save listing.
fn our_chains(save: &str) -> BTreeSet<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter(|l| l.starts_with(PREFIX))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// Whether each built-in chain already jumps to ours.
fn jumps_present(save: &str) -> [bool; 2] {
    BUILTIN.map(|b| {
        save.lines()
            .any(|l| l.starts_with(&format!("-A {b} ")) && l.ends_with(&format!("-j {PREFIX}{b}")))
    })
}

/// Our part of the kernel's state, counters left out: chains and rules of both families, the
/// jumps to them, and our ipsets' contents (sorted).
async fn snapshot() -> Option<String> {
    let mut out = String::new();
    for v6 in [false, true] {
        let text = save(v6).await.ok()?;
        for l in text.lines() {
            let ours = l.starts_with(&format!(":{PREFIX}"))
                || l.starts_with(&format!("-A {PREFIX}"))
                || l.contains(&format!("-j {PREFIX}"));
            if ours {
                // ":chain - [packets:bytes]": keep the name only.
                out.push_str(l.split(" [").next().unwrap_or(l));
                out.push('\n');
            }
        }
    }
    let sets = run("ipset", &["save"], None, "save").await.ok()?;
    let mut lines: Vec<&str> = sets
        .lines()
        .filter(|l| l.split(' ').nth(1).is_some_and(|n| n.starts_with(PREFIX)))
        .collect();
    lines.sort_unstable();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    Some(out)
}

/// Our ipsets in the kernel.
async fn our_sets() -> Result<BTreeSet<String>, Error> {
    let names = run("ipset", &["list", "-n"], None, "list").await?;
    Ok(names
        .lines()
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

impl IptDriver {
    /// A driver that has applied nothing yet.
    pub fn new() -> IptDriver {
        IptDriver::default()
    }

    /// Makes the kernel hold `r`. Returns true when it wrote.
    pub async fn apply(&mut self, r: &Rendered) -> Result<bool, Error> {
        let now = snapshot().await;
        let marker = format!("brindle {}", r.hash);
        let same = match (&self.applied, &now) {
            (Some((h, l)), Some(k)) => *h == r.hash && l == k,
            // After a restart: both families' marker rules carry the same content hash.
            (None, Some(k)) => k.matches(&marker).count() >= 4,
            _ => false,
        };
        if same {
            if self.applied.is_none() {
                self.applied = now.map(|k| (r.hash.clone(), k));
            }
            return Ok(false);
        }
        run("ipset", &["restore"], Some(&r.ipset_script()), "restore").await?;
        for v6 in [false, true] {
            let current = save(v6).await?;
            let want = if v6 { &r.v6 } else { &r.v4 };
            let stale: BTreeSet<String> = our_chains(&current)
                .into_iter()
                .filter(|c| !want.contains_key(c))
                .collect();
            let missing = jumps_present(&current).map(|p| !p);
            let input = r.restore(v6, &stale, missing);
            run(
                RESTORE[usize::from(v6)],
                &["--noflush"],
                Some(&input),
                "restore",
            )
            .await?;
        }
        for s in our_sets().await? {
            if !r.sets.contains_key(&s) {
                run("ipset", &["destroy", &s], None, "destroy").await?;
            }
        }
        self.applied = snapshot().await.map(|k| (r.hash.clone(), k));
        tracing::info!(target: "felix.iptables", event = "applied", hash = %r.hash);
        Ok(true)
    }

    /// Removes every chain, jump and ipset of ours (policy off, or the other dataplane).
    pub async fn remove() -> Result<(), Error> {
        for v6 in [false, true] {
            let Ok(current) = save(v6).await else {
                continue;
            };
            let chains = our_chains(&current);
            let jumps: Vec<&str> = current
                .lines()
                .filter(|l| {
                    BUILTIN.iter().any(|b| {
                        l.starts_with(&format!("-A {b} ")) && l.contains(&format!("-j {PREFIX}"))
                    })
                })
                .collect();
            if chains.is_empty() && jumps.is_empty() {
                continue;
            }
            let mut input = String::from("*filter\n");
            for j in &jumps {
                input.push_str(&j.replacen("-A ", "-D ", 1));
                input.push('\n');
            }
            for c in &chains {
                input.push_str(&format!(":{c} - [0:0]\n"));
            }
            for c in &chains {
                input.push_str(&format!("-X {c}\n"));
            }
            input.push_str("COMMIT\n");
            run(
                RESTORE[usize::from(v6)],
                &["--noflush"],
                Some(&input),
                "remove",
            )
            .await?;
        }
        if let Ok(sets) = our_sets().await {
            for s in sets {
                run("ipset", &["destroy", &s], None, "destroy").await?;
            }
        }
        Ok(())
    }
}
