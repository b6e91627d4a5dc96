//! The nftables driver: replaces Brindle's table in one `nft -f` transaction when what it
//! should hold changed, re-reads the kernel's table at every resync, and re-applies when the
//! table is missing or differs from what was applied (a deleted table, or foreign rules added
//! inside it). A restart with unchanged state changes nothing: the table's comment carries the
//! content hash, and an equal hash in the kernel means there is nothing to do. Nothing else in
//! the ruleset is touched. [`IptDriver`](crate::ipt_driver::IptDriver) does the same for
//! iptables.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::nft::{TABLE, content_hash};

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
    /// Hash and kernel listing right after the last apply.
    applied: Option<(String, String)>,
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

/// The kernel's listing of our table without counter values (they change on their own).
async fn listing() -> Option<String> {
    let text = nft(&["list", "table", "inet", TABLE], None, "list")
        .await
        .ok()?;
    Some(
        text.lines()
            .map(|l| match l.find("counter packets") {
                Some(i) => {
                    let rest = &l[i..];
                    let end = rest.find(" bytes ").map(|b| {
                        let after = &rest[b + 7..];
                        b + 7 + after.find(' ').unwrap_or(after.len())
                    });
                    format!(
                        "{}counter{}",
                        &l[..i],
                        end.map(|e| &rest[e..]).unwrap_or("")
                    )
                }
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

impl Driver {
    /// A driver that has applied nothing yet.
    pub fn new() -> Driver {
        Driver::default()
    }

    /// Makes the kernel hold `rendered`. Returns true when it wrote.
    pub async fn apply(&mut self, rendered: &str) -> Result<bool, Error> {
        let want = content_hash(rendered).unwrap_or_default().to_string();
        let now = listing().await;
        let same = match (&self.applied, &now) {
            // Ours, unchanged since we applied it.
            (Some((h, l)), Some(k)) => *h == want && l == k,
            // After a restart: the kernel's table carries the same content hash.
            (None, Some(k)) => k.contains(&format!("brindle {want}")),
            _ => false,
        };
        if same {
            if self.applied.is_none() {
                self.applied = now.map(|k| (want, k));
            }
            return Ok(false);
        }
        let script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n{rendered}");
        nft(&["-f", "-"], Some(&script), "apply").await?;
        self.applied = listing().await.map(|k| (want, k));
        tracing::info!(target: "felix.nft", event = "applied", hash = %content_hash(rendered).unwrap_or_default());
        Ok(true)
    }

    /// Removes our table (policy turned off).
    pub async fn remove() -> Result<(), Error> {
        if listing().await.is_some() {
            nft(&["delete", "table", "inet", TABLE], None, "delete").await?;
        }
        Ok(())
    }
}
