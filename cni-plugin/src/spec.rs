//! The CNI specification's wire formats: supported versions, the error object with its
//! well-known codes, and the ADD result in each version's shape. Pure.

use std::net::IpAddr;

use serde_json::{Value, json};

/// Versions this plugin speaks, oldest first.
pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Well-known error codes (CNI spec §"Error").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration (the key is named).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid or missing environment variable (the variable is named).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot serve ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// Brindle: IPAM could not allocate.
    pub const IPAM_FAILED: u32 = 100;
    /// Brindle: wiring the pod failed.
    pub const WIRING_FAILED: u32 = 101;
    /// Brindle: CHECK found a difference.
    pub const CHECK_FAILED: u32 = 102;
    /// Brindle: the endpoint could not be written.
    pub const ENDPOINT_FAILED: u32 = 103;
    /// Brindle: a failure injected by a test (`BRINDLE_CNI_FAILPOINT`).
    pub const INJECTED: u32 = 199;
}

/// An error as the spec prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    /// The code.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Details.
    pub details: String,
}

impl CniError {
    /// An error with a code.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The JSON printed on stdout.
    pub fn to_json(&self, version: &str) -> Value {
        json!({"cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details})
    }
}

/// Checks a requested version.
pub fn check_version(v: &str) -> Result<(), CniError> {
    if VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            format!("cniVersion {v:?} is not one of {VERSIONS:?}"),
        ))
    }
}

/// Refuses a command the configuration's version does not have, as the spec's reference
/// plugins do: CHECK arrived in 0.4.0, STATUS and GC in 1.1.0 (code 1, incompatible version).
pub fn check_command_version(command: &str, v: &str) -> Result<(), CniError> {
    let since = match command {
        "CHECK" => "0.4.0",
        "STATUS" | "GC" => "1.1.0",
        _ => return Ok(()),
    };
    let order = |x: &str| VERSIONS.iter().position(|y| *y == x);
    if order(v) < order(since) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            format!("cniVersion {v} does not have {command} (it arrived in {since})"),
        ));
    }
    Ok(())
}

/// The VERSION answer.
pub fn version_info(v: &str) -> Value {
    json!({"cniVersion": v, "supportedVersions": VERSIONS})
}

/// What ADD made, version-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddResult {
    /// The host side's name.
    pub host_if: String,
    /// The pod side's name.
    pub pod_if: String,
    /// The pod side's MAC.
    pub pod_mac: String,
    /// The pod's namespace path.
    pub sandbox: String,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
}

/// The result in the shape of version `v` (0.3.x/0.4.0 carry `version` per address).
pub fn result_json(r: &AddResult, v: &str) -> Value {
    let old = v.starts_with("0.");
    let ips: Vec<Value> = r
        .ips
        .iter()
        .map(|ip| {
            let (len, gw) = if ip.is_ipv4() {
                (32, crate::netlink::GW4.to_string())
            } else {
                (128, crate::netlink::GW6.to_string())
            };
            let mut o = json!({"address": format!("{ip}/{len}"), "gateway": gw, "interface": 1});
            if old {
                o["version"] = json!(if ip.is_ipv4() { "4" } else { "6" });
            }
            o
        })
        .collect();
    let mut routes = Vec::new();
    if r.ips.iter().any(IpAddr::is_ipv4) {
        routes.push(json!({"dst": "0.0.0.0/0", "gw": crate::netlink::GW4.to_string()}));
    }
    if r.ips.iter().any(IpAddr::is_ipv6) {
        routes.push(json!({"dst": "::/0", "gw": crate::netlink::GW6.to_string()}));
    }
    json!({
        "cniVersion": v,
        "interfaces": [
            {"name": r.host_if, "mac": "ee:ee:ee:ee:ee:ee"},
            {"name": r.pod_if, "mac": r.pod_mac, "sandbox": r.sandbox},
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    })
}

/// The addresses of a previous result (CHECK's `prevResult`), any version.
pub fn prev_ips(prev: &Value) -> Result<Vec<IpAddr>, CniError> {
    let bad = |d: String| CniError::new(code::DECODE_FAILURE, "bad prevResult", d);
    let arr = prev
        .get("ips")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("prevResult.ips is missing".into()))?;
    arr.iter()
        .enumerate()
        .map(|(i, o)| {
            let a = o
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("prevResult.ips[{i}].address is missing")))?;
            let ip = a.split('/').next().unwrap_or_default();
            ip.parse()
                .map_err(|_| bad(format!("prevResult.ips[{i}].address {a:?} is not CIDR")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_shapes() {
        let r = AddResult {
            host_if: "cali0123456789a".into(),
            pod_if: "eth0".into(),
            pod_mac: "02:00:00:00:00:01".into(),
            sandbox: "/var/run/netns/x".into(),
            ips: vec![
                "198.19.0.5".parse().unwrap(),
                "2001:db8::5".parse().unwrap(),
            ],
        };
        let new = result_json(&r, "1.1.0");
        assert_eq!(new["ips"][0]["address"], "198.19.0.5/32");
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["routes"][1]["gw"], "fe80::ecee:eeff:feee:eeee");
        let old = result_json(&r, "0.3.1");
        assert_eq!(old["ips"][1]["version"], "6");
        assert_eq!(prev_ips(&new).unwrap(), r.ips);
        assert_eq!(check_version("0.2.0").unwrap_err().code, 1);
    }
}
