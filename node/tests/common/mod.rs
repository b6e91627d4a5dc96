//! The node daemon's end-to-end fixture: node namespaces on one bridge sharing a sqlite
//! datastore, each running `brindle-node`, with helpers to apply resources, read status, wire
//! pods and ping. Shared by the test files of this directory.

#![allow(dead_code)]

use std::fs;
use std::time::{Duration, Instant};

use brindle_bgp_speaker::status::Snapshot;
use brindle_ipam::{AssignArgs, Ipam};
use brindle_tests::netns::*;

pub struct Fabric {
    pub lab: Lab,
    pub db: String,
    /// `--secrets-dir` for the nodes started from now on.
    pub secrets: Option<std::path::PathBuf>,
    pub nodes: Vec<(String, String, usize)>, // (node name, namespace, process index)
}

impl Fabric {
    /// A bridge namespace and `n` node namespaces on it (198.18.10.<i+1>/24).
    pub fn new(n: usize) -> Fabric {
        require(&["ip", "ping"]);
        let mut lab = Lab::new();
        let sw = lab.ns("sw");
        lab.bridge(&sw, "br0", &[]);
        let db = format!("sqlite:{}", lab.path("brindle.db").display());
        let mut f = Fabric {
            lab,
            db,
            secrets: None,
            nodes: Vec::new(),
        };
        for i in 0..n {
            f.add_node(&format!("node-{}", i + 1), i + 1);
        }
        f
    }

    pub fn add_node(&mut self, name: &str, i: usize) {
        let ns = self.lab.ns(name);
        let addr = format!("198.18.10.{i}/24");
        self.lab.link_to_bridge(
            &self.nodes_sw(),
            "br0",
            &format!("p{i}"),
            &ns,
            "eth0",
            &[&addr],
        );
        self.lab.forwarding(&ns);
        self.nodes.push((name.to_string(), ns, usize::MAX));
    }

    pub fn nodes_sw(&self) -> String {
        self.lab.namespaces[0].clone()
    }

    pub fn ns(&self, node: &str) -> String {
        self.nodes.iter().find(|n| n.0 == node).unwrap().1.clone()
    }

    pub fn start(&mut self, node: &str) {
        self.start_with(node, &[]);
    }

    /// Starts `node` with more `run` arguments.
    pub fn start_with(&mut self, node: &str, extra: &[&str]) {
        let bin = env!("CARGO_BIN_EXE_brindle-node");
        let status = self.lab.path(&format!("{node}.status.json"));
        let ns = self.ns(node);
        let secrets = self
            .secrets
            .as_ref()
            .map(|p| p.to_str().unwrap().to_string());
        let db = self.db.clone();
        let sock = self.lab.path(&format!("{node}.sock"));
        let mut args = vec![
            bin,
            "--datastore",
            &db,
            "run",
            "--node-name",
            node,
            "--ip",
            "interface=eth0",
            "--status-file",
            status.to_str().unwrap(),
            "--status-socket",
            sock.to_str().unwrap(),
            "--status-interval-ms",
            "200",
        ];
        // The pods here are wired by hand, mostly without WorkloadEndpoints: policy is off
        // unless a test asks for it.
        if !extra.contains(&"--policy") {
            args.extend(["--policy", "off"]);
        }
        if let Some(d) = &secrets {
            args.extend(["--secrets-dir", d.as_str()]);
        }
        args.extend(extra);
        let idx = self
            .lab
            .spawn_env(&ns, node, &args, &[("RUST_LOG", "info"), ("NO_COLOR", "1")]);
        self.nodes.iter_mut().find(|n| n.0 == node).unwrap().2 = idx;
    }

    pub fn apply(&self, yaml: &str) {
        let f = self.lab.path("apply.yaml");
        fs::write(&f, yaml).unwrap();
        let ctl = brindle_tests::workspace_bin("brindlectl");
        let out = std::process::Command::new(ctl)
            .args(["apply", "-f", f.to_str().unwrap()])
            .env("BRINDLE_DATASTORE", &self.db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "brindlectl apply: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `brindlectl` against `node`'s status socket: (exit code, stdout + stderr).
    pub fn ctl(&self, node: &str, args: &[&str]) -> (i32, String) {
        let sock = self.lab.path(&format!("{node}.sock"));
        let out = std::process::Command::new(brindle_tests::workspace_bin("brindlectl"))
            .args(args)
            .args(["--socket", sock.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    pub fn status(&self, node: &str) -> Option<Snapshot> {
        let text = fs::read_to_string(self.lab.path(&format!("{node}.status.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until `node` has exactly these peers Established.
    pub fn wait_established(&self, node: &str, peers: &[&str], secs: u64) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let st = self.status(node);
            if let Some(s) = &st {
                let mut up: Vec<&str> = s
                    .peers
                    .iter()
                    .filter(|p| p.state == "Established")
                    .map(|p| p.address.as_str())
                    .collect();
                up.sort();
                let mut want = peers.to_vec();
                want.sort();
                if up == want && s.peers.len() == peers.len() {
                    return s.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{node}: peers {peers:?} not all Established in {secs} s; status {st:#?}\n{}",
                self.lab.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A "pod": a namespace with `ip/32` on eth0 behind a veth into the node, wired as the CNI
    /// plugin wires pods (link-local gateway, host /32 route, proxy ARP).
    pub fn pod(&mut self, node: &str, name: &str, ip: &str) -> String {
        let host = self.ns(node);
        let pod = self.lab.wired_pod(&host, name, &format!("cali{name}"), ip);
        sh(&[
            "ip",
            "netns",
            "exec",
            &host,
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.cali{name}.proxy_arp=1"),
        ]);
        pod
    }
}

pub fn allocate(db: &str, node: &str, handle: &str) -> String {
    allocate_from(db, node, handle, &[])
}

pub fn ping(from: &str, to: &str) -> bool {
    try_sh(&[
        "ip", "netns", "exec", from, "ping", "-c", "1", "-W", "1", to,
    ])
    .0
}

pub fn wait_ping(lab: &Lab, from: &str, to: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ping(from, to) {
        assert!(
            Instant::now() < deadline,
            "{from} cannot ping {to} after {secs} s\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub const POOL: &str = "
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pods}
spec: {cidr: 198.19.0.0/16, blockSize: 26}
";

pub fn allocate_from(db: &str, node: &str, handle: &str, pools: &[&str]) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ds = brindle_datastore::open(db).await.unwrap();
        let got = Ipam::new(ds)
            .auto_assign(&AssignArgs {
                handle: handle.into(),
                node: node.into(),
                num_v4: 1,
                v4_pools: pools.iter().map(|p| p.to_string()).collect(),
                timestamp: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        got.v4[0].to_string()
    })
}
