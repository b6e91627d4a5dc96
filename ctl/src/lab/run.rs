//! The lab's actions: namespaces and links with iproute2, daemons started detached inside the
//! namespaces (PIDs recorded in `<dir>/state.json`), pods through the CNI plugin, status over
//! each node's status socket. Every wait is bounded; a failed `up` tears down what it made.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::network::{
    build_network, down_by_marker, ipip_available, namespaces, start_node, start_routers,
};
use super::pods::{add_pod, bench, del_pod, matrix, ping_all, summary, wait_sessions};
use super::topology::{Encap, Shape, Topology};
use super::{LabCommand, NodeCommand, PodCommand, PolicyCommand};

/// Global lab options.
#[derive(Debug, Clone)]
pub struct LabArgs {
    /// Lab instance name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Where brindle-node and brindle-cni are.
    pub bin_dir: PathBuf,
}

/// A pod the lab made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pod {
    /// Name (also the container id).
    pub name: String,
    /// Its node.
    pub node: String,
    /// Kubernetes-like namespace.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its address.
    pub ip: String,
}

/// What the lab made (for status, down, and later subcommands).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The topology.
    pub topology: Topology,
    /// Daemon PIDs by name.
    pub pids: BTreeMap<String, u32>,
    /// Pods by name.
    pub pods: BTreeMap<String, Pod>,
}

pub(super) fn sh(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) fn ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Pod {
    /// A pod to add (IPAM picks the address).
    pub fn new(name: &str, node: &str, namespace: &str, labels: BTreeMap<String, String>) -> Pod {
        Pod {
            name: name.into(),
            node: node.into(),
            namespace: namespace.into(),
            labels,
            ip: String::new(),
        }
    }
}

impl LabArgs {
    pub(super) fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub(super) fn load(&self) -> anyhow::Result<State> {
        let p = self.state_path();
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "no lab {:?} is up ({} is missing; run `./lab up`)",
                self.name,
                p.display()
            )
        })?;
        Ok(serde_json::from_str(&text)?)
    }

    pub(super) fn save(&self, st: &State) -> anyhow::Result<()> {
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(st)?)?;
        std::fs::rename(tmp, self.state_path())?;
        Ok(())
    }

    pub(super) fn db(&self) -> String {
        format!("sqlite:{}", self.dir.join("brindle.db").display())
    }

    pub(super) fn socket(&self, node: &str) -> PathBuf {
        self.dir.join("sockets").join(format!("{node}.sock"))
    }

    pub(super) fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Starts `args` inside `ns`, detached, logging to `logs/<name>.log`; returns its PID.
    pub(super) fn spawn(&self, ns: &str, name: &str, args: &[&str]) -> anyhow::Result<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(name))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("BRINDLE_LAB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(child.id())
    }
}

pub(super) fn spinner(msg: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb.set_message(msg.to_string());
    if !std::io::stderr().is_terminal() {
        eprintln!("lab: {msg}");
    }
    pb
}

pub(super) fn done(pb: ProgressBar, msg: &str) {
    pb.finish_and_clear();
    eprintln!("✓ {msg}");
}

/// Runs one lab subcommand.
pub fn execute(args: &LabArgs, cmd: LabCommand, out: &mut dyn Write) -> anyhow::Result<bool> {
    match cmd {
        LabCommand::Up {
            topology,
            racks,
            nodes_per_rack,
            pods_per_node,
            encap,
        } => {
            if encap == Encap::Ipip && !ipip_available() {
                bail!(
                    "--encap ipip needs an ipip-capable kernel and this one has no ipip module; \
                     use --encap vxlan (or none)"
                );
            }
            let topo = Topology::new(&args.name, topology, racks, nodes_per_rack, encap)
                .map_err(anyhow::Error::msg)?;
            if args.state_path().exists() || namespaces(&topo.marker())?.next().is_some() {
                bail!("lab {:?} is already up (`./lab down` first)", args.name);
            }
            match up(args, &topo, pods_per_node, out) {
                Ok(ok) => Ok(ok),
                Err(e) => {
                    eprintln!("lab: up failed ({e:#}); cleaning up");
                    eprintln!("lab: logs are in {}", args.dir.join("logs").display());
                    let _ = down_by_marker(&topo.marker(), None);
                    Err(e)
                }
            }
        }
        LabCommand::Down => down(args, out),
        LabCommand::Status => {
            let st = args.load()?;
            summary(args, &st, out)
        }
        LabCommand::Ping => {
            let st = args.load()?;
            matrix(&st, out)
        }
        LabCommand::Pod { command } => {
            let mut st = args.load()?;
            match command {
                PodCommand::Add {
                    name,
                    node,
                    namespace,
                    labels,
                    ip,
                } => {
                    let labels = labels
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|kv| {
                            kv.split_once('=')
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .ok_or_else(|| anyhow::anyhow!("label {kv:?} is not k=v"))
                        })
                        .collect::<anyhow::Result<_>>()?;
                    let mut want = Pod::new(&name, &node, &namespace, labels);
                    want.ip = ip.unwrap_or_default();
                    let pod = add_pod(args, &st, want)?;
                    writeln!(out, "pod {} on {} has {}", pod.name, pod.node, pod.ip)?;
                    st.pods.insert(name, pod);
                    args.save(&st)?;
                }
                PodCommand::Del { name } => {
                    let pod = st
                        .pods
                        .get(&name)
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("no pod {name}"))?;
                    del_pod(args, &st, &pod)?;
                    st.pods.remove(&name);
                    args.save(&st)?;
                    writeln!(out, "pod {name} deleted")?;
                }
            }
            Ok(true)
        }
        LabCommand::Exec { pod, command } => {
            let st = args.load()?;
            if !st.pods.contains_key(&pod) {
                bail!("no pod {pod}");
            }
            let status = Command::new("ip")
                .args(["netns", "exec", &st.topology.ns(&format!("p-{pod}"))])
                .args(&command)
                .status()?;
            Ok(status.success())
        }
        LabCommand::Node { command } => {
            let mut st = args.load()?;
            match command {
                NodeCommand::Kill { name } => {
                    let pid = st
                        .pids
                        .remove(&format!("node/{name}"))
                        .ok_or_else(|| anyhow::anyhow!("node {name} is not running"))?;
                    let _ = sh(&["kill", "-KILL", &pid.to_string()]);
                    writeln!(
                        out,
                        "killed brindle-node on {name} (pid {pid}); its kernel routes stay"
                    )?;
                }
                NodeCommand::Start { name } => {
                    let n = st
                        .topology
                        .nodes
                        .iter()
                        .find(|n| n.name == name)
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("no node {name}"))?;
                    let pid = start_node(args, &st.topology, &n.name)?;
                    st.pids.insert(format!("node/{name}"), pid);
                    writeln!(out, "started brindle-node on {name} (pid {pid})")?;
                }
            }
            args.save(&st)?;
            Ok(true)
        }
        LabCommand::Brindlectl { node, args: rest } => {
            let me = std::env::current_exe()?;
            let mut cmd = Command::new(me);
            cmd.args(&rest).env("BRINDLE_DATASTORE", args.db());
            let status_cmd = rest.first().is_some_and(|c| c == "node" || c == "bgp");
            if status_cmd {
                cmd.arg("--socket").arg(args.socket(&node));
            }
            Ok(cmd.status()?.success())
        }
        LabCommand::Policy {
            command: PolicyCommand::Demo,
        } => {
            let st = args.load()?;
            super::pods::policy_demo(args, &st, out)
        }
        LabCommand::Bench { pods } => bench(args, pods, out),
    }
}

fn down(args: &LabArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let pids = args.load().ok().map(|s| s.pids);
    let marker = format!("brlab-{}-", args.name);
    // Give the processes a moment to die before their namespaces go.
    let n = down_by_marker(&marker, pids.as_ref())?;
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    let left = namespaces(&marker)?.count();
    writeln!(
        out,
        "lab {:?} down: {n} namespaces removed, {} left",
        args.name, left
    )?;
    Ok(left == 0)
}

fn up(
    args: &LabArgs,
    topo: &Topology,
    pods_per_node: u32,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    for d in ["logs", "sockets", "manifests", "routers"] {
        std::fs::create_dir_all(args.dir.join(d))?;
    }
    // FRR drops privileges and needs to write its sockets here.
    let _ = ok(&[
        "chmod",
        "-R",
        "777",
        args.dir.join("routers").to_str().unwrap_or_default(),
    ]);
    for bin in ["brindle-node", "brindle-cni"] {
        if !args.bin_dir.join(bin).exists() {
            bail!(
                "{} is missing (build with `cargo build --release --bins`)",
                args.bin_dir.join(bin).display()
            );
        }
    }
    let mut st = State {
        topology: topo.clone(),
        pids: BTreeMap::new(),
        pods: BTreeMap::new(),
    };
    let t0 = Instant::now();
    let pb = spinner("creating namespaces and links");
    build_network(topo)?;
    done(
        pb,
        &format!(
            "{} namespaces linked only to each other",
            namespaces(&topo.marker())?.count()
        ),
    );

    let pb = spinner("starting routers");
    if topo.shape == Shape::Racks {
        start_routers(args, topo, &mut st)?;
    }
    done(pb, "routers started");

    let pb = spinner("applying resources");
    let manifests = args.dir.join("manifests").join("lab.yaml");
    std::fs::write(&manifests, topo.manifests())?;
    let me = std::env::current_exe()?;
    let o = Command::new(&me)
        .args(["apply", "-f", manifests.to_str().unwrap_or_default()])
        .env("BRINDLE_DATASTORE", args.db())
        .output()?;
    if !o.status.success() {
        bail!("brindlectl apply: {}", String::from_utf8_lossy(&o.stderr));
    }
    done(
        pb,
        &format!("resources applied from {}", manifests.display()),
    );

    let pb = spinner("starting brindle-node on every node");
    for n in &topo.nodes {
        let pid = start_node(args, topo, &n.name)?;
        st.pids.insert(format!("node/{}", n.name), pid);
    }
    args.save(&st)?;
    wait_sessions(args, topo, Duration::from_secs(90))?;
    done(pb, "every BGP session is Established");

    let pb = spinner("adding pods through the CNI plugin");
    for n in &topo.nodes {
        for i in 1..=pods_per_node {
            let name = format!("{}-p{i}", n.name);
            let labels = BTreeMap::from([
                (
                    "app".to_string(),
                    if i % 2 == 1 { "web" } else { "db" }.to_string(),
                ),
                ("rack".to_string(), format!("rack{}", n.rack)),
            ]);
            let pod = add_pod(args, &st, Pod::new(&name, &n.name, "demo", labels))?;
            st.pods.insert(name, pod);
        }
    }
    args.save(&st)?;
    done(pb, &format!("{} pods wired", st.pods.len()));

    let pb = spinner("waiting for every pod to be reachable");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ok_all = loop {
        let m = ping_all(&st);
        if m.values().all(|v| *v) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    done(
        pb,
        &format!("lab up in {:.1} s", t0.elapsed().as_secs_f64()),
    );
    writeln!(out, "\n{}", topo.drawing())?;
    summary(args, &st, out)?;
    let matrix_ok = matrix(&st, out)?;
    writeln!(
        out,
        "\nResources: {}  Logs: {}",
        manifests.display(),
        args.dir.join("logs").display()
    )?;
    writeln!(
        out,
        "Try: ./lab status | ./lab ping | ./lab brindlectl {} -- bgp peers | ./lab down",
        topo.nodes[0].name
    )?;
    Ok(ok_all && matrix_ok)
}
