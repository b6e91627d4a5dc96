//! Next-hop reachability (RFC 4271 §9.1.2.1) with tracking on: a path whose next hop the
//! driver has not reported reachable is not best, not installed and not advertised; a change
//! of reachability re-runs the decision for the prefixes using it; unused next hops are
//! untracked.

mod common;

use brindle_bgp_core::*;
use brindle_bgp_wire::Family;
use common::*;

const A: &str = "10.0.0.2";
const B: &str = "10.0.0.3";
const I: &str = "10.0.0.4";

fn setup() -> Speaker {
    let mut cfg = SpeakerConfig::new(65000, v4("10.0.0.1"));
    cfg.nexthop_tracking = true;
    let mut s = Speaker::new(cfg);
    for (i, (a, asn)) in [(A, 65001), (B, 65002), (I, 65000)].into_iter().enumerate() {
        s.step(Input::AddPeer(PeerConfig::new(ip(a), asn)), t(0));
        establish(
            &mut s,
            ip(a),
            i as u64 + 1,
            open_from(asn, a, 90, &[Family::IPV4_UNICAST]),
            t(0),
        );
    }
    s
}

fn report(s: &mut Speaker, nh: &str, reachable: bool) -> Vec<Output> {
    s.step(
        Input::NexthopReachability {
            addr: ip(nh),
            reachable,
            via: Vec::new(),
        },
        t(2),
    )
}

fn installs(out: &[Output]) -> Vec<(String, Vec<IpAddrS>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::InstallRoute { prefix, nexthops } => Some((
                prefix.to_string(),
                nexthops.iter().map(|n| IpAddrS(n.to_string())).collect(),
            )),
            _ => None,
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct IpAddrS(String);

fn advertised_to_ibgp(s: &Speaker, out: &[Output]) -> usize {
    let ctx = s.session_context(ip(I)).expect("ctx").clone();
    let mine: Vec<Output> = out
        .iter()
        .filter(|o| matches!(o, Output::SendEncoded { peer, .. } if *peer == ip(I)))
        .cloned()
        .collect();
    updates(&mine, &ctx).iter().map(|u| u.nlri.len()).sum()
}

fn withdrawn_from_ibgp(s: &Speaker, out: &[Output]) -> usize {
    let ctx = s.session_context(ip(I)).expect("ctx").clone();
    let mine: Vec<Output> = out
        .iter()
        .filter(|o| matches!(o, Output::SendEncoded { peer, .. } if *peer == ip(I)))
        .cloned()
        .collect();
    updates(&mine, &ctx).iter().map(|u| u.withdrawn.len()).sum()
}

#[test]
fn an_unreported_or_unreachable_next_hop_is_never_best() {
    let mut s = setup();
    let out = s.step(
        msg(
            ip(A),
            1,
            announce_v4(&[65001], "198.18.50.1", &["198.19.1.0/24"], vec![]),
        ),
        t(1),
    );
    assert!(has(&out, |o| *o == Output::TrackNexthop(ip("198.18.50.1"))));
    assert!(installs(&out).is_empty(), "not installed before the report");
    assert_eq!(
        advertised_to_ibgp(&s, &out),
        0,
        "not advertised before the report"
    );
    let r = s.route(&pfx("198.19.1.0/24")).expect("route");
    assert!(r.paths[0].nexthop_unreachable && !r.paths[0].best);

    // Reported unreachable: still nothing.
    let out = report(&mut s, "198.18.50.1", false);
    assert!(installs(&out).is_empty());
    // Reachable: best, installed, advertised.
    let out = report(&mut s, "198.18.50.1", true);
    assert_eq!(
        installs(&out),
        vec![("198.19.1.0/24".into(), vec![IpAddrS("198.18.50.1".into())])]
    );
    assert_eq!(advertised_to_ibgp(&s, &out), 1);
    let r = s.route(&pfx("198.19.1.0/24")).expect("route");
    assert!(!r.paths[0].nexthop_unreachable && r.paths[0].best);
    // The same report again changes nothing.
    assert!(report(&mut s, "198.18.50.1", true).is_empty());
    // Unreachable again: removed and withdrawn.
    let out = report(&mut s, "198.18.50.1", false);
    assert!(has(&out, |o| matches!(o, Output::RemoveRoute { .. })));
    assert_eq!(withdrawn_from_ibgp(&s, &out), 1);
}

#[test]
fn a_worse_path_with_a_reachable_next_hop_wins() {
    let mut s = setup();
    // A's path is better (shorter AS path) but its next hop does not resolve.
    s.step(
        msg(
            ip(A),
            1,
            announce_v4(&[65001], "198.18.50.1", &["198.19.2.0/24"], vec![]),
        ),
        t(1),
    );
    s.step(
        msg(
            ip(B),
            2,
            announce_v4(
                &[65002, 65010, 65011],
                "198.18.60.1",
                &["198.19.2.0/24"],
                vec![],
            ),
        ),
        t(1),
    );
    report(&mut s, "198.18.50.1", false);
    let out = report(&mut s, "198.18.60.1", true);
    assert_eq!(
        installs(&out),
        vec![("198.19.2.0/24".into(), vec![IpAddrS("198.18.60.1".into())])]
    );
    // A's next hop comes back: A's path takes over.
    let out = report(&mut s, "198.18.50.1", true);
    assert_eq!(
        installs(&out),
        vec![("198.19.2.0/24".into(), vec![IpAddrS("198.18.50.1".into())])]
    );
}

#[test]
fn next_hops_no_path_uses_are_untracked() {
    let mut s = setup();
    s.step(
        msg(
            ip(A),
            1,
            announce_v4(&[65001], "198.18.50.1", &["198.19.3.0/24"], vec![]),
        ),
        t(1),
    );
    report(&mut s, "198.18.50.1", true);
    s.step(msg(ip(A), 1, withdraw_v4(&["198.19.3.0/24"])), t(3));
    let out = s.step(
        msg(
            ip(B),
            2,
            announce_v4(&[65002], "198.18.60.1", &["198.19.4.0/24"], vec![]),
        ),
        t(4),
    );
    assert!(has(&out, |o| *o == Output::TrackNexthop(ip("198.18.60.1"))));
    let out = report(&mut s, "198.18.60.1", true);
    assert!(has(&out, |o| *o == Output::UntrackNexthop(ip("198.18.50.1"))));
    let r = nexthop::Resolution {
        reachable: true,
        via: vec![],
    };
    assert_eq!(s.nexthops(), vec![(ip("198.18.60.1"), Some(r))]);
}

#[test]
fn tracking_off_takes_every_next_hop_as_reachable() {
    let mut s = Speaker::new(SpeakerConfig::new(65000, v4("10.0.0.1")));
    s.step(Input::AddPeer(PeerConfig::new(ip(A), 65001)), t(0));
    establish(
        &mut s,
        ip(A),
        1,
        open_from(65001, A, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let out = s.step(
        msg(
            ip(A),
            1,
            announce_v4(&[65001], "198.18.50.1", &["198.19.1.0/24"], vec![]),
        ),
        t(1),
    );
    assert!(!has(&out, |o| matches!(o, Output::TrackNexthop(_))));
    assert_eq!(installs(&out).len(), 1);
}

#[test]
fn a_recursive_next_hop_is_installed_through_its_gateway() {
    let mut s = setup();
    s.step(
        msg(
            ip(I),
            3,
            announce_v4(&[], "198.18.90.9", &["198.19.9.0/24"], vec![]),
        ),
        t(1),
    );
    let out = s.step(
        Input::NexthopReachability {
            addr: ip("198.18.90.9"),
            reachable: true,
            via: vec![ip("10.0.0.4")],
        },
        t(2),
    );
    assert_eq!(
        installs(&out),
        vec![("198.19.9.0/24".into(), vec![IpAddrS("10.0.0.4".into())])]
    );
    // The resolving route moves to another gateway: reinstalled through it.
    let out = s.step(
        Input::NexthopReachability {
            addr: ip("198.18.90.9"),
            reachable: true,
            via: vec![ip("10.0.0.3")],
        },
        t(3),
    );
    assert_eq!(
        installs(&out),
        vec![("198.19.9.0/24".into(), vec![IpAddrS("10.0.0.3".into())])]
    );
}
