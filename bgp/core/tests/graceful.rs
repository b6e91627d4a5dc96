//! Graceful restart (RFC 4724): the helper keeping a restarting neighbor's routes, and the
//! restarting speaker deferring selection until End-of-RIB.

mod common;

use brindle_bgp_core::*;
use brindle_bgp_wire::{
    Capability, Family, GrFamily, GracefulRestart, Message, NotificationMsg, OpenMsg, UpdateMsg,
};
use common::*;

const E: &str = "10.0.0.2";

fn gr_open(forwarding: bool, restart_state: bool) -> OpenMsg {
    let mut o = open_from(65001, E, 90, &[Family::IPV4_UNICAST]);
    o.capabilities
        .push(Capability::GracefulRestart(GracefulRestart {
            flags: if restart_state {
                GracefulRestart::RESTART_STATE
            } else {
                0
            },
            restart_time: 120,
            families: vec![GrFamily {
                family: Family::IPV4_UNICAST,
                flags: if forwarding { GrFamily::FORWARDING } else { 0 },
            }],
        }));
    o
}

fn config() -> SpeakerConfig {
    let mut c = SpeakerConfig::new(65000, v4("10.0.0.1"));
    c.graceful_restart = Some(GrConfig::default());
    c
}

fn peer_cfg() -> PeerConfig {
    let mut p = PeerConfig::new(ip(E), 65001);
    p.graceful_restart = true;
    p
}

/// A helper speaker with the neighbor's two routes learned on connection 1.
fn helper() -> Speaker {
    let mut s = Speaker::new(config());
    s.step(Input::AddPeer(peer_cfg()), t(0));
    establish(&mut s, ip(E), 1, gr_open(true, false), t(0));
    let out = s.step(
        msg(
            ip(E),
            1,
            announce_v4(&[65001], E, &["10.1.0.0/16", "10.2.0.0/16"], vec![]),
        ),
        t(1),
    );
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::InstallRoute { .. }))
            .count(),
        2
    );
    s
}

fn removes(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::RemoveRoute { prefix } => Some(prefix.to_string()),
            _ => None,
        })
        .collect()
}

fn stale(s: &Speaker, p: &str) -> Option<bool> {
    s.route(&pfx(p)).map(|r| r.paths[0].stale)
}

#[test]
fn our_open_advertises_graceful_restart() {
    let mut s = Speaker::new(config());
    s.step(Input::AddPeer(peer_cfg()), t(0));
    let out = s.step(connected(ip(E), 1, Direction::Active, ip("10.0.0.1")), t(0));
    let Some(Message::Open(o)) = sent(&out).into_iter().next() else {
        panic!()
    };
    let gr = o
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .expect("GR cap");
    assert_eq!(gr.restart_time, 120);
    assert!(!gr.restart_state());
    assert_eq!(gr.families[0].family, Family::IPV4_UNICAST);
}

#[test]
fn helper_keeps_routes_stale_then_sweeps_at_end_of_rib() {
    let mut s = helper();
    let out = s.step(
        Input::TcpClosed {
            peer: ip(E),
            conn_id: ConnId(1),
        },
        t(10),
    );
    assert!(
        removes(&out).is_empty(),
        "no RemoveRoute during the restart: {out:?}"
    );
    assert!(out.contains(&Output::ArmTimer {
        timer: TimerId::Peer(ip(E), PeerTimer::Restart),
        at: t(130)
    }));
    assert_eq!(stale(&s, "10.1.0.0/16"), Some(true));
    assert_eq!(
        s.peer_status(ip(E)).expect("st").stale_families,
        vec![Family::IPV4_UNICAST]
    );

    // The neighbor comes back (restart bit set, forwarding preserved).
    s.step(
        Input::TimerExpired(TimerId::Peer(ip(E), PeerTimer::IdleHold)),
        t(15),
    );
    let out = establish(&mut s, ip(E), 2, gr_open(true, true), t(20));
    assert!(out.contains(&Output::CancelTimer(TimerId::Peer(
        ip(E),
        PeerTimer::Restart
    ))));
    assert!(has(&out, |o| matches!(
        o,
        Output::ArmTimer {
            timer: TimerId::Peer(_, PeerTimer::Stale),
            ..
        }
    )));
    assert!(removes(&out).is_empty());
    // It re-sends one route: un-staled.
    let out = s.step(
        msg(ip(E), 2, announce_v4(&[65001], E, &["10.1.0.0/16"], vec![])),
        t(21),
    );
    assert!(removes(&out).is_empty());
    assert_eq!(stale(&s, "10.1.0.0/16"), Some(false));
    assert_eq!(stale(&s, "10.2.0.0/16"), Some(true));
    // End-of-RIB: the rest goes.
    let out = s.step(
        msg(
            ip(E),
            2,
            Message::Update(UpdateMsg::end_of_rib_marker(Family::IPV4_UNICAST)),
        ),
        t(22),
    );
    assert_eq!(removes(&out), vec!["10.2.0.0/16"]);
    assert!(out.contains(&Output::CancelTimer(TimerId::Peer(ip(E), PeerTimer::Stale))));
    assert!(s.peer_status(ip(E)).expect("st").stale_families.is_empty());
}

#[test]
fn restart_timer_expiry_flushes() {
    let mut s = helper();
    s.step(
        Input::TcpClosed {
            peer: ip(E),
            conn_id: ConnId(1),
        },
        t(10),
    );
    let out = s.step(
        Input::TimerExpired(TimerId::Peer(ip(E), PeerTimer::Restart)),
        t(130),
    );
    assert_eq!(removes(&out), vec!["10.1.0.0/16", "10.2.0.0/16"]);
}

#[test]
fn hold_expiry_also_triggers_the_helper() {
    let mut s = helper();
    let out = s.step(
        Input::TimerExpired(TimerId::Peer(ip(E), PeerTimer::Hold(ConnId(1)))),
        t(200),
    );
    assert_eq!(notification_codes(&out), vec![(4, 0)]);
    assert!(removes(&out).is_empty());
    assert_eq!(stale(&s, "10.2.0.0/16"), Some(true));
}

#[test]
fn stale_timer_sweeps_without_end_of_rib() {
    let mut s = helper();
    s.step(
        Input::TcpClosed {
            peer: ip(E),
            conn_id: ConnId(1),
        },
        t(10),
    );
    s.step(
        Input::TimerExpired(TimerId::Peer(ip(E), PeerTimer::IdleHold)),
        t(15),
    );
    establish(&mut s, ip(E), 2, gr_open(true, true), t(20));
    let out = s.step(
        Input::TimerExpired(TimerId::Peer(ip(E), PeerTimer::Stale)),
        t(20 + 360),
    );
    assert_eq!(removes(&out), vec!["10.1.0.0/16", "10.2.0.0/16"]);
}

#[test]
fn notification_means_no_graceful_restart() {
    let mut s = helper();
    let n = NotificationMsg::from_codes(6, 4, Vec::new());
    let out = s.step(msg(ip(E), 1, Message::Notification(n)), t(10));
    assert_eq!(removes(&out), vec!["10.1.0.0/16", "10.2.0.0/16"]);
}

#[test]
fn forwarding_state_lost_flushes_on_reconnect() {
    let mut s = helper();
    s.step(
        Input::TcpClosed {
            peer: ip(E),
            conn_id: ConnId(1),
        },
        t(10),
    );
    s.step(
        Input::TimerExpired(TimerId::Peer(ip(E), PeerTimer::IdleHold)),
        t(15),
    );
    let out = establish(&mut s, ip(E), 2, gr_open(false, true), t(20));
    assert_eq!(removes(&out), vec!["10.1.0.0/16", "10.2.0.0/16"]);
}

#[test]
fn peer_without_gr_is_withdrawn_at_once() {
    let mut s = Speaker::new(config());
    s.step(Input::AddPeer(peer_cfg()), t(0));
    establish(
        &mut s,
        ip(E),
        1,
        open_from(65001, E, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    s.step(
        msg(ip(E), 1, announce_v4(&[65001], E, &["10.1.0.0/16"], vec![])),
        t(1),
    );
    let out = s.step(
        Input::TcpClosed {
            peer: ip(E),
            conn_id: ConnId(1),
        },
        t(10),
    );
    assert_eq!(removes(&out), vec!["10.1.0.0/16"]);
}

#[test]
fn restarting_speaker_defers_until_end_of_rib() {
    let (mut s, out) = Speaker::new_restarting(config(), t(0));
    assert_eq!(
        out,
        vec![Output::ArmTimer {
            timer: TimerId::SelectionDeferral,
            at: t(360)
        }]
    );
    assert!(s.is_deferring());
    s.step(Input::AddPeer(peer_cfg()), t(0));
    s.step(
        Input::Originate(pfx("10.65.0.0/26"), OriginAttrs::default()),
        t(0),
    );
    let out = s.step(connected(ip(E), 1, Direction::Active, ip("10.0.0.1")), t(1));
    let Some(Message::Open(o)) = sent(&out).into_iter().next() else {
        panic!()
    };
    let gr = o
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .expect("GR");
    assert!(gr.restart_state());
    assert!(gr.families[0].forwarding());
    let mut out = s.step(msg(ip(E), 1, Message::Open(gr_open(true, false))), t(1));
    out.extend(s.step(msg(ip(E), 1, Message::Keepalive), t(1)));
    out.extend(s.step(
        msg(ip(E), 1, announce_v4(&[65001], E, &["10.1.0.0/16"], vec![])),
        t(2),
    ));
    assert!(
        !has(&out, |o| matches!(
            o,
            Output::InstallRoute { .. } | Output::RemoveRoute { .. } | Output::SendEncoded { .. }
        )),
        "{out:?}"
    );
    assert!(
        !sent(&out).iter().any(|m| matches!(m, Message::Update(_))),
        "no End-of-RIB yet"
    );

    let out = s.step(
        msg(
            ip(E),
            1,
            Message::Update(UpdateMsg::end_of_rib_marker(Family::IPV4_UNICAST)),
        ),
        t(3),
    );
    assert!(!s.is_deferring());
    assert!(out.contains(&Output::CancelTimer(TimerId::SelectionDeferral)));
    let install = out
        .iter()
        .position(|o| matches!(o, Output::InstallRoute { .. }))
        .expect("install");
    let synced = out
        .iter()
        .position(|o| *o == Output::RibSynced)
        .expect("synced");
    assert!(install < synced);
    assert!(removes(&out).is_empty());
    let ctx = s.session_context(ip(E)).expect("ctx").clone();
    let u = updates(&out, &ctx);
    assert_eq!(
        u.iter().map(|u| u.nlri.len()).sum::<usize>(),
        1,
        "our block"
    );
    assert_eq!(
        u.last().and_then(|u| u.end_of_rib()),
        Some(Family::IPV4_UNICAST)
    );
}

#[test]
fn restarting_speaker_deferral_timer() {
    let (mut s, _) = Speaker::new_restarting(config(), t(0));
    s.step(Input::AddPeer(peer_cfg()), t(0));
    s.step(
        Input::Originate(pfx("10.65.0.0/26"), OriginAttrs::default()),
        t(0),
    );
    establish(&mut s, ip(E), 1, gr_open(true, false), t(1));
    s.step(
        msg(ip(E), 1, announce_v4(&[65001], E, &["10.1.0.0/16"], vec![])),
        t(2),
    );
    let out = s.step(Input::TimerExpired(TimerId::SelectionDeferral), t(360));
    assert!(out.contains(&Output::InstallRoute {
        prefix: pfx("10.1.0.0/16"),
        nexthops: vec![ip(E)]
    }));
    assert!(out.contains(&Output::RibSynced));
    // After the restart, new OPENs no longer carry the Restart State bit.
    let o = brindle_bgp_core::negotiate::local_open(s.config(), &peer_cfg(), false);
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::GracefulRestart(g) if !g.restart_state()))
    );
}

/// RFC 4724 §4.2: the neighbor rebooted without closing its session and connects again. Its
/// OPEN arrives while the old session is still Established: the old one is closed as a
/// transport failure (no NOTIFICATION, routes kept stale), and the new session comes up.
#[test]
fn a_new_open_while_established_is_a_restart() {
    let mut s = helper();
    let out = s.step(
        connected(ip(E), 2, Direction::Passive, ip("10.0.0.1")),
        t(30),
    );
    assert!(notification_codes(&out).is_empty());
    let out = s.step(msg(ip(E), 2, Message::Open(gr_open(true, true))), t(30));
    assert!(
        notification_codes(&out).is_empty(),
        "neither the old nor the new connection gets a NOTIFICATION: {out:?}"
    );
    assert!(removes(&out).is_empty(), "the routes stay: {out:?}");
    assert_eq!(stale(&s, "10.1.0.0/16"), Some(true));
    let out = s.step(msg(ip(E), 2, Message::Keepalive), t(30));
    assert_eq!(
        s.peer_status(ip(E)).map(|p| p.state),
        Some(State::Established),
        "{out:?}"
    );
    // It re-sends its routes and End-of-RIB: nothing was lost.
    s.step(
        msg(
            ip(E),
            2,
            announce_v4(&[65001], E, &["10.1.0.0/16", "10.2.0.0/16"], vec![]),
        ),
        t(31),
    );
    let out = s.step(
        msg(
            ip(E),
            2,
            Message::Update(UpdateMsg::end_of_rib_marker(Family::IPV4_UNICAST)),
        ),
        t(32),
    );
    assert!(removes(&out).is_empty(), "{out:?}");
    assert_eq!(stale(&s, "10.2.0.0/16"), Some(false));
}

/// Without graceful restart, an established session still wins against a new connection.
#[test]
fn without_graceful_restart_the_established_session_wins() {
    let mut s = Speaker::new(SpeakerConfig::new(65000, v4("10.0.0.1")));
    s.step(Input::AddPeer(PeerConfig::new(ip(E), 65001)), t(0));
    establish(
        &mut s,
        ip(E),
        1,
        open_from(65001, E, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let out = s.step(
        connected(ip(E), 2, Direction::Passive, ip("10.0.0.1")),
        t(5),
    );
    assert!(
        out.contains(&Output::Close {
            peer: ip(E),
            conn_id: ConnId(2)
        }),
        "the new connection is refused: {out:?}"
    );
    assert_eq!(
        s.peer_status(ip(E)).map(|p| p.state),
        Some(State::Established)
    );
}

#[test]
fn restarting_with_next_hop_tracking_keeps_leftovers_until_next_hops_are_known() {
    let mut cfg = config();
    cfg.nexthop_tracking = true;
    let (mut s, _) = Speaker::new_restarting(cfg, t(0));
    s.step(Input::AddPeer(peer_cfg()), t(0));
    establish(&mut s, ip(E), 1, gr_open(true, false), t(1));
    s.step(
        msg(ip(E), 1, announce_v4(&[65001], E, &["10.1.0.0/16"], vec![])),
        t(2),
    );
    // The deferral ends before the driver has resolved the next hop: the kernel's leftover
    // routes must stay (no RibSynced), since nothing learned could be installed yet.
    let out = s.step(Input::TimerExpired(TimerId::SelectionDeferral), t(360));
    assert!(out.contains(&Output::TrackNexthop(ip(E))));
    assert!(!out.contains(&Output::RibSynced), "{out:?}");
    // Reported: the route is installed, then the leftovers may go.
    let out = s.step(
        Input::NexthopReachability {
            addr: ip(E),
            reachable: true,
            via: vec![],
        },
        t(361),
    );
    let install = out
        .iter()
        .position(|o| matches!(o, Output::InstallRoute { .. }))
        .expect("install");
    let synced = out
        .iter()
        .position(|o| *o == Output::RibSynced)
        .expect("synced");
    assert!(install < synced);
}
