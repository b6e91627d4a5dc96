//! Flow control: a neighbor that stops reading holds advertisements back as a bounded set of
//! prefixes, gets only the current state once its queue drains, and is closed with
//! NOTIFICATION 8 (Send Hold Timer Expired) when it stays blocked.

mod common;

use std::time::Duration;

use brindle_bgp_core::*;
use brindle_bgp_wire::{Family, Message, RouteRefreshMsg};
use common::*;

const SLOW: &str = "10.0.0.2";
const FAST: &str = "10.0.0.3";

fn setup(send_hold: Option<Duration>) -> Speaker {
    let mut s = Speaker::new(SpeakerConfig::new(65000, v4("10.0.0.1")));
    for (i, a) in [SLOW, FAST].into_iter().enumerate() {
        let mut cfg = PeerConfig::new(ip(a), 65001 + i as u32);
        cfg.send_hold_time = send_hold;
        s.step(Input::AddPeer(cfg), t(0));
        establish(
            &mut s,
            ip(a),
            i as u64 + 1,
            open_from(65001 + i as u32, a, 90, &[Family::IPV4_UNICAST]),
            t(0),
        );
    }
    s
}

fn blocked(peer: &str, c: u64) -> Input {
    Input::SendBlocked {
        peer: ip(peer),
        conn_id: ConnId(c),
    }
}

fn ready(peer: &str, c: u64) -> Input {
    Input::SendReady {
        peer: ip(peer),
        conn_id: ConnId(c),
    }
}

/// Bytes of UPDATEs sent to `peer`.
fn update_bytes(out: &[Output], peer: &str) -> usize {
    out.iter()
        .map(|o| match o {
            Output::SendEncoded { peer: p, bytes, .. } if *p == ip(peer) => bytes.len(),
            _ => 0,
        })
        .sum()
}

fn to(s: &Speaker, out: &[Output], peer: &str) -> Vec<brindle_bgp_wire::UpdateMsg> {
    let ctx = s.session_context(ip(peer)).expect("ctx").clone();
    let mine: Vec<Output> = out
        .iter()
        .filter(|o| matches!(o, Output::Send { peer: p, .. } | Output::SendEncoded { peer: p, .. } if *p == ip(peer)))
        .cloned()
        .collect();
    updates(&mine, &ctx)
}

#[test]
fn churn_while_blocked_costs_one_entry_per_prefix_and_sends_only_the_end_state() {
    let mut s = setup(None);
    s.step(blocked(SLOW, 1), t(1));
    let st = s.peer_status(ip(SLOW)).expect("status");
    assert!(st.send_blocked);
    // 1,000 rounds of churn over 10 prefixes: originate, change, withdraw.
    let prefixes: Vec<String> = (0..10).map(|i| format!("198.18.{i}.0/24")).collect();
    let mut fast_bytes = 0;
    for round in 0..1000u32 {
        for p in &prefixes {
            let attrs = OriginAttrs {
                med: Some(round),
                ..Default::default()
            };
            let out = s.step(Input::Originate(pfx(p), attrs), t(2));
            assert_eq!(update_bytes(&out, SLOW), 0, "nothing encoded while blocked");
            fast_bytes += update_bytes(&out, FAST);
            if round % 2 == 1 {
                let out = s.step(Input::WithdrawOriginated(pfx(p)), t(2));
                assert_eq!(update_bytes(&out, SLOW), 0);
                fast_bytes += update_bytes(&out, FAST);
            }
        }
    }
    assert!(fast_bytes > 0, "the other session is unaffected");
    let st = s.peer_status(ip(SLOW)).expect("status");
    assert_eq!(st.backlog_prefixes, 10, "the backlog is a set of prefixes");
    // A ROUTE-REFRESH while blocked waits too.
    let out = s.step(
        msg(
            ip(SLOW),
            1,
            Message::RouteRefresh(RouteRefreshMsg::new(Family::IPV4_UNICAST)),
        ),
        t(3),
    );
    assert_eq!(update_bytes(&out, SLOW), 0);
    // Round 999 withdrew everything: once drained, the neighbor (which had nothing) gets
    // nothing but what the refresh asks for, which is also nothing.
    let out = s.step(ready(SLOW, 1), t(4));
    assert!(to(&s, &out, SLOW).iter().all(|u| u.nlri.is_empty()));
    let st = s.peer_status(ip(SLOW)).expect("status");
    assert!(!st.send_blocked);
    assert_eq!(st.backlog_prefixes, 0);
}

#[test]
fn drained_queue_gets_the_current_routes_in_one_pass() {
    let mut s = setup(None);
    s.step(blocked(SLOW, 1), t(1));
    for i in 0..50u32 {
        let p = pfx(&format!("198.18.{i}.0/24"));
        for med in 0..20 {
            let attrs = OriginAttrs {
                med: Some(med),
                ..Default::default()
            };
            s.step(Input::Originate(p, attrs), t(2));
        }
    }
    let out = s.step(ready(SLOW, 1), t(3));
    let ups = to(&s, &out, SLOW);
    let announced: usize = ups.iter().map(|u| u.nlri.len()).sum();
    assert_eq!(announced, 50, "each prefix once, in its last state");
    assert!(ups.iter().all(|u| {
        u.attributes
            .iter()
            .any(|a| matches!(a, brindle_bgp_wire::PathAttribute::MultiExitDisc(19)))
    }));
    let st = s.peer_status(ip(SLOW)).expect("status");
    assert_eq!(st.families[&Family::IPV4_UNICAST].advertised, 50);
    // Unblocked, changes flow at once again.
    let out = s.step(Input::WithdrawOriginated(pfx("198.18.0.0/24")), t(4));
    assert_eq!(to(&s, &out, SLOW).len(), 1);
}

#[test]
fn send_hold_timer_closes_a_neighbor_that_never_reads() {
    let mut s = setup(Some(Duration::from_secs(30)));
    let out = s.step(blocked(SLOW, 1), t(1));
    let timer = TimerId::Peer(ip(SLOW), PeerTimer::SendHold(ConnId(1)));
    assert!(has(
        &out,
        |o| matches!(o, Output::ArmTimer { timer: x, at } if *x == timer && *at == t(31))
    ));
    // KEEPALIVEs from the neighbor keep its hold timer happy; it still does not read.
    s.step(msg(ip(SLOW), 1, Message::Keepalive), t(20));
    let out = s.step(Input::TimerExpired(timer), t(31));
    assert_eq!(notification_codes(&out), vec![(8, 0)]);
    assert!(has(&out, |o| matches!(
        o,
        Output::Close {
            conn_id: ConnId(1),
            ..
        }
    )));
    let st = s.peer_status(ip(SLOW)).expect("status");
    assert_ne!(st.state, State::Established);
    let e = st.last_error.expect("last error");
    assert!(e.text.contains("send hold timer expired"), "{}", e.text);
    assert_eq!(
        e.notification,
        Some(brindle_bgp_wire::ErrorCode::SendHoldTimerExpired(0))
    );
    assert_eq!(
        s.peer_status(ip(FAST)).map(|p| p.state),
        Some(State::Established)
    );
}

#[test]
fn draining_in_time_cancels_the_send_hold_timer() {
    let mut s = setup(None);
    let out = s.step(blocked(SLOW, 1), t(1));
    let timer = TimerId::Peer(ip(SLOW), PeerTimer::SendHold(ConnId(1)));
    // Default: the greater of 8 minutes and twice the hold time (90 s).
    assert!(has(
        &out,
        |o| matches!(o, Output::ArmTimer { timer: x, at } if *x == timer && *at == t(481))
    ));
    let out = s.step(ready(SLOW, 1), t(100));
    assert!(has(
        &out,
        |o| matches!(o, Output::CancelTimer(x) if *x == timer)
    ));
    let out = s.step(Input::TimerExpired(timer), t(481));
    assert!(notification_codes(&out).is_empty());
    assert_eq!(
        s.peer_status(ip(SLOW)).map(|p| p.state),
        Some(State::Established)
    );
    // A stale SendBlocked for another connection changes nothing.
    s.step(blocked(SLOW, 9), t(500));
    assert!(!s.peer_status(ip(SLOW)).expect("status").send_blocked);
}
