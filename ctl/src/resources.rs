//! `brindlectl apply | create | get | delete` against any datastore.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use brindle_crds::{Kind, Resource};
use brindle_datastore::{Datastore, Error, Key};
use comfy_table::{Table, presets};
use serde_json::Value;

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table with the kind's printer columns.
    Table,
    /// YAML documents.
    Yaml,
    /// JSON (one object, or a List).
    Json,
}

/// Reads and validates every document; refuses the lot if any is invalid.
fn load(files: &[PathBuf], out: &mut dyn Write) -> Result<Option<Vec<Resource>>> {
    let (resources, ok) = crate::validate::load(files, false, out)?;
    Ok(ok.then_some(resources))
}

/// `apply -f`: create or replace each resource; nothing is written when any document is
/// invalid. Returns false when something failed.
pub async fn apply(
    ds: &Datastore,
    files: &[PathBuf],
    create_only: bool,
    out: &mut dyn Write,
) -> Result<bool> {
    let Some(resources) = load(files, out)? else {
        writeln!(out, "nothing applied: fix the invalid documents first")?;
        return Ok(false);
    };
    let mut ok = true;
    for r in resources {
        let name = r.display_name();
        let key = Key::of(&r);
        let result = if create_only {
            ds.create(&r).await.map(|_| "created")
        } else {
            match ds.get(&key).await {
                Ok(current) if same_content(&current, &r) => Ok("unchanged"),
                Ok(_) => ds.apply(&r).await.map(|_| "configured"),
                Err(Error::NotFound { .. }) => ds.apply(&r).await.map(|_| "created"),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(what) => writeln!(out, "{name} {what}")?,
            Err(e) => {
                ok = false;
                writeln!(out, "{name}: {e}")?;
            }
        }
    }
    Ok(ok)
}

fn same_content(a: &Resource, b: &Resource) -> bool {
    let strip = |r: &Resource| {
        let mut v = brindle_datastore::encode(r);
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| k == "name" || k == "namespace" || k == "labels" || k == "annotations");
        }
        v
    };
    strip(a) == strip(b)
}

fn parse_kind(s: &str) -> Result<Kind> {
    Kind::parse(s).with_context(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        format!("unknown kind '{s}' (one of: {})", names.join(", "))
    })
}

fn key_for(kind: Kind, namespace: Option<&str>, name: &str) -> Key {
    if kind.namespaced() {
        Key::namespaced(kind, namespace.unwrap_or("default"), name)
    } else {
        Key::new(kind, name)
    }
}

/// `get KIND [NAME]`.
pub async fn get(
    ds: &Datastore,
    kind: &str,
    name: Option<&str>,
    namespace: Option<&str>,
    selector: Option<&str>,
    output: Output,
    out: &mut dyn Write,
) -> Result<bool> {
    let kind = parse_kind(kind)?;
    let items = match name {
        Some(n) => match ds.get(&key_for(kind, namespace, n)).await {
            Ok(r) => vec![r],
            Err(Error::NotFound { key }) => {
                writeln!(out, "{key} not found")?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            let sel = selector
                .map(brindle_selector::Selector::parse)
                .transpose()
                .context("--selector")?;
            ds.list(kind, namespace.filter(|_| kind.namespaced()), sel.as_ref())
                .await?
        }
    };
    match output {
        Output::Table => {
            if items.is_empty() {
                writeln!(out, "No {} found.", kind.plural())?;
            } else {
                writeln!(out, "{}", table(kind, &items))?;
            }
        }
        Output::Yaml => {
            for (i, r) in items.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                write!(
                    out,
                    "{}",
                    brindle_crds::to_yaml(&r.to_value()).map_err(anyhow::Error::msg)?
                )?;
            }
        }
        Output::Json => {
            let v = if name.is_some() {
                items.first().map(Resource::to_value).unwrap_or(Value::Null)
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List",
                    "items": items.iter().map(Resource::to_value).collect::<Vec<_>>()})
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
    }
    Ok(true)
}

/// A table with NAME (and NAMESPACE) plus the CRD's printer columns.
pub fn table(kind: Kind, items: &[Resource]) -> Table {
    let columns = kind
        .crd()
        .spec
        .versions
        .first()
        .and_then(|v| v.additional_printer_columns.clone())
        .unwrap_or_default();
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    let mut header: Vec<String> = Vec::new();
    if kind.namespaced() {
        header.push("NAMESPACE".into());
    }
    header.push("NAME".into());
    header.extend(columns.iter().map(|c| c.name.to_uppercase()));
    t.set_header(header);
    for r in items {
        let v = r.to_value();
        let mut row: Vec<String> = Vec::new();
        if kind.namespaced() {
            row.push(r.namespace().unwrap_or_default().to_string());
        }
        row.push(r.name().to_string());
        for c in &columns {
            row.push(json_path(&v, &c.json_path));
        }
        t.add_row(row);
    }
    t
}

/// Evaluates a simple `.a.b.c` JSON path; absent values print as empty.
fn json_path(v: &Value, path: &str) -> String {
    let mut cur = v;
    for part in path.trim_start_matches('.').split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `delete KIND NAME...` or `delete -f FILE`.
pub async fn delete(
    ds: &Datastore,
    kind: Option<&str>,
    names: &[String],
    namespace: Option<&str>,
    files: &[PathBuf],
    out: &mut dyn Write,
) -> Result<bool> {
    let mut keys = Vec::new();
    if !files.is_empty() {
        let Some(resources) = load(files, out)? else {
            return Ok(false);
        };
        keys.extend(resources.iter().map(Key::of));
    }
    if let Some(kind) = kind {
        let kind = parse_kind(kind)?;
        if names.is_empty() {
            bail!("delete {}: give at least one name", kind.plural());
        }
        keys.extend(names.iter().map(|n| key_for(kind, namespace, n)));
    }
    let mut ok = true;
    for key in keys {
        match ds.delete(&key, None).await {
            Ok(()) => writeln!(out, "{key} deleted")?,
            Err(e) => {
                ok = false;
                writeln!(out, "{e}")?;
            }
        }
    }
    Ok(ok)
}
