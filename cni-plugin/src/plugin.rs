//! ADD, DEL, CHECK, STATUS and GC over the datastore, IPAM and [`crate::netlink`].
//!
//! ADD allocates under the handle `<network>.<containerID>`, wires the pod, and writes the
//! WorkloadEndpoint; a failure at any step undoes the earlier ones, so no veth, address or
//! endpoint is left behind. A repeated ADD of the same container returns the same result and
//! allocates nothing. DEL removes the veth, the endpoint, then the addresses (so an address is
//! never handed out while still wired); it succeeds when there is nothing to remove.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brindle_crds::document::resource_from_value;
use brindle_crds::workload::endpoint_name;
use brindle_crds::{Kind, Resource, WorkloadEndpoint};
use brindle_datastore::{Datastore, Error as DsError, Key};
use brindle_ipam::{AssignArgs, Ipam};
use serde_json::json;

use crate::config::Request;
use crate::netlink::{self, Wiring};
use crate::spec::{AddResult, CniError, code};

/// Where the pod is, in Calico's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `k8s` or `cni`.
    pub orchestrator: String,
    /// Namespace of the endpoint object.
    pub namespace: String,
    /// The pod's name (or the container id).
    pub workload: String,
    /// The host side's interface name.
    pub host_if: String,
    /// The endpoint's object name.
    pub endpoint: String,
    /// The IPAM handle.
    pub handle: String,
}

/// `cali` + the first 11 hex digits of SHA-1 of `namespace.pod` (or of the container id).
pub fn host_if_name(seed: &str) -> String {
    let hex = sha1_smol::Sha1::from(seed).digest().to_string();
    format!("cali{}", &hex[..11])
}

/// Calico's seed for the host interface name, with the pod's interface name appended when it is
/// not `eth0` (a second network's attachment gets its own host interface).
fn if_seed(base: &str, ifname: &str) -> String {
    if ifname == "eth0" {
        base.to_string()
    } else {
        format!("{base}.{ifname}")
    }
}

/// The label naming the network that wrote an endpoint.
pub const NETWORK_LABEL: &str = "brindle.dev/network";

/// By default a handle younger than this is never garbage collected (its ADD may still run).
pub const GC_GRACE_SECS: u64 = 60;

/// The pod's identity from the request (pure).
pub fn identity(req: &Request, node: &str) -> Identity {
    let handle = format!("{}.{}", req.conf.name, req.container_id);
    match (
        req.args.get("K8S_POD_NAMESPACE"),
        req.args.get("K8S_POD_NAME"),
    ) {
        (Some(ns), Some(pod)) => Identity {
            orchestrator: "k8s".into(),
            namespace: ns.clone(),
            workload: pod.clone(),
            host_if: host_if_name(&if_seed(&format!("{ns}.{pod}"), &req.ifname)),
            endpoint: endpoint_name(node, "k8s", pod, &req.ifname),
            handle,
        },
        _ => Identity {
            orchestrator: "cni".into(),
            namespace: "default".into(),
            workload: req.container_id.clone(),
            host_if: host_if_name(&if_seed(&req.container_id, &req.ifname)),
            endpoint: endpoint_name(node, "cni", &req.container_id, &req.ifname),
            handle,
        },
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ds_err(e: DsError) -> CniError {
    match e {
        DsError::Unavailable { .. } => CniError::new(
            code::TRY_AGAIN,
            "datastore unavailable, try again later",
            e.to_string(),
        ),
        other => CniError::new(code::IO_FAILURE, "datastore error", other.to_string()),
    }
}

fn ipam_err(e: brindle_ipam::Error) -> CniError {
    match e {
        brindle_ipam::Error::Address { .. } => CniError::new(
            code::INVALID_CONFIG,
            "invalid network configuration: args.cni.ips",
            e.to_string(),
        ),
        brindle_ipam::Error::Datastore(d) => ds_err(d),
        other => CniError::new(
            code::IPAM_FAILED,
            "IPAM could not allocate",
            other.to_string(),
        ),
    }
}

fn wire_err(e: netlink::NlError) -> CniError {
    CniError::new(code::WIRING_FAILED, "wiring the pod failed", e.to_string())
}

/// Opens the datastore named by the configuration or `BRINDLE_DATASTORE`.
pub async fn open(req: &Request, env_ds: Option<&str>) -> Result<Datastore, CniError> {
    let spec = req
        .conf
        .datastore
        .clone()
        .or_else(|| env_ds.map(str::to_string))
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "invalid network configuration: datastore",
                "set \"datastore\" (sqlite:PATH, etcd:URL, kubernetes) or BRINDLE_DATASTORE",
            )
        })?;
    brindle_datastore::open(&spec).await.map_err(ds_err)
}

/// This node's name: the configuration's, the file's, or the hostname.
pub fn node_name(req: &Request) -> Result<String, CniError> {
    if let Some(n) = &req.conf.nodename {
        return Ok(n.clone());
    }
    let path = req
        .conf
        .nodename_file
        .clone()
        .unwrap_or_else(|| "/proc/sys/kernel/hostname".into());
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            CniError::new(
                code::IO_FAILURE,
                "cannot read the node name",
                format!("{}: {e}", path.display()),
            )
        })
}

fn endpoint_resource(
    req: &Request,
    id: &Identity,
    node: &str,
    mac: &str,
    ips: &[IpAddr],
) -> Result<Resource, CniError> {
    let mut labels: BTreeMap<String, String> = req.conf.labels.clone();
    labels.insert("projectcalico.org/namespace".into(), id.namespace.clone());
    labels.insert(
        "projectcalico.org/orchestrator".into(),
        id.orchestrator.clone(),
    );
    labels.insert(NETWORK_LABEL.into(), req.conf.name.clone());
    let profiles = if id.orchestrator == "k8s" {
        vec![format!("kns.{}", id.namespace)]
    } else {
        vec![req.conf.name.clone()]
    };
    let nets: Vec<String> = ips
        .iter()
        .map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
        .collect();
    resource_from_value(json!({
        "apiVersion": brindle_crds::API_VERSION, "kind": "WorkloadEndpoint",
        "metadata": {"name": id.endpoint, "namespace": id.namespace, "labels": labels},
        "spec": {
            "orchestrator": id.orchestrator, "workload": if id.orchestrator == "k8s" { "" } else { &id.workload },
            "node": node, "containerID": req.container_id,
            "pod": if id.orchestrator == "k8s" { id.workload.as_str() } else { "" },
            "endpoint": req.ifname, "ipNetworks": nets, "profiles": profiles,
            "interfaceName": id.host_if, "mac": mac,
        }
    }))
    .map_err(|e| CniError::new(code::ENDPOINT_FAILED, "invalid workload endpoint", format!("{e:?}")))
}

/// Without Kubernetes, Calico gives each network a profile: its endpoints carry the network's
/// name as a label, accept traffic from each other and send anywhere.
async fn ensure_profile(ds: &Datastore, network: &str) -> Result<(), CniError> {
    let key = Key::new(Kind::Profile, network);
    match ds.get(&key).await {
        Ok(_) => return Ok(()),
        Err(DsError::NotFound { .. }) => {}
        Err(e) => return Err(ds_err(e)),
    }
    let p = resource_from_value(json!({
        "apiVersion": brindle_crds::API_VERSION, "kind": "Profile",
        "metadata": {"name": network},
        "spec": {
            "ingress": [{"action": "Allow", "source": {"selector": format!("has({network})")}}],
            "egress": [{"action": "Allow"}],
            "labelsToApply": {network: ""},
        }
    }))
    .map_err(|e| CniError::new(code::ENDPOINT_FAILED, "invalid profile", format!("{e:?}")))?;
    match ds.create(&p).await {
        Ok(_) | Err(DsError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(ds_err(e)),
    }
}

/// ADD.
pub async fn add(req: &Request, ds: &Datastore) -> Result<AddResult, CniError> {
    let node = node_name(req)?;
    let id = identity(req, &node);
    let netns = req.netns.clone().unwrap_or_default();
    if !netns.exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            "the container's network namespace does not exist",
            netns.display().to_string(),
        ));
    }
    let ipam = Ipam::new(ds.clone());
    let held = ipam.addresses_of(&id.handle).await.map_err(ipam_err)?;
    // A repeated ADD: same addresses; re-wire only if the pod lost its interface.
    if !held.is_empty() {
        let pod = netlink::pod_view(&netns, &req.ifname).map_err(wire_err)?;
        let mac = if pod.exists && held.iter().all(|ip| pod.addrs.contains(ip)) {
            pod.mac.unwrap_or_default()
        } else {
            // Damaged: start the wiring over with the same addresses.
            netlink::unwire(&id.host_if).map_err(wire_err)?;
            wire(req, &id, &held, &netns)?
        };
        return finish(req, ds, &id, &node, &mac, held, &netns, false).await;
    }
    let ips = allocate(req, &ipam, &id, &node).await?;
    let mac = match wire(req, &id, &ips, &netns) {
        Ok(m) => m,
        Err(e) => {
            let _ = ipam.release_by_handle(&id.handle).await;
            return Err(e);
        }
    };
    finish(req, ds, &id, &node, &mac, ips, &netns, true).await
}

fn wire(req: &Request, id: &Identity, ips: &[IpAddr], netns: &Path) -> Result<String, CniError> {
    crate::failpoint::hit("wire")?;
    let mac = netlink::wire(&Wiring {
        netns: netns.to_path_buf(),
        host_if: id.host_if.clone(),
        pod_if: req.ifname.clone(),
        mtu: req.conf.mtu,
        ips: ips.to_vec(),
    })
    .map_err(wire_err)?;
    if let Err(e) = crate::failpoint::hit("wired") {
        // As a failure after the veth was made: undo it here, as netlink::wire does.
        let _ = netlink::unwire(&id.host_if);
        return Err(e);
    }
    Ok(mac)
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    req: &Request,
    ds: &Datastore,
    id: &Identity,
    node: &str,
    mac: &str,
    ips: Vec<IpAddr>,
    netns: &Path,
    fresh: bool,
) -> Result<AddResult, CniError> {
    let written = async {
        crate::failpoint::hit("endpoint")?;
        if id.orchestrator != "k8s" {
            ensure_profile(ds, &req.conf.name).await?;
        }
        let wep = endpoint_resource(req, id, node, mac, &ips)?;
        ds.apply(&wep).await.map_err(|e| match e {
            DsError::Unavailable { .. } => ds_err(e),
            other => CniError::new(
                code::ENDPOINT_FAILED,
                "cannot write the workload endpoint",
                other.to_string(),
            ),
        })
    }
    .await;
    if let Err(e) = written {
        if fresh {
            let _ = netlink::unwire(&id.host_if);
            let _ = Ipam::new(ds.clone()).release_by_handle(&id.handle).await;
        }
        return Err(e);
    }
    tracing::info!(target: "cni.add", container = %req.container_id, handle = %id.handle, host_if = %id.host_if, ips = ?ips, fresh, "pod wired");
    Ok(AddResult {
        host_if: id.host_if.clone(),
        pod_if: req.ifname.clone(),
        pod_mac: mac.to_string(),
        sandbox: netns.display().to_string(),
        ips,
    })
}

async fn allocate(
    req: &Request,
    ipam: &Ipam,
    id: &Identity,
    node: &str,
) -> Result<Vec<IpAddr>, CniError> {
    let mut attrs = BTreeMap::new();
    attrs.insert(
        brindle_ipam::attr::CONTAINER.to_string(),
        req.container_id.clone(),
    );
    if id.orchestrator == "k8s" {
        attrs.insert(
            brindle_ipam::attr::NAMESPACE.to_string(),
            id.namespace.clone(),
        );
        attrs.insert(brindle_ipam::attr::POD.to_string(), id.workload.clone());
    }
    let args = AssignArgs {
        handle: id.handle.clone(),
        node: node.to_string(),
        num_v4: u32::from(req.conf.ipam.assign_ipv4),
        num_v6: u32::from(req.conf.ipam.assign_ipv6),
        v4_pools: req.conf.ipam.ipv4_pools.clone(),
        v6_pools: req.conf.ipam.ipv6_pools.clone(),
        attrs,
        timestamp: now(),
        tunnel: false,
    };
    if !req.conf.ips.is_empty() {
        let mut got = Vec::new();
        for ip in &req.conf.ips {
            if let Err(e) = ipam.assign_ip(*ip, &args).await {
                let _ = ipam.release_by_handle(&id.handle).await;
                return Err(ipam_err(e));
            }
            got.push(*ip);
        }
        return Ok(got);
    }
    let a = ipam.auto_assign(&args).await.map_err(ipam_err)?;
    Ok(a.v4.into_iter().chain(a.v6).collect())
}

/// DEL: idempotent.
pub async fn del(req: &Request, ds: &Datastore) -> Result<(), CniError> {
    let node = node_name(req)?;
    let id = identity(req, &node);
    let key = Key::namespaced(
        Kind::WorkloadEndpoint,
        id.namespace.clone(),
        id.endpoint.clone(),
    );
    // The endpoint and host interface are named after the pod, not the sandbox: a late DEL
    // of an old sandbox must not tear down the pod's new one. Only its own addresses go.
    let current = match ds.get(&key).await {
        Ok(Resource::WorkloadEndpoint(w)) => Some(w),
        Ok(_) | Err(DsError::NotFound { .. }) => None,
        Err(e) => return Err(ds_err(e)),
    };
    let superseded = current.as_ref().is_some_and(|w| {
        !w.spec.container_id.is_empty() && w.spec.container_id != req.container_id
    });
    if superseded {
        tracing::info!(target: "cni.del", container = %req.container_id, "a newer sandbox owns the interface and endpoint; releasing only this sandbox's addresses");
    } else {
        netlink::unwire(&id.host_if).map_err(wire_err)?;
        match ds.delete(&key, None).await {
            Ok(()) | Err(DsError::NotFound { .. }) => {}
            Err(e) => return Err(ds_err(e)),
        }
    }
    let freed = Ipam::new(ds.clone())
        .release_by_handle(&id.handle)
        .await
        .map_err(ipam_err)?;
    tracing::info!(target: "cni.del", container = %req.container_id, handle = %id.handle, freed = ?freed, "pod unwired");
    Ok(())
}

/// CHECK: every difference, named.
pub async fn check(req: &Request, ds: &Datastore) -> Result<(), CniError> {
    let prev = req.conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "invalid network configuration: prevResult",
            "CHECK needs prevResult",
        )
    })?;
    let want = crate::spec::prev_ips(prev)?;
    let node = node_name(req)?;
    let id = identity(req, &node);
    let netns = req.netns.clone().unwrap_or_default();
    let mut problems = Vec::new();
    let host = netlink::host_view(&id.host_if, &want).map_err(wire_err)?;
    match host.host_if {
        None => problems.push(format!("host interface {} is missing", id.host_if)),
        Some(idx) => {
            for (ip, owner) in &host.routes {
                match owner {
                    Some(o) if *o == idx => {}
                    Some(o) => problems.push(format!(
                        "host route for {ip} goes through interface {o}, not {}",
                        id.host_if
                    )),
                    None => problems.push(format!("host route for {ip} is missing")),
                }
            }
        }
    }
    let pod = netlink::pod_view(&netns, &req.ifname).map_err(wire_err)?;
    if !pod.exists {
        problems.push(format!("{} is missing in {}", req.ifname, netns.display()));
    } else {
        for ip in &want {
            if !pod.addrs.contains(ip) {
                problems.push(format!("{} lacks address {ip}", req.ifname));
            }
        }
        if want.iter().any(IpAddr::is_ipv4) && !pod.default4 {
            problems.push(format!(
                "the pod's IPv4 default route via {} is missing",
                req.ifname
            ));
        }
        if want.iter().any(IpAddr::is_ipv6) && !pod.default6 {
            problems.push(format!(
                "the pod's IPv6 default route via {} is missing",
                req.ifname
            ));
        }
    }
    let held: BTreeSet<IpAddr> = Ipam::new(ds.clone())
        .addresses_of(&id.handle)
        .await
        .map_err(ipam_err)?
        .into_iter()
        .collect();
    let want_set: BTreeSet<IpAddr> = want.iter().copied().collect();
    if held != want_set {
        problems.push(format!(
            "IPAM handle {} holds {held:?}, the result says {want_set:?}",
            id.handle
        ));
    }
    match ds
        .get(&Key::namespaced(
            Kind::WorkloadEndpoint,
            id.namespace.clone(),
            id.endpoint.clone(),
        ))
        .await
    {
        Ok(Resource::WorkloadEndpoint(WorkloadEndpoint { spec, .. })) => {
            let nets: BTreeSet<IpAddr> = spec
                .ip_networks
                .iter()
                .filter_map(|n| n.split('/').next()?.parse().ok())
                .collect();
            if nets != want_set {
                problems.push(format!(
                    "endpoint {} lists {nets:?}, the result says {want_set:?}",
                    id.endpoint
                ));
            }
            if spec.interface_name != id.host_if {
                problems.push(format!(
                    "endpoint {} names interface {}",
                    id.endpoint, spec.interface_name
                ));
            }
        }
        Ok(_) | Err(DsError::NotFound { .. }) => problems.push(format!(
            "workload endpoint {}/{} is missing",
            id.namespace, id.endpoint
        )),
        Err(e) => return Err(ds_err(e)),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::CHECK_FAILED,
            "the attachment differs from its result",
            problems.join("; "),
        ))
    }
}

/// STATUS: can ADD be served?
pub async fn status(ds: &Datastore) -> Result<(), CniError> {
    let pools = tokio::time::timeout(Duration::from_secs(5), ds.list(Kind::IPPool, None, None))
        .await
        .map_err(|_| {
            CniError::new(
                code::NOT_AVAILABLE,
                "datastore did not answer",
                ds.endpoint(),
            )
        })?
        .map_err(|e| CniError::new(code::NOT_AVAILABLE, "datastore unavailable", e.to_string()))?;
    let usable = pools
        .iter()
        .any(|p| matches!(p, Resource::IPPool(p) if !p.spec.disabled));
    if usable {
        Ok(())
    } else {
        Err(CniError::new(
            code::NOT_AVAILABLE,
            "no enabled IPPool",
            "ADD would fail: create an IPPool",
        ))
    }
}

/// GC: releases the handles and endpoints of this network and node whose attachment is not
/// in `cni.dev/valid-attachments`, and removes stray veths. Goes on past a failure and reports
/// every one at the end. Returns the handles released.
pub async fn gc(req: &Request, ds: &Datastore) -> Result<Vec<String>, CniError> {
    let mut failures: Vec<String> = Vec::new();
    let node = node_name(req)?;
    let valid: BTreeSet<String> = req
        .conf
        .valid_attachments
        .iter()
        .map(|(c, _)| format!("{}.{c}", req.conf.name))
        .collect();
    let prefix = format!("{}.", req.conf.name);
    let ipam = Ipam::new(ds.clone());
    let mut released = Vec::new();
    for r in ds
        .list(Kind::IPAMHandle, None, None)
        .await
        .map_err(ds_err)?
    {
        let Resource::IPAMHandle(h) = r else { continue };
        let hid = h.spec.handle_id.clone();
        let ann = h.metadata.annotations.clone().unwrap_or_default();
        // A handle without a node is not known to be ours; a young one may belong to an ADD
        // still running.
        let this_node = ann.get("brindle.dev/node").is_some_and(|n| *n == node);
        let young = ann
            .get("brindle.dev/created")
            .and_then(|t| t.parse::<u64>().ok())
            .is_none_or(|t| now().saturating_sub(t) < req.conf.gc_grace_seconds);
        if hid.starts_with(&prefix) && !valid.contains(&hid) && this_node && !young {
            match ipam.release_by_handle(&hid).await {
                Ok(_) => released.push(hid),
                Err(e) => failures.push(format!("release {hid}: {e}")),
            }
        }
    }
    for r in ds
        .list(Kind::WorkloadEndpoint, None, None)
        .await
        .map_err(ds_err)?
    {
        let Resource::WorkloadEndpoint(w) = &r else {
            continue;
        };
        let hid = format!("{prefix}{}", w.spec.container_id);
        let network = w
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NETWORK_LABEL));
        if w.spec.node == node
            && !w.spec.container_id.is_empty()
            && !valid.contains(&hid)
            && network == Some(&req.conf.name)
        {
            match ds
                .delete(&Key::of(&r), brindle_datastore::revision_of(&r))
                .await
            {
                // Gone or changed meanwhile: someone else dealt with it.
                Ok(()) | Err(DsError::NotFound { .. } | DsError::Conflict { .. }) => {}
                Err(e) => failures.push(format!("delete endpoint {}: {e}", Key::of(&r))),
            }
        }
    }
    // Stray veths: a plugin killed after wiring leaves a `cali*` interface that no endpoint
    // names. One is removed when every address routed to it is free in IPAM (an ADD still
    // running holds its address, so its veth stays); one with no route at all is left alone,
    // since an ADD may be between making the veth and routing to it.
    let named: BTreeSet<String> = ds
        .list(Kind::WorkloadEndpoint, None, None)
        .await
        .map_err(ds_err)?
        .iter()
        .filter_map(|r| match r {
            Resource::WorkloadEndpoint(w) if w.spec.node == node => {
                Some(w.spec.interface_name.clone())
            }
            _ => None,
        })
        .collect();
    let held: BTreeSet<IpAddr> = ipam
        .blocks()
        .await
        .map_err(ipam_err)?
        .iter()
        .filter_map(|b| {
            let net = b.spec.cidr.parse().ok()?;
            Some(
                brindle_ipam::block::allocations(&b.spec, &net)
                    .map(|(ip, _)| ip)
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    let mut removed = 0;
    for (link, addrs) in netlink::cali_links().map_err(wire_err)? {
        if named.contains(&link) || addrs.is_empty() || addrs.iter().any(|a| held.contains(a)) {
            continue;
        }
        tracing::info!(target: "cni.gc", link, addrs = ?addrs, "removing a stray veth");
        match netlink::unwire(&link) {
            Ok(()) => removed += 1,
            Err(e) => failures.push(format!("remove {link}: {e}")),
        }
    }
    tracing::info!(target: "cni.gc", released = released.len(), stray_links = removed, failures = failures.len(), "garbage collected");
    if !failures.is_empty() {
        return Err(CniError::new(
            code::IPAM_FAILED,
            "garbage collection did not finish everything",
            failures.join("; "),
        ));
    }
    Ok(released)
}
