//! Speakers wired to each other through the real encoder and decoder: sessions come up on
//! their own (collisions included), routes propagate and withdraw, route reflection works in
//! a three-node topology, and ECMP installs several next hops.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use brindle_bgp_core::*;
use brindle_bgp_wire::{Family, PathAttribute};
use common::*;

fn node(net: &mut Net, addr: &str, asn: u32, cfg: impl Fn(&mut SpeakerConfig)) -> usize {
    let mut c = SpeakerConfig::new(asn, v4(addr));
    cfg(&mut c);
    net.add(Speaker::new(c), ip(addr))
}

fn peer(net: &mut Net, i: usize, addr: &str, asn: u32, f: impl Fn(&mut PeerConfig)) {
    let mut c = PeerConfig::new(ip(addr), asn);
    f(&mut c);
    net.input(i, Input::AddPeer(c));
}

#[test]
fn two_speakers_propagate_and_withdraw() {
    let mut net = Net::new();
    let a = node(&mut net, "192.0.2.1", 65001, |_| {});
    let b = node(&mut net, "192.0.2.2", 65002, |_| {});
    peer(&mut net, a, "192.0.2.2", 65002, |_| {});
    peer(&mut net, b, "192.0.2.1", 65001, |_| {});
    // Both connect at once: collision detection leaves one session.
    assert_eq!(net.state(a, ip("192.0.2.2")), Some(State::Established));
    assert_eq!(net.state(b, ip("192.0.2.1")), Some(State::Established));

    net.input(
        a,
        Input::Originate(pfx("10.65.0.0/26"), OriginAttrs::default()),
    );
    assert_eq!(
        net.nodes[b].kernel.get(&pfx("10.65.0.0/26")),
        Some(&vec![ip("192.0.2.1")])
    );
    let r = net.nodes[b]
        .speaker
        .route(&pfx("10.65.0.0/26"))
        .expect("route");
    assert_eq!(r.paths[0].attrs.as_path.segments[0].asns, vec![65001]);
    assert!(r.paths[0].best);

    net.input(a, Input::WithdrawOriginated(pfx("10.65.0.0/26")));
    assert!(net.nodes[b].kernel.is_empty());
    assert!(net.nodes[b].speaker.route(&pfx("10.65.0.0/26")).is_none());

    // Keepalives keep the session up for a long time.
    net.advance(Duration::from_secs(600));
    assert_eq!(net.state(b, ip("192.0.2.1")), Some(State::Established));
    let st = net.nodes[b]
        .speaker
        .peer_status(ip("192.0.2.1"))
        .expect("status");
    assert_eq!(st.flaps, 0);
}

#[test]
fn session_loss_withdraws_and_recovers() {
    let mut net = Net::new();
    let a = node(&mut net, "192.0.2.1", 65001, |_| {});
    let b = node(&mut net, "192.0.2.2", 65002, |_| {});
    peer(&mut net, a, "192.0.2.2", 65002, |_| {});
    peer(&mut net, b, "192.0.2.1", 65001, |_| {});
    net.input(
        a,
        Input::Originate(pfx("10.65.0.0/26"), OriginAttrs::default()),
    );
    assert!(!net.nodes[b].kernel.is_empty());
    net.input(a, Input::AdminDown(ip("192.0.2.2")));
    assert!(net.nodes[b].kernel.is_empty());
    assert_eq!(
        net.state(b, ip("192.0.2.1")).map(|s| s <= State::Active),
        Some(true)
    );
    net.input(a, Input::AdminUp(ip("192.0.2.2")));
    net.advance(Duration::from_secs(10));
    assert_eq!(net.state(b, ip("192.0.2.1")), Some(State::Established));
    assert!(!net.nodes[b].kernel.is_empty());
}

#[test]
fn ipv6_session_carries_ipv6_routes() {
    let mut net = Net::new();
    let a = node(&mut net, "192.0.2.1", 65001, |_| {});
    let b = node(&mut net, "192.0.2.2", 65002, |_| {});
    net.nodes[a].addr = ip("fd00::1");
    net.nodes[b].addr = ip("fd00::2");
    peer(&mut net, a, "fd00::2", 65002, |_| {});
    peer(&mut net, b, "fd00::1", 65001, |_| {});
    net.input(
        a,
        Input::Originate(pfx("fd10::/122"), OriginAttrs::default()),
    );
    assert_eq!(
        net.nodes[b].kernel.get(&pfx("fd10::/122")),
        Some(&vec![ip("fd00::1")])
    );
}

/// rr (10.0.0.1) with clients c1, c2 and non-client n, all AS 65000.
fn rr_topology() -> (Net, usize, usize, usize, usize) {
    let mut net = Net::new();
    let rr = node(&mut net, "10.0.0.1", 65000, |_| {});
    let c1 = node(&mut net, "10.0.0.11", 65000, |_| {});
    let c2 = node(&mut net, "10.0.0.12", 65000, |_| {});
    let n = node(&mut net, "10.0.0.21", 65000, |_| {});
    for (i, a) in [(c1, "10.0.0.11"), (c2, "10.0.0.12"), (n, "10.0.0.21")] {
        peer(&mut net, rr, a, 65000, |c| {
            c.route_reflector_client = a != "10.0.0.21"
        });
        peer(&mut net, i, "10.0.0.1", 65000, |_| {});
    }
    for (i, a) in [(c1, "10.0.0.11"), (c2, "10.0.0.12"), (n, "10.0.0.21")] {
        assert_eq!(net.state(rr, ip(a)), Some(State::Established));
        assert_eq!(net.state(i, ip("10.0.0.1")), Some(State::Established));
    }
    (net, rr, c1, c2, n)
}

#[test]
fn route_reflector_three_clients_topology() {
    let (mut net, rr, c1, c2, n) = rr_topology();
    // Client route: reflected to the other client and to the non-client.
    net.input(
        c1,
        Input::Originate(pfx("10.1.0.0/26"), OriginAttrs::default()),
    );
    for i in [c2, n] {
        assert_eq!(
            net.nodes[i].kernel.get(&pfx("10.1.0.0/26")),
            Some(&vec![ip("10.0.0.11")]),
            "node {i}"
        );
        let r = net.nodes[i]
            .speaker
            .route(&pfx("10.1.0.0/26"))
            .expect("route");
        assert_eq!(r.paths[0].attrs.originator_id, Some(v4("10.0.0.11")));
        assert_eq!(r.paths[0].attrs.cluster_list, vec![v4("10.0.0.1")]);
    }
    assert!(net.nodes[rr].kernel.contains_key(&pfx("10.1.0.0/26")));
    // Not back to the client it came from.
    let r = net.nodes[c1]
        .speaker
        .route(&pfx("10.1.0.0/26"))
        .expect("route");
    assert_eq!(r.paths.len(), 1);
    assert_eq!(r.paths[0].source, RouteSource::Local);

    // Non-client route: to clients only.
    net.input(
        n,
        Input::Originate(pfx("10.2.0.0/26"), OriginAttrs::default()),
    );
    for i in [c1, c2] {
        assert_eq!(
            net.nodes[i].kernel.get(&pfx("10.2.0.0/26")),
            Some(&vec![ip("10.0.0.21")])
        );
    }
    let st = net.nodes[rr]
        .speaker
        .peer_status(ip("10.0.0.21"))
        .expect("status");
    assert_eq!(
        st.families[&Family::IPV4_UNICAST].advertised,
        1,
        "only the client route"
    );

    // Withdrawal reaches everyone.
    net.input(c1, Input::WithdrawOriginated(pfx("10.1.0.0/26")));
    for i in [rr, c2, n] {
        assert!(!net.nodes[i].kernel.contains_key(&pfx("10.1.0.0/26")));
    }
}

#[test]
fn reflection_loops_are_dropped() {
    let (mut net, rr, c1, _c2, _n) = rr_topology();
    // A route claiming to originate from the reflector itself, or already carrying its
    // cluster id, is dropped on receipt.
    let c1_addr = ip("10.0.0.11");
    let conn = net.nodes[rr]
        .log
        .iter()
        .find_map(|o| match o {
            Output::SetContext { peer, conn_id, .. } if *peer == c1_addr => Some(*conn_id),
            _ => None,
        })
        .expect("conn");
    let _ = c1;
    for (p, extra) in [
        ("10.7.0.0/16", PathAttribute::OriginatorId(v4("10.0.0.1"))),
        (
            "10.8.0.0/16",
            PathAttribute::ClusterList(vec![v4("10.9.9.9"), v4("10.0.0.1")]),
        ),
    ] {
        let out = net.nodes[rr].speaker.step(
            Input::Message {
                peer: c1_addr,
                conn_id: conn,
                msg: announce_v4(&[], "10.0.0.11", &[p], vec![extra]),
                findings: vec![],
            },
            net.now,
        );
        assert!(
            !has(&out, |o| matches!(o, Output::InstallRoute { .. })),
            "{p}"
        );
        assert!(net.nodes[rr].speaker.route(&pfx(p)).is_none());
    }
}

#[test]
fn ecmp_over_two_ebgp_neighbors() {
    let mut net = Net::new();
    let a = node(&mut net, "192.0.2.1", 65001, |c| c.max_paths = 4);
    let b1 = node(&mut net, "192.0.2.2", 65002, |_| {});
    let b2 = node(&mut net, "192.0.2.3", 65002, |_| {});
    for (i, addr) in [(b1, "192.0.2.2"), (b2, "192.0.2.3")] {
        peer(&mut net, a, addr, 65002, |_| {});
        peer(&mut net, i, "192.0.2.1", 65001, |_| {});
    }
    // An anycast service prefix from both.
    net.input(
        b1,
        Input::Originate(pfx("10.96.0.10/32"), OriginAttrs::default()),
    );
    net.input(
        b2,
        Input::Originate(pfx("10.96.0.10/32"), OriginAttrs::default()),
    );
    assert_eq!(
        net.nodes[a].kernel.get(&pfx("10.96.0.10/32")),
        Some(&vec![ip("192.0.2.2"), ip("192.0.2.3")])
    );
    let r = net.nodes[a]
        .speaker
        .route(&pfx("10.96.0.10/32"))
        .expect("route");
    assert!(r.paths.iter().all(|p| p.multipath));
    net.input(b1, Input::WithdrawOriginated(pfx("10.96.0.10/32")));
    assert_eq!(
        net.nodes[a].kernel.get(&pfx("10.96.0.10/32")),
        Some(&vec![ip("192.0.2.3")])
    );
    let _: Option<IpAddr> = None;
}
