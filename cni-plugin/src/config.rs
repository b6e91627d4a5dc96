//! The request: the network configuration from stdin and the `CNI_*` environment, checked and
//! typed. Every error names the key or variable at fault with the spec's code. Pure (the
//! environment is passed in).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use crate::spec::{CniError, code};

/// The CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach.
    Del,
    /// Verify an attachment.
    Check,
    /// Supported versions.
    Version,
    /// Ready to serve ADD?
    Status,
    /// Remove what no valid attachment uses.
    Gc,
}

/// The `ipam` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    /// Give an IPv4 address (default true).
    pub assign_ipv4: bool,
    /// Give an IPv6 address (default false).
    pub assign_ipv6: bool,
    /// Pools to draw IPv4 from (names or CIDRs); empty = automatic.
    pub ipv4_pools: Vec<String>,
    /// Pools to draw IPv6 from.
    pub ipv6_pools: Vec<String>,
}

/// The network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// The requested version.
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// Datastore (`sqlite:PATH`, `etcd:URL`...); else `BRINDLE_DATASTORE`.
    pub datastore: Option<String>,
    /// This node's name; else `nodename_file`, else the hostname.
    pub nodename: Option<String>,
    /// A file holding the node's name.
    pub nodename_file: Option<PathBuf>,
    /// MTU of the pod's interface.
    pub mtu: u32,
    /// Log file (besides stderr).
    pub log_file_path: Option<PathBuf>,
    /// IPAM settings.
    pub ipam: IpamConf,
    /// Labels from `args.cni.labels` (the CNI conventions' format).
    pub labels: BTreeMap<String, String>,
    /// Fixed addresses from `args.cni.ips`.
    pub ips: Vec<IpAddr>,
    /// CHECK: the previous result.
    pub prev_result: Option<Value>,
    /// GC: `(containerID, ifname)` of attachments still valid.
    pub valid_attachments: Vec<(String, String)>,
    /// GC leaves handles younger than this alone (their ADD may still run); default 60 s.
    pub gc_grace_seconds: u64,
}

/// One invocation.
#[derive(Debug, Clone)]
pub struct Request {
    /// The operation.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, split.
    pub args: BTreeMap<String, String>,
    /// The configuration.
    pub conf: NetConf,
}

fn cfg_err(key: &str, reason: impl Into<String>) -> CniError {
    CniError::new(
        code::INVALID_CONFIG,
        format!("invalid network configuration: {key}"),
        reason,
    )
}

fn env_err(var: &str, reason: impl Into<String>) -> CniError {
    CniError::new(
        code::INVALID_ENV,
        format!("invalid environment variable {var}"),
        reason,
    )
}

fn boolish(v: Option<&Value>, key: &str, default: bool) -> Result<bool, CniError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(o) => Err(cfg_err(key, format!("{o} is not true or false"))),
    }
}

fn strings(v: Option<&Value>, key: &str) -> Result<Vec<String>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| cfg_err(&format!("{key}[{i}]"), "not a string"))
            })
            .collect(),
        Some(_) => Err(cfg_err(key, "not a list of strings")),
    }
}

/// Keys of `runtimeConfig` this plugin has no capability for.
const UNSUPPORTED_RUNTIME: &[&str] = &[
    "portMappings",
    "bandwidth",
    "ipRanges",
    "dns",
    "mac",
    "aliases",
];

/// Parses the configuration (stdin).
pub fn parse_conf(stdin: &[u8]) -> Result<NetConf, CniError> {
    let v: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODE_FAILURE,
            "cannot decode the network configuration",
            e.to_string(),
        )
    })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let cni_version = s("cniVersion").ok_or_else(|| cfg_err("cniVersion", "required"))?;
    crate::spec::check_version(&cni_version)?;
    let name = s("name").ok_or_else(|| cfg_err("name", "required"))?;
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(cfg_err(
            "name",
            format!("{name:?} is not a valid network name"),
        ));
    }
    if let Some(rc) = v.get("runtimeConfig").and_then(Value::as_object) {
        for k in rc.keys() {
            if UNSUPPORTED_RUNTIME.contains(&k.as_str()) {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("unsupported field runtimeConfig.{k}"),
                    "this plugin has no such capability; chain a plugin that does",
                ));
            }
        }
    }
    let ipam = v.get("ipam").cloned().unwrap_or(Value::Null);
    if let Some(t) = ipam.get("type").and_then(Value::as_str)
        && !["brindle-ipam", "calico-ipam", "brindle"].contains(&t)
    {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            "unsupported field ipam.type",
            format!("{t:?}: brindle-cni allocates with brindle-ipam only"),
        ));
    }
    let ipam = IpamConf {
        assign_ipv4: boolish(ipam.get("assign_ipv4"), "ipam.assign_ipv4", true)?,
        assign_ipv6: boolish(ipam.get("assign_ipv6"), "ipam.assign_ipv6", false)?,
        ipv4_pools: strings(ipam.get("ipv4_pools"), "ipam.ipv4_pools")?,
        ipv6_pools: strings(ipam.get("ipv6_pools"), "ipam.ipv6_pools")?,
    };
    let mtu = match v.get("mtu") {
        None | Some(Value::Null) => 1500,
        Some(m) => {
            m.as_u64()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| cfg_err("mtu", format!("{m} is not 68-65535")))? as u32
        }
    };
    let cni_args = v.get("args").and_then(|a| a.get("cni"));
    let mut labels = BTreeMap::new();
    if let Some(ls) = cni_args
        .and_then(|a| a.get("labels"))
        .and_then(Value::as_array)
    {
        for (i, l) in ls.iter().enumerate() {
            let k = l.get("key").and_then(Value::as_str);
            let val = l.get("value").and_then(Value::as_str);
            match (k, val) {
                (Some(k), Some(val)) => {
                    labels.insert(k.to_string(), val.to_string());
                }
                _ => {
                    return Err(cfg_err(
                        &format!("args.cni.labels[{i}]"),
                        "needs key and value",
                    ));
                }
            }
        }
    }
    let ips = strings(cni_args.and_then(|a| a.get("ips")), "args.cni.ips")?
        .iter()
        .map(|s| {
            s.split('/')
                .next()
                .unwrap_or_default()
                .parse::<IpAddr>()
                .map_err(|_| cfg_err("args.cni.ips", format!("{s:?} is not an address")))
        })
        .collect::<Result<_, _>>()?;
    // GC's list (libcni 1.2.0-1.2.2 sends the older key `cni.dev/attachments`); no list means an
    // empty list, but a malformed one is an error: it must never read as "nothing is valid".
    let attachments_key = ["cni.dev/valid-attachments", "cni.dev/attachments"]
        .into_iter()
        .find(|k| v.get(*k).is_some());
    let valid_attachments = match attachments_key {
        None => Vec::new(),
        Some(k) => {
            let arr = v[k]
                .as_array()
                .ok_or_else(|| cfg_err(k, "must be a list of {containerID, ifname}"))?;
            let mut out = Vec::new();
            for (i, x) in arr.iter().enumerate() {
                let c = x.get("containerID").and_then(Value::as_str);
                let f = x.get("ifname").and_then(Value::as_str);
                match (c, f) {
                    (Some(c), Some(f)) => out.push((c.to_string(), f.to_string())),
                    _ => {
                        return Err(cfg_err(
                            &format!("{k}[{i}]"),
                            "needs containerID and ifname",
                        ));
                    }
                }
            }
            out
        }
    };
    if !ipam.assign_ipv4 && !ipam.assign_ipv6 {
        return Err(cfg_err(
            "ipam.assign_ipv4",
            "assign_ipv4 and assign_ipv6 are both false: the pod would get no address",
        ));
    }
    Ok(NetConf {
        cni_version,
        name,
        datastore: s("datastore"),
        nodename: s("nodename"),
        nodename_file: s("nodename_file").map(PathBuf::from),
        mtu,
        log_file_path: s("log_file_path").map(PathBuf::from),
        ipam,
        labels,
        ips,
        prev_result: v.get("prevResult").cloned(),
        valid_attachments,
        gc_grace_seconds: match v.get("gc_grace_seconds") {
            None | Some(Value::Null) => crate::plugin::GC_GRACE_SECS,
            Some(g) => g.as_u64().ok_or_else(|| {
                cfg_err(
                    "gc_grace_seconds",
                    format!("{g} is not a number of seconds"),
                )
            })?,
        },
    })
}

/// Parses the command alone (VERSION needs nothing else).
pub fn command(env: &BTreeMap<String, String>) -> Result<Command, CniError> {
    match env.get("CNI_COMMAND").map(String::as_str) {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("VERSION") => Ok(Command::Version),
        Some("STATUS") => Ok(Command::Status),
        Some("GC") => Ok(Command::Gc),
        Some(o) => Err(env_err(
            "CNI_COMMAND",
            format!("{o:?} is not ADD, DEL, CHECK, VERSION, STATUS or GC"),
        )),
        None => Err(env_err("CNI_COMMAND", "not set")),
    }
}

/// Builds the request from the environment and the parsed configuration.
pub fn request(env: &BTreeMap<String, String>, conf: NetConf) -> Result<Request, CniError> {
    let command = command(env)?;
    let per_container = matches!(command, Command::Add | Command::Del | Command::Check);
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let container_id = match get("CNI_CONTAINERID") {
        Some(c)
            if c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) =>
        {
            c
        }
        Some(c) => {
            return Err(env_err(
                "CNI_CONTAINERID",
                format!("{c:?} has characters other than letters, digits, '-', '_' and '.'"),
            ));
        }
        None if per_container => return Err(env_err("CNI_CONTAINERID", "not set")),
        None => String::new(),
    };
    let ifname = match get("CNI_IFNAME") {
        Some(i) if i.len() <= 15 && !i.contains(['/', ' ']) && i != "." && i != ".." => i,
        Some(i) => {
            return Err(env_err(
                "CNI_IFNAME",
                format!("{i:?} is not a valid interface name"),
            ));
        }
        None if per_container => return Err(env_err("CNI_IFNAME", "not set")),
        None => String::new(),
    };
    let netns = get("CNI_NETNS").map(PathBuf::from);
    if matches!(command, Command::Add | Command::Check) && netns.is_none() {
        return Err(env_err("CNI_NETNS", "not set"));
    }
    let args = get("CNI_ARGS")
        .map(|a| {
            a.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Request {
        command,
        container_id,
        netns,
        ifname,
        args,
        conf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(parse_conf(b"{").unwrap_err().code, code::DECODE_FAILURE);
        let e = parse_conf(br#"{"cniVersion":"9.9.9","name":"n"}"#).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let e = parse_conf(br#"{"cniVersion":"1.0.0"}"#).unwrap_err();
        assert!(e.msg.contains("name"), "{e:?}");
        let e =
            parse_conf(br#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[]}}"#)
                .unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("portMappings"));
        let e = parse_conf(br#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local"}}"#)
            .unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        let e = parse_conf(br#"{"cniVersion":"1.0.0","name":"n","mtu":5}"#).unwrap_err();
        assert!(e.msg.contains("mtu"));
        let c = parse_conf(
            br#"{"cniVersion":"1.0.0","name":"n","ipam":{"assign_ipv6":"true"},
            "args":{"cni":{"labels":[{"key":"app","value":"web"}],"ips":["198.19.0.9/32"]}}}"#,
        )
        .unwrap();
        assert!(c.ipam.assign_ipv4 && c.ipam.assign_ipv6);
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.ips, vec!["198.19.0.9".parse::<IpAddr>().unwrap()]);
        let e = request(
            &env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
            ]),
            c.clone(),
        )
        .unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_NETNS"));
        let e = request(&env(&[("CNI_COMMAND", "ADD")]), c.clone()).unwrap_err();
        assert!(e.msg.contains("CNI_CONTAINERID"));
        let r = request(
            &env(&[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "K8S_POD_NAMESPACE=web;K8S_POD_NAME=nginx-1"),
            ]),
            c,
        )
        .unwrap();
        assert_eq!(r.args["K8S_POD_NAME"], "nginx-1");
    }
}
