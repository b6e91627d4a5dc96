//! A neighbor that never reads: a raw peer completes the handshake with a tiny receive buffer,
//! sends KEEPALIVEs and never reads. While a second raw peer churns 10,000 prefixes through
//! 60 rounds of new attributes, Brindle's queue towards the silent neighbor stays at its
//! high-water mark (plus one step's output) and the churn waits as a set of prefixes; BIRD,
//! a normal neighbor, gets every change. After the send hold time the silent neighbor is
//! closed with NOTIFICATION 8 (Send Hold Timer Expired); BIRD's session never flaps.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use brindle_bgp_wire::capability::Capability;
use brindle_bgp_wire::{
    AsPath, Family, Message, Nlri, OpenMsg, Origin, PathAttribute, Prefix, SessionContext,
    pack_updates,
};

const HIGH: u64 = 65536;
const PREFIXES: u32 = 10_000;
const ROUNDS: u32 = 60;

fn connect(addr: &str) -> TcpStream {
    for _ in 0..100 {
        if let Ok(c) = TcpStream::connect(addr) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot connect to {addr}");
}

/// OPEN and KEEPALIVE, then read Brindle's OPEN and KEEPALIVE.
fn handshake(s: &mut TcpStream, asn: u32, id: Ipv4Addr, hold: u16) {
    let ctx = SessionContext::four_octet();
    let open = OpenMsg::new(
        asn,
        hold,
        id,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    );
    s.write_all(&Message::Open(open).encode(&ctx).expect("encode"))
        .expect("write OPEN");
    s.write_all(&Message::Keepalive.encode(&ctx).expect("encode"))
        .expect("write KEEPALIVE");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = [0u8; 19];
    s.read_exact(&mut got).expect("Brindle's OPEN header");
    let len = u16::from_be_bytes([got[16], got[17]]) as usize;
    let mut rest = vec![0u8; len - 19];
    s.read_exact(&mut rest).expect("Brindle's OPEN");
}

fn churn_round(round: u32) -> Vec<u8> {
    let ctx = SessionContext::four_octet();
    let attrs = vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath::from_sequence(vec![65010, 64512 + round])),
        PathAttribute::NextHop(Ipv4Addr::new(198, 18, 21, 2)),
        PathAttribute::MultiExitDisc(round),
    ];
    let nlri: Vec<Nlri> = (0..PREFIXES)
        .map(|i| {
            let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + (i << 2));
            Nlri::new(Prefix::v4(a, 30).expect("prefix"))
        })
        .collect();
    pack_updates(&attrs, &nlri, &ctx, 4096)
        .expect("pack")
        .concat()
}

#[test]
fn a_neighbor_that_never_reads_costs_bounded_memory_and_is_closed_by_the_send_hold_timer() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let inj = lab.ns("inj");
    let slow = lab.ns("slow");
    let fast = lab.ns("fast");
    lab.link(
        &b,
        "vi",
        &["198.18.21.1/24"],
        &inj,
        "vb",
        &["198.18.21.2/24"],
    );
    lab.link(
        &b,
        "vs",
        &["198.18.22.1/24"],
        &slow,
        "vb",
        &["198.18.22.2/24"],
    );
    lab.link(
        &b,
        "vq",
        &["198.18.23.1/24"],
        &fast,
        "vb",
        &["198.18.23.2/24"],
    );
    lab.bird(
        &fast,
        "bird",
        r#"
router id 198.18.23.2;
log stderr all;
protocol device { scan time 2; }
protocol bgp b4 {
  local 198.18.23.2 as 65030; neighbor 198.18.23.1 as 65001;
  hold time 30; connect retry time 1;
  ipv4 { import all; export none; };
}
"#,
    );
    lab.brindle(
        &b,
        "brindle",
        &format!(
            r#"
local_as: 65001
router_id: 198.18.21.1
idle_hold_seconds: 60
write_queue_bytes: {HIGH}
kernel: {{ enabled: false }}
peers:
  - {{ address: 198.18.21.2, remote_as: 65010, passive: true, hold_time: 240 }}
  - {{ address: 198.18.22.2, remote_as: 65020, passive: true, hold_time: 240, send_hold_time: 25 }}
  - {{ address: 198.18.23.2, remote_as: 65030, hold_time: 30, connect_retry: 1 }}
"#
        ),
    );
    lab.wait_brindle_established("brindle", "198.18.23.2", 30);

    // The silent neighbor: a 4 KiB receive buffer, KEEPALIVEs every 5 s, never a read.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let silent = in_netns(&slow, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let addr: std::net::SocketAddr = "198.18.22.1:179".parse().expect("addr");
        let mut connected = false;
        for _ in 0..100 {
            if s.connect(&addr.into()).is_ok() {
                connected = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(connected, "connect to Brindle");
        let mut s: TcpStream = s.into();
        handshake(&mut s, 65020, Ipv4Addr::new(198, 18, 22, 2), 240);
        let ka = Message::Keepalive
            .encode(&SessionContext::four_octet())
            .expect("encode");
        // Bounded: at most 120 s.
        for _ in 0..24 {
            if stop_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
                break;
            }
            if s.write_all(&ka).is_err() {
                break;
            }
        }
    });
    lab.wait_brindle_established("brindle", "198.18.22.2", 15);

    // The injector: 60 rounds over the same 10,000 prefixes.
    let (total_tx, total_rx) = std::sync::mpsc::channel::<usize>();
    let (inj_stop_tx, inj_stop_rx) = std::sync::mpsc::channel::<()>();
    let injector = in_netns(&inj, move || {
        let mut s = connect("198.18.21.1:179");
        handshake(&mut s, 65010, Ipv4Addr::new(198, 18, 21, 2), 240);
        let mut total = 0usize;
        for round in 0..ROUNDS {
            let bytes = churn_round(round);
            total += bytes.len();
            s.write_all(&bytes).expect("write churn");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = total_tx.send(total);
        // Stay up (no KEEPALIVEs needed within the hold time) until the test ends, at most
        // 120 s.
        let _ = inj_stop_rx.recv_timeout(Duration::from_secs(120));
    });
    lab.wait_brindle_established("brindle", "198.18.21.2", 15);

    // While the churn runs, the queue to the silent neighbor never grows past the mark plus
    // one step's output (one injected UPDATE of up to ~500 prefixes re-encoded).
    let mut max_queue = 0u64;
    let mut max_backlog = 0usize;
    let mut saw_blocked = false;
    let churned = loop {
        if let Some(st) = lab.status("brindle")
            && let Some(p) = st.peer("198.18.22.2")
        {
            max_queue = max_queue.max(p.out_queue_bytes);
            max_backlog = max_backlog.max(p.backlog_prefixes);
            saw_blocked |= p.send_blocked;
        }
        if let Ok(total) = total_rx.try_recv() {
            break total;
        }
        assert!(!injector.is_finished(), "the injector failed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(saw_blocked, "the silent neighbor's queue blocked");
    assert!(
        max_queue <= HIGH + 16384,
        "queue towards the silent neighbor reached {max_queue} bytes"
    );
    assert!(max_backlog <= PREFIXES as usize, "backlog {max_backlog}");
    assert!(
        churned as u64 > 20 * (HIGH + 16384),
        "the churn ({churned} bytes) should dwarf the bound"
    );
    // BIRD got the last round of every prefix (its AS path ends in 64512 + 59).
    let mut last = String::new();
    for _ in 0..150 {
        last = lab.birdc("bird", "show route where bgp_path.last = 64571 count");
        if last.contains(&format!("{PREFIXES} of {PREFIXES} routes")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        last.contains(&format!("{PREFIXES} of {PREFIXES} routes")),
        "BIRD should have the last round of every prefix: {last}\n{:?}\n{}",
        lab.status("brindle").map(|s| s.peers),
        lab.logs()
    );

    // The send hold timer (25 s) closes the silent session with NOTIFICATION 8.
    let st = wait_for("send hold timer expires", 60, || {
        let st = lab.status("brindle")?;
        let p = st.peer("198.18.22.2")?;
        (p.last_notification == Some((8, 0, true)) && p.state != "Established").then_some(st)
    });
    let p = st.peer("198.18.22.2").expect("silent peer");
    assert!(
        p.last_error
            .as_deref()
            .is_some_and(|e| e.contains("send hold timer expired")),
        "{p:?}"
    );
    let bird = st.peer("198.18.23.2").expect("bird peer");
    assert_eq!(
        (bird.state.as_str(), bird.flaps),
        ("Established", 0),
        "{bird:?}"
    );
    let _ = stop_tx.send(());
    let _ = inj_stop_tx.send(());
    let _ = silent.join();
    let _ = injector.join();
}
