//! The policy agent inside `brindle-node`, end to end: WorkloadEndpoints and policies applied
//! with `brindlectl` to the node's datastore, pods wired into the node's namespace, and the
//! daemon SIGKILLed and restarted while probes run, on nftables and then on iptables (the
//! switch removes the nftables table).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use brindle_tests::netns::*;
use brindle_tests::probe::{Proto, Servers, probe};
use common::Fabric;

const PODS: [(&str, &str, &str, &str); 3] = [
    ("xa", "x", "a", "198.19.0.1"),
    ("xb", "x", "b", "198.19.0.2"),
    ("ya", "y", "a", "198.19.0.3"),
];

fn resources() -> String {
    let mut s = String::new();
    for (name, ns, pod, ip) in PODS {
        s.push_str(&format!(
            "---\napiVersion: brindle.dev/v1\nkind: WorkloadEndpoint\n\
             metadata: {{name: node--1-k8s-{pod}-eth0, namespace: '{ns}', labels: {{pod: {pod}}}}}\n\
             spec: {{orchestrator: k8s, node: node-1, pod: {pod}, endpoint: eth0, \
             interfaceName: cali{name}, ipNetworks: [{ip}/32], profiles: [kns.{ns}]}}\n"
        ));
    }
    // x takes only TCP 80 from its own a pods.
    s.push_str(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: x}
spec:
  podSelector: {}
  ingress:
    - from: [{podSelector: {matchLabels: {pod: a}}}]
      ports: [{protocol: TCP, port: 80}]
",
    );
    s
}

#[test]
fn policy_holds_while_the_agent_is_killed_and_across_a_dataplane_switch() {
    require(&["nft", "iptables-restore", "ipset"]);
    let mut f = Fabric::new(1);
    let mut pods = std::collections::BTreeMap::new();
    for (name, _, _, ip) in PODS {
        pods.insert(name, (f.pod("node-1", name, ip), ip.parse().unwrap()));
    }
    f.apply(&resources());
    let all: Vec<String> = pods.values().map(|p| p.0.clone()).collect();
    let _servers = Servers::start(&all, &[80]);
    let node_ns = f.ns("node-1");
    // (from, to, protocol, allowed)
    let checks = Arc::new(vec![
        (pods["xa"].clone(), pods["xb"].1, Proto::Tcp, true),
        (pods["ya"].clone(), pods["xb"].1, Proto::Tcp, false),
        (pods["xa"].clone(), pods["xb"].1, Proto::Icmp, false),
        (pods["xb"].clone(), pods["ya"].1, Proto::Tcp, true),
    ]);
    let converged = |checks: &[((String, std::net::IpAddr), std::net::IpAddr, Proto, bool)]| {
        checks
            .iter()
            .all(|((ns, _), to, p, want)| probe(ns, *to, 80, *p) == *want)
    };
    for dp in ["nftables", "iptables"] {
        f.start_with("node-1", &["--policy", "on", "--policy-dataplane", dp]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !converged(&checks) {
            assert!(
                Instant::now() < deadline,
                "{dp}: policy not enforced in 30 s\n{}",
                f.lab.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        // Probes run all along while the daemon is killed twice and restarted.
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (checks.clone(), stop.clone());
        let prober = std::thread::spawn(move || {
            let mut wrong = Vec::new();
            let mut rounds = 0;
            while !s2.load(Ordering::SeqCst) && rounds < 200 {
                for ((ns, from), to, p, want) in c2.iter() {
                    if probe(ns, *to, 80, *p) != *want {
                        wrong.push(format!("{from} → {to} {p:?}: expected {want}"));
                    }
                }
                rounds += 1;
            }
            (rounds, wrong)
        });
        let log_before = f.lab.log(f.nodes[0].2);
        let kind = if dp == "nftables" {
            "Nftables"
        } else {
            "Iptables"
        };
        assert!(
            log_before.contains(&format!("event=\"applied\" dataplane={kind}")),
            "{dp}: the first start applied nothing:\n{log_before}"
        );
        for _ in 0..2 {
            std::thread::sleep(Duration::from_secs(2));
            f.lab.kill(f.nodes[0].2);
            std::thread::sleep(Duration::from_secs(2));
            f.start_with("node-1", &["--policy", "on", "--policy-dataplane", dp]);
        }
        std::thread::sleep(Duration::from_secs(4));
        stop.store(true, Ordering::SeqCst);
        let (rounds, wrong) = prober.join().expect("the prober");
        assert!(rounds >= 3, "{dp}: only {rounds} probe rounds");
        assert!(
            wrong.is_empty(),
            "{dp}: {} wrong probes in {rounds} rounds while the agent was killed: {wrong:?}",
            wrong.len()
        );
        // The restarted daemons found their rules in place and wrote nothing.
        let log = f.lab.log(f.nodes[0].2);
        let applied = |l: &str| l.matches("event=\"applied\"").count();
        let after = &log[log_before.len().min(log.len())..];
        assert_eq!(
            applied(after),
            0,
            "{dp}: a restart rewrote the rules:\n{after}"
        );
        f.lab.kill(f.nodes[0].2);
    }
    // The switch to iptables removed the nftables table, and the iptables chains are there.
    let tables = sh(&["ip", "netns", "exec", &node_ns, "nft", "list", "tables"]);
    assert!(!tables.contains("inet brindle"), "{tables}");
    let save = sh(&[
        "ip",
        "netns",
        "exec",
        &node_ns,
        "iptables-save",
        "-t",
        "filter",
    ]);
    assert!(save.contains("-j brindle-FORWARD"), "{save}");
}
