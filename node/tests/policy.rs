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
        // What the endpoint gets, with counters that moved for the allowing rule (after a few
        // more connections: a SYN that conntrack files under an earlier flow skips the rule).
        for _ in 0..3 {
            assert!(probe(&pods["xa"].0, pods["xb"].1, 80, Proto::Tcp));
        }
        let (code, show) = f.ctl("node-1", &["policy", "show", "calixb"]);
        assert_eq!(code, 0, "{show}");
        assert!(
            show.contains(&format!("({dp})")) && show.contains("b-from-a"),
            "{show}"
        );
        let allow = show
            .lines()
            .find(|l| l.contains("b-from-a ingress[0]"))
            .unwrap_or_else(|| panic!("{show}"));
        assert!(
            !allow.contains(" 0 packets"),
            "no packets counted: {allow}\n{}",
            try_sh(&["ip", "netns", "exec", &node_ns, "nft", "list", "ruleset"]).1
        );
        let (_, list) = f.ctl("node-1", &["policy", "show"]);
        assert!(list.contains("calixa") && list.contains("caliya"), "{list}");
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

/// `GET path` on the node's health listener (inside its namespace): (status code, body).
fn http_get(ns: &str, addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let (addr, req) = (
        addr.parse::<std::net::SocketAddr>().ok()?,
        format!("GET {path} HTTP/1.0\r\nHost: node\r\n\r\n"),
    );
    in_netns(ns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split(' ').nth(1)?.parse().ok()?;
        Some((
            code,
            text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
        ))
    })
    .join()
    .ok()
    .flatten()
}

/// The datastore (etcd, in a namespace of its own linked to the node) killed for a while: the
/// node keeps its rules (the probes stay right, nothing is written), readiness turns false
/// naming the datastore; once etcd is back, a policy change made there reaches the kernel and
/// the node is ready again.
#[test]
fn policy_holds_while_the_datastore_is_away_and_converges_after() {
    require(&["nft", "etcd"]);
    let mut f = Fabric::new(1);
    let node_ns = f.ns("node-1");
    let ds_ns = f.lab.ns("ds");
    f.lab.link(
        &node_ns,
        "ds0",
        &["198.18.60.1/24"],
        &ds_ns,
        "eth0",
        &["198.18.60.2/24"],
    );
    let mut etcd = brindle_tests::etcd::EtcdServer::start_in_netns(&ds_ns, "198.18.60.2");
    f.db = format!("etcd:{}", etcd.url());
    let mut pods = std::collections::BTreeMap::new();
    for (name, _, _, ip) in PODS {
        pods.insert(name, (f.pod("node-1", name, ip), ip.parse().unwrap()));
    }
    // brindlectl runs where it can reach etcd: in the datastore's namespace.
    let apply = |f: &Fabric, yaml: &str, delete: bool| {
        let file = f.lab.path("ds-apply.yaml");
        std::fs::write(&file, yaml).unwrap();
        let ctl = brindle_tests::workspace_bin("brindlectl");
        let verb = if delete { "delete" } else { "apply" };
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ds_ns])
            .arg(ctl)
            .args([verb, "-f", file.to_str().unwrap()])
            .env("BRINDLE_DATASTORE", &f.db)
            .output()
            .unwrap();
        assert!(out.status.success(), "brindlectl {verb}: {out:?}");
    };
    apply(&f, &resources(), false);
    let all: Vec<String> = pods.values().map(|p| p.0.clone()).collect();
    let _servers = Servers::start(&all, &[80]);
    let health = "127.0.0.1:9099";
    f.start_with(
        "node-1",
        &[
            "--policy",
            "on",
            "--policy-dataplane",
            "nftables",
            "--health-listen",
            health,
        ],
    );
    let (xa, xb, ya) = (pods["xa"].clone(), pods["xb"].clone(), pods["ya"].clone());
    let right = |ya_allowed: bool| {
        probe(&xa.0, xb.1, 80, Proto::Tcp) && probe(&ya.0, xb.1, 80, Proto::Tcp) == ya_allowed
    };
    let wait = |what: &str, secs: u64, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "{what} not within {secs} s\n{}",
                f.lab.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    wait("policy enforced", 30, &|| right(false));
    wait("ready", 30, &|| {
        http_get(&node_ns, health, "/readiness").is_some_and(|r| r.0 == 200)
    });
    let marker = || {
        sh(&[
            "ip", "netns", "exec", &node_ns, "nft", "list", "chain", "inet", "brindle", "marker",
        ])
    };
    let before = marker();
    let log_before = f.lab.log(f.nodes[0].2).len();
    // The datastore goes away.
    etcd.stop();
    wait("readiness false naming the datastore", 20, &|| {
        http_get(&node_ns, health, "/readiness")
            .is_some_and(|(code, body)| code == 503 && body.contains("datastore"))
    });
    for _ in 0..3 {
        assert!(
            right(false),
            "the rules changed while the datastore was away"
        );
    }
    std::thread::sleep(Duration::from_secs(5));
    assert!(right(false));
    let strip = |s: String| s.replace(|c: char| c.is_ascii_digit(), "");
    assert_eq!(
        strip(marker()),
        strip(before.clone()),
        "the table was rewritten"
    );
    let log = f.lab.log(f.nodes[0].2);
    let during = &log[log_before.min(log.len())..];
    assert!(
        !during.contains("event=\"applied\"") && !during.contains("event=\"updated\""),
        "the node wrote rules while the datastore was away:\n{during}"
    );
    // Back, and a change made there (the policy deleted: y may reach x again) converges.
    etcd.restart();
    apply(
        &f,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b-from-a, namespace: x}\nspec: {podSelector: {}}\n",
        true,
    );
    wait("the change after the outage", 60, &|| right(true));
    wait("ready again", 30, &|| {
        http_get(&node_ns, health, "/readiness").is_some_and(|r| r.0 == 200)
    });
}
