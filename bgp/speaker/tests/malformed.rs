//! A misbehaving neighbor: a tiny raw-bytes BGP peer (a thread inside its own namespace)
//! sends a valid UPDATE, then one with a malformed ORIGIN (RFC 7606 treat-as-withdraw: the
//! route goes, the session stays), then one with an unrecognized well-known attribute
//! (NOTIFICATION 3/2 and the session closes). A BIRD session on the same speaker stays up
//! throughout.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use brindle_bgp_wire::capability::Capability;
use brindle_bgp_wire::{Family, Message, OpenMsg, SessionContext, decode_message, frame};

/// Read one whole BGP message (bounded by the socket timeout).
fn read_msg(s: &mut TcpStream, buf: &mut Vec<u8>) -> Message {
    for _ in 0..100 {
        if let Ok(Some(h)) = frame(buf, 4096) {
            let bytes: Vec<u8> = buf.drain(..h.length).collect();
            return decode_message(&bytes, &SessionContext::four_octet())
                .expect("decodable")
                .msg;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed while waiting for a message");
        buf.extend_from_slice(&chunk[..n]);
    }
    panic!("no whole message after 100 reads");
}

fn update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&body);
    m
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const ORIGIN_BAD: [u8; 4] = [0x40, 1, 1, 5];
// AS_PATH: one AS_SEQUENCE of AS 65005, 4-octet.
const AS_PATH: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xed];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 198, 18, 14, 2];
// Unrecognized well-known attribute: Optional bit clear, type 99.
const UNKNOWN_WELL_KNOWN: [u8; 4] = [0x40, 99, 1, 0];
// 198.19.130.0/24
const NLRI: [u8; 4] = [24, 198, 19, 130];

#[test]
fn malformed_updates_from_one_peer_leave_others_alone() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r1 = lab.ns("r1");
    let r2 = lab.ns("r2");
    lab.link(
        &b,
        "v1",
        &["198.18.15.1/24"],
        &r1,
        "vr",
        &["198.18.15.2/24"],
    );
    lab.link(
        &b,
        "v2",
        &["198.18.14.1/24"],
        &r2,
        "vr",
        &["198.18.14.2/24"],
    );
    lab.bird(
        &r1,
        "bird",
        r#"
router id 198.18.15.2;
log stderr all;
protocol device { scan time 2; }
protocol static s4 { ipv4; route 198.19.131.0/24 blackhole; }
protocol bgp b4 {
  local 198.18.15.2 as 65002; neighbor 198.18.15.1 as 65001;
  hold time 9; connect retry time 1;
  ipv4 { import all; export where source = RTS_STATIC; };
}
"#,
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.14.1
idle_hold_seconds: 1
peers:
  - { address: 198.18.15.2, remote_as: 65002, hold_time: 9, connect_retry: 1 }
  - { address: 198.18.14.2, remote_as: 65005, passive: true, hold_time: 30 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.15.2", 30);
    lab.wait_route(&b, false, "proto 80", "198.19.131.0/24", 10);

    // The raw peer connects and brings the session up.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Message>();
    let peer = in_netns(&r2, move || {
        let mut s = None;
        for _ in 0..50 {
            if let Ok(c) = TcpStream::connect("198.18.14.1:179") {
                s = Some(c);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut s = s.expect("connect to Brindle");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let open = OpenMsg::new(
            65005,
            30,
            Ipv4Addr::new(198, 18, 14, 2),
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(65005),
            ],
        );
        let ctx = SessionContext::four_octet();
        s.write_all(&Message::Open(open).encode(&ctx).expect("encode"))
            .expect("write");
        let mut buf = Vec::new();
        assert!(matches!(read_msg(&mut s, &mut buf), Message::Open(_)));
        s.write_all(&Message::Keepalive.encode(&ctx).expect("encode"))
            .expect("write");
        // Write what the test hands over; report the first NOTIFICATION.
        while let Ok(bytes) = rx.recv_timeout(Duration::from_secs(30)) {
            if bytes.is_empty() {
                break;
            }
            s.write_all(&bytes).expect("write");
        }
        for _ in 0..20 {
            match read_msg(&mut s, &mut buf) {
                m @ Message::Notification(_) => {
                    let _ = done_tx.send(m);
                    let mut rest = [0u8; 64];
                    // After the NOTIFICATION Brindle closes: read returns 0.
                    let n = s.read(&mut rest).unwrap_or(1);
                    return n == 0;
                }
                _ => continue,
            }
        }
        false
    });
    lab.wait_brindle_established("brindle", "198.18.14.2", 15);

    // 1. A valid UPDATE: installed.
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&ORIGIN_IGP);
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&NEXT_HOP);
    tx.send(update(&attrs, &NLRI)).expect("send");
    lab.wait_route(&b, false, "proto 80", "198.19.130.0/24 via 198.18.14.2", 10);

    // 2. Malformed ORIGIN: treat-as-withdraw; the session stays up.
    let mut bad = Vec::new();
    bad.extend_from_slice(&ORIGIN_BAD);
    bad.extend_from_slice(&AS_PATH);
    bad.extend_from_slice(&NEXT_HOP);
    tx.send(update(&bad, &NLRI)).expect("send");
    wait_for("treat-as-withdraw removes the route", 10, || {
        (!lab
            .routes(&b, false, "proto 80")
            .contains("198.19.130.0/24"))
        .then_some(())
    });
    let st = lab.status("brindle").expect("status");
    assert_eq!(
        st.peer("198.18.14.2").map(|p| p.state.as_str()),
        Some("Established")
    );

    // 3. Unrecognized well-known attribute: NOTIFICATION 3/2, session closed.
    let mut fatal = attrs.clone();
    fatal.extend_from_slice(&UNKNOWN_WELL_KNOWN);
    tx.send(update(&fatal, &NLRI)).expect("send");
    tx.send(Vec::new()).expect("send");
    let n = done_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a NOTIFICATION");
    let Message::Notification(n) = n else {
        unreachable!()
    };
    assert_eq!((n.code(), n.subcode()), (3, 2), "{n:?}");
    assert!(
        peer.join().expect("peer thread"),
        "Brindle should close after the NOTIFICATION"
    );
    let st = wait_for("status shows the NOTIFICATION we sent", 5, || {
        let st = lab.status("brindle")?;
        let raw = st.peer("198.18.14.2")?;
        (raw.last_notification == Some((3, 2, true)) && raw.state != "Established").then_some(st)
    });

    // The BIRD session never noticed.
    let bird = st.peer("198.18.15.2").expect("bird peer");
    assert_eq!(
        (bird.state.as_str(), bird.flaps),
        ("Established", 0),
        "{bird:?}"
    );
    assert!(
        lab.birdc("bird", "show protocols b4")
            .contains("Established")
    );
    assert!(
        lab.routes(&b, false, "proto 80")
            .contains("198.19.131.0/24")
    );
}
