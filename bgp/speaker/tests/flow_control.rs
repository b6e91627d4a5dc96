//! Bounded memory against hostile neighbors.
//!
//! A neighbor that never reads: a raw peer completes the handshake with a tiny receive buffer,
//! sends KEEPALIVEs and never reads. While a second raw peer churns 10,000 prefixes through
//! 120 rounds of new attributes, Brindle's queue towards the silent neighbor stays at its
//! high-water mark (plus one step's output) and the churn waits as a set of prefixes; BIRD,
//! a normal neighbor, gets every change. After the send hold time the silent neighbor is
//! closed with NOTIFICATION 8 (Send Hold Timer Expired); BIRD's session never flaps.
//!
//! A flood: a raw neighbor writes 2,097,152 /32s against the speaker's eBGP default limit of
//! 100,000; the session is cut off with Cease/1, its routes are withdrawn, the speaker's peak
//! RSS stays under 256 MiB (2M routes would take about 1 GB), and BIRD never notices.

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
const ROUNDS: u32 = 120;
/// What may be queued beyond the mark: the output of one step, which handles up to 64
/// queued UPDATEs of at most 4,096 bytes each.
const ONE_STEP: u64 = 64 * 4096;

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

    // The injector: 120 rounds over the same 10,000 prefixes.
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
        assert!(
            !injector.is_finished(),
            "the injector failed; status {:?}\n{}",
            lab.status("brindle").map(|s| s.peers),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(saw_blocked, "the silent neighbor's queue blocked");
    assert!(
        max_queue <= HIGH + ONE_STEP,
        "queue towards the silent neighbor reached {max_queue} bytes"
    );
    assert!(max_backlog <= PREFIXES as usize, "backlog {max_backlog}");
    assert!(
        churned as u64 > 10 * (HIGH + ONE_STEP),
        "the churn ({churned} bytes) should dwarf the bound"
    );
    // BIRD got the last round of every prefix (its AS path ends in 64512 + 119).
    let mut last = String::new();
    for _ in 0..150 {
        last = lab.birdc("bird", "show route where bgp_path.last = 64631 count");
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

/// VmHWM of a process, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_two_million_prefix_flood_against_a_limit_of_100k_is_cut_off() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let inj = lab.ns("inj");
    let fast = lab.ns("fast");
    lab.link(
        &b,
        "vi",
        &["198.18.24.1/24"],
        &inj,
        "vb",
        &["198.18.24.2/24"],
    );
    lab.link(
        &b,
        "vq",
        &["198.18.25.1/24"],
        &fast,
        "vb",
        &["198.18.25.2/24"],
    );
    lab.bird(
        &fast,
        "bird",
        r#"
router id 198.18.25.2;
log stderr all;
protocol device { scan time 2; }
protocol bgp b4 {
  local 198.18.25.2 as 65030; neighbor 198.18.25.1 as 65001;
  hold time 30; connect retry time 1;
  ipv4 { import all; export none; };
}
"#,
    );
    let idx = lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.24.1
idle_hold_seconds: 60
kernel: { enabled: false }
default_max_prefixes: { ebgp: 100000 }
peers:
  - { address: 198.18.24.2, remote_as: 65010, passive: true, hold_time: 240 }
  - { address: 198.18.25.2, remote_as: 65030, hold_time: 30, connect_retry: 1, max_prefixes: 10 }
"#,
    );
    let pid = lab.procs[idx].child.id();
    lab.wait_brindle_established("brindle", "198.18.25.2", 30);
    // 2,097,152 /32s of 100.64.0.0/10, packed like any speaker would, written until Brindle
    // closes the session.
    let injector = in_netns(&inj, move || {
        let mut s = connect("198.18.24.1:179");
        handshake(&mut s, 65010, Ipv4Addr::new(198, 18, 24, 2), 240);
        let ctx = SessionContext::four_octet();
        let attrs = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::from_sequence(vec![65010])),
            PathAttribute::NextHop(Ipv4Addr::new(198, 18, 24, 2)),
        ];
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        let mut sent = 0u32;
        for chunk in 0..64u32 {
            let nlri: Vec<Nlri> = (0..32768u32)
                .map(|i| {
                    let a = Ipv4Addr::from(base + chunk * 32768 + i);
                    Nlri::new(Prefix::v4(a, 32).expect("prefix"))
                })
                .collect();
            let bytes = pack_updates(&attrs, &nlri, &ctx, 4096)
                .expect("pack")
                .concat();
            if s.write_all(&bytes).is_err() {
                break;
            }
            sent += 32768;
        }
        sent
    });
    let st = wait_for("the flood is cut off with Cease/1", 60, || {
        let st = lab.status("brindle")?;
        let p = st.peer("198.18.24.2")?;
        (p.last_notification == Some((6, 1, true)) && p.state != "Established").then_some(st)
    });
    // The injector's writes may all land in socket buffers before the close: what counts is
    // what Brindle did with them.
    let _ = injector.join().expect("injector");
    let bird = st.peer("198.18.25.2").expect("bird peer");
    assert_eq!(
        (bird.state.as_str(), bird.flaps),
        ("Established", 0),
        "{bird:?}"
    );
    // What the limit bounds: the speaker kept at most ~100k of the flood's routes. Its peak
    // memory stays far below what 2M routes would take (~1 GB at ~500 B per route).
    let peak = peak_rss_kib(pid);
    eprintln!("brindle-bgp peak RSS after the flood: {peak} KiB");
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    let learned = st.routes.len();
    assert_eq!(learned, 0, "the cut-off neighbor's routes are withdrawn");
}
