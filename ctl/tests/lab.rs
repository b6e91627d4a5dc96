//! The lab end to end, as CI runs it: 2 racks × 2 nodes (BIRD and FRR ToRs, a BIRD spine), two
//! pods per node through the CNI plugin; every session Established, the full ping matrix, a
//! node kill survived by the other nodes' pods, the node back, the policy demo changing the
//! matrix as expected, and `down` leaving nothing.
//! Needs root, iproute2, ping, bird2 and frr. Uses the debug binaries of this test run.

use std::path::PathBuf;
use std::process::Command;

use brindle_tests::netns::{require, try_sh};

struct Lab {
    name: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Lab {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.bin)
            .arg("lab")
            .args([
                "--lab",
                &self.name,
                "--dir",
                self.dir.path().join("lab").to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("lab/logs")) {
            for e in rd.flatten() {
                let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                s.push_str(&format!(
                    "==== {:?}\n{}\n",
                    e.file_name(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

#[test]
fn two_racks_up_ping_kill_down() {
    require(&["ip", "ping", "bird", "/usr/lib/frr/bgpd"]);
    let lab = Lab {
        name: format!("ci{:04x}", std::process::id() & 0xffff),
        dir: tempfile::tempdir().unwrap(),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_brindlectl")),
    };
    let (ok, out) = lab.run(&[
        "up",
        "--racks",
        "2",
        "--nodes-per-rack",
        "2",
        "--pods-per-node",
        "2",
    ]);
    assert!(ok, "{out}\n{}", lab.logs());
    assert!(out.contains("every BGP session is Established"), "{out}");
    assert!(out.contains("Ping matrix (56/56 pairs reachable)"), "{out}");
    assert_eq!(out.matches(" yes ").count(), 4, "four ready nodes: {out}");

    let (ok, out) = lab.run(&["brindlectl", "r2-n1", "--", "bgp", "peers", "-o", "json"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("\"state\": \"Established\"") && out.contains("BGPPeer/rack2-tor"),
        "{out}"
    );

    // A node dies: pods on the other nodes, in both racks, still reach each other.
    let (ok, out) = lab.run(&["node", "kill", "r1-n2"]);
    assert!(ok, "{out}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (ok, out) = lab.run(&[
        "exec",
        "r1-n1-p1",
        "--",
        "ping",
        "-c",
        "2",
        "-W",
        "1",
        "-q",
        &pod_ip(&lab, "r2-n2-p2"),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = lab.run(&["node", "start", "r1-n2"]);
    assert!(ok, "{out}");
    let mut last = String::new();
    let passed = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (ok, out) = lab.run(&["ping"]);
        last = out;
        ok
    });
    assert!(passed, "after restart: {last}\n{}", lab.logs());

    // The policy demo: a default deny empties the matrix, an allow from rack1 opens the rows of
    // rack1's pods (4 pods x 7 peers), removing both restores everything.
    let (ok, out) = lab.run(&["policy", "demo"]);
    assert!(ok, "{out}\n{}", lab.logs());
    assert!(out.contains("Ping matrix (0/56 pairs reachable)"), "{out}");
    assert!(out.contains("Ping matrix (28/56 pairs reachable)"), "{out}");
    assert!(out.contains("every pod reaches every pod again"), "{out}");

    let (ok, out) = lab.run(&["down"]);
    assert!(ok, "{out}");
    let (_, ns) = try_sh(&["ip", "netns", "list"]);
    assert!(
        !ns.contains(&format!("brlab-{}-", lab.name)),
        "namespaces left: {ns}"
    );
    assert!(!lab.dir.path().join("lab").exists(), "files left");
}

fn pod_ip(lab: &Lab, pod: &str) -> String {
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.dir.path().join("lab/state.json")).unwrap(),
    )
    .unwrap();
    st["pods"][pod]["ip"].as_str().unwrap().to_string()
}
