//! brindle-node end to end, in network namespaces: nodes on one L2 segment (a bridge in its own
//! namespace) share a sqlite datastore; configuration goes in with `brindlectl apply`; pod
//! blocks come from the real IPAM; routes are read back from each node's kernel and pods ping
//! across nodes.
//!
//! Needs root, iproute2 and ping. Addresses: nodes 198.18.10.0/24, pods 198.19.0.0/16.

mod common;

use std::time::{Duration, Instant};

use brindle_tests::netns::*;
use common::*;

/// Three nodes form the default mesh by themselves, advertise the blocks IPAM gives them, and
/// program each other's blocks; pods on different nodes reach each other. Then a new pool and an
/// unrelated BGPPeer, added and deleted again, change nothing for the existing sessions.
#[test]
fn mesh_routes_pods_and_changes_without_flaps() {
    let mut f = Fabric::new(3);
    f.apply(POOL);
    for n in ["node-1", "node-2", "node-3"] {
        f.start(n);
    }
    f.wait_established("node-1", &["198.18.10.2", "198.18.10.3"], 40);
    f.wait_established("node-2", &["198.18.10.1", "198.18.10.3"], 40);
    f.wait_established("node-3", &["198.18.10.1", "198.18.10.2"], 40);

    // Pods: IPAM gives each node a block; every other node learns it.
    let ip1 = allocate(&f.db, "node-1", "net.pod-a");
    let ip3 = allocate(&f.db, "node-3", "net.pod-c");
    let pa = f.pod("node-1", "pod-a", &ip1);
    let pc = f.pod("node-3", "pod-c", &ip3);
    let n2 = f.ns("node-2");
    let block1 = format!("{}/26", ip1);
    let out = f
        .lab
        .wait_route(&n2, false, "proto 80", "via 198.18.10.1", 20);
    assert!(out.contains("198.19."), "{out} ({block1})");
    f.lab
        .wait_route(&f.ns("node-1"), false, "proto 80", "via 198.18.10.3", 20);
    // The owner blackholes its own block (proto 80), so unknown pod addresses go nowhere else.
    let n1 = f.ns("node-1");
    let own = f.lab.routes(&n1, false, "proto 80");
    assert!(own.contains("blackhole"), "{own}");
    wait_ping(&f.lab, &pa, &ip3, 20);
    wait_ping(&f.lab, &pc, &ip1, 20);

    // Someone deletes node-2's BGP route to node-1's block: the speaker puts it back.
    let line = f
        .lab
        .routes(&n2, false, "proto 80 metric 32")
        .lines()
        .find(|l| l.contains("via 198.18.10.1"))
        .unwrap()
        .to_string();
    let block = line.split_whitespace().next().unwrap().to_string();
    sh(&[
        "ip", "-n", &n2, "route", "del", &block, "proto", "80", "metric", "32",
    ]);
    f.lab
        .wait_route(&n2, false, "proto 80 metric 32", &block, 25);

    // The status API, through brindlectl.
    let (code, out) = f.ctl("node-2", &["node", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("node-2") && out.contains("198.18.10.1") && out.contains("node-to-node mesh"),
        "{out}"
    );
    assert_eq!(
        out.matches("Established").count(),
        4,
        "two peers, state and info columns: {out}"
    );
    let (code, out) = f.ctl("node-2", &["bgp", "peers", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let peers: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(peers.as_array().unwrap().len(), 2, "{out}");
    assert!(
        peers
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "Established" && p["sourceName"] == "mesh"),
        "{out}"
    );
    // The status snapshot is refreshed every 200 ms: poll (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = f.ctl("node-2", &["bgp", "routes", &ip1]);
        assert_eq!(code, 0, "{out}");
        if out.contains("198.18.10.1") && out.contains("best") {
            break;
        }
        assert!(Instant::now() < deadline, "longest match for {ip1}: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The summary is a snapshot too: wait (bounded) for it to show node-1's block.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sum = loop {
        let (code, out) = f.ctl("node-1", &["node", "summary", "-o", "json"]);
        assert_eq!(code, 0, "{out}");
        let sum: serde_json::Value = serde_json::from_str(&out).unwrap();
        if sum["blocks"] == 1 {
            break sum;
        }
        assert!(Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = sum.to_string();
    assert_eq!(sum["establishedIPv4"], 2, "{out}");
    assert_eq!(sum["datastoreInSync"], true, "{out}");
    let (code, out) = f.ctl("node-9", &["node", "status"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("node-9.sock") && out.trim().lines().count() == 1,
        "{out}"
    );

    // Changes that do not concern the existing sessions leave them alone.
    let before = f.status("node-1").unwrap();
    f.apply(
        "
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: more-pods}
spec: {cidr: 198.19.128.0/20, blockSize: 26}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: node-1-extra}
spec: {node: node-1, peerIP: 198.18.10.250, asNumber: 65099}
",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = f.status("node-1").unwrap();
        if st.peers.iter().any(|p| p.address == "198.18.10.250") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-1 never configured the new peer\n{}",
            f.lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = f.status("node-1").unwrap();
    for p in before.peers.iter() {
        let q = after.peers.iter().find(|q| q.address == p.address).unwrap();
        assert_eq!(q.state, "Established", "{q:?}");
        assert_eq!(
            q.flaps, p.flaps,
            "session with {} flapped: {q:?}",
            p.address
        );
    }
    assert!(ping(&pa, &ip3));

    // Deleting the unrelated peer removes exactly that session.
    let ctl = brindle_tests::workspace_bin("brindlectl");
    let out = std::process::Command::new(ctl)
        .args(["delete", "bgppeer", "node-1-extra"])
        .env("BRINDLE_DATASTORE", &f.db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let st = f.wait_established("node-1", &["198.18.10.2", "198.18.10.3"], 15);
    assert!(st.peers.iter().all(|p| p.flaps == 0), "{st:#?}");

    // A forced re-list changes nothing in the kernel: node-2 is paused while the datastore's
    // history is compacted past it, so every watch of node-2 must re-list on resuming.
    let ours = |ns: &str| f.lab.routes(ns, false, "proto 80");
    let before = ours(&n2);
    let pid = f.lab.procs[f.nodes[1].2].child.id().to_string();
    sh(&["kill", "-STOP", &pid]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = f.db.strip_prefix("sqlite:").unwrap();
        let backend = brindle_datastore::sqlite::SqliteBackend::open(path).unwrap();
        let ds = brindle_datastore::Datastore::new(std::sync::Arc::new(backend.clone()));
        let mut pool = ds
            .get(&brindle_datastore::Key::new(
                brindle_crds::Kind::IPPool,
                "more-pods",
            ))
            .await
            .unwrap();
        pool.metadata_mut().labels = Some([("touched".to_string(), "yes".to_string())].into());
        let written = ds.apply(&pool).await.unwrap();
        let rev = brindle_datastore::revision_of(&written).unwrap();
        backend.compact(rev).await.unwrap();
    });
    sh(&["kill", "-CONT", &pid]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f.lab.log(f.nodes[1].2).contains("event=\"resync\"") {
        assert!(
            Instant::now() < deadline,
            "node-2 never re-listed\n{}",
            f.lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ours(&n2), before, "a re-list changed node-2's routes");
    let st = f.wait_established("node-2", &["198.18.10.1", "198.18.10.3"], 15);
    assert!(st.peers.iter().all(|p| p.flaps == 0), "{st:#?}");
}

/// Calico's route reflector design with a ToR: the mesh is off, node-4 is a route reflector
/// (cluster id, label), every node peers with it through one BGPPeer by selectors (the RR gets
/// the reverse sessions by itself), and every node peers with a BIRD ToR by a global BGPPeer.
/// Blocks reach the other nodes through the reflector with their original next hop, and BIRD
/// learns every block.
#[test]
fn route_reflector_and_bird_tor() {
    require(&["bird", "birdc"]);
    let mut f = Fabric::new(4);
    let sw = f.nodes_sw();
    let tor = f.lab.ns("tor");
    f.lab
        .link_to_bridge(&sw, "br0", "ptor", &tor, "eth0", &["198.18.10.254/24"]);
    let conf = (1..=4)
        .map(|i| {
            format!(
                "protocol bgp n{i} {{ local 198.18.10.254 as 65100; neighbor 198.18.10.{i} as 64512;\n\
                 connect retry time 2; error wait time 1, 5; ipv4 {{ import all; export none; }}; }}\n"
            )
        })
        .collect::<String>();
    let conf = format!(
        "router id 198.18.10.254;\nprotocol device {{}}\n\
         protocol kernel {{ ipv4 {{ export none; }}; }}\n{conf}"
    );
    f.lab.bird(&tor, "tor", &conf);
    f.apply(&format!(
        "{POOL}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec: {{nodeToNodeMeshEnabled: false}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: node-4, labels: {{route-reflector: 'true'}}}}
spec: {{bgp: {{ipv4Address: 198.18.10.4/24, routeReflectorClusterID: 244.0.0.1}}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: to-rr}}
spec: {{nodeSelector: all(), peerSelector: route-reflector == 'true'}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: tor}}
spec: {{peerIP: 198.18.10.254, asNumber: 65100}}
"
    ));
    for n in ["node-1", "node-2", "node-3", "node-4"] {
        f.start(n);
    }
    for n in ["node-1", "node-2", "node-3"] {
        f.wait_established(n, &["198.18.10.4", "198.18.10.254"], 40);
    }
    f.wait_established(
        "node-4",
        &["198.18.10.1", "198.18.10.2", "198.18.10.3", "198.18.10.254"],
        40,
    );
    let ip1 = allocate(&f.db, "node-1", "net.pod-a");
    let ip3 = allocate(&f.db, "node-3", "net.pod-c");
    let pa = f.pod("node-1", "pod-a", &ip1);
    let pc = f.pod("node-3", "pod-c", &ip3);
    // node-2 learns node-1's block from the reflector, next hop still node-1.
    f.lab
        .wait_route(&f.ns("node-2"), false, "proto 80", "via 198.18.10.1", 20);
    f.lab
        .wait_route(&f.ns("node-1"), false, "proto 80", "via 198.18.10.3", 20);
    wait_ping(&f.lab, &pa, &ip3, 20);
    wait_ping(&f.lab, &pc, &ip1, 20);
    // BIRD learned both blocks over eBGP from their owners.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = f.lab.birdc("tor", "show route");
        let n1 = out.contains("198.18.10.1");
        let n3 = out.contains("198.18.10.3");
        if n1 && n3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "BIRD routes: {out}\n{}",
            f.lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// VXLAN from the datastore alone: a pool with `vxlanMode: Always` gives each node a tunnel
/// address, a vxlan.brindle device, neighbour/FDB entries for the others, and routes of their
/// blocks through the tunnel (BGP keeps out of the kernel for it). Pods ping across; a deleted
/// tunnel route is put back. Then an IPIP pool on this kernel (no ipip module) is reported, and
/// never routed without encapsulation.
#[test]
fn vxlan_routes_from_the_datastore_and_ipip_is_reported() {
    let mut f = Fabric::new(3);
    f.apply(
        "
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: vxlan-pods}
spec: {cidr: 198.19.0.0/16, blockSize: 26, vxlanMode: Always}
",
    );
    for n in ["node-1", "node-2", "node-3"] {
        f.start(n);
    }
    f.wait_established("node-1", &["198.18.10.2", "198.18.10.3"], 40);
    let ip1 = allocate(&f.db, "node-1", "net.pod-a");
    let ip3 = allocate(&f.db, "node-3", "net.pod-c");
    let pa = f.pod("node-1", "pod-a", &ip1);
    let pc = f.pod("node-3", "pod-c", &ip3);
    let n1 = f.ns("node-1");
    let dev = f
        .lab
        .wait_route(&n1, false, "dev vxlan.brindle", "proto 80", 30);
    assert!(dev.contains("onlink"), "{dev}");
    let link = sh(&["ip", "-n", &n1, "-d", "link", "show", "vxlan.brindle"]);
    assert!(
        link.contains("vxlan id 4096")
            && link.contains("dstport 4789")
            && link.contains("local 198.18.10.1"),
        "{link}"
    );
    let fdb = sh(&["bridge", "-n", &n1, "fdb", "show", "dev", "vxlan.brindle"]);
    assert!(fdb.contains("dst 198.18.10.3"), "{fdb}");
    // No BGP-learned route for the VXLAN pool (metric 32): only the tunnel driver's.
    let bgp = f.lab.routes(&n1, false, "proto 80 metric 32");
    assert!(
        !bgp.lines()
            .any(|l| l.contains("198.19.") && l.contains(" via ")),
        "BGP installed a VXLAN pool route: {bgp}"
    );
    wait_ping(&f.lab, &pa, &ip3, 20);
    wait_ping(&f.lab, &pc, &ip1, 20);

    // Someone deletes the tunnel route to node-3's block: it comes back.
    let line = f
        .lab
        .routes(&n1, false, "dev vxlan.brindle")
        .lines()
        .find(|l| l.contains("proto 80"))
        .unwrap()
        .to_string();
    let prefix = line.split_whitespace().next().unwrap().to_string();
    sh(&[
        "ip", "-n", &n1, "route", "del", &prefix, "proto", "80", "metric", "16",
    ]);
    f.lab
        .wait_route(&n1, false, "dev vxlan.brindle", &prefix, 15);
    wait_ping(&f.lab, &pa, &ip3, 20);

    // An IPIP pool: this kernel has no ipip module; the node says so and installs nothing
    // unencapsulated for it.
    f.apply(
        "
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: ipip-pods}
spec: {cidr: 198.18.128.0/20, blockSize: 26, ipipMode: Always}
",
    );
    let _ = allocate_from(&f.db, "node-3", "net.ipip", &["198.18.128.0/20"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out) = f.ctl("node-1", &["node", "summary", "-o", "json"]);
        if out.contains("ipip") || out.contains("tunl0") {
            break;
        }
        assert!(Instant::now() < deadline, "no IPIP problem reported: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = f.lab.routes(&n1, false, "");
    assert!(
        !r.contains("198.18.128."),
        "an IPIP block was routed without encapsulation: {r}"
    );
}

/// A BGP password from a secret file: the session between node-1 and node-2 is keyed (TCP MD5)
/// by an explicit BGPPeer pair, the rest of the mesh is not. Rotating the secret re-keys that
/// session only: it comes back Established, while the other sessions never flap.
#[test]
fn password_rotation_rekeys_only_that_session() {
    let mut f = Fabric::new(3);
    let secrets = f.lab.path("secrets");
    std::fs::create_dir_all(secrets.join("bgp")).unwrap();
    let key = secrets.join("bgp/n1-n2");
    let write_key = |pw: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&key, pw).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_key("first-secret");
    f.secrets = Some(secrets);
    f.apply(&format!(
        "{POOL}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: n1-to-n2}}
spec:
  node: node-1
  peerIP: 198.18.10.2
  asNumber: 64512
  password: {{secretKeyRef: {{name: bgp, key: n1-n2}}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: n2-to-n1}}
spec:
  node: node-2
  peerIP: 198.18.10.1
  asNumber: 64512
  password: {{secretKeyRef: {{name: bgp, key: n1-n2}}}}
"
    ));
    for n in ["node-1", "node-2", "node-3"] {
        f.start(n);
    }
    f.wait_established("node-1", &["198.18.10.2", "198.18.10.3"], 40);
    f.wait_established("node-2", &["198.18.10.1", "198.18.10.3"], 40);
    let (_, out) = f.ctl("node-1", &["bgp", "peer", "198.18.10.2", "-o", "json"]);
    assert!(out.contains("\"md5\": true"), "{out}");
    let (_, out) = f.ctl("node-1", &["bgp", "peer", "198.18.10.3", "-o", "json"]);
    assert!(out.contains("\"md5\": false"), "{out}");
    let flaps = |node: &str, peer: &str| {
        f.status(node)
            .and_then(|s| s.peers.iter().find(|p| p.address == peer).map(|p| p.flaps))
            .unwrap_or(u32::MAX)
    };
    let before_13 = flaps("node-1", "198.18.10.3");
    let before_23 = flaps("node-2", "198.18.10.3");
    let before_12 = flaps("node-1", "198.18.10.2");

    write_key("second-secret");
    // The keyed session resets once (Cease, configuration change) and comes back with the
    // new key on both sides.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = f.status("node-1");
        let p = st
            .as_ref()
            .and_then(|s| s.peers.iter().find(|p| p.address == "198.18.10.2").cloned());
        if p.as_ref()
            .is_some_and(|p| p.flaps > before_12 && p.state == "Established")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the keyed session did not come back: {p:?}\n{}",
            f.lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    f.wait_established("node-2", &["198.18.10.1", "198.18.10.3"], 40);
    assert_eq!(
        flaps("node-1", "198.18.10.3"),
        before_13,
        "an unkeyed session flapped"
    );
    assert_eq!(
        flaps("node-2", "198.18.10.3"),
        before_23,
        "an unkeyed session flapped"
    );
}
