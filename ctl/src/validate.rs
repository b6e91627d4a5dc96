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

/// Reads every document of every file, printing each invalid one (and each valid one when
/// `report_ok`) with its field-path errors. Returns the valid resources and whether all were.
pub fn load(
    paths: &[PathBuf],
    report_ok: bool,
    out: &mut dyn Write,
) -> Result<(Vec<Resource>, bool)> {
    let mut resources = Vec::new();
    let mut all_ok = true;
    for file in collect_files(paths)? {
        let text = read(&file)?;
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
                    if report_ok {
                        writeln!(out, "{shown}: {}: ok", doc.label)?;
                    }
                    resources.push(r);
                }
                Err(errors) => {
                    all_ok = false;
                    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    writeln!(out, "{shown}: {}: invalid: {}", doc.label, list.join("; "))?;
                }
            }
        }
    }
    Ok((resources, all_ok))
}

/// Validates every document of every file, and the pools against each other; returns whether
/// all were valid.
pub fn run(paths: &[PathBuf], out: &mut dyn Write) -> Result<bool> {
    let (resources, mut all_ok) = load(paths, true, out)?;
    let pools: Vec<IPPool> = resources
        .into_iter()
        .filter_map(|r| {
            if let Resource::IPPool(p) = r {
                Some(p)
            } else {
                None
            }
        })
        .collect();
    for e in check_pool_overlaps(&pools) {
        all_ok = false;
        writeln!(out, "{e}")?;
    }
    Ok(all_ok)
}
