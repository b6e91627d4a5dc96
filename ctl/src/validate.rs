//! `brindlectl validate`: one line per document, `label: ok` or every error with its path.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use brindle_crds::{IPPool, Resource, ippool::check_pool_overlaps, parse_resources};

/// Collects manifest files: a file as given, a directory's YAML/JSON files recursively, sorted.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" || p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).with_context(|| format!("reading directory {}", p.display()))?;
            found.sort();
            out.extend(found);
        } else {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

pub fn read(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Validates every document of every file; returns whether all were valid.
pub fn run(paths: &[PathBuf], out: &mut dyn Write) -> Result<bool> {
    let files = collect_files(paths)?;
    let mut all_ok = true;
    let mut pools: Vec<(String, IPPool)> = Vec::new();
    for file in &files {
        let text = read(file)?;
        let shown = file.display();
        let docs = match parse_resources(&text) {
            Ok(d) => d,
            Err(e) => {
                writeln!(out, "{shown}: invalid YAML/JSON at {e}")?;
                all_ok = false;
                continue;
            }
        };
        for doc in docs {
            match doc.result {
                Ok(r) => {
                    writeln!(out, "{shown}: {}: ok", doc.label)?;
                    if let Resource::IPPool(p) = r {
                        pools.push((shown.to_string(), p));
                    }
                }
                Err(errors) => {
                    all_ok = false;
                    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    writeln!(out, "{shown}: {}: invalid: {}", doc.label, list.join("; "))?;
                }
            }
        }
    }
    let only_pools: Vec<IPPool> = pools.iter().map(|(_, p)| p.clone()).collect();
    for e in check_pool_overlaps(&only_pools) {
        all_ok = false;
        writeln!(out, "{e}")?;
    }
    Ok(all_ok)
}
