//! Golden tests of `desired_bgp`: each `tests/desired/<case>.yaml` holds resources (Calico
//! manifests are accepted); the plan of every Node in it is compared with
//! `tests/desired/<case>.expected.yaml`. `BRINDLE_REGEN=1 cargo test --workspace --test desired`
//! rewrites the expected files (review the diff).

use std::path::Path;

use brindle_crds::Resource;
use brindle_crds::document::parse_resources;
use brindle_node::cache::Snapshot;
use brindle_node::desired::{DesiredBgp, PeerType, desired_bgp};

fn load(case: &str) -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/desired/{case}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let rs: Vec<Resource> = parse_resources(&text)
        .unwrap()
        .into_iter()
        .map(|d| d.result.unwrap_or_else(|e| panic!("{}: {e:?}", d.label)))
        .collect();
    Snapshot::from_resources(rs)
}

fn plans(snap: &Snapshot) -> Vec<DesiredBgp> {
    let mut names: Vec<String> = snap
        .nodes()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| desired_bgp(snap, n).unwrap())
        .collect()
}

fn golden(case: &str) -> Vec<DesiredBgp> {
    let ps = plans(&load(case));
    let mut text = String::new();
    for p in &ps {
        text.push_str(&format!("--- # node {}\n", p.node));
        text.push_str(&serde_saphyr::to_string(p).unwrap());
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/desired/{case}.expected.yaml"));
    if std::env::var_os("BRINDLE_REGEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BRINDLE_REGEN=1 creates it)", path.display()));
    assert_eq!(
        text,
        want,
        "{case}: the plan differs from {} (BRINDLE_REGEN=1 rewrites it)",
        path.display()
    );
    ps
}

fn plan<'a>(ps: &'a [DesiredBgp], node: &str) -> &'a DesiredBgp {
    ps.iter().find(|p| p.node == node).unwrap()
}

#[test]
fn default_mesh() {
    let ps = golden("default_mesh");
    let a = plan(&ps, "a");
    assert_eq!(a.local_as, 64512);
    assert_eq!(a.peers.len(), 2);
    // As Calico orders them, a node waits for peers whose address sorts after its own: a (.1)
    // waits for b and c; c (.3) connects to both.
    assert!(
        a.peers
            .values()
            .all(|p| p.passive && p.peer_type == PeerType::Mesh)
    );
    assert!(plan(&ps, "c").peers.values().all(|p| !p.passive));
    let adv: Vec<String> = a.originate.keys().map(|p| p.to_string()).collect();
    assert_eq!(
        adv,
        ["198.19.0.0/30"],
        "the pending block is not advertised"
    );
    assert!(a.originate.values().all(|o| o.blackhole));
    let b: Vec<String> = plan(&ps, "b")
        .originate
        .keys()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(b, ["198.19.0.1/32"], "b advertises the address it borrowed");
    assert!(plan(&ps, "c").originate.is_empty(), "disableBGPExport");
}

#[test]
fn tor_peers() {
    let ps = golden("tor_peers");
    let a = plan(&ps, "a");
    assert_eq!(a.local_as, 65000);
    assert_eq!(a.listen_port, 1179);
    assert_eq!(a.peers.len(), 1, "mesh off: only the ToR");
    let tor = a.peers.values().next().unwrap();
    assert_eq!((tor.remote_as, tor.source.as_str()), (65100, "BGPPeer/tor"));
    assert!(
        plan(&ps, "tor-node").peers.is_empty(),
        "its own address is skipped"
    );
    let b = plan(&ps, "b");
    let up = &b.peers[&"198.18.5.1".parse().unwrap()];
    assert_eq!(up.port, 1790);
    assert_eq!(up.ttl_security, Some(1));
    assert_eq!(up.allow_as_in, 2);
    assert_eq!(up.export.len(), 2);
    assert!(up.password.is_some());
    assert!(b.notes.iter().any(|n| n.contains("missing-filter")));
    assert!(
        a.originate
            .keys()
            .any(|p| p.to_string() == "198.19.250.0/24")
    );
}

#[test]
fn route_reflector() {
    let ps = golden("route_reflector");
    let rr = plan(&ps, "rr1");
    assert_eq!(
        rr.route_reflector_cluster_id,
        Some("244.0.0.1".parse().unwrap())
    );
    assert_eq!(rr.peers.len(), 2, "{:?}", rr.peers);
    assert!(rr.peers.values().all(|p| p.route_reflector_client));
    let a = plan(&ps, "a");
    let to_rr = &a.peers[&"198.18.0.100".parse().unwrap()];
    assert!(!to_rr.route_reflector_client);
    assert_eq!(to_rr.source, "BGPPeer/to-rr");
    assert!(
        a.peers.contains_key(&"198.18.0.2".parse().unwrap()),
        "a and b still mesh"
    );
}

#[test]
fn per_node_as() {
    let ps = golden("per_node_as");
    let a = plan(&ps, "a");
    let c = plan(&ps, "c");
    assert_eq!((a.local_as, c.local_as), (64600, 65003));
    assert_eq!(a.peers.values().next().unwrap().remote_as, 65003);
    assert_eq!(c.listen_port, 1790);
    assert_eq!(c.listen_address, Some("198.18.2.1".parse().unwrap()));
    assert_eq!(a.listen_port, 179);
    let o = c.originate.values().next().unwrap();
    assert_eq!(o.communities, ["64600:100", "64600:200"]);
    assert_eq!(o.large_communities, ["64600:1:2"]);
}

/// A label change moves a node into a BGPPeer's selector and out again.
#[test]
fn label_change_moves_a_node_in_and_out() {
    let mut snap = load("route_reflector");
    let count = |s: &Snapshot| desired_bgp(s, "rr1").unwrap().peers.len();
    assert_eq!(count(&snap), 2);
    for m in snap.objects.values_mut() {
        for r in m.values_mut() {
            if let Resource::Node(n) = r
                && n.metadata.name.as_deref() == Some("rr1")
            {
                n.metadata.labels = None;
            }
        }
    }
    assert_eq!(count(&snap), 0, "no longer selected: no sessions");
    let a = desired_bgp(&snap, "a").unwrap();
    assert!(!a.peers.contains_key(&"198.18.0.100".parse().unwrap()));
}
