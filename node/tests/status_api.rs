//! The status API, metrics and health against a real peer: one node and a BIRD "ToR" in
//! network namespaces. What `brindlectl` and `/metrics` report is checked against what BIRD
//! itself reports for the same session.
//!
//! Needs root, iproute2 and bird. Addresses: node 198.18.10.1, BIRD 198.18.10.254, BIRD's
//! prefixes 198.19.100.0/24 - 198.19.104.0/24 (announced only, never routed to).

mod common;

use std::time::{Duration, Instant};

use brindle_tests::netns::*;
use common::*;

const TOR: &str = "198.18.10.254";

/// Polls `brindlectl bgp peer` until `ok` holds (bounded).
fn wait_peer(
    f: &Fabric,
    what: &str,
    secs: u64,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, out) = f.ctl("node-1", &["bgp", "peer", TOR, "-o", "json"]);
        if code == 0
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&out)
            && ok(&v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen in {secs} s; last answer: {out}\n{}",
            f.lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// GET over HTTP from inside the node's namespace (the listeners are on its loopback).
fn http_get(f: &Fabric, port: u16, path: &str) -> (u16, String) {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
    );
    let (_, out) = try_sh(&[
        "ip",
        "netns",
        "exec",
        &f.ns("node-1"),
        "bash",
        "-c",
        &script,
    ]);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A sample's value on a metrics page.
fn sample(page: &str, line_start: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn tor_peer(asn: u32) -> String {
    format!(
        "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: tor}}
spec: {{peerIP: {TOR}, asNumber: {asn}, filters: [drop-two]}}
"
    )
}

#[test]
fn status_api_metrics_and_health_against_bird() {
    require(&["bird", "birdc", "bash", "timeout"]);
    let mut f = Fabric::new(1);
    let sw = f.nodes_sw();
    let tor = f.lab.ns("tor");
    f.lab
        .link_to_bridge(&sw, "br0", "ptor", &tor, "eth0", &[&format!("{TOR}/24")]);
    let statics: String = (100..105)
        .map(|i| format!("  route 198.19.{i}.0/24 blackhole;\n"))
        .collect();
    f.lab.bird(
        &tor,
        "tor",
        &format!(
            "router id {TOR};\nprotocol device {{}}\n\
             protocol static statics {{ ipv4;\n{statics}}}\n\
             protocol bgp n1 {{ local {TOR} as 65100; neighbor 198.18.10.1 as 64512;\n\
             connect retry time 1; error wait time 1, 2;\n\
             ipv4 {{ import all; export where proto = \"statics\"; }}; }}\n"
        ),
    );
    // The peer's AS is wrong (65101, BIRD is 65100); a filter drops two of BIRD's prefixes.
    f.apply(&format!(
        "{POOL}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: drop-two}}
spec:
  importV4:
  - {{action: Reject, matchOperator: Equal, cidr: 198.19.103.0/24}}
  - {{action: Reject, matchOperator: Equal, cidr: 198.19.104.0/24}}
---
{}",
        tor_peer(65101)
    ));
    let metrics_port = 9091;
    let health_port = 9099;
    f.start_with(
        "node-1",
        &[
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--health-listen",
            &format!("127.0.0.1:{health_port}"),
        ],
    );

    // 1. Wrong AS: not Established; the last error is the NOTIFICATION we sent, 2/2.
    let p = wait_peer(&f, "a Bad Peer AS error", 30, |p| {
        p["lastError"].as_str().is_some_and(|e| e.contains("2/2"))
    });
    assert_ne!(p["state"], "Established", "{p:#}");
    let err = p["lastError"].as_str().unwrap();
    assert!(
        err.contains("OPEN Message Error / Bad Peer AS") && err.contains("the peer sent AS 65100"),
        "{p:#}"
    );
    assert_eq!(p["remoteAS"], 65101);
    assert_eq!(p["configuredHoldTime"], 90);
    assert!(
        p["messages"]["sent"]["notification"].as_u64().unwrap() >= 1,
        "{p:#}"
    );
    // Within 30 s of start every peer must be Established: not ready, naming the peer.
    let (code, body) = http_get(&f, health_port, "/readiness");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(TOR), "{body}");
    assert_eq!(http_get(&f, health_port, "/liveness").0, 200);

    // 2. Fix the AS: Established.
    f.apply(&tor_peer(65100));
    let p = wait_peer(&f, "Established", 40, |p| p["state"] == "Established");
    f.lab.wait_bird_established("tor", "n1", 20);
    assert_eq!(p["remoteAS"], 65100);
    assert_eq!(p["negotiatedHoldTime"], 90);
    let has = |k: &str, c: &str| p[k].as_array().is_some_and(|a| a.iter().any(|x| x == c));
    for c in ["multiprotocol ipv4-unicast", "route-refresh", "4-octet-as"] {
        assert!(
            has("capabilitiesSent", c) && has("capabilitiesReceived", c),
            "{c}: {p:#}"
        );
    }
    let flaps_before = p["flaps"].as_u64().unwrap();

    // 3. BIRD sends 5 prefixes, the filter rejects 2: received 5, accepted 3.
    let p = wait_peer(&f, "5 received, 3 accepted", 20, |p| {
        let fam = &p["families"][0];
        fam["received"] == 5 && fam["accepted"] == 3
    });
    assert!(
        p["messages"]["received"]["update"].as_u64().unwrap() >= 1,
        "{p:#}"
    );
    assert!(
        p["messages"]["sent"]["open"].as_u64().unwrap() >= 1,
        "{p:#}"
    );
    assert!(
        p["messages"]["received"]["keepalive"].as_u64().unwrap() >= 1,
        "{p:#}"
    );

    // 3b. The FIB view is read back from the kernel: an accepted route is there; deleted by
    //     hand it shows as a mismatch until the speaker's resync puts it back.
    let route = |f: &Fabric| -> serde_json::Value {
        let (code, out) = f.ctl(
            "node-1",
            &["bgp", "routes", "198.19.100.0/24", "-o", "json"],
        );
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while route(&f)["fib"] != serde_json::json!([TOR]) {
        assert!(Instant::now() < deadline, "{:#}", route(&f));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(route(&f)["fibMismatch"], false);
    // Someone rewrites our route's next hop (the monitor ignores our protocol's additions, so
    // it stays until the route goes): the FIB view shows the difference.
    try_sh(&[
        "ip",
        "-n",
        &f.ns("node-1"),
        "route",
        "replace",
        "198.19.100.0/24",
        "via",
        "198.18.10.77",
        "proto",
        "80",
        "metric",
        "32",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = route(&f);
        if r["fibMismatch"] == true && r["fib"] == serde_json::json!(["198.18.10.77"]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a changed route never showed as a mismatch: {r:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Deleted, it is put back at once (the route monitor saw ours go).
    try_sh(&[
        "ip",
        "-n",
        &f.ns("node-1"),
        "route",
        "del",
        "198.19.100.0/24",
        "proto",
        "80",
    ]);
    let deadline = Instant::now() + Duration::from_secs(25);
    while route(&f)["fibMismatch"] != false {
        assert!(Instant::now() < deadline, "never restored: {:#}", route(&f));
        std::thread::sleep(Duration::from_millis(500));
    }

    // 4. What we advertise is what BIRD receives: the node's block, once a pod has an address.
    allocate(&f.db, "node-1", "net.pod-a");
    let p = wait_peer(&f, "one route advertised", 20, |p| {
        p["families"][0]["advertised"] == 1
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let bird = f.lab.birdc("tor", "show route protocol n1 count");
        // BIRD 2: "<n> of <m> routes for <k> networks in table master4"
        let n: Option<u64> = bird
            .lines()
            .find(|l| l.contains("routes for"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|w| w.parse().ok());
        if n == p["families"][0]["advertised"].as_u64() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "BIRD reports {bird}; we advertised {p:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // 4b. The Adj-RIBs: BIRD's five routes as received, two refused by the filter; our block
    //     as sent to BIRD (eBGP: our AS prepended, next hop ourselves).
    let (code, out) = f.ctl(
        "node-1",
        &["bgp", "routes", "--peer", TOR, "--received", "-o", "json"],
    );
    assert_eq!(code, 0, "{out}");
    let rin: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rin = rin.as_array().unwrap();
    assert_eq!(rin.len(), 5, "{out}");
    let refused: Vec<&str> = rin
        .iter()
        .filter(|r| r["paths"][0]["rejected"] != "")
        .map(|r| r["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["198.19.103.0/24", "198.19.104.0/24"], "{out}");
    assert!(
        rin.iter()
            .all(|r| r["paths"][0]["asPath"] == serde_json::json!([65100])),
        "{out}"
    );
    let (code, out) = f.ctl(
        "node-1",
        &["bgp", "routes", "--peer", TOR, "--advertised", "-o", "json"],
    );
    assert_eq!(code, 0, "{out}");
    let rout: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rout = rout.as_array().unwrap();
    assert_eq!(rout.len(), 1, "{out}");
    assert_eq!(rout[0]["paths"][0]["nextHop"], "198.18.10.1", "{out}");
    assert_eq!(
        rout[0]["paths"][0]["asPath"],
        serde_json::json!([64512]),
        "{out}"
    );
    let (code, out) = f.ctl(
        "node-1",
        &["bgp", "routes", "--peer", "198.18.10.99", "--received"],
    );
    assert_ne!(code, 0);
    assert!(out.contains("no session with 198.18.10.99"), "{out}");

    // 5. The same figures on /metrics; ready now.
    let (code, page) = http_get(&f, metrics_port, "/metrics");
    assert_eq!(code, 200, "{page}");
    let l = |kind: &str| {
        format!("brindle_bgp_prefixes{{peer=\"{TOR}\",family=\"ipv4\",kind=\"{kind}\"}}")
    };
    assert_eq!(sample(&page, &l("received")), Some(5.0), "{page}");
    assert_eq!(sample(&page, &l("accepted")), Some(3.0), "{page}");
    assert_eq!(sample(&page, &l("advertised")), Some(1.0), "{page}");
    assert_eq!(
        sample(
            &page,
            &format!("brindle_bgp_session_established{{peer=\"{TOR}\"}}")
        ),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            &format!("brindle_bgp_messages_total{{peer=\"{TOR}\",direction=\"received\",type=\"update\"}}")
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{page}"
    );
    assert!(
        sample(&page, "brindle_fib_writes_total").unwrap_or(0.0) >= 4.0,
        "{page}"
    );
    assert!(
        sample(&page, "brindle_fib_restored_total").unwrap_or(0.0) >= 1.0,
        "the route put back in 3b is counted: {page}"
    );
    let (code, body) = http_get(&f, health_port, "/readiness");
    assert_eq!((code, body.as_str()), (200, "ready\n"));

    // 6. BIRD drops the session and brings it back: one more flap, since starts again.
    let up_before = p["sinceSeconds"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    f.lab.birdc("tor", "disable n1");
    wait_peer(&f, "the session down", 20, |p| p["state"] != "Established");
    f.lab.birdc("tor", "enable n1");
    let p = wait_peer(&f, "Established again", 40, |p| p["state"] == "Established");
    assert_eq!(p["flaps"].as_u64().unwrap(), flaps_before + 1, "{p:#}");
    assert!(
        p["sinceSeconds"].as_u64().unwrap() <= up_before + 1,
        "since was not reset: {p:#}"
    );
    let (code, page) = http_get(&f, metrics_port, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        sample(
            &page,
            &format!("brindle_bgp_session_flaps_total{{peer=\"{TOR}\"}}")
        ),
        Some((flaps_before + 1) as f64),
        "{page}"
    );
}

/// FRR's view of the same session agrees with ours: prefixes each way, and OPEN and UPDATE
/// messages each way (FRR's `messageStats`).
#[test]
fn status_api_agrees_with_frr() {
    require(&["vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/zebra"]);
    const FRR: &str = "198.18.10.253";
    let mut f = Fabric::new(1);
    let sw = f.nodes_sw();
    let tor = f.lab.ns("frr");
    f.lab
        .link_to_bridge(&sw, "br0", "pfrr", &tor, "eth0", &[&format!("{FRR}/24")]);
    let networks: String = (110..114)
        .map(|i| format!("  network 198.19.{i}.0/24\n"))
        .collect();
    f.lab.frr(
        &tor,
        "frr",
        &format!(
            "frr defaults traditional\nhostname frr\n!\nrouter bgp 65200\n bgp router-id {FRR}\n\
             no bgp ebgp-requires-policy\n no bgp network import-check\n\
             neighbor 198.18.10.1 remote-as 64512\n neighbor 198.18.10.1 timers connect 2\n\
             address-family ipv4 unicast\n{networks} exit-address-family\n!\n"
        ),
    );
    f.apply(&format!(
        "{POOL}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: frr}}
spec: {{peerIP: {FRR}, asNumber: 65200}}
"
    ));
    f.start("node-1");
    f.lab.wait_frr_established("frr", "198.18.10.1", 40);
    allocate(&f.db, "node-1", "net.pod-a");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = f.ctl("node-1", &["bgp", "peer", FRR, "-o", "json"]);
        let ours: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let theirs: serde_json::Value =
            serde_json::from_str(&f.lab.vtysh("frr", "show bgp neighbors 198.18.10.1 json"))
                .unwrap_or_default();
        let t = &theirs["198.18.10.1"];
        let fam = &ours["families"][0];
        let af = &t["addressFamilyInfo"]["ipv4Unicast"];
        let m = &ours["messages"];
        let ms = &t["messageStats"];
        let pairs = [
            (
                "received = FRR sent",
                fam["received"].clone(),
                af["sentPrefixCounter"].clone(),
            ),
            (
                "advertised = FRR accepted",
                fam["advertised"].clone(),
                af["acceptedPrefixCounter"].clone(),
            ),
            (
                "UPDATEs sent = FRR received",
                m["sent"]["update"].clone(),
                ms["updatesRecv"].clone(),
            ),
            (
                "UPDATEs received = FRR sent",
                m["received"]["update"].clone(),
                ms["updatesSent"].clone(),
            ),
            (
                "OPENs sent = FRR received",
                m["sent"]["open"].clone(),
                ms["opensRecv"].clone(),
            ),
            (
                "OPENs received = FRR sent",
                m["received"]["open"].clone(),
                ms["opensSent"].clone(),
            ),
        ];
        // FRR sends its 4 networks and our own block back (an eBGP speaker may); import
        // refuses that one (our AS in its path): 5 received, 4 accepted.
        let agree = code == 0
            && fam["received"] == 5
            && fam["accepted"] == 4
            && fam["advertised"] == 1
            && pairs.iter().all(|(_, a, b)| a.is_u64() && a == b);
        if agree {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "our figures and FRR's disagree: {pairs:#?}\nours: {out}\n{}",
            f.lab.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, out) = f.ctl(
        "node-1",
        &["bgp", "routes", "--peer", FRR, "--received", "-o", "json"],
    );
    let rin: serde_json::Value = serde_json::from_str(&out).unwrap();
    let refused: Vec<(&str, &str)> = rin
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["paths"][0]["rejected"] != "")
        .map(|r| {
            (
                r["prefix"].as_str().unwrap(),
                r["paths"][0]["rejected"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(refused.len(), 1, "{out}");
    assert!(
        refused[0].0.starts_with("198.19.") && refused[0].0.ends_with("/26"),
        "{out}"
    );
    assert_eq!(refused[0].1, "AsPathLoop", "{out}");
}
