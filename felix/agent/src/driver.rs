//! The nftables driver: writes Brindle's table in one `nft -f` transaction: the whole table
//! the first time, only the sets and chains that changed afterwards. At the pass after a write
//! it reads the kernel's table back and checks it holds what was written; later passes compare
//! the kernel's listing with that one and rewrite the whole table when it is missing or differs
//! (a deleted table, foreign rules added inside it). A restart with unchanged state changes
//! nothing: the `marker` chain's comment carries the content hash, and an equal hash (with the
//! same chains and rule counts) in the kernel means there is nothing to do. Nothing else in the
//! ruleset is touched. [`IptDriver`](crate::ipt_driver::IptDriver) does the same for iptables.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use std::collections::BTreeMap;

use crate::nft::{TABLE, Table};

/// Driver errors, naming the command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command (`nft`, `iptables-restore`, `ipset`...) failed.
    #[error("{program} {what}: {reason}")]
    Command {
        /// The program.
        program: &'static str,
        /// What was being done.
        what: &'static str,
        /// Its output.
        reason: String,
    },
}

/// Applies rendered nftables tables.
#[derive(Debug, Default)]
pub struct Driver {
    applied: Option<Applied>,
}

/// Runs `program` with `args` (and `stdin`), returning its output or an error naming it.
pub(crate) async fn run(
    program: &'static str,
    args: &[&str],
    stdin: Option<&str>,
    what: &'static str,
) -> Result<String, Error> {
    let fail = |reason: String| Error::Command {
        program,
        what,
        reason,
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        i.write_all(text.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let o = child
        .wait_with_output()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !o.status.success() {
        return Err(fail(String::from_utf8_lossy(&o.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

async fn nft(args: &[&str], stdin: Option<&str>, what: &'static str) -> Result<String, Error> {
    run("nft", args, stdin, what).await
}

/// The kernel's view of our table: a digest of its listing with counter values left out
/// (they change on their own), and the number of rules in each chain.
struct Listing {
    digest: u64,
    rules: BTreeMap<String, usize>,
}

async fn listing() -> Option<Listing> {
    let text = nft(&["list", "table", "inet", TABLE], None, "list")
        .await
        .ok()?;
    let mut rules = BTreeMap::new();
    let mut chain: Option<String> = None;
    let mut normal = String::with_capacity(text.len());
    for l in text.lines() {
        if let Some(name) = l.strip_prefix("\tchain ") {
            let name = name.trim_end_matches(" {").to_string();
            rules.insert(name.clone(), 0);
            chain = Some(name);
        } else if l == "\t}" {
            chain = None;
        } else if let Some(c) = &chain
            && l.starts_with("\t\t")
            && !l.starts_with("\t\t\t")
            && !l.starts_with("\t\ttype ")
            && let Some(n) = rules.get_mut(c)
        {
            // One rule per line (only set elements wrap, and they are not in chains).
            *n += 1;
        }
        match l.find("counter packets ") {
            Some(i) => {
                normal.push_str(&l[..i]);
                normal.push_str("counter");
                if let Some(rest) = l[i..].splitn(6, ' ').nth(5) {
                    normal.push(' ');
                    normal.push_str(rest);
                }
            }
            None => normal.push_str(l),
        }
        normal.push('\n');
    }
    Some(Listing {
        digest: crate::calc::stable_hash(&normal),
        rules,
    })
}

/// What was last written, and a digest of the kernel's listing of it once read back.
#[derive(Debug)]
struct Applied {
    table: Table,
    /// Taken at the first resync after the write (a write returns as soon as the kernel has
    /// it).
    digest: Option<u64>,
}

impl Driver {
    /// A driver that has applied nothing yet.
    pub fn new() -> Driver {
        Driver::default()
    }

    /// Makes the kernel hold `t`. Returns true when it wrote.
    ///
    /// A table different from the one last applied is written at once, incrementally (only
    /// the sets and chains that differ; the whole table if that fails). The same table again
    /// is a resync: the first one after a write reads the kernel's table back and checks it
    /// has our chains with as many rules as ours; later ones compare the kernel's listing
    /// with that one. A table missing, altered or holding foreign rules is rewritten whole.
    pub async fn apply(&mut self, t: &Table) -> Result<bool, Error> {
        match &mut self.applied {
            Some(a) if a.table.hash == t.hash => {
                let now = listing().await;
                match (a.digest, now) {
                    (None, Some(l)) if same_shape(&a.table, &l) => {
                        a.digest = Some(l.digest);
                        return Ok(false);
                    }
                    (Some(d), Some(l)) if d == l.digest => return Ok(false),
                    _ => {
                        tracing::warn!(target: "felix.nft", event = "repair", "our table was changed or deleted by someone else");
                    }
                }
            }
            Some(a) => {
                let script = t.update_from(&a.table);
                match nft(&["-f", "-"], Some(&script), "update").await {
                    Ok(_) => {
                        self.applied = Some(Applied {
                            table: t.clone(),
                            digest: None,
                        });
                        tracing::info!(target: "felix.nft", event = "updated", hash = %t.hash, bytes = script.len());
                        return Ok(true);
                    }
                    Err(e) => {
                        tracing::warn!(target: "felix.nft", event = "update_failed", error = %e, "rewriting the whole table");
                    }
                }
            }
            None => {
                // After a restart: the kernel's table carries the same content hash and has
                // our chains and rule counts.
                if let Ok(text) =
                    nft(&["list", "chain", "inet", TABLE, "marker"], None, "list").await
                    && text.contains(&format!("brindle {}", t.hash))
                    && let Some(l) = listing().await
                    && same_shape(t, &l)
                {
                    self.applied = Some(Applied {
                        table: t.clone(),
                        digest: Some(l.digest),
                    });
                    return Ok(false);
                }
            }
        }
        self.write_all(t).await
    }

    async fn write_all(&mut self, t: &Table) -> Result<bool, Error> {
        let script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\n{}",
            t.text()
        );
        nft(&["-f", "-"], Some(&script), "apply").await?;
        self.applied = Some(Applied {
            table: t.clone(),
            digest: None,
        });
        tracing::info!(target: "felix.nft", event = "applied", hash = %t.hash);
        Ok(true)
    }

    /// Removes our table (policy turned off).
    pub async fn remove() -> Result<(), Error> {
        if nft(&["list", "table", "inet", TABLE], None, "list")
            .await
            .is_ok()
        {
            nft(&["delete", "table", "inet", TABLE], None, "delete").await?;
        }
        Ok(())
    }
}

/// Whether the kernel's table has exactly our chains (and the marker), each with as many
/// rules as ours.
fn same_shape(t: &Table, l: &Listing) -> bool {
    let want: BTreeMap<String, usize> = t
        .chains
        .iter()
        .map(|(n, c)| (n.clone(), c.rules.len()))
        .chain([("marker".to_string(), 1)])
        .collect();
    want == l.rules
}
