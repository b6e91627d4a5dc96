//! Pods through the CNI plugin, the ping matrix, the node summary from the status sockets, and
//! the convergence bench. Every probe and wait is bounded.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::ProgressBar;

use super::run::{LabArgs, Pod, State, ok, sh};
use super::topology::Topology;

/// (node, established, total) for every node, from the status sockets.
pub(super) fn sessions(args: &LabArgs, topo: &Topology) -> Vec<(String, Option<(u32, u32)>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else { return Vec::new() };
    topo.nodes
        .iter()
        .map(|n| {
            let r = rt
                .block_on(crate::status::fetch(&args.socket(&n.name)))
                .ok();
            let c = r.map(|(_, peers)| {
                let up = peers
                    .iter()
                    .filter(|p| p.state == brindle_proto::status::SessionState::Established as i32)
                    .count() as u32;
                (up, peers.len() as u32)
            });
            (n.name.clone(), c)
        })
        .collect()
}

pub(super) fn wait_sessions(
    args: &LabArgs,
    topo: &Topology,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let s = sessions(args, topo);
        if s.iter()
            .all(|(_, c)| c.is_some_and(|(up, all)| all > 0 && up == all))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            let bad: Vec<String> = s
                .iter()
                .filter(|(_, c)| !c.is_some_and(|(up, all)| all > 0 && up == all))
                .map(|(n, c)| format!("{n} {c:?}"))
                .collect();
            bail!(
                "sessions not Established after {} s: {}",
                limit.as_secs(),
                bad.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(super) fn cni(
    args: &LabArgs,
    topo: &Topology,
    cmd: &str,
    pod: &Pod,
) -> anyhow::Result<serde_json::Value> {
    let (name, node, namespace) = (&pod.name, &pod.node, &pod.namespace);
    let mut conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "lab", "type": "brindle-cni", "datastore": args.db(),
        "nodename": pod.node, "mtu": 1500,
        "log_file_path": args.log("cni").to_str().unwrap_or_default(),
        "ipam": {"type": "brindle-ipam"},
        "args": {"cni": {"labels": pod.labels.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect::<Vec<_>>()}},
    });
    if cmd == "ADD" && !pod.ip.is_empty() {
        conf["args"]["cni"]["ips"] = serde_json::json!([pod.ip]);
    }
    let mut child = Command::new("ip")
        .args(["netns", "exec", &topo.ns(node)])
        .arg(args.bin_dir.join("brindle-cni"))
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", name)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_NETNS",
            format!("/var/run/netns/{}", topo.ns(&format!("p-{name}"))),
        )
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}"),
        )
        .env("CNI_PATH", args.bin_dir.to_str().unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(conf.to_string().as_bytes())?;
    }
    let o = child.wait_with_output()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    if !o.status.success() {
        bail!("CNI {cmd} of {name} on {node}: {}", v);
    }
    Ok(v)
}

/// Adds `pod` through the CNI plugin (`pod.ip`: a fixed address, or empty for IPAM's choice);
/// returns it with its address. A failed ADD leaves no pod namespace behind.
pub(super) fn add_pod(args: &LabArgs, st: &State, mut pod: Pod) -> anyhow::Result<Pod> {
    let topo = &st.topology;
    if !topo.nodes.iter().any(|n| n.name == pod.node) {
        bail!("no node {}", pod.node);
    }
    if st.pods.contains_key(&pod.name) {
        bail!("pod {} exists", pod.name);
    }
    let pns = topo.ns(&format!("p-{}", pod.name));
    sh(&["ip", "netns", "add", &pns])?;
    sh(&["ip", "-n", &pns, "link", "set", "lo", "up"])?;
    match cni(args, topo, "ADD", &pod) {
        Ok(r) => {
            pod.ip = r["ips"][0]["address"]
                .as_str()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            Ok(pod)
        }
        Err(e) => {
            let _ = ok(&["ip", "netns", "del", &pns]);
            Err(e)
        }
    }
}

pub(super) fn del_pod(args: &LabArgs, st: &State, pod: &Pod) -> anyhow::Result<()> {
    cni(args, &st.topology, "DEL", pod)?;
    let _ = ok(&[
        "ip",
        "netns",
        "del",
        &st.topology.ns(&format!("p-{}", pod.name)),
    ]);
    Ok(())
}

/// Every ordered pair of pods: did one ping reach the other? Bounded: one probe of 1 s per
/// pair, eight at a time.
pub(super) fn ping_all(st: &State) -> BTreeMap<(String, String), bool> {
    let pods: Vec<&Pod> = st.pods.values().collect();
    let pairs: Vec<(&Pod, &Pod)> = pods
        .iter()
        .flat_map(|a| {
            pods.iter()
                .filter(move |b| b.name != a.name)
                .map(move |b| (*a, *b))
        })
        .collect();
    let mut out = BTreeMap::new();
    for chunk in pairs.chunks(8) {
        let res: Vec<((String, String), bool)> = std::thread::scope(|s| {
            let hs: Vec<_> = chunk
                .iter()
                .map(|(a, b)| {
                    let ns = st.topology.ns(&format!("p-{}", a.name));
                    s.spawn(move || {
                        (
                            (a.name.clone(), b.name.clone()),
                            ok(&[
                                "ip", "netns", "exec", &ns, "ping", "-c", "1", "-W", "1", &b.ip,
                            ]),
                        )
                    })
                })
                .collect();
            hs.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        out.extend(res);
    }
    out
}

pub(super) fn matrix(st: &State, out: &mut dyn Write) -> anyhow::Result<bool> {
    let m = ping_all(st);
    print_matrix(st, &m, out)
}

/// Prints a ping matrix; true when every pair was reachable.
pub(super) fn print_matrix(
    st: &State,
    m: &BTreeMap<(String, String), bool>,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let color = std::io::stdout().is_terminal();
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    if !color {
        t.force_no_tty();
    }
    let names: Vec<&String> = st.pods.keys().collect();
    let mut header = vec![comfy_table::Cell::new("from \\ to")];
    header.extend(names.iter().map(comfy_table::Cell::new));
    t.set_header(header);
    for a in &names {
        let mut row = vec![comfy_table::Cell::new(format!("{a} {}", st.pods[*a].ip))];
        for b in &names {
            let c = if a == b {
                comfy_table::Cell::new("·")
            } else if m
                .get(&((*a).clone(), (*b).clone()))
                .copied()
                .unwrap_or(false)
            {
                let c = comfy_table::Cell::new("✓");
                if color {
                    c.fg(comfy_table::Color::Green)
                } else {
                    c
                }
            } else {
                let c = comfy_table::Cell::new("✗");
                if color {
                    c.fg(comfy_table::Color::Red)
                } else {
                    c
                }
            };
            row.push(c);
        }
        t.add_row(row);
    }
    let good = m.values().filter(|v| **v).count();
    writeln!(
        out,
        "\nPing matrix ({good}/{} pairs reachable):\n{t}",
        m.len()
    )?;
    Ok(good == m.len())
}

pub(super) fn summary(args: &LabArgs, st: &State, out: &mut dyn Write) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    if !std::io::stdout().is_terminal() {
        t.force_no_tty();
    }
    t.set_header(vec![
        "NODE",
        "ADDRESS",
        "AS",
        "SESSIONS UP/TOTAL",
        "BLOCKS",
        "PODS",
        "READY",
    ]);
    let mut all_ready = true;
    for n in &st.topology.nodes {
        let pods = st.pods.values().filter(|p| p.node == n.name).count();
        match rt.block_on(crate::status::fetch(&args.socket(&n.name))) {
            Ok((s, peers)) => {
                let up = peers
                    .iter()
                    .filter(|p| p.state == brindle_proto::status::SessionState::Established as i32)
                    .count();
                let ready = up == peers.len() && !peers.is_empty() && s.datastore_in_sync;
                all_ready &= ready;
                t.add_row(vec![
                    n.name.clone(),
                    n.ip.clone(),
                    s.local_as.to_string(),
                    format!("{up}/{}", peers.len()),
                    s.blocks.to_string(),
                    pods.to_string(),
                    if ready { "yes".into() } else { "no".into() },
                ]);
            }
            Err(_) => {
                all_ready = false;
                t.add_row(vec![
                    n.name.clone(),
                    n.ip.clone(),
                    n.asn.to_string(),
                    "-".into(),
                    "-".into(),
                    pods.to_string(),
                    "daemon down".into(),
                ]);
            }
        }
    }
    writeln!(out, "{t}")?;
    Ok(all_ready)
}

pub(super) fn bench(args: &LabArgs, pods: u32, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut st = args.load()?;
    let nodes: Vec<String> = st.topology.nodes.iter().map(|n| n.name.clone()).collect();
    let probes: Vec<Pod> = nodes
        .iter()
        .filter_map(|n| st.pods.values().find(|p| &p.node == n).cloned())
        .collect();
    if probes.len() < 2 {
        bail!("bench needs a pod on at least two nodes (up with --pods-per-node 1 or more)");
    }
    let mut times = Vec::new();
    let mut adds = Vec::new();
    let pb = ProgressBar::new(u64::from(pods));
    for i in 0..pods {
        let node = &nodes[i as usize % nodes.len()];
        let name = format!("bench-{i}");
        let t0 = Instant::now();
        let pod = add_pod(args, &st, Pod::new(&name, node, "bench", BTreeMap::new()))?;
        adds.push(t0.elapsed());
        st.pods.insert(name.clone(), pod.clone());
        args.save(&st)?;
        // Reachable from one probe pod on every other node.
        let deadline = t0 + Duration::from_secs(30);
        for p in probes.iter().filter(|p| &p.node != node) {
            let ns = st.topology.ns(&format!("p-{}", p.name));
            while !ok(&[
                "ip", "netns", "exec", &ns, "ping", "-c", "1", "-W", "0.05", &pod.ip,
            ]) {
                if Instant::now() > deadline {
                    bail!(
                        "{} ({}) not reachable from {} after 30 s",
                        name,
                        pod.ip,
                        p.name
                    );
                }
            }
        }
        times.push(t0.elapsed());
        pb.inc(1);
    }
    pb.finish_and_clear();
    times.sort();
    adds.sort();
    let at = |v: &[Duration], q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    writeln!(
        out,
        "CNI ADD (namespace, IPAM, veth, endpoint), {} pods: p50 {:.0} ms, p99 {:.0} ms",
        adds.len(),
        at(&adds, 0.5).as_secs_f64() * 1000.0,
        at(&adds, 0.99).as_secs_f64() * 1000.0
    )?;
    let pct = |q: f64| at(&times, q);
    writeln!(
        out,
        "pod ADD to reachable from every other node, {} pods on {} nodes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        nodes.len(),
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        times
            .last()
            .map(|t| t.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    )?;
    for (k, pid) in st.pids.iter().filter(|(k, _)| k.starts_with("node/")) {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let rss = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .unwrap_or("VmRSS: ?")
                .trim_start_matches("VmRSS:")
                .trim()
                .to_string();
            writeln!(out, "{k}: RSS {rss}")?;
        }
    }
    node_kill_withdrawal(args, &mut st, out)
}

/// Kills the last node's daemon and measures how long until no other node has a Brindle route
/// to that node's first block; then starts the daemon again.
fn node_kill_withdrawal(
    args: &LabArgs,
    st: &mut State,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let Some(victim) = st.topology.nodes.last().map(|n| n.name.clone()) else {
        return Ok(true);
    };
    let Some(pod) = st.pods.values().find(|p| p.node == victim).cloned() else {
        return Ok(true);
    };
    let Ok(ip) = pod.ip.parse::<std::net::Ipv4Addr>() else {
        return Ok(true);
    };
    // The pool's blocks are /26 (the lab's IPPool).
    let block = format!("{}/26", std::net::Ipv4Addr::from(u32::from(ip) & !63));
    let others: Vec<String> = st
        .topology
        .nodes
        .iter()
        .filter(|n| n.name != victim)
        .map(|n| st.topology.ns(&n.name))
        .collect();
    let Some(pid) = st.pids.remove(&format!("node/{victim}")) else {
        return Ok(true);
    };
    let t0 = Instant::now();
    sh(&["kill", "-KILL", &pid.to_string()])?;
    // Graceful restart: the ToRs keep a vanished node's routes for its restart time (120 s).
    let deadline = t0 + Duration::from_secs(200);
    for ns in &others {
        loop {
            let routes = sh(&["ip", "-n", ns, "route", "show", "proto", "80"]).unwrap_or_default();
            if !routes.lines().any(|l| l.starts_with(&block)) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{block} still routed in {ns} 200 s after {victim} was killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    writeln!(
        out,
        "node kill ({victim}) until its block {block} is withdrawn on all {} other nodes: {:.0} ms \
         (graceful restart keeps it for the node's 120 s restart time)",
        others.len(),
        t0.elapsed().as_secs_f64() * 1000.0
    )?;
    let pid = super::network::start_node(args, &st.topology, &victim)?;
    st.pids.insert(format!("node/{victim}"), pid);
    args.save(st)?;
    Ok(true)
}

const DEMO_POLICY: &str = "\
# Applied by `./lab policy demo`.
# 1. Default deny for every pod in the namespace demo (ingress).
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: demo-default-deny
spec:
  order: 1000
  selector: projectcalico.org/namespace == 'demo'
  types: [Ingress]
---
# 2. Then allow traffic from the pods of rack1 (ICMP), as a namespaced policy.
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-from-rack1
  namespace: demo
spec:
  order: 100
  selector: all()
  ingress:
    - action: Allow
      protocol: ICMP
      source:
        selector: rack == 'rack1'
";

/// Waits (bounded) until the matrix satisfies `want` (policy reaches every node within a
/// second or two); returns the last matrix.
fn settle(
    st: &State,
    want: impl Fn(&Pod, &Pod) -> bool,
) -> (BTreeMap<(String, String), bool>, bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = ping_all(st);
        let ok = m
            .iter()
            .all(|((a, b), r)| *r == want(&st.pods[a], &st.pods[b]));
        if ok || Instant::now() > deadline {
            return (m, ok);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `./lab policy demo`: a default deny, then an allow rule, each followed by the matrix, then
/// both removed again.
pub(super) fn policy_demo(args: &LabArgs, st: &State, out: &mut dyn Write) -> anyhow::Result<bool> {
    let dir = args.dir.join("manifests");
    let deny: String = DEMO_POLICY
        .split("---")
        .next()
        .unwrap_or_default()
        .to_string();
    let ctl = |verb: &str, file: &std::path::Path| -> anyhow::Result<()> {
        let me = std::env::current_exe()?;
        let o = Command::new(me)
            .args([verb, "-f", file.to_str().unwrap_or_default()])
            .env("BRINDLE_DATASTORE", args.db())
            .output()?;
        if !o.status.success() {
            bail!("brindlectl {verb}: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    };
    let in_demo = |p: &Pod| p.namespace == "demo";
    let step1 = dir.join("policy-demo-1-deny.yaml");
    std::fs::write(&step1, &deny)?;
    ctl("apply", &step1)?;
    writeln!(
        out,
        "Applied {} (default deny for ingress in namespace demo):",
        step1.display()
    )?;
    let (m, ok1) = settle(st, |_, to| !in_demo(to));
    print_matrix(st, &m, out)?;
    let step2 = dir.join("policy-demo-2-allow.yaml");
    std::fs::write(&step2, DEMO_POLICY)?;
    ctl("apply", &step2)?;
    writeln!(
        out,
        "\nApplied {} (then allow ICMP from the pods of rack1):",
        step2.display()
    )?;
    let from_rack1 = |from: &Pod, to: &Pod| {
        !in_demo(to) || from.labels.get("rack").map(String::as_str) == Some("rack1")
    };
    let (m, ok2) = settle(st, from_rack1);
    print_matrix(st, &m, out)?;
    ctl("delete", &step2)?;
    let (_, ok3) = settle(st, |_, _| true);
    writeln!(
        out,
        "\nRemoved the demo policies: {}",
        if ok3 {
            "every pod reaches every pod again"
        } else {
            "the matrix did not recover"
        }
    )?;
    Ok(ok1 && ok2 && ok3)
}
