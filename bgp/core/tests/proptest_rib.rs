//! Property: after any sequence of announcements and withdrawals from two neighbors, the
//! Loc-RIB best paths and the installed ECMP next hops equal a brute-force recomputation
//! from the routes currently announced.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use brindle_bgp_core::*;
use brindle_bgp_wire::{Family, Origin, PathAttribute};
use common::*;
use proptest::prelude::*;

const PEERS: [&str; 2] = ["10.0.0.2", "10.0.0.3"];
const PREFIXES: [&str; 4] = ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/24", "10.4.0.0/24"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announce {
    path_len: usize,
    origin: u8,
    med: Option<u32>,
}

#[derive(Debug, Clone)]
struct Op {
    peer: usize,
    prefix: usize,
    announce: Option<Announce>,
}

fn op() -> impl Strategy<Value = Op> {
    let ann =
        (1usize..4, 0u8..3, proptest::option::of(0u32..3)).prop_map(|(path_len, origin, med)| {
            Announce {
                path_len,
                origin,
                med,
            }
        });
    (0usize..2, 0usize..4, proptest::option::weighted(0.7, ann)).prop_map(
        |(peer, prefix, announce)| Op {
            peer,
            prefix,
            announce,
        },
    )
}

fn key(a: &Announce, peer: usize) -> (usize, u8, u32, usize) {
    (a.path_len, a.origin, a.med.unwrap_or(0), peer)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn loc_rib_matches_brute_force(ops in proptest::collection::vec(op(), 1..60), max_paths in 1u8..3) {
        let mut cfg = SpeakerConfig::new(65000, v4("10.0.0.1"));
        cfg.max_paths = max_paths;
        let mut s = Speaker::new(cfg);
        for (i, p) in PEERS.iter().enumerate() {
            s.step(Input::AddPeer(PeerConfig::new(ip(p), 65001)), t(0));
            establish(&mut s, ip(p), i as u64 + 1, open_from(65001, p, 90, &[Family::IPV4_UNICAST]), t(0));
        }
        let mut model: BTreeMap<(usize, usize), Announce> = BTreeMap::new();
        for op in &ops {
            let m = match op.announce {
                Some(a) => {
                    let path: Vec<u32> = std::iter::once(65001).chain((1..a.path_len).map(|x| 100 + x as u32)).collect();
                    let origin = match a.origin { 0 => Origin::Igp, 1 => Origin::Egp, _ => Origin::Incomplete };
                    let mut extra = vec![];
                    if let Some(m) = a.med { extra.push(PathAttribute::MultiExitDisc(m)); }
                    let mut m = announce_v4(&path, PEERS[op.peer], &[PREFIXES[op.prefix]], extra);
                    if let brindle_bgp_wire::Message::Update(u) = &mut m {
                        for at in &mut u.attributes {
                            if let PathAttribute::Origin(o) = at { *o = origin; }
                        }
                    }
                    model.insert((op.prefix, op.peer), a);
                    m
                }
                None => {
                    model.remove(&(op.prefix, op.peer));
                    withdraw_v4(&[PREFIXES[op.prefix]])
                }
            };
            s.step(msg(ip(PEERS[op.peer]), op.peer as u64 + 1, m), t(1));
        }
        for (pi, p) in PREFIXES.iter().enumerate() {
            let cands: Vec<(usize, Announce)> = model.iter().filter(|((x, _), _)| *x == pi).map(|((_, peer), a)| (*peer, *a)).collect();
            let route = s.route(&pfx(p));
            let installed = s.installed_routes().get(&pfx(p)).cloned();
            match cands.iter().min_by_key(|(peer, a)| key(a, *peer)) {
                None => {
                    prop_assert!(route.is_none());
                    prop_assert!(installed.is_none());
                }
                Some((best_peer, best)) => {
                    let r = route.expect("route");
                    let best_src = r.paths.iter().find(|x| x.best).map(|x| x.source);
                    prop_assert_eq!(best_src, Some(RouteSource::Peer(ip(PEERS[*best_peer]))));
                    let mut want: Vec<IpAddr> = cands
                        .iter()
                        .filter(|(_, a)| (a.path_len, a.origin, a.med.unwrap_or(0)) == (best.path_len, best.origin, best.med.unwrap_or(0)))
                        .map(|(peer, _)| ip(PEERS[*peer]))
                        .take(usize::from(max_paths))
                        .collect();
                    if max_paths == 1 {
                        want = vec![ip(PEERS[*best_peer])];
                    }
                    want.sort();
                    prop_assert_eq!(installed, Some(want));
                }
            }
        }
    }
}
