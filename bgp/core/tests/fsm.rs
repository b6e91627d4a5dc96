//! RFC 4271 §8 state machine with a fake clock.

mod common;

use std::time::Duration;

use brindle_bgp_core::*;
use brindle_bgp_wire::{Family, Message, UpdateMsg};
use common::*;

const PEER: &str = "10.0.0.2";

fn speaker(id: &str) -> Speaker {
    Speaker::new(SpeakerConfig::new(65000, v4(id)))
}

fn peer() -> PeerConfig {
    PeerConfig::new(ip(PEER), 65001)
}

fn timer(t: PeerTimer) -> TimerId {
    TimerId::Peer(ip(PEER), t)
}

fn armed(out: &[Output], t: PeerTimer, at: Instant) -> bool {
    out.contains(&Output::ArmTimer {
        timer: timer(t),
        at,
    })
}

#[test]
fn active_handshake_reaches_established() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    let out = s.step(Input::AddPeer(peer()), t(0));
    assert!(out.contains(&Output::Connect {
        peer: p,
        addr: p,
        port: 179,
        local: None
    }));
    assert!(armed(&out, PeerTimer::ConnectRetry, t(120)));
    assert_eq!(state_changes(&out), vec![(State::Idle, State::Connect)]);

    let out = s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(1));
    let Some(Message::Open(open)) = sent(&out).into_iter().next() else {
        panic!("no OPEN: {out:?}");
    };
    assert_eq!(
        (open.asn(), open.hold_time, open.bgp_id),
        (65000, 90, v4("10.0.0.1"))
    );
    assert!(armed(&out, PeerTimer::Hold(ConnId(1)), t(241)));
    assert!(out.contains(&Output::CancelTimer(timer(PeerTimer::ConnectRetry))));
    assert_eq!(state_changes(&out), vec![(State::Connect, State::OpenSent)]);

    let out = s.step(
        msg(
            p,
            1,
            Message::Open(open_from(65001, PEER, 60, &[Family::IPV4_UNICAST])),
        ),
        t(2),
    );
    assert!(has(
        &out,
        |o| matches!(o, Output::SetContext { ctx, .. } if ctx.four_octet_as)
    ));
    assert_eq!(sent(&out), vec![Message::Keepalive]);
    assert!(armed(&out, PeerTimer::Hold(ConnId(1)), t(62)));
    assert!(armed(&out, PeerTimer::Keepalive(ConnId(1)), t(22)));
    assert_eq!(
        state_changes(&out),
        vec![(State::OpenSent, State::OpenConfirm)]
    );

    let out = s.step(msg(p, 1, Message::Keepalive), t(3));
    assert_eq!(
        state_changes(&out),
        vec![(State::OpenConfirm, State::Established)]
    );
    // End-of-RIB for IPv4 unicast right away (nothing to advertise).
    assert_eq!(
        sent(&out),
        vec![Message::Update(UpdateMsg::end_of_rib_marker(
            Family::IPV4_UNICAST
        ))]
    );
    let st = s.peer_status(p).expect("status");
    assert_eq!(st.established_since, Some(t(3)));
    let caps = st.capabilities.expect("caps");
    assert_eq!(
        (caps.hold_time, caps.keepalive, caps.route_refresh),
        (60, 20, true)
    );
}

#[test]
fn passive_peer_waits_in_active() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    let mut cfg = peer();
    cfg.passive = true;
    let out = s.step(Input::AddPeer(cfg), t(0));
    assert!(!has(&out, |o| matches!(o, Output::Connect { .. })));
    assert_eq!(state_changes(&out), vec![(State::Idle, State::Active)]);
    let out = s.step(connected(p, 7, Direction::Passive, ip("10.0.0.1")), t(1));
    assert!(matches!(sent(&out).as_slice(), [Message::Open(_)]));
    assert_eq!(state_changes(&out), vec![(State::Active, State::OpenSent)]);
    let out = s.step(
        msg(
            p,
            7,
            Message::Open(open_from(65001, PEER, 90, &[Family::IPV4_UNICAST])),
        ),
        t(1),
    );
    assert_eq!(
        state_changes(&out),
        vec![(State::OpenSent, State::OpenConfirm)]
    );
    let out = s.step(msg(p, 7, Message::Keepalive), t(1));
    assert_eq!(
        state_changes(&out),
        vec![(State::OpenConfirm, State::Established)]
    );
}

#[test]
fn hold_timer_expiry_sends_4_0_and_backs_off() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    // A KEEPALIVE at 50 s pushes the deadline: the expiry at 90 s re-arms for 140 s.
    s.step(msg(p, 1, Message::Keepalive), t(50));
    let out = s.step(
        Input::TimerExpired(timer(PeerTimer::Hold(ConnId(1)))),
        t(90),
    );
    assert!(armed(&out, PeerTimer::Hold(ConnId(1)), t(140)));
    assert!(notification_codes(&out).is_empty());

    let out = s.step(
        Input::TimerExpired(timer(PeerTimer::Hold(ConnId(1)))),
        t(140),
    );
    assert_eq!(notification_codes(&out), vec![(4, 0)]);
    assert!(out.contains(&Output::Close {
        peer: p,
        conn_id: ConnId(1)
    }));
    assert!(armed(&out, PeerTimer::IdleHold, t(145)));
    assert_eq!(state_changes(&out), vec![(State::Established, State::Idle)]);

    // IdleHold expiry restarts; a second failure doubles the delay.
    let out = s.step(Input::TimerExpired(timer(PeerTimer::IdleHold)), t(145));
    assert!(has(&out, |o| matches!(o, Output::Connect { .. })));
    s.step(connected(p, 2, Direction::Active, ip("10.0.0.1")), t(146));
    let out = s.step(
        Input::TcpClosed {
            peer: p,
            conn_id: ConnId(2),
        },
        t(147),
    );
    assert!(armed(&out, PeerTimer::IdleHold, t(157)));
    // A stale expiry of the old hold timer is ignored.
    let out = s.step(
        Input::TimerExpired(timer(PeerTimer::Hold(ConnId(1)))),
        t(200),
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn idle_hold_backoff_is_capped() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    let mut now = 0;
    let mut delays = Vec::new();
    for c in 1..=8u64 {
        s.step(connected(p, c, Direction::Active, ip("10.0.0.1")), t(now));
        let out = s.step(
            Input::TcpClosed {
                peer: p,
                conn_id: ConnId(c),
            },
            t(now),
        );
        let at = out
            .iter()
            .find_map(|o| match o {
                Output::ArmTimer {
                    timer: TimerId::Peer(_, PeerTimer::IdleHold),
                    at,
                } => Some(*at),
                _ => None,
            })
            .expect("idle hold");
        delays.push((at.as_millis() - t(now).as_millis()) / 1000);
        now = at.as_millis() / 1000;
        s.step(Input::TimerExpired(timer(PeerTimer::IdleHold)), at);
    }
    assert_eq!(delays, vec![5, 10, 20, 40, 80, 120, 120, 120]);
}

#[test]
fn keepalive_timer_sends_and_rearms() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let out = s.step(
        Input::TimerExpired(timer(PeerTimer::Keepalive(ConnId(1)))),
        t(30),
    );
    assert_eq!(sent(&out), vec![Message::Keepalive]);
    assert!(armed(&out, PeerTimer::Keepalive(ConnId(1)), t(60)));
    // Early expiry reports are ignored.
    let out = s.step(
        Input::TimerExpired(timer(PeerTimer::Keepalive(ConnId(1)))),
        t(59),
    );
    assert!(out.is_empty());
}

#[test]
fn zero_hold_time_disables_timers() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(0));
    let out = s.step(
        msg(
            p,
            1,
            Message::Open(open_from(65001, PEER, 0, &[Family::IPV4_UNICAST])),
        ),
        t(0),
    );
    assert!(out.contains(&Output::CancelTimer(timer(PeerTimer::Hold(ConnId(1))))));
    assert!(!has(&out, |o| matches!(
        o,
        Output::ArmTimer {
            timer: TimerId::Peer(_, PeerTimer::Keepalive(_)),
            ..
        }
    )));
}

#[test]
fn connect_retry_after_failure() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    let out = s.step(Input::TcpFailed { peer: p }, t(1));
    assert_eq!(state_changes(&out), vec![(State::Connect, State::Active)]);
    let out = s.step(Input::TimerExpired(timer(PeerTimer::ConnectRetry)), t(120));
    assert!(has(&out, |o| matches!(o, Output::Connect { .. })));
    assert!(armed(&out, PeerTimer::ConnectRetry, t(240)));
    assert_eq!(state_changes(&out), vec![(State::Active, State::Connect)]);
}

fn collision(local_id: &str, open_on: u64) -> (Vec<Output>, Speaker) {
    let mut s = speaker(local_id);
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(1));
    s.step(connected(p, 2, Direction::Passive, ip("10.0.0.1")), t(1));
    let out = s.step(
        msg(
            p,
            open_on,
            Message::Open(open_from(65001, PEER, 90, &[Family::IPV4_UNICAST])),
        ),
        t(2),
    );
    (out, s)
}

#[test]
fn collision_lower_local_id_keeps_the_neighbors_connection() {
    // 10.0.0.1 < 10.0.0.2: the passive connection (2) survives.
    let (out, _) = collision("10.0.0.1", 1);
    assert_eq!(notification_codes(&out), vec![(6, 7)]);
    assert!(out.contains(&Output::Close {
        peer: ip(PEER),
        conn_id: ConnId(1)
    }));
    let (out, s) = collision("10.0.0.1", 2);
    assert!(out.contains(&Output::Close {
        peer: ip(PEER),
        conn_id: ConnId(1)
    }));
    assert!(!out.contains(&Output::Close {
        peer: ip(PEER),
        conn_id: ConnId(2)
    }));
    assert_eq!(
        s.peer_status(ip(PEER)).map(|p| p.state),
        Some(State::OpenConfirm)
    );
}

#[test]
fn collision_higher_local_id_keeps_our_connection() {
    // 10.0.0.9 > 10.0.0.2: the active connection (1) survives.
    let (out, s) = collision("10.0.0.9", 2);
    assert_eq!(notification_codes(&out), vec![(6, 7)]);
    assert!(out.contains(&Output::Close {
        peer: ip(PEER),
        conn_id: ConnId(2)
    }));
    assert_eq!(
        s.peer_status(ip(PEER)).map(|p| p.state),
        Some(State::OpenSent)
    );
    let (out, s) = collision("10.0.0.9", 1);
    assert!(out.contains(&Output::Close {
        peer: ip(PEER),
        conn_id: ConnId(2)
    }));
    assert_eq!(
        s.peer_status(ip(PEER)).map(|p| p.state),
        Some(State::OpenConfirm)
    );
}

#[test]
fn new_connection_while_established_is_refused() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let out = s.step(connected(p, 2, Direction::Passive, ip("10.0.0.1")), t(5));
    assert_eq!(
        out,
        vec![Output::Close {
            peer: p,
            conn_id: ConnId(2)
        }]
    );
}

#[test]
fn bad_peer_as_is_2_2() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(0));
    let out = s.step(
        msg(
            p,
            1,
            Message::Open(open_from(65009, PEER, 90, &[Family::IPV4_UNICAST])),
        ),
        t(1),
    );
    assert_eq!(notification_codes(&out), vec![(2, 2)]);
    assert!(out.contains(&Output::Close {
        peer: p,
        conn_id: ConnId(1)
    }));
    assert!(armed(&out, PeerTimer::IdleHold, t(6)));
    let err = s.peer_status(p).and_then(|p| p.last_error).expect("error");
    assert_eq!(
        (err.notification.map(|n| (n.code(), n.subcode())), err.sent),
        (Some((2, 2)), true)
    );
}

#[test]
fn bad_hold_time_is_2_6() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(0));
    let out = s.step(
        msg(
            p,
            1,
            Message::Open(open_from(65001, PEER, 2, &[Family::IPV4_UNICAST])),
        ),
        t(1),
    );
    assert_eq!(notification_codes(&out), vec![(2, 6)]);
}

#[test]
fn no_common_family_is_2_7() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(0));
    let out = s.step(
        msg(
            p,
            1,
            Message::Open(open_from(65001, PEER, 90, &[Family::IPV6_UNICAST])),
        ),
        t(1),
    );
    assert_eq!(notification_codes(&out), vec![(2, 7)]);
}

#[test]
fn delay_open_waits_then_sends() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    let mut cfg = peer();
    cfg.delay_open = Some(Duration::from_secs(5));
    s.step(Input::AddPeer(cfg), t(0));
    let out = s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(1));
    assert!(sent(&out).is_empty());
    assert!(armed(&out, PeerTimer::DelayOpen(ConnId(1)), t(6)));
    let out = s.step(
        Input::TimerExpired(timer(PeerTimer::DelayOpen(ConnId(1)))),
        t(6),
    );
    assert!(matches!(sent(&out).as_slice(), [Message::Open(_)]));
    assert_eq!(state_changes(&out), vec![(State::Connect, State::OpenSent)]);
}

#[test]
fn delay_open_answers_an_early_open() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    let mut cfg = peer();
    cfg.delay_open = Some(Duration::from_secs(5));
    s.step(Input::AddPeer(cfg), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(1));
    let out = s.step(
        msg(
            p,
            1,
            Message::Open(open_from(65001, PEER, 90, &[Family::IPV4_UNICAST])),
        ),
        t(2),
    );
    assert!(matches!(
        sent(&out).as_slice(),
        [Message::Open(_), Message::Keepalive]
    ));
    assert!(out.contains(&Output::CancelTimer(timer(PeerTimer::DelayOpen(ConnId(1))))));
    assert_eq!(s.peer_status(p).map(|p| p.state), Some(State::OpenConfirm));
}

#[test]
fn admin_down_sends_cease_2_and_stays_idle() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let out = s.step(Input::AdminDown(p), t(10));
    assert_eq!(notification_codes(&out), vec![(6, 2)]);
    assert!(out.contains(&Output::Close {
        peer: p,
        conn_id: ConnId(1)
    }));
    assert!(!has(&out, |o| matches!(o, Output::ArmTimer { .. })));
    assert_eq!(state_changes(&out), vec![(State::Established, State::Idle)]);
    let out = s.step(Input::AdminUp(p), t(20));
    assert!(has(&out, |o| matches!(o, Output::Connect { .. })));
}

#[test]
fn remove_peer_sends_cease_3() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let out = s.step(Input::RemovePeer(p), t(10));
    assert_eq!(notification_codes(&out), vec![(6, 3)]);
    assert!(s.peer_status(p).is_none());
}

#[test]
fn update_before_established_is_fsm_error() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    s.step(connected(p, 1, Direction::Active, ip("10.0.0.1")), t(0));
    let out = s.step(msg(p, 1, withdraw_v4(&["10.1.0.0/16"])), t(1));
    assert_eq!(notification_codes(&out), vec![(5, 1)]);
}

#[test]
fn received_notification_is_recorded() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let n = brindle_bgp_wire::NotificationMsg::shutdown(
        brindle_bgp_wire::CeaseSubcode::AdministrativeShutdown,
        "maintenance",
    );
    let out = s.step(msg(p, 1, Message::Notification(n)), t(5));
    assert!(notification_codes(&out).is_empty());
    let err = s.peer_status(p).and_then(|p| p.last_error).expect("error");
    assert_eq!(
        (err.notification.map(|n| (n.code(), n.subcode())), err.sent),
        (Some((6, 2)), false)
    );
    assert!(err.text.contains("maintenance"));
}

#[test]
fn decode_error_sends_its_notification() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(0),
    );
    let error = brindle_bgp_wire::Error::reset(3, 1, Vec::new(), "bad");
    let out = s.step(
        Input::DecodeError {
            peer: p,
            conn_id: ConnId(1),
            error,
        },
        t(5),
    );
    assert_eq!(notification_codes(&out), vec![(3, 1)]);
    assert!(out.contains(&Output::Close {
        peer: p,
        conn_id: ConnId(1)
    }));
}

/// A configuration change that needs a new session closes it with Cease 6/6 (Other
/// Configuration Change) and reconnects; one that arrives while the peer is administratively
/// down never brings it up.
#[test]
fn config_change_reset_is_cease_6_and_keeps_admin_down() {
    let mut s = speaker("10.0.0.1");
    let p = ip(PEER);
    s.step(Input::AddPeer(peer()), t(0));
    establish(
        &mut s,
        p,
        1,
        open_from(65001, PEER, 90, &[Family::IPV4_UNICAST]),
        t(1),
    );
    let mut changed = peer();
    changed.hold_time = 30;
    let out = s.step(Input::UpdatePeer(changed.clone()), t(2));
    assert_eq!(notification_codes(&out), vec![(6, 6)]);
    assert!(
        out.iter().any(|o| matches!(o, Output::Connect { .. })),
        "reconnects: {out:?}"
    );
    // Administratively down, then another change that needs a reset: stays down.
    s.step(Input::AdminDown(p), t(3));
    let mut again = changed;
    again.hold_time = 60;
    let out = s.step(Input::UpdatePeer(again), t(4));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Connect { .. })),
        "an administratively shut peer was brought up: {out:?}"
    );
    let st = s.peer_status(p).unwrap();
    assert!(!st.admin_up);
    assert_eq!(st.configured_hold_time, 60);
    let out = s.step(Input::AdminUp(p), t(5));
    assert!(out.iter().any(|o| matches!(o, Output::Connect { .. })));
}
