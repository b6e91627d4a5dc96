//! Capture BIRD's, FRR's and GoBGP's OPEN and UPDATE messages on the wire (tcpdump in
//! Brindle's namespace, one capture per interface), parse the pcap files here, and check that
//! every captured message decodes. With `BRINDLE_UPDATE_FIXTURES=1` the messages are written
//! to `tests/fixtures/<implementation>.hex`, which `tests/fixtures.rs` decodes and re-encodes
//! on every run:
//!
//! ```text
//! BRINDLE_UPDATE_FIXTURES=1 cargo test -p brindle-bgp-speaker --test capture
//! ```

mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::Duration;

use brindle_bgp_wire::{Message, SessionContext, decode_message, frame};

/// TCP payloads of a classic pcap (Ethernet link type) sent from `src`, in sequence order per
/// connection, concatenated per connection.
fn tcp_streams_from(pcap: &[u8], src: &[u8]) -> Vec<Vec<u8>> {
    let u32_at = |b: &[u8], at: usize, le: bool| -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    let le = match pcap.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => false,
        _ => panic!("not a classic pcap file"),
    };
    assert_eq!(u32_at(pcap, 20, le), Some(1), "expected Ethernet link type");
    // connection (src port, dst port) → seq → payload
    let mut conns: BTreeMap<(u16, u16), BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    let mut at = 24;
    while let Some(incl) = u32_at(pcap, at + 8, le) {
        let incl = incl as usize;
        let Some(frame) = pcap.get(at + 16..at + 16 + incl) else {
            break;
        };
        at += 16 + incl;
        let Some(ethertype) = frame.get(12..14) else {
            continue;
        };
        let ip = &frame[14..];
        let (tcp, ip_src, proto) = match ethertype {
            [0x08, 0x00] => {
                let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                (
                    ip.get(ihl..total.min(ip.len())).unwrap_or_default(),
                    &ip[12..16],
                    ip[9],
                )
            }
            [0x86, 0xdd] => {
                let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                (
                    ip.get(40..(40 + plen).min(ip.len())).unwrap_or_default(),
                    &ip[8..24],
                    ip[6],
                )
            }
            _ => continue,
        };
        if proto != 6 || ip_src != src || tcp.len() < 20 {
            continue;
        }
        let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let off = usize::from(tcp[12] >> 4) * 4;
        let payload = tcp.get(off..).unwrap_or_default();
        if !payload.is_empty() {
            conns
                .entry((sport, dport))
                .or_default()
                .insert(seq, payload.to_vec());
        }
    }
    conns
        .into_values()
        .map(|segs| segs.into_values().flatten().collect())
        .collect()
}

/// Split streams into BGP messages.
fn messages(streams: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in streams {
        let mut rest = &s[..];
        while let Ok(Some(h)) = frame(rest, 65535) {
            out.push(rest[..h.length].to_vec());
            rest = &rest[h.length..];
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn capture_bird_frr_gobgp_messages() {
    require(&[
        "ip",
        "bird",
        "birdc",
        "vtysh",
        "/usr/lib/frr/bgpd",
        "gobgpd",
        "gobgp",
        "tcpdump",
    ]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r1 = lab.ns("bird");
    let r2 = lab.ns("frr");
    let r3 = lab.ns("gobgp");
    lab.link(
        &b,
        "v1",
        &["198.18.16.1/24", "2001:db8:16::1/64"],
        &r1,
        "vr",
        &["198.18.16.2/24", "2001:db8:16::2/64"],
    );
    lab.link(
        &b,
        "v2",
        &["198.18.17.1/24", "2001:db8:17::1/64"],
        &r2,
        "vr",
        &["198.18.17.2/24", "2001:db8:17::2/64"],
    );
    lab.link(
        &b,
        "v3",
        &["198.18.18.1/24", "2001:db8:18::1/64"],
        &r3,
        "vr",
        &["198.18.18.2/24", "2001:db8:18::2/64"],
    );
    let mut dumps = Vec::new();
    for (i, ifname) in ["v1", "v2", "v3"].iter().enumerate() {
        let f = lab.path(&format!("cap{i}.pcap"));
        let idx = lab.spawn(
            &b,
            &format!("tcpdump-{ifname}"),
            &[
                "tcpdump",
                "-U",
                "-n",
                "-i",
                ifname,
                "-w",
                f.to_str().unwrap_or_default(),
                "tcp",
                "port",
                "179",
            ],
        );
        dumps.push((idx, f));
    }
    std::thread::sleep(Duration::from_millis(1500));

    lab.bird(
        &r1,
        "bird",
        r#"
router id 198.18.16.2;
log stderr all;
protocol device { scan time 2; }
protocol static s4 { ipv4; route 198.19.140.0/24 blackhole; route 198.19.141.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:140::/48 blackhole; }
filter tag_static { if source != RTS_STATIC then reject; bgp_community.add((65000, 1)); bgp_large_community.add((65000, 1, 2)); bgp_med = 50; accept; }
protocol bgp b4 { local 198.18.16.2 as 65002; neighbor 198.18.16.1 as 65001; ipv4 { import all; export filter tag_static; }; }
protocol bgp b6 { local 2001:db8:16::2 as 65002; neighbor 2001:db8:16::1 as 65001; ipv6 { import all; export filter tag_static; }; }
"#,
    );
    lab.frr(
        &r2,
        "frr",
        "frr defaults traditional\nhostname frr\nrouter bgp 65003\n bgp router-id 198.18.17.2\n no bgp ebgp-requires-policy\n \
         no bgp default ipv4-unicast\n no bgp network import-check\n neighbor 198.18.17.1 remote-as 65001\n \
         neighbor 2001:db8:17::1 remote-as 65001\n address-family ipv4 unicast\n  network 198.19.150.0/24\n  \
         neighbor 198.18.17.1 activate\n exit-address-family\n address-family ipv6 unicast\n  network 2001:db8:150::/48\n  \
         neighbor 2001:db8:17::1 activate\n exit-address-family\n",
    );
    let toml = r#"
[global.config]
  as = 65004
  router-id = "198.18.18.2"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.18.18.1"
    peer-as = 65001
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "2001:db8:18::1"
    peer-as = 65001
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#;
    let (_, port) = lab.gobgp(&r3, "gobgp", toml);
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.16.1
idle_hold_seconds: 1
originate:
  - prefix: 198.19.170.0/24
peers:
  - { address: 198.18.16.2, remote_as: 65002, connect_retry: 2 }
  - { address: "2001:db8:16::2", remote_as: 65002, connect_retry: 2 }
  - { address: 198.18.17.2, remote_as: 65003, connect_retry: 2 }
  - { address: "2001:db8:17::2", remote_as: 65003, connect_retry: 2 }
  - { address: 198.18.18.2, remote_as: 65004, connect_retry: 2 }
  - { address: "2001:db8:18::2", remote_as: 65004, connect_retry: 2 }
"#,
    );
    for p in [
        "198.18.16.2",
        "2001:db8:16::2",
        "198.18.17.2",
        "2001:db8:17::2",
        "198.18.18.2",
        "2001:db8:18::2",
    ] {
        lab.wait_brindle_established("brindle", p, 40);
    }
    lab.gobgp_cli(
        &r3,
        port,
        "global rib add 198.19.160.0/24 community 65000:7 med 10 -a ipv4",
    );
    lab.gobgp_cli(&r3, port, "global rib add 2001:db8:160::/48 -a ipv6");
    for (prefix, src) in [
        ("198.19.140.0/24", "198.18.16.2"),
        ("2001:db8:140::/48", "2001:db8:16::2"),
        ("198.19.150.0/24", "198.18.17.2"),
        ("2001:db8:150::/48", "2001:db8:17::2"),
        ("198.19.160.0/24", "198.18.18.2"),
        ("2001:db8:160::/48", "2001:db8:18::2"),
    ] {
        lab.wait_brindle_route("brindle", prefix, src, 20);
    }
    std::thread::sleep(Duration::from_millis(1000));
    for (idx, _) in &dumps {
        lab.terminate(*idx, 5);
    }

    let update = std::env::var("BRINDLE_UPDATE_FIXTURES").is_ok_and(|v| v == "1");
    let versions = [
        (
            "bird",
            sh(&["bird", "--version"]) + &try_sh(&["bird", "--version"]).1,
        ),
        (
            "frr",
            sh(&["/usr/lib/frr/bgpd", "--version"])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        ("gobgp", sh(&["gobgpd", "--version"])),
    ];
    let peers: [(&str, [&[u8]; 2]); 3] = [
        (
            "bird",
            [
                &[198, 18, 16, 2],
                &[
                    0x20, 0x01, 0x0d, 0xb8, 0, 0x16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                ],
            ],
        ),
        (
            "frr",
            [
                &[198, 18, 17, 2],
                &[
                    0x20, 0x01, 0x0d, 0xb8, 0, 0x17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                ],
            ],
        ),
        (
            "gobgp",
            [
                &[198, 18, 18, 2],
                &[
                    0x20, 0x01, 0x0d, 0xb8, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                ],
            ],
        ),
    ];
    for (i, (name, srcs)) in peers.iter().enumerate() {
        let pcap = std::fs::read(&dumps[i].1).expect("pcap");
        let mut msgs = Vec::new();
        for src in srcs {
            msgs.extend(messages(&tcp_streams_from(&pcap, src)));
        }
        let mut lines = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for m in &msgs {
            let d = decode_message(m, &SessionContext::four_octet()).unwrap_or_else(|e| {
                panic!("{name}: captured message does not decode: {e}: {}", hex(m))
            });
            let kind = match d.msg {
                Message::Open(_) => "open",
                Message::Update(_) => "update",
                _ => continue,
            };
            if !seen.insert(m.clone()) {
                continue;
            }
            let canonical =
                d.msg.encode(&SessionContext::four_octet()).ok().as_deref() == Some(&m[..]);
            let tag = if canonical {
                "canonical"
            } else {
                "noncanonical"
            };
            lines.push(format!("{kind} {tag} {}", hex(m)));
        }
        let opens = lines.iter().filter(|l| l.starts_with("open")).count();
        let updates = lines.iter().filter(|l| l.starts_with("update")).count();
        assert!(
            opens >= 1 && updates >= 2,
            "{name}: too few messages captured ({opens} OPEN, {updates} UPDATE)"
        );
        if update {
            let version = versions[i]
                .1
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .to_string();
            let mut text = format!(
                "# BGP messages sent by {name} ({version}) to Brindle, captured on the wire.\n\
                 # Produced by: BRINDLE_UPDATE_FIXTURES=1 cargo test -p brindle-bgp-speaker --test capture\n\
                 # (tcpdump -U -n -i IF -w FILE tcp port 179 in Brindle's namespace; pcap parsed in tests/capture.rs).\n\
                 # Format: <open|update> <canonical|noncanonical> <hex of the whole message, header included>.\n\
                 # canonical = brindle_bgp_wire re-encodes the decoded message byte for byte.\n"
            );
            for l in &lines {
                text += l;
                text += "\n";
            }
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/{name}.hex"));
            std::fs::write(&path, text).expect("write fixture");
        }
    }
}
