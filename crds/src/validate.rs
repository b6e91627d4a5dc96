//! Validation: every rejection names the field path (`spec.ingress[0].source.nets[1]`) and the
//! reason. Pure. Each resource implements [`Validate`]; checks that span several resources
//! (pool overlap) are free functions in the resource's module.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use kube::core::ObjectMeta;

use brindle_selector::Selector;

/// One rejected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path from the document root, with `[i]` for list items.
    pub path: String,
    /// Why the value is rejected.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// All the rejected fields of one resource (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// True when some error's path is exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

/// A resource that can check itself.
pub trait Validate {
    /// Every problem found, each with its field path.
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector::default();
        self.check(&mut c);
        c.finish()
    }

    /// Adds this resource's problems to the collector.
    fn check(&self, c: &mut Collector);
}

/// Gathers field errors while walking a resource.
#[derive(Debug, Default)]
pub struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// Records the error of a `Result`, if any.
    pub fn check_result<T>(&mut self, path: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(path, e);
                None
            }
        }
    }

    /// Ok when nothing was recorded.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }

    /// The errors so far.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Checks `metadata.name` (a DNS-1123 subdomain, as Kubernetes requires).
    pub fn metadata(&mut self, meta: &ObjectMeta) {
        match meta.name.as_deref() {
            None | Some("") => self.push("metadata.name", "a name is required"),
            Some(n) => {
                if let Err(e) = dns1123_subdomain(n) {
                    self.push("metadata.name", e);
                }
            }
        }
    }

    /// Checks a selector field; an empty string is allowed (selects everything).
    pub fn selector(&mut self, path: &str, s: &str) -> Option<Selector> {
        match Selector::parse(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                self.push(path, format!("invalid selector: {e}"));
                None
            }
        }
    }

    /// Checks a CIDR field, which must have no host bits set.
    pub fn masked_cidr(&mut self, path: &str, s: &str) -> Option<IpNetwork> {
        self.check_result(path, parse_masked_cidr(s))
    }

    /// Checks a CIDR or a bare address (policy `nets` accept both).
    pub fn net(&mut self, path: &str, s: &str) -> Option<IpNetwork> {
        self.check_result(path, parse_net(s))
    }

    /// Checks an IP address field.
    pub fn ip(&mut self, path: &str, s: &str) -> Option<IpAddr> {
        self.check_result(
            path,
            s.parse::<IpAddr>()
                .map_err(|_| format!("'{s}' is not an IP address")),
        )
    }

    /// Checks a Go-style duration (`90s`, `2m`, `1h30m`, `500ms`).
    pub fn duration(&mut self, path: &str, s: &str) -> Option<std::time::Duration> {
        self.check_result(path, parse_duration(s))
    }
}

/// Parses a CIDR (`198.18.0.0/16`) and rejects host bits.
pub fn parse_masked_cidr(s: &str) -> Result<IpNetwork, String> {
    if !s.contains('/') {
        return Err(format!("'{s}' is not a CIDR (address/prefix-length)"));
    }
    let net: IpNetwork = s
        .parse()
        .map_err(|_| format!("'{s}' is not a valid CIDR"))?;
    if net.ip() != net.network() {
        return Err(format!(
            "'{s}' has host bits set; did you mean {}/{}?",
            net.network(),
            net.prefix()
        ));
    }
    Ok(net)
}

/// Parses a CIDR or a bare address (as a /32 or /128), normalised to its network.
pub fn parse_net(s: &str) -> Result<IpNetwork, String> {
    let net: IpNetwork = s
        .parse()
        .map_err(|_| format!("'{s}' is not an IP address or CIDR"))?;
    IpNetwork::new(net.network(), net.prefix()).map_err(|e| format!("'{s}': {e}"))
}

/// Kubernetes' DNS-1123 subdomain rule for object names.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("'{s}' is longer than 253 characters"));
    }
    let ok = s.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{s}' is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit)"
        ))
    }
}

/// Parses a Go-style duration string: a sequence of `<number><unit>` with units
/// `ns`, `us`, `ms`, `s`, `m`, `h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{s}' is not a duration (e.g. 90s, 2m, 1h30m, 500ms)");
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let nanos: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = total
            .checked_add(n.checked_mul(nanos).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    let nanos = u64::try_from(total).map_err(|_| bad())?;
    Ok(std::time::Duration::from_nanos(nanos))
}

/// Joins a path and a list index: `at("spec.ingress", 2)` → `spec.ingress[2]`.
pub fn at(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
