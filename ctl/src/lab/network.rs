//! The lab's network and daemons: namespaces and links with iproute2 (linked only to each
//! other), BIRD/FRR routers and brindle-node started detached inside them, and removal of
//! everything by the lab's namespace marker.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::run::{LabArgs, State, ok, sh};
use super::topology::{Router, Shape, Topology};

pub(super) fn ipip_available() -> bool {
    std::fs::read_to_string("/proc/modules")
        .is_ok_and(|m| m.lines().any(|l| l.starts_with("ipip ")))
        || Path::new("/sys/module/ipip").exists()
}

pub(super) fn namespaces(marker: &str) -> anyhow::Result<impl Iterator<Item = String>> {
    let list = sh(&["ip", "netns", "list"])?;
    let marker = marker.to_string();
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(move |n| n.starts_with(&marker))
        .collect::<Vec<_>>()
        .into_iter())
}

/// Kills every process inside the marked namespaces (and the recorded PIDs), then deletes the
/// namespaces. Bounded: one pass per namespace, SIGKILL.
pub(super) fn down_by_marker(
    marker: &str,
    pids: Option<&BTreeMap<String, u32>>,
) -> anyhow::Result<usize> {
    if let Some(p) = pids {
        for pid in p.values() {
            let _ = ok(&["kill", "-KILL", &pid.to_string()]);
        }
    }
    let mut n = 0;
    for ns in namespaces(marker)? {
        if let Ok(pids) = sh(&["ip", "netns", "pids", &ns]) {
            for pid in pids.split_whitespace() {
                let _ = ok(&["kill", "-KILL", pid]);
            }
        }
        let _ = ok(&["ip", "netns", "del", &ns]);
        n += 1;
    }
    Ok(n)
}

pub(super) fn start_node(args: &LabArgs, topo: &Topology, node: &str) -> anyhow::Result<u32> {
    let bin = args.bin_dir.join("brindle-node");
    let sock = args.socket(node);
    args.spawn(
        &topo.ns(node),
        &format!("node-{node}"),
        &[
            bin.to_str().unwrap_or_default(),
            "--datastore",
            &args.db(),
            "run",
            "--node-name",
            node,
            "--ip",
            "interface=eth0",
            "--status-socket",
            sock.to_str().unwrap_or_default(),
        ],
    )
}

pub(super) fn build_network(topo: &Topology) -> anyhow::Result<()> {
    let add_ns = |short: &str| -> anyhow::Result<String> {
        let ns = topo.ns(short);
        sh(&["ip", "netns", "add", &ns])?;
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        Ok(ns)
    };
    let link = |a: &str,
                a_if: &str,
                a_addr: Option<&str>,
                b: &str,
                b_if: &str,
                b_addr: Option<&str>|
     -> anyhow::Result<()> {
        sh(&[
            "ip", "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ])?;
        for (ns, ifn, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
            if let Some(ad) = addr {
                sh(&["ip", "-n", ns, "addr", "add", ad, "dev", ifn])?;
            }
            sh(&["ip", "-n", ns, "link", "set", ifn, "up"])?;
        }
        Ok(())
    };
    // Each L2 segment is a bridge: in the ToR's namespace (racks) or a switch (mesh).
    let mut segments: BTreeMap<u32, String> = BTreeMap::new();
    match topo.shape {
        Shape::Mesh => {
            let sw = add_ns("switch")?;
            sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
            sh(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
            segments.insert(1, sw);
        }
        Shape::Racks => {
            let spine = add_ns("spine")?;
            for r in 1..=topo.racks {
                let tor = add_ns(&format!("tor{r}"))?;
                sh(&["ip", "-n", &tor, "link", "add", "br0", "type", "bridge"])?;
                sh(&[
                    "ip",
                    "-n",
                    &tor,
                    "addr",
                    "add",
                    &format!("198.18.{r}.1/24"),
                    "dev",
                    "br0",
                ])?;
                sh(&["ip", "-n", &tor, "link", "set", "br0", "up"])?;
                let (t, s) = Topology::spine_link(r);
                link(
                    &tor,
                    "spine",
                    Some(&format!("{t}/30")),
                    &spine,
                    &format!("rack{r}"),
                    Some(&format!("{s}/30")),
                )?;
                segments.insert(r, tor);
            }
        }
    }
    for (i, n) in topo.nodes.iter().enumerate() {
        let ns = add_ns(&n.name)?;
        let seg = &segments[&n.rack];
        let port = format!("n{i}");
        link(seg, &port, None, &ns, "eth0", Some(&format!("{}/24", n.ip)))?;
        sh(&["ip", "-n", seg, "link", "set", &port, "master", "br0"])?;
        if topo.shape == Shape::Racks {
            // Hosts reach other racks through their ToR (tunnels need the other nodes).
            sh(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{}.1", n.rack),
            ])?;
        }
    }
    Ok(())
}

pub(super) fn start_routers(args: &LabArgs, topo: &Topology, st: &mut State) -> anyhow::Result<()> {
    let routers = args.dir.join("routers");
    let bird = |name: &str, ns: &str, conf: String| -> anyhow::Result<u32> {
        let c = routers.join(format!("{name}.conf"));
        std::fs::write(&c, conf)?;
        let sock = routers.join(format!("{name}.ctl"));
        args.spawn(
            ns,
            name,
            &[
                "bird",
                "-f",
                "-c",
                c.to_str().unwrap_or_default(),
                "-s",
                sock.to_str().unwrap_or_default(),
            ],
        )
    };
    st.pids.insert(
        "spine".into(),
        bird("spine", &topo.ns("spine"), topo.bird_spine())?,
    );
    for r in 1..=topo.racks {
        let name = format!("tor{r}");
        let ns = topo.ns(&name);
        match Topology::tor_router(r) {
            Router::Bird => {
                st.pids
                    .insert(name.clone(), bird(&name, &ns, topo.bird_tor(r))?);
            }
            Router::Frr => {
                let d = routers.join(&name);
                std::fs::create_dir_all(&d)?;
                let _ = ok(&["chmod", "777", d.to_str().unwrap_or_default()]);
                std::fs::write(d.join("frr.conf"), topo.frr_tor(r))?;
                std::fs::write(d.join("vtysh.conf"), "")?;
                std::fs::write(d.join("zebra.conf"), format!("hostname {name}\n"))?;
                let ds = d.to_str().unwrap_or_default().to_string();
                let pathspace = format!("{}-{name}", topo.name);
                for daemon in ["zebra", "bgpd"] {
                    let conf = format!(
                        "{ds}/{}.conf",
                        if daemon == "zebra" { "zebra" } else { "frr" }
                    );
                    let pid = args.spawn(
                        &ns,
                        &format!("{name}-{daemon}"),
                        &[
                            &format!("/usr/lib/frr/{daemon}"),
                            "-N",
                            &pathspace,
                            "-f",
                            &conf,
                            "-i",
                            &format!("{ds}/{daemon}.pid"),
                            "-z",
                            &format!("{ds}/zserv.api"),
                            "--vty_socket",
                            &ds,
                            "-u",
                            "frr",
                            "-g",
                            "frr",
                            "-P",
                            "0",
                        ],
                    )?;
                    st.pids.insert(format!("{name}-{daemon}"), pid);
                    if daemon == "zebra" {
                        let zs = d.join("zserv.api");
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while !zs.exists() {
                            if Instant::now() > deadline {
                                bail!(
                                    "zebra of {name} did not start (see {})",
                                    args.log(&format!("{name}-zebra")).display()
                                );
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
