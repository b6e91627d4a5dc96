//! Golden tests of the decision process (RFC 4271 §9.1.2.2, RFC 4456 §9) and ECMP selection.

mod common;

use std::cmp::Ordering;
use std::sync::Arc;

use brindle_bgp_core::decision::{compare, select};
use brindle_bgp_core::*;
use brindle_bgp_wire::{AsPath, AsSegment, Origin, SegmentType};
use common::*;

/// A learned path from neighbor `peer` (router id = peer address) with AS_PATH `asns`.
fn p(peer: &str, asns: &[u32]) -> Path {
    Path {
        source: RouteSource::Peer(ip(peer)),
        attrs: Arc::new(RouteAttrs {
            as_path: AsPath::from_sequence(asns.to_vec()),
            next_hop: Some(ip(peer)),
            ..RouteAttrs::default()
        }),
        ebgp: true,
        peer_router_id: v4(peer),
        stale: false,
        since: Instant::ZERO,
    }
}

fn with(mut path: Path, f: impl FnOnce(&mut Path, &mut RouteAttrs)) -> Path {
    let mut a = (*path.attrs).clone();
    f(&mut path, &mut a);
    path.attrs = Arc::new(a);
    path
}

fn ibgp(path: Path) -> Path {
    with(path, |p, _| p.ebgp = false)
}

fn local() -> Path {
    Path {
        source: RouteSource::Local,
        attrs: Arc::new(RouteAttrs::default()),
        ebgp: false,
        peer_router_id: v4("10.0.0.1"),
        stale: false,
        since: Instant::ZERO,
    }
}

#[test]
fn golden_pairs() {
    let opts = DecisionOptions::default();
    let cmp_med = DecisionOptions {
        always_compare_med: true,
        ..opts
    };
    // (name, a, b, options, expected winner a?, reason)
    let rows: Vec<(&str, Path, Path, DecisionOptions, bool, Reason)> = vec![
        (
            "local beats learned",
            local(),
            p("10.0.0.2", &[]),
            opts,
            true,
            Reason::LocallyOriginated,
        ),
        (
            "higher local pref",
            with(ibgp(p("10.0.0.2", &[1, 2, 3])), |_, a| {
                a.local_pref = Some(200)
            }),
            ibgp(p("10.0.0.3", &[1])),
            opts,
            true,
            Reason::LocalPref,
        ),
        (
            "absent local pref is 100",
            with(ibgp(p("10.0.0.2", &[1])), |_, a| a.local_pref = Some(99)),
            ibgp(p("10.0.0.3", &[1, 2])),
            opts,
            false,
            Reason::LocalPref,
        ),
        (
            "shorter as path",
            p("10.0.0.3", &[1]),
            p("10.0.0.2", &[1, 2]),
            opts,
            true,
            Reason::AsPathLength,
        ),
        (
            "as set counts one",
            with(p("10.0.0.3", &[1]), |_, a| {
                a.as_path.segments.push(AsSegment {
                    kind: SegmentType::Set,
                    asns: vec![7, 8, 9],
                })
            }),
            p("10.0.0.2", &[1, 2, 3]),
            opts,
            true,
            Reason::AsPathLength,
        ),
        (
            "confed segments count zero",
            with(p("10.0.0.3", &[1]), |_, a| {
                a.as_path.segments.insert(
                    0,
                    AsSegment {
                        kind: SegmentType::ConfedSequence,
                        asns: vec![64512, 64513],
                    },
                )
            }),
            p("10.0.0.2", &[1, 2]),
            opts,
            true,
            Reason::AsPathLength,
        ),
        (
            "igp beats egp",
            p("10.0.0.3", &[1]),
            with(p("10.0.0.2", &[1]), |_, a| a.origin = Origin::Egp),
            opts,
            true,
            Reason::Origin,
        ),
        (
            "egp beats incomplete",
            with(p("10.0.0.3", &[1]), |_, a| a.origin = Origin::Egp),
            with(p("10.0.0.2", &[1]), |_, a| a.origin = Origin::Incomplete),
            opts,
            true,
            Reason::Origin,
        ),
        (
            "lower med same neighbor as",
            with(p("10.0.0.3", &[1]), |_, a| a.med = Some(10)),
            with(p("10.0.0.2", &[1]), |_, a| a.med = Some(20)),
            opts,
            true,
            Reason::Med,
        ),
        (
            "absent med is 0",
            p("10.0.0.3", &[1]),
            with(p("10.0.0.2", &[1]), |_, a| a.med = Some(5)),
            opts,
            true,
            Reason::Med,
        ),
        (
            "med ignored across neighbor ases",
            with(p("10.0.0.3", &[1]), |_, a| a.med = Some(10)),
            with(p("10.0.0.2", &[2]), |_, a| a.med = Some(20)),
            opts,
            false,
            Reason::RouterId,
        ),
        (
            "always compare med",
            with(p("10.0.0.3", &[1]), |_, a| a.med = Some(10)),
            with(p("10.0.0.2", &[2]), |_, a| a.med = Some(20)),
            cmp_med,
            true,
            Reason::Med,
        ),
        (
            "ebgp over ibgp",
            p("10.0.0.3", &[1]),
            ibgp(p("10.0.0.2", &[1])),
            opts,
            true,
            Reason::EbgpOverIbgp,
        ),
        (
            "lower router id",
            p("10.0.0.2", &[1]),
            p("10.0.0.3", &[1]),
            opts,
            true,
            Reason::RouterId,
        ),
        (
            "originator id replaces router id",
            with(ibgp(p("10.0.0.2", &[1])), |_, a| {
                a.originator_id = Some(v4("10.9.9.9"))
            }),
            ibgp(p("10.0.0.3", &[1])),
            opts,
            false,
            Reason::RouterId,
        ),
        (
            "shorter cluster list",
            with(ibgp(p("10.0.0.2", &[1])), |_, a| {
                a.originator_id = Some(v4("10.5.5.5"));
                a.cluster_list = vec![v4("10.0.0.7"), v4("10.0.0.8")];
            }),
            with(ibgp(p("10.0.0.3", &[1])), |_, a| {
                a.originator_id = Some(v4("10.5.5.5"));
                a.cluster_list = vec![v4("10.0.0.7")];
            }),
            opts,
            false,
            Reason::ClusterListLength,
        ),
        (
            "lower peer address",
            with(p("10.0.0.3", &[1]), |p, _| p.peer_router_id = v4("1.1.1.1")),
            with(p("10.0.0.2", &[1]), |p, _| p.peer_router_id = v4("1.1.1.1")),
            opts,
            false,
            Reason::PeerAddress,
        ),
        (
            "local pref beats path length",
            with(ibgp(p("10.0.0.2", &[1, 2, 3, 4])), |_, a| {
                a.local_pref = Some(101)
            }),
            ibgp(p("10.0.0.3", &[1])),
            opts,
            true,
            Reason::LocalPref,
        ),
        (
            "path length beats origin",
            with(p("10.0.0.2", &[1]), |_, a| a.origin = Origin::Incomplete),
            p("10.0.0.3", &[1, 2]),
            opts,
            true,
            Reason::AsPathLength,
        ),
    ];
    assert!(rows.len() >= 15);
    for (name, a, b, o, a_wins, reason) in rows {
        let (ord, why) = compare(&a, &b, &o);
        let expected = if a_wins {
            Ordering::Less
        } else {
            Ordering::Greater
        };
        assert_eq!((ord, why), (expected, reason), "row {name:?}");
        // Symmetric.
        let (ord2, why2) = compare(&b, &a, &o);
        assert_eq!(
            (ord2, why2),
            (expected.reverse(), reason),
            "row {name:?} reversed"
        );
    }
}

#[test]
fn med_rule_in_a_set_depends_on_order_but_is_deterministic() {
    // Classic MED non-transitivity: A(AS1, med 10) vs B(AS1, med 5): B wins on MED;
    // B vs C(AS2): router id. select() walks the candidates in order.
    let a = with(p("10.0.0.2", &[1]), |_, x| x.med = Some(10));
    let b = with(p("10.0.0.4", &[1]), |_, x| x.med = Some(5));
    let c = p("10.0.0.3", &[2]);
    let sel = select(
        &[a.clone(), b.clone(), c.clone()],
        &DecisionOptions::default(),
    );
    // a vs b: b (MED); b vs c: c (router id 10.0.0.3 < 10.0.0.4).
    assert_eq!(sel.best, Some(2));
    let sel = select(
        &[a, b, c],
        &DecisionOptions {
            always_compare_med: true,
            ..Default::default()
        },
    );
    // c has MED 0, lowest of all.
    assert_eq!(sel.best, Some(2));
}

#[test]
fn ecmp_selects_equal_paths_from_the_same_neighbor_as() {
    let o = DecisionOptions {
        max_paths: 4,
        ..Default::default()
    };
    let paths = vec![
        p("10.0.0.2", &[65001, 1]),
        p("10.0.0.3", &[65001, 2]),
        p("10.0.0.4", &[65002, 1]),
        p("10.0.0.5", &[65001, 1, 2]),
    ];
    let sel = select(&paths, &o);
    assert_eq!(sel.best, Some(0));
    // Same length and neighbor AS: 0 and 1. Different neighbor AS (2) and longer path (3): no.
    assert_eq!(sel.multipath, vec![0, 1]);
    let relaxed = select(
        &paths,
        &DecisionOptions {
            multipath_relax: true,
            ..o
        },
    );
    assert_eq!(relaxed.multipath, vec![0, 1, 2]);
    let capped = select(
        &paths,
        &DecisionOptions {
            multipath_relax: true,
            max_paths: 2,
            ..o
        },
    );
    assert_eq!(capped.multipath, vec![0, 1]);
    let single = select(&paths, &DecisionOptions::default());
    assert!(
        single.multipath.is_empty(),
        "the best alone: nothing allocated"
    );
}

#[test]
fn ecmp_ibgp_paths_need_equal_attributes() {
    let o = DecisionOptions {
        max_paths: 8,
        ..Default::default()
    };
    let paths = vec![
        ibgp(p("10.0.0.2", &[1])),
        ibgp(p("10.0.0.3", &[2])),
        with(ibgp(p("10.0.0.4", &[1])), |_, a| a.med = Some(1)),
        with(ibgp(p("10.0.0.5", &[1])), |_, a| a.local_pref = Some(50)),
    ];
    let sel = select(&paths, &o);
    assert_eq!(sel.best, Some(0));
    // iBGP: neighbor AS may differ (1 is in), MED worse (2 out), LOCAL_PREF lower (3 out).
    assert_eq!(sel.multipath, vec![0, 1]);
}
