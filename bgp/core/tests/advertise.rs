//! Advertisement rules, receive checks, filters and max-prefix, against one speaker whose
//! neighbors are played by hand.

mod common;

use std::net::IpAddr;

use brindle_bgp_core::policy::{filter_accepts, rule_matches};
use brindle_bgp_core::*;
use brindle_bgp_wire::{
    AsPath, Community, Family, LargeCommunity, Message, NextHop, PathAttribute, UpdateMsg,
};
use common::*;

const E: &str = "10.0.0.2";
const I1: &str = "10.0.0.3";
const I2: &str = "10.0.0.4";

fn setup(tweak: impl Fn(&mut PeerConfig)) -> Speaker {
    let mut s = Speaker::new(SpeakerConfig::new(65000, v4("10.0.0.1")));
    for (i, (a, asn)) in [(E, 65001), (I1, 65000), (I2, 65000)]
        .into_iter()
        .enumerate()
    {
        let mut cfg = PeerConfig::new(ip(a), asn);
        tweak(&mut cfg);
        s.step(Input::AddPeer(cfg), t(0));
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

fn conn(peer: &str) -> u64 {
    match peer {
        E => 1,
        I1 => 2,
        _ => 3,
    }
}

/// UPDATEs sent to `peer` in `out`.
fn to(s: &Speaker, out: &[Output], peer: &str) -> Vec<UpdateMsg> {
    let ctx = s.session_context(ip(peer)).expect("ctx").clone();
    let mine: Vec<Output> = out
        .iter()
        .filter(|o| matches!(o, Output::Send { peer: p, .. } | Output::SendEncoded { peer: p, .. } if *p == ip(peer)))
        .cloned()
        .collect();
    updates(&mine, &ctx)
}

fn from(s: &mut Speaker, peer: &str, m: Message) -> Vec<Output> {
    s.step(msg(ip(peer), conn(peer), m), t(1))
}

fn path_of(u: &UpdateMsg) -> Vec<u32> {
    u.as_path()
        .map(|p| p.segments.iter().flat_map(|s| s.asns.clone()).collect())
        .unwrap_or_default()
}

fn local_pref(u: &UpdateMsg) -> Option<u32> {
    u.attributes.iter().find_map(|a| match a {
        PathAttribute::LocalPref(l) => Some(*l),
        _ => None,
    })
}

fn med(u: &UpdateMsg) -> Option<u32> {
    u.attributes.iter().find_map(|a| match a {
        PathAttribute::MultiExitDisc(l) => Some(*l),
        _ => None,
    })
}

#[test]
fn originated_route_to_ebgp_and_ibgp() {
    let mut s = setup(|_| {});
    let attrs = OriginAttrs {
        communities: vec![Community::new(65000, 100)],
        large_communities: vec![LargeCommunity {
            global_admin: 65000,
            local_data1: 1,
            local_data2: 2,
        }],
        ..Default::default()
    };
    let out = s.step(Input::Originate(pfx("10.10.0.0/26"), attrs), t(1));
    // No kernel route for our own block.
    assert!(!has(&out, |o| matches!(o, Output::InstallRoute { .. })));
    let e = to(&s, &out, E);
    assert_eq!(e.len(), 1);
    assert_eq!(path_of(&e[0]), vec![65000]);
    assert_eq!(e[0].next_hop(), Some(v4("10.0.0.1")));
    assert_eq!(local_pref(&e[0]), None);
    assert_eq!(e[0].origin(), Some(brindle_bgp_wire::Origin::Igp));
    assert!(
        e[0].attributes
            .contains(&PathAttribute::Communities(vec![Community::new(
                65000, 100
            )]))
    );
    assert!(
        e[0].attributes
            .iter()
            .any(|a| matches!(a, PathAttribute::LargeCommunities(_)))
    );
    let i = to(&s, &out, I1);
    assert_eq!(path_of(&i[0]), Vec::<u32>::new());
    assert_eq!(i[0].next_hop(), Some(v4("10.0.0.1")));
    assert_eq!(local_pref(&i[0]), Some(100));
    // Withdraw.
    let out = s.step(Input::WithdrawOriginated(pfx("10.10.0.0/26")), t(2));
    assert_eq!(to(&s, &out, E)[0].withdrawn.len(), 1);
}

#[test]
fn ebgp_route_to_ibgp_keeps_next_hop_and_is_not_reflected_back() {
    let mut s = setup(|_| {});
    let out = from(
        &mut s,
        E,
        announce_v4(
            &[65001, 7],
            "10.0.0.2",
            &["10.20.0.0/16"],
            vec![
                PathAttribute::MultiExitDisc(5),
                PathAttribute::Communities(vec![Community::new(1, 2)]),
            ],
        ),
    );
    assert!(out.contains(&Output::InstallRoute {
        prefix: pfx("10.20.0.0/16"),
        nexthops: vec![ip(E)]
    }));
    assert!(to(&s, &out, E).is_empty(), "not back to its source");
    for peer in [I1, I2] {
        let u = to(&s, &out, peer);
        assert_eq!(u.len(), 1);
        assert_eq!(path_of(&u[0]), vec![65001, 7]);
        assert_eq!(u[0].next_hop(), Some(v4(E)));
        assert_eq!(local_pref(&u[0]), Some(100));
        assert_eq!(med(&u[0]), Some(5));
        assert!(
            u[0].attributes
                .contains(&PathAttribute::Communities(vec![Community::new(1, 2)]))
        );
    }
    let out = from(&mut s, E, withdraw_v4(&["10.20.0.0/16"]));
    assert!(out.contains(&Output::RemoveRoute {
        prefix: pfx("10.20.0.0/16")
    }));
    assert_eq!(to(&s, &out, I1)[0].withdrawn.len(), 1);
}

#[test]
fn ibgp_split_horizon_and_ebgp_rewrite() {
    let mut s = setup(|_| {});
    let out = from(
        &mut s,
        I1,
        announce_v4(
            &[65010],
            "10.0.0.33",
            &["10.30.0.0/16"],
            vec![
                PathAttribute::LocalPref(300),
                PathAttribute::MultiExitDisc(9),
            ],
        ),
    );
    assert!(to(&s, &out, I2).is_empty(), "iBGP route not sent to iBGP");
    assert!(to(&s, &out, I1).is_empty());
    let e = to(&s, &out, E);
    assert_eq!(path_of(&e[0]), vec![65000, 65010]);
    assert_eq!(e[0].next_hop(), Some(v4("10.0.0.1")));
    assert_eq!(local_pref(&e[0]), None);
    assert_eq!(med(&e[0]), None, "MED from another AS is not passed on");
    let r = s.route(&pfx("10.30.0.0/16")).expect("route");
    assert_eq!(r.paths[0].attrs.local_pref, Some(300));
}

#[test]
fn next_hop_self_and_keep_original_next_hop() {
    let mut s = setup(|c| {
        c.next_hop_self = true;
        c.keep_original_next_hop = true;
    });
    let out = from(
        &mut s,
        E,
        announce_v4(&[65001], "10.0.0.2", &["10.20.0.0/16"], vec![]),
    );
    assert_eq!(to(&s, &out, I1)[0].next_hop(), Some(v4("10.0.0.1")));
    let out = from(
        &mut s,
        I1,
        announce_v4(&[65010], "10.0.0.33", &["10.30.0.0/16"], vec![]),
    );
    assert_eq!(to(&s, &out, E)[0].next_hop(), Some(v4("10.0.0.33")));
}

#[test]
fn as_path_loop_and_allow_as_in() {
    let mut s = setup(|_| {});
    let out = from(
        &mut s,
        E,
        announce_v4(&[65001, 65000, 9], "10.0.0.2", &["10.40.0.0/16"], vec![]),
    );
    assert!(!has(&out, |o| matches!(o, Output::InstallRoute { .. })));
    assert!(s.route(&pfx("10.40.0.0/16")).is_none());
    let c = s.peer_status(ip(E)).expect("status").families[&Family::IPV4_UNICAST];
    assert_eq!((c.received, c.accepted), (1, 0));

    let mut s = setup(|c| c.allow_as_in = 1);
    from(
        &mut s,
        E,
        announce_v4(&[65001, 65000, 9], "10.0.0.2", &["10.40.0.0/16"], vec![]),
    );
    assert!(s.route(&pfx("10.40.0.0/16")).is_some());
    from(
        &mut s,
        E,
        announce_v4(
            &[65001, 65000, 65000],
            "10.0.0.2",
            &["10.41.0.0/16"],
            vec![],
        ),
    );
    assert!(
        s.route(&pfx("10.41.0.0/16")).is_none(),
        "twice exceeds allowas-in 1"
    );
}

#[test]
fn ebgp_first_as_must_be_the_neighbor() {
    let mut s = setup(|_| {});
    from(
        &mut s,
        E,
        announce_v4(&[65099], "10.0.0.2", &["10.40.0.0/16"], vec![]),
    );
    assert!(s.route(&pfx("10.40.0.0/16")).is_none());
}

#[test]
fn treat_as_withdraw_findings_withdraw() {
    let mut s = setup(|_| {});
    from(
        &mut s,
        E,
        announce_v4(&[65001], "10.0.0.2", &["10.20.0.0/16"], vec![]),
    );
    assert!(s.route(&pfx("10.20.0.0/16")).is_some());
    let out = s.step(
        Input::Message {
            peer: ip(E),
            conn_id: ConnId(1),
            msg: announce_v4(&[65001], "10.0.0.2", &["10.20.0.0/16"], vec![]),
            findings: vec![brindle_bgp_wire::Error::withdraw("bad ORIGIN")],
        },
        t(2),
    );
    assert!(out.contains(&Output::RemoveRoute {
        prefix: pfx("10.20.0.0/16")
    }));
    assert!(notification_codes(&out).is_empty());
}

#[test]
fn filter_operators_and_lengths() {
    use FilterAction::*;
    use MatchOperator::*;
    let c = pfx("10.0.0.0/8");
    let cases: Vec<(FilterRule, &str, bool)> = vec![
        (FilterRule::cidr(Accept, c, Equal), "10.0.0.0/8", true),
        (FilterRule::cidr(Accept, c, Equal), "10.1.0.0/16", false),
        (FilterRule::cidr(Accept, c, NotEqual), "10.1.0.0/16", true),
        (FilterRule::cidr(Accept, c, NotEqual), "10.0.0.0/8", false),
        (FilterRule::cidr(Accept, c, In), "10.1.0.0/16", true),
        (FilterRule::cidr(Accept, c, In), "10.0.0.0/8", true),
        (FilterRule::cidr(Accept, c, In), "11.0.0.0/16", false),
        (FilterRule::cidr(Accept, c, In), "0.0.0.0/0", false),
        (FilterRule::cidr(Accept, c, NotIn), "11.0.0.0/16", true),
        (FilterRule::cidr(Accept, c, NotIn), "10.9.0.0/16", false),
        (FilterRule::cidr(Accept, c, In), "fd00::/64", false),
        (
            FilterRule::cidr(Accept, c, In).with_len(Some(16), Some(24)),
            "10.1.0.0/16",
            true,
        ),
        (
            FilterRule::cidr(Accept, c, In).with_len(Some(16), Some(24)),
            "10.1.1.0/24",
            true,
        ),
        (
            FilterRule::cidr(Accept, c, In).with_len(Some(16), Some(24)),
            "10.1.1.0/26",
            false,
        ),
        (
            FilterRule::cidr(Accept, c, In).with_len(Some(16), Some(24)),
            "10.0.0.0/8",
            false,
        ),
        (
            FilterRule::any(Reject).with_len(None, Some(8)),
            "10.0.0.0/8",
            true,
        ),
        (FilterRule::any(Reject), "fd00::/64", true),
    ];
    for (rule, p, expected) in cases {
        assert_eq!(rule_matches(&rule, &pfx(p)), expected, "{rule:?} on {p}");
    }
    // First match wins; no match accepts.
    let rules = vec![
        FilterRule::cidr(Accept, pfx("10.1.0.0/16"), In),
        FilterRule::cidr(Reject, c, In),
    ];
    assert!(filter_accepts(&rules, &pfx("10.1.2.0/24")));
    assert!(!filter_accepts(&rules, &pfx("10.2.0.0/16")));
    assert!(filter_accepts(&rules, &pfx("192.168.0.0/16")));
}

#[test]
fn import_and_export_filters_apply() {
    use FilterAction::*;
    let mut s = setup(|c| {
        c.soft_reconfiguration_inbound = true;
        if c.address == ip(E) {
            c.import = vec![FilterRule::cidr(
                Reject,
                pfx("10.20.0.0/16"),
                MatchOperator::In,
            )];
            c.export = vec![FilterRule::cidr(
                Reject,
                pfx("10.10.0.0/16"),
                MatchOperator::In,
            )];
        }
    });
    from(
        &mut s,
        E,
        announce_v4(
            &[65001],
            "10.0.0.2",
            &["10.20.1.0/24", "10.21.0.0/16"],
            vec![],
        ),
    );
    assert!(s.route(&pfx("10.20.1.0/24")).is_none());
    assert!(s.route(&pfx("10.21.0.0/16")).is_some());
    let c = s.peer_status(ip(E)).expect("status").families[&Family::IPV4_UNICAST];
    assert_eq!((c.received, c.accepted), (2, 1));
    let out = s.step(
        Input::Originate(pfx("10.10.5.0/26"), OriginAttrs::default()),
        t(2),
    );
    assert!(to(&s, &out, E).is_empty());
    assert_eq!(to(&s, &out, I1).len(), 1);

    // Changing the filters re-evaluates without a session reset (soft reconfiguration).
    let mut cfg = PeerConfig::new(ip(E), 65001);
    cfg.soft_reconfiguration_inbound = true;
    cfg.import = vec![];
    let out = s.step(Input::UpdatePeer(cfg), t(3));
    assert!(notification_codes(&out).is_empty());
    assert!(s.route(&pfx("10.20.1.0/24")).is_some());
    let e = to(&s, &out, E);
    assert!(
        e.iter()
            .any(|u| u.nlri.iter().any(|n| n.prefix == pfx("10.10.5.0/26"))),
        "{e:?}"
    );
}

#[test]
fn max_prefix_closes_with_cease_1() {
    let mut s = setup(|c| c.max_prefixes = Some(2));
    let out = from(
        &mut s,
        E,
        announce_v4(
            &[65001],
            "10.0.0.2",
            &["10.1.0.0/16", "10.2.0.0/16"],
            vec![],
        ),
    );
    assert!(notification_codes(&out).is_empty());
    let out = from(
        &mut s,
        E,
        announce_v4(&[65001], "10.0.0.2", &["10.3.0.0/16"], vec![]),
    );
    let n = sent(&out)
        .into_iter()
        .find_map(|m| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
        .expect("notification");
    assert_eq!((n.code(), n.subcode()), (6, 1));
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 2]);
    assert!(has(&out, |o| matches!(
        o,
        Output::ArmTimer {
            timer: TimerId::Peer(_, PeerTimer::IdleHold),
            ..
        }
    )));
    assert!(s.route(&pfx("10.1.0.0/16")).is_none(), "routes withdrawn");
    assert!(out.contains(&Output::RemoveRoute {
        prefix: pfx("10.1.0.0/16")
    }));
}

#[test]
fn many_prefixes_are_packed() {
    let mut s = setup(|_| {});
    let mut out = Vec::new();
    for i in 0..2000u32 {
        let p = brindle_bgp_wire::Prefix::v4(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24)
            .expect("p");
        out.extend(s.step(Input::Originate(p, OriginAttrs::default()), t(1)));
    }
    // One step per prefix: each sends one UPDATE. Now a new session gets the bulk table.
    let mut cfg = PeerConfig::new(ip("10.0.0.9"), 65009);
    cfg.passive = true;
    s.step(Input::AddPeer(cfg), t(2));
    let out = establish(
        &mut s,
        ip("10.0.0.9"),
        9,
        open_from(65009, "10.0.0.9", 90, &[Family::IPV4_UNICAST]),
        t(2),
    );
    let u = to(&s, &out, "10.0.0.9");
    let nlri: usize = u.iter().map(|u| u.nlri.len()).sum();
    assert_eq!(nlri, 2000);
    assert!(
        u.len() <= 4,
        "packed into {} UPDATEs (EoR included)",
        u.len()
    );
    assert_eq!(
        u.last().and_then(|u| u.end_of_rib()),
        Some(Family::IPV4_UNICAST)
    );
    // The status counts every message both ways, packed UPDATEs one by one.
    let st = s.peer_status(ip("10.0.0.9")).expect("status");
    assert_eq!(st.messages.sent.update, u.len() as u64);
    assert_eq!(st.messages.sent.open, 1);
    assert!(st.messages.sent.keepalive >= 1);
    assert_eq!(st.messages.received.open, 1);
    assert_eq!(st.messages.received.update, 0);
    assert_eq!(st.configured_hold_time, 90);
    s.step(msg(ip("10.0.0.9"), 9, Message::Keepalive), t(3));
    let after = s.peer_status(ip("10.0.0.9")).expect("status");
    assert_eq!(
        after.messages.received.keepalive,
        st.messages.received.keepalive + 1
    );
}

#[test]
fn ipv6_routes_use_mp_reach() {
    let mut s = Speaker::new(SpeakerConfig::new(65000, v4("10.0.0.1")));
    let p: IpAddr = ip("fd00::2");
    s.step(Input::AddPeer(PeerConfig::new(p, 65001)), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, E, 90, &[Family::IPV6_UNICAST]),
        t(0),
    );
    let out = s.step(
        Input::Originate(pfx("fd10:1::/122"), OriginAttrs::default()),
        t(1),
    );
    let ctx = s.session_context(p).expect("ctx").clone();
    let u = updates(&out, &ctx);
    let mp = u[0].mp_reach().expect("mp reach");
    assert_eq!(mp.family, Family::IPV6_UNICAST);
    assert_eq!(
        mp.next_hop,
        NextHop::V6 {
            global: "fd00::1".parse().expect("v6"),
            link_local: None
        }
    );
    assert_eq!(u[0].as_path(), Some(&AsPath::from_sequence(vec![65000])));
    // And learning one.
    let upd = UpdateMsg {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(brindle_bgp_wire::Origin::Igp),
            PathAttribute::AsPath(AsPath::from_sequence(vec![65001])),
            PathAttribute::MpReach(brindle_bgp_wire::MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: "fd00::2".parse().expect("v6"),
                    link_local: None,
                },
                nlri: vec![brindle_bgp_wire::Nlri::new(pfx("fd20::/64"))],
            }),
        ],
        nlri: vec![],
    };
    let out = s.step(msg(p, 1, Message::Update(upd)), t(2));
    assert!(out.contains(&Output::InstallRoute {
        prefix: pfx("fd20::/64"),
        nexthops: vec![p]
    }));
}

#[test]
fn route_refresh_resends_adj_rib_out_with_borr_eorr() {
    let mut s = setup(|_| {});
    s.step(
        Input::Originate(pfx("10.10.0.0/26"), OriginAttrs::default()),
        t(1),
    );
    let out = from(
        &mut s,
        E,
        Message::RouteRefresh(brindle_bgp_wire::RouteRefreshMsg::new(Family::IPV4_UNICAST)),
    );
    let msgs = all_messages(&out, s.session_context(ip(E)).expect("ctx"));
    assert!(
        matches!(msgs.first(), Some(Message::RouteRefresh(r)) if r.subtype == brindle_bgp_wire::RefreshSubtype::BeginOfRefresh),
        "{msgs:?}"
    );
    assert!(
        matches!(msgs.last(), Some(Message::RouteRefresh(r)) if r.subtype == brindle_bgp_wire::RefreshSubtype::EndOfRefresh)
    );
    assert!(matches!(&msgs[1], Message::Update(u) if u.nlri.len() == 1));
    // Asking the neighbor to refresh.
    let out = s.step(
        Input::RouteRefreshRequest(ip(E), Family::IPV4_UNICAST),
        t(2),
    );
    assert_eq!(
        sent(&out),
        vec![Message::RouteRefresh(
            brindle_bgp_wire::RouteRefreshMsg::new(Family::IPV4_UNICAST)
        )]
    );
}

#[test]
fn batched_originations_share_updates() {
    let mut s = setup(|_| {});
    let batch = (0..500u32)
        .map(|i| {
            let p =
                brindle_bgp_wire::Prefix::v4(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24)
                    .expect("p");
            Input::Originate(p, OriginAttrs::default())
        })
        .collect();
    let out = s.step(Input::Batch(batch), t(1));
    let e = to(&s, &out, E);
    assert_eq!(e.len(), 1, "500 /24s fit one UPDATE");
    assert_eq!(e[0].nlri.len(), 500);
}

#[test]
fn route_refresh_storm_is_rate_limited() {
    let mut s = setup(|_| {});
    s.step(
        Input::Originate(pfx("10.10.0.0/26"), OriginAttrs::default()),
        t(1),
    );
    let rr = || Message::RouteRefresh(brindle_bgp_wire::RouteRefreshMsg::new(Family::IPV4_UNICAST));
    let updates = |out: &[Output], s: &Speaker| {
        all_messages(out, s.session_context(ip(E)).expect("ctx"))
            .into_iter()
            .filter(|m| matches!(m, Message::Update(_)))
            .count()
    };
    // The first is served at once.
    let out = s.step(msg(ip(E), conn(E), rr()), t(2));
    assert_eq!(updates(&out, &s), 1);
    // A storm within the interval: nothing resent now, one deferred resend armed.
    let timer = TimerId::Peer(ip(E), PeerTimer::RouteRefresh(Family::IPV4_UNICAST));
    let mut armed = 0;
    for _ in 0..50 {
        let out = s.step(msg(ip(E), conn(E), rr()), t(3));
        assert_eq!(
            updates(&out, &s),
            0,
            "a refresh within the interval was served"
        );
        armed += out
            .iter()
            .filter(|o| matches!(o, Output::ArmTimer { timer: x, .. } if *x == timer))
            .count();
    }
    assert_eq!(armed, 1, "one deferred resend for the whole storm");
    // When it is due, the Adj-RIB-Out goes out once more.
    let out = s.step(
        Input::TimerExpired(timer),
        t(2) + brindle_bgp_core::advertise::REFRESH_INTERVAL,
    );
    assert_eq!(updates(&out, &s), 1);
    // After the interval a new request is served at once again.
    let out = s.step(msg(ip(E), conn(E), rr()), t(30));
    assert_eq!(updates(&out, &s), 1);
}

/// A path too long to encode in one message is not advertised, and the Adj-RIB-Out does not
/// claim it: the neighbor gets a withdrawal of the route it had, and the status counts nothing.
#[test]
fn unencodable_path_is_withdrawn_not_recorded() {
    let mut s = setup(|_| {});
    let advertised = |s: &Speaker| {
        s.peer_status(ip(I1)).expect("status").families[&Family::IPV4_UNICAST].advertised
    };
    let short = announce_v4(&[65001, 7], "10.0.0.2", &["10.30.0.0/16"], vec![]);
    let out = from(&mut s, E, short);
    assert_eq!(to(&s, &out, I1)[0].nlri.len(), 1);
    assert_eq!(advertised(&s), 1);
    // 1,100 four-octet ASNs: 4,400 bytes of AS_PATH, over the 4,096-byte message limit.
    let mut asns = vec![65001];
    asns.extend((0..1099).map(|i| 4_200_000_000 + i));
    let long = announce_v4(&asns, "10.0.0.2", &["10.30.0.0/16"], vec![]);
    let out = from(&mut s, E, long);
    let u = to(&s, &out, I1);
    assert!(
        u.iter().all(|u| u.nlri.is_empty()),
        "announced anyway: {u:?}"
    );
    assert_eq!(
        u.iter().map(|u| u.withdrawn.len()).sum::<usize>(),
        1,
        "the old route must be withdrawn"
    );
    assert_eq!(
        advertised(&s),
        0,
        "the Adj-RIB-Out claims a route never sent"
    );
    // A short path again is advertised again.
    let out = from(
        &mut s,
        E,
        announce_v4(&[65001, 8], "10.0.0.2", &["10.30.0.0/16"], vec![]),
    );
    assert_eq!(to(&s, &out, I1)[0].nlri.len(), 1);
    assert_eq!(advertised(&s), 1);
}

/// Routes that import policy refuses count toward max-prefix: they are stored all the same.
#[test]
fn max_prefix_counts_refused_routes() {
    let mut s = setup(|c| c.max_prefixes = Some(2));
    // Our own AS in the path: refused (AS_PATH loop), yet received.
    let looped = |p: &str| announce_v4(&[65001, 65000], "10.0.0.2", &[p], vec![]);
    let out = from(&mut s, E, looped("10.1.0.0/16"));
    assert!(notification_codes(&out).is_empty());
    let out = from(&mut s, E, looped("10.2.0.0/16"));
    assert!(notification_codes(&out).is_empty());
    let out = from(&mut s, E, looped("10.3.0.0/16"));
    assert_eq!(notification_codes(&out), vec![(6, 1)], "3 received > 2");
}

#[test]
fn refused_routes_are_counted_not_stored_without_soft_reconfiguration() {
    use FilterAction::*;
    let reject = vec![FilterRule::cidr(
        Reject,
        pfx("10.20.0.0/16"),
        MatchOperator::In,
    )];
    let r = reject.clone();
    let mut s = setup(move |c| {
        if c.address == ip(E) {
            c.import = r.clone();
        }
    });
    from(
        &mut s,
        E,
        announce_v4(
            &[65001],
            "10.0.0.2",
            &["10.20.1.0/24", "10.20.2.0/24", "10.21.0.0/16"],
            vec![],
        ),
    );
    let c = s.peer_status(ip(E)).expect("status").families[&Family::IPV4_UNICAST];
    assert_eq!(
        (c.received, c.accepted),
        (3, 1),
        "refused routes still count"
    );
    let stored: Vec<String> = s
        .adj_rib_in(ip(E))
        .unwrap_or_default()
        .iter()
        .map(|r| r.prefix.to_string())
        .collect();
    assert_eq!(
        stored,
        vec!["10.21.0.0/16"],
        "refused routes are not stored"
    );
    // Withdrawing a refused prefix takes it off the count.
    from(&mut s, E, withdraw_v4(&["10.20.2.0/24"]));
    let c = s.peer_status(ip(E)).expect("status").families[&Family::IPV4_UNICAST];
    assert_eq!((c.received, c.accepted), (2, 1));
    // A new import policy asks the neighbor for its routes again.
    let mut cfg = PeerConfig::new(ip(E), 65001);
    cfg.import = vec![];
    let out = s.step(Input::UpdatePeer(cfg), t(3));
    assert!(notification_codes(&out).is_empty());
    assert!(
        sent(&out)
            .iter()
            .any(|m| matches!(m, Message::RouteRefresh(r) if r.family == Family::IPV4_UNICAST)),
        "{out:?}"
    );
    // The neighbor resends; now accepted.
    from(
        &mut s,
        E,
        announce_v4(&[65001], "10.0.0.2", &["10.20.1.0/24"], vec![]),
    );
    assert!(s.route(&pfx("10.20.1.0/24")).is_some());
}

#[test]
fn default_max_prefix_per_session_type() {
    let mut cfg = SpeakerConfig::new(65000, v4("10.0.0.1"));
    cfg.default_max_prefixes_ebgp = Some(1);
    cfg.default_max_prefixes_ibgp = Some(2);
    let mut s = Speaker::new(cfg);
    for (i, (a, asn)) in [(E, 65001), (I1, 65000)].into_iter().enumerate() {
        s.step(Input::AddPeer(PeerConfig::new(ip(a), asn)), t(0));
        establish(
            &mut s,
            ip(a),
            i as u64 + 1,
            open_from(asn, a, 90, &[Family::IPV4_UNICAST]),
            t(0),
        );
    }
    let two =
        |path: &[u32], nh: &str| announce_v4(path, nh, &["10.1.0.0/16", "10.2.0.0/16"], vec![]);
    let out = s.step(msg(ip(I1), 2, two(&[], "10.0.0.3")), t(1));
    assert!(notification_codes(&out).is_empty(), "iBGP default is 2");
    let out = s.step(msg(ip(E), 1, two(&[65001], "10.0.0.2")), t(1));
    assert_eq!(notification_codes(&out), vec![(6, 1)], "eBGP default is 1");
}
