//! The Brindle CNI plugin (spec 0.3.0 to 1.1.0: ADD, DEL, CHECK, VERSION, STATUS, GC).
//!
//! A thin binary (`brindle-cni`) over this library:
//! - [`config`]: the network configuration and `CNI_*` environment, typed; errors name the key.
//! - [`spec`]: versions, error codes, results in each version's shape (pure).
//! - [`plugin`]: the operations over the datastore and IPAM, undoing partial work on failure.
//! - [`netlink`]: the veth pair, the pod's addresses and routes, the host route (rtnetlink).

pub mod config;
pub mod failpoint;
pub mod netlink;
pub mod plugin;
pub mod spec;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::Command;
use crate::spec::CniError;

/// Runs one invocation: stdin and environment in, (stdout JSON, success) out.
pub async fn run(
    stdin: &[u8],
    env: &BTreeMap<String, String>,
) -> (Option<Value>, Result<(), CniError>) {
    let version_hint = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| spec::VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into());
    let fail = |e: CniError| (Some(e.to_json(&version_hint)), Err(e));
    let cmd = match config::command(env) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if cmd == Command::Version {
        return (Some(spec::version_info(&version_hint)), Ok(()));
    }
    let conf = match config::parse_conf(stdin) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let req = match config::request(env, conf) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let v = req.conf.cni_version.clone();
    let name = match cmd {
        Command::Check => "CHECK",
        Command::Status => "STATUS",
        Command::Gc => "GC",
        _ => "",
    };
    if let Err(e) = spec::check_command_version(name, &v) {
        return fail(e);
    }
    let ds = match plugin::open(&req, env.get("BRINDLE_DATASTORE").map(String::as_str)).await {
        Ok(ds) => ds,
        Err(mut e) if cmd == Command::Status => {
            e.code = spec::code::NOT_AVAILABLE;
            return fail(e);
        }
        Err(e) => return fail(e),
    };
    let out = match cmd {
        Command::Add => plugin::add(&req, &ds)
            .await
            .map(|r| Some(spec::result_json(&r, &v))),
        Command::Del => plugin::del(&req, &ds).await.map(|_| None),
        Command::Check => plugin::check(&req, &ds).await.map(|_| None),
        Command::Status => plugin::status(&ds).await.map(|_| None),
        Command::Gc => plugin::gc(&req, &ds).await.map(|_| None),
        Command::Version => Ok(None),
    };
    match out {
        Ok(v) => (v, Ok(())),
        Err(e) => (Some(e.to_json(&v)), Err(e)),
    }
}
