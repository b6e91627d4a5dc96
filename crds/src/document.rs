//! Reading manifests: multi-document YAML or JSON text into resources. Accepts Brindle's
//! `brindle.dev/v1` kinds, Calico's `projectcalico.org/v3` kinds (same field names; converted)
//! and Kubernetes `networking.k8s.io/v1` NetworkPolicy, plus `kind: List` wrappers. Pure.

use serde_json::Value;

use crate::validate::FieldError;
use crate::{API_VERSION, CALICO_API_VERSION, K8S_NETWORKING_API_VERSION, Kind, Resource};

/// Text that is not valid YAML or JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct DocumentError {
    /// 1-based line of the problem (0 when unknown).
    pub line: u64,
    /// 1-based column of the problem (0 when unknown).
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

/// One document of a manifest and what became of it.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// `Kind/name` when known, else `document N` (1-based).
    pub label: String,
    /// The resource, or every problem found, each with its field path.
    pub result: Result<Resource, Vec<FieldError>>,
}

/// Splits YAML (several `---` documents) or JSON (an object or an array of objects) into
/// values; empty documents are skipped and `kind: List` is flattened.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    let trimmed = text.trim_start();
    let docs: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(text).map_err(|e| DocumentError {
            line: e.line() as u64,
            column: e.column() as u64,
            message: e.to_string(),
        })?;
        match v {
            Value::Array(items) => items,
            other => vec![other],
        }
    } else {
        serde_saphyr::from_multiple::<Value>(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            DocumentError {
                line,
                column,
                message: e.to_string(),
            }
        })?
    };
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Null => {}
            Value::Object(ref o)
                if o.get("kind").and_then(Value::as_str) == Some("List")
                    && o.get("items").is_some_and(Value::is_array) =>
            {
                if let Some(Value::Array(items)) = o.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Parses every document of a manifest and validates each resource.
pub fn parse_resources(text: &str) -> Result<Vec<SourceDocument>, DocumentError> {
    let docs = parse_documents(text)?;
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let fallback = format!("document {}", i + 1);
            let kind = v.get("kind").and_then(Value::as_str).map(str::to_string);
            let name = v
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let result = resource_from_value(v);
            let label = match (&result, kind, name) {
                (Ok(r), _, _) => r.display_name(),
                (Err(_), Some(k), Some(n)) => format!("{k}/{n}"),
                (Err(_), Some(k), None) => format!("{k} ({fallback})"),
                _ => fallback,
            };
            SourceDocument { label, result }
        })
        .collect())
}

fn err(path: &str, reason: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError {
        path: path.to_string(),
        reason: reason.into(),
    }]
}

/// Decodes one document into a validated resource, converting Calico and Kubernetes kinds.
pub fn resource_from_value(mut v: Value) -> Result<Resource, Vec<FieldError>> {
    let Some(obj) = v.as_object_mut() else {
        return Err(err(
            "(document)",
            "expected a mapping with apiVersion, kind, metadata, spec",
        ));
    };
    let api_version = match obj.remove("apiVersion") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(err("apiVersion", "must be a string")),
        None => return Err(err("apiVersion", "is required")),
    };
    let kind_name = match obj.remove("kind") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(err("kind", "must be a string")),
        None => return Err(err("kind", "is required")),
    };
    let resource = match api_version.as_str() {
        API_VERSION | CALICO_API_VERSION => {
            let kind = Kind::ALL
                .iter()
                .copied()
                .find(|k| k.name() == kind_name)
                .ok_or_else(|| {
                    err(
                        "kind",
                        format!("'{kind_name}' is not a kind Brindle knows in {api_version}"),
                    )
                })?;
            if api_version == CALICO_API_VERSION {
                calico_fixups(kind, &mut v);
            }
            Resource::from_value_of_kind(kind, v).map_err(|e| vec![e])?
        }
        K8S_NETWORKING_API_VERSION if kind_name == "NetworkPolicy" => {
            let np: k8s_openapi::api::networking::v1::NetworkPolicy =
                serde_path_to_error::deserialize(v)
                    .map_err(|e| err(&e.path().to_string(), e.into_inner().to_string()))?;
            Resource::NetworkPolicy(crate::convert::from_k8s_network_policy(&np)?)
        }
        _ => {
            return Err(err(
                "apiVersion",
                format!(
                    "'{api_version}' kind '{kind_name}' is not accepted (use {API_VERSION}, \
                     {CALICO_API_VERSION}, or {K8S_NETWORKING_API_VERSION} NetworkPolicy)"
                ),
            ));
        }
    };
    resource.validate().map_err(|e| e.0)?;
    Ok(resource)
}

/// Calico stores a few values differently; bring them to Brindle's form.
fn calico_fixups(kind: Kind, v: &mut Value) {
    if kind == Kind::BlockAffinity
        && let Some(d) = v.pointer_mut("/spec/deleted")
        && let Some(s) = d.as_str()
    {
        *d = Value::Bool(s == "true");
    }
}
