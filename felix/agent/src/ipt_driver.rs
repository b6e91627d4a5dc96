//! The iptables driver: makes the kernel hold a [`Rendered`] iptables rule set, the way the
//! nftables driver does for its table. ipsets are filled aside and swapped in; each family's
//! chains (filter, nat, mangle, raw) are replaced in one `iptables-restore --noflush`
//! transaction (declaring a chain flushes it; chains of ours no longer wanted are flushed and
//! deleted in the same transaction; the jumps from the built-in chains are added only when
//! missing); then ipsets no longer referenced are destroyed. After the first write only the
//! chains and sets that changed are written. At resyncs the kernel's state of our chains,
//! jumps and ipsets is read back (`iptables-save`, `ipset save`): the first after a write
//! checks every chain of ours has as many rules as ours; later ones compare with that state,
//! and anything added, changed or deleted by hand makes a full rewrite. After a restart, the
//! marker rules carrying the content hash mean there is nothing to do. Nothing outside our
//! `brindle-` chains and sets is touched, but for the jumps to them.

use std::collections::{BTreeMap, BTreeSet};

use crate::driver::{Error, run};
use crate::ipt::{HOOKS, PREFIX, Rendered, TABLES};

/// Applies rendered iptables rule sets.
#[derive(Debug, Default)]
pub struct IptDriver {
    /// What was last written, and the digest of the kernel's state once read back.
    applied: Option<(Rendered, Option<u64>)>,
}

const SAVE: [&str; 2] = ["iptables-save", "ip6tables-save"];
const RESTORE: [&str; 2] = ["iptables-restore", "ip6tables-restore"];

async fn save_table(v6: bool, table: &str) -> Result<String, Error> {
    run(SAVE[usize::from(v6)], &["-t", table], None, "save").await
}

async fn restore(v6: bool, input: &str, what: &'static str) -> Result<(), Error> {
    if input.is_empty() {
        return Ok(());
    }
    run(RESTORE[usize::from(v6)], &["--noflush"], Some(input), what).await?;
    Ok(())
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

/// Rules in built-in chains that jump to ours.
fn jumps_in(save: &str) -> Vec<&str> {
    save.lines()
        .filter(|l| {
            l.starts_with("-A ")
                && !l.starts_with(&format!("-A {PREFIX}"))
                && l.contains(&format!("-j {PREFIX}"))
        })
        .collect()
}

/// The hooks of `table` whose jump is missing from its save listing.
fn missing_jumps(table: &'static str, save: &str) -> Vec<(&'static str, &'static str)> {
    HOOKS
        .iter()
        .filter(|(t, _)| *t == table)
        .filter(|(_, h)| {
            !save.lines().any(|l| {
                l.starts_with(&format!("-A {h} ")) && l.ends_with(&format!("-j {PREFIX}{h}"))
            })
        })
        .copied()
        .collect()
}

/// Our part of the kernel's state: a digest of our chains and rules in every table of both
/// families, the jumps to them and our ipsets' contents (sorted); the rules per (family,
/// table, chain); the number of jumps; the members per ipset.
struct Snapshot {
    digest: u64,
    rules: BTreeMap<(bool, String), usize>,
    jumps: usize,
    members: BTreeMap<String, usize>,
}

async fn snapshot() -> Option<Snapshot> {
    let mut out = String::new();
    let mut rules = BTreeMap::new();
    let mut jumps = 0;
    for (v6, table) in [false, true]
        .into_iter()
        .flat_map(|v| TABLES.map(|t| (v, t)))
    {
        let text = save_table(v6, table).await.ok()?;
        let key = |name: &str| {
            (
                v6,
                format!("{table}:{}", name.split(' ').next().unwrap_or(name)),
            )
        };
        out.push_str(table);
        out.push('\n');
        for l in text.lines() {
            if let Some(c) = l.strip_prefix(':').filter(|c| c.starts_with(PREFIX)) {
                rules.entry(key(c)).or_insert(0);
            }
            if let Some(c) = l.strip_prefix("-A ").filter(|c| c.starts_with(PREFIX)) {
                *rules.entry(key(c)).or_insert(0) += 1;
            } else if l.starts_with("-A ") && l.contains(&format!("-j {PREFIX}")) {
                jumps += 1;
            }
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
    let mut members = BTreeMap::new();
    for l in &lines {
        let mut w = l.split(' ');
        match (w.next(), w.next()) {
            (Some("create"), Some(n)) => {
                members.entry(n.to_string()).or_insert(0);
            }
            (Some("add"), Some(n)) => *members.entry(n.to_string()).or_insert(0) += 1,
            _ => {}
        }
        out.push_str(l);
        out.push('\n');
    }
    Some(Snapshot {
        digest: crate::calc::stable_hash(&out),
        rules,
        jumps,
        members,
    })
}

/// Whether the kernel has exactly our chains in every table of both families, each with as
/// many rules as ours, one jump from each built-in chain we hook, and exactly our ipsets
/// with as many members.
fn same_shape(r: &Rendered, s: &Snapshot) -> bool {
    let mut want = BTreeMap::new();
    for (v6, tables) in [(false, &r.tables[0]), (true, &r.tables[1])] {
        for (table, chains) in tables {
            for (c, rules) in chains {
                want.insert((v6, format!("{table}:{c}")), rules.len());
            }
        }
    }
    let sets: BTreeMap<String, usize> = r
        .sets
        .iter()
        .map(|(n, (_, m))| (n.clone(), m.len()))
        .collect();
    want == s.rules && s.jumps == 2 * HOOKS.len() && sets == s.members
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

    /// Makes the kernel hold `r`. Returns true when it wrote. A rule set different from the
    /// last one is written at once (only what changed); the same one again is a resync.
    pub async fn apply(&mut self, r: &Rendered) -> Result<bool, Error> {
        match &mut self.applied {
            Some((last, digest)) if last.hash == r.hash => {
                let now = snapshot().await;
                match (*digest, now) {
                    (None, Some(s)) if same_shape(last, &s) => {
                        *digest = Some(s.digest);
                        return Ok(false);
                    }
                    (Some(d), Some(s)) if d == s.digest => return Ok(false),
                    _ => {
                        tracing::warn!(target: "felix.iptables", event = "repair", "our chains or ipsets were changed by someone else");
                    }
                }
            }
            Some((last, _)) => {
                let last = last.clone();
                match Self::update(&last, r).await {
                    Ok(()) => {
                        self.applied = Some((r.clone(), None));
                        tracing::info!(target: "felix.iptables", event = "updated", hash = %r.hash);
                        return Ok(true);
                    }
                    Err(e) => {
                        tracing::warn!(target: "felix.iptables", event = "update_failed", error = %e, "rewriting everything");
                    }
                }
            }
            None => {
                // After a restart: both families' marker rules carry the same content hash,
                // and the chains are ours rule for rule.
                let marker = format!("brindle {}", r.hash);
                let mut marked = 0;
                for v6 in [false, true] {
                    if let Ok(text) = save_table(v6, "filter").await {
                        marked += text.matches(&marker).count();
                    }
                }
                if marked == 4
                    && let Some(s) = snapshot().await
                    && same_shape(r, &s)
                {
                    self.applied = Some((r.clone(), Some(s.digest)));
                    return Ok(false);
                }
            }
        }
        self.write_all(r).await?;
        Ok(true)
    }

    /// Writes only what differs from `last` (applied and not known to be altered).
    async fn update(last: &Rendered, r: &Rendered) -> Result<(), Error> {
        let changed_sets = |name: &str| last.sets.get(name) != r.sets.get(name);
        let script = r.ipset_script_for(changed_sets);
        if !script.is_empty() {
            run("ipset", &["restore"], Some(&script), "restore").await?;
        }
        for v6 in [false, true] {
            let (old, new) = (&last.tables[usize::from(v6)], &r.tables[usize::from(v6)]);
            let mut changed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let mut stale: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            for (table, chains) in new {
                let before = old.get(table);
                for (c, rules) in chains {
                    if before.and_then(|b| b.get(c)) != Some(rules) {
                        changed.entry(table).or_default().insert(c.clone());
                    }
                }
                for c in before.into_iter().flat_map(|b| b.keys()) {
                    if !chains.contains_key(c) {
                        stale.entry(table).or_default().insert(c.clone());
                    }
                }
            }
            let input = r.restore(v6, Some(&changed), &stale, &BTreeSet::new());
            restore(v6, &input, "update").await?;
        }
        for name in last.sets.keys().filter(|n| !r.sets.contains_key(*n)) {
            run("ipset", &["destroy", name], None, "destroy").await?;
        }
        Ok(())
    }

    async fn write_all(&mut self, r: &Rendered) -> Result<(), Error> {
        run("ipset", &["restore"], Some(&r.ipset_script()), "restore").await?;
        for v6 in [false, true] {
            let mut stale: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let mut missing = BTreeSet::new();
            for table in TABLES {
                let current = save_table(v6, table).await?;
                let want = r.tables[usize::from(v6)].get(table);
                let gone: BTreeSet<String> = our_chains(&current)
                    .into_iter()
                    .filter(|c| want.is_none_or(|w| !w.contains_key(c)))
                    .collect();
                stale.insert(table, gone);
                missing.extend(missing_jumps(table, &current));
            }
            let input = r.restore(v6, None, &stale, &missing);
            restore(v6, &input, "restore").await?;
        }
        for s in our_sets().await? {
            if !r.sets.contains_key(&s) {
                run("ipset", &["destroy", &s], None, "destroy").await?;
            }
        }
        self.applied = Some((r.clone(), None));
        tracing::info!(target: "felix.iptables", event = "applied", hash = %r.hash);
        Ok(())
    }

    /// Removes every chain, jump and ipset of ours (policy off, or the other dataplane).
    pub async fn remove() -> Result<(), Error> {
        for (v6, table) in [false, true]
            .into_iter()
            .flat_map(|v| TABLES.map(|t| (v, t)))
        {
            let Ok(current) = save_table(v6, table).await else {
                continue;
            };
            let chains = our_chains(&current);
            let jumps = jumps_in(&current);
            if chains.is_empty() && jumps.is_empty() {
                continue;
            }
            let mut input = format!("*{table}\n");
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
            restore(v6, &input, "remove").await?;
        }
        if let Ok(sets) = our_sets().await {
            for s in sets {
                run("ipset", &["destroy", &s], None, "destroy").await?;
            }
        }
        Ok(())
    }
}
